"""What a run records about where it ran and with what: git revision, package versions, device,
host, and the fingerprint of the code that can change its numbers."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.core.fingerprint import fingerprint

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "learn2learn", "numpy", "pandas", "pyarrow", "scipy", "rich")


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """Revision of the checkout bench runs from, and whether it has uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision or "unknown", "dirty": bool(status) if status is not None else None}


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# The source that can change a number a run stores: data pipeline, models, methods, engines, the
# evaluator, the run itself. Report, plot, CLI, store and grid code cannot, so editing them keeps
# results valid. Globs, so a new module in baselines/ or meta/ is covered without a change here.
FINGERPRINT_SOURCES = (
    "bench/core/metrics.py",
    "bench/data/**/*.py",
    "bench/methods/*.py",
    "bench/run/execute.py",
    "baselines/**/*.py",
    "meta/**/*.py",
    "baselines/**/*.cpp",  # the compiled GRU kernel (baselines/fused_gru.cpp)
    "meta/**/*.cpp",
)
FINGERPRINT_EXCLUDED = frozenset({"bench/data/info.py"})  # commands and summaries only


def fingerprint_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files ``code_fingerprint`` hashes, relative to ``root``, sorted."""
    found = {path.relative_to(root) for pattern in FINGERPRINT_SOURCES for path in root.glob(pattern) if path.is_file()}
    return sorted(path for path in found if path.as_posix() not in FINGERPRINT_EXCLUDED)


def _fingerprint(root: Path) -> str:
    return fingerprint(root, fingerprint_files(root))


@functools.lru_cache(maxsize=1)
def _current_fingerprint() -> str:
    return _fingerprint(REPO_ROOT)


def code_fingerprint(root: Path | None = None) -> str:
    """Hash of what the source that can change a result (``FINGERPRINT_SOURCES``) does: its
    definitions, not its bytes (bench/core/fingerprint.py), so comments, docstrings, formatting and
    moves keep it. Part of every run's identity and of every cached prerequisite's key (GRU4Rec
    weights), so a fix never reuses results or weights made by the code before it. Computed once
    per process for this checkout."""
    return _current_fingerprint() if root is None else _fingerprint(Path(root))
