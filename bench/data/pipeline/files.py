"""A dataset folder on disk: deterministic parquet and JSON, file hashes, dataset.json, atomic folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.core.atomic import atomic_write, atomic_write_text
from bench.core.errors import BenchError
from bench.core.paths import default_data_dir
from bench.data.pipeline.config import MANIFEST, SCHEMA_VERSION


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` so that the same table always gives the same bytes; atomic (temp + rename)."""
    atomic_write(path, lambda tmp: pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd", compression_level=3))


def write_json(obj, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(files: dict[str, str]) -> str:
    """sha256 over the (relative path, file sha256) list, sorted by path."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]}\n".encode())
    return digest.hexdigest()


def write_manifest(folder: Path, *, name: str, source: dict, settings: dict, counts: dict, summaries: dict, srs: dict, diagnostics: dict) -> dict:
    """Write ``folder``'s dataset.json, the one writer of every dataset's manifest: its sections in one order
    (schema, name, source, pipeline = ``settings``, counts, summaries, srs, diagnostics), then ``files``
    (sha256 of every file so far) and ``content_hash``. Returns the manifest written."""
    manifest = {
        "schema": SCHEMA_VERSION,
        "name": name,
        "source": source,
        "pipeline": settings,
        "counts": counts,
        "summaries": summaries,
        "srs": srs,
        "diagnostics": diagnostics,
    }
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
    manifest = {**manifest, "files": files, "content_hash": content_hash(files)}
    write_json(manifest, Path(folder) / MANIFEST)
    return manifest


def processed_dir(data_dir) -> Path:
    return Path(data_dir if data_dir is not None else default_data_dir()) / "processed"


@contextmanager
def atomic_dataset_dir(name: str, data_dir, force: bool = False):
    """Yield a temporary folder; on success it replaces ``<data-dir>/processed/<name>``, on error it is removed."""
    if not name or "/" in name or name.startswith("."):
        raise BenchError(f"dataset name {name!r} is not a plain folder name", "pick a name like xuetangx-synth")
    base = processed_dir(data_dir)
    final = base / name
    if final.exists() and not force:
        raise BenchError(f"dataset {name!r} already exists at {final}", "pass --force to rebuild it or pick another --name")
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = base / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
