"""What makes a stored file trustworthy: its size and sha256, recorded in run.json when the run is
written and compared with the bytes every reader reads (as git's object store or restic do), and the
one-line words for what is wrong when they differ."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

PARQUET_MAGIC = b"PAR1"


def digest(data: bytes) -> dict:
    """``{"size": bytes, "sha256": hex}`` of ``data``: what run.json's ``files`` records per file."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_digests(folder: Path, names) -> dict[str, dict]:
    """The digest of each named file in ``folder``."""
    return {name: digest((Path(folder) / name).read_bytes()) for name in names}


def mismatch(name: str, data: bytes, want: dict) -> str | None:
    """What is wrong with file ``name``'s bytes against its recorded digest, in words; None when they match."""
    if len(data) != want.get("size"):
        return f"{name} has {len(data):,} bytes, run.json records {want.get('size'):,}" + (" (empty)" if not data else "")
    if hashlib.sha256(data).hexdigest() != want.get("sha256"):
        return f"{name} fails its checksum (sha256 differs from run.json's)"
    return None


def parquet_problem(name: str, data: bytes) -> str | None:
    """A cheap check for a file stored without a checksum (legacy runs): parquet's magic at both ends."""
    if not data:
        return f"{name} is empty (0 bytes)"
    if len(data) < 12 or data[:4] != PARQUET_MAGIC or data[-4:] != PARQUET_MAGIC:
        return f"{name} is not a whole parquet file ({len(data):,} bytes: truncated or overwritten)"
    return None


def json_problem(name: str, data: bytes) -> str:
    """Why a JSON file that did not parse did not, in words."""
    return f"{name} is empty (0 bytes)" if not data else f"{name} does not parse ({len(data):,} bytes: truncated or overwritten)"


def torch_file_problem(path: Path) -> str | None:
    """A torch.save file is a zip whose members carry CRC-32s: check every member without loading torch."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        return f"{path.name} does not read ({type(err).__name__}: truncated or overwritten)"
    return f"{path.name} fails the checksum of its member {bad}" if bad else None
