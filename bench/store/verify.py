"""`bench store verify`'s checks, as `git fsck` for the result store: every run of a results folder
(and of its tuning store), every cached prerequisite (GRU4Rec/SASRec weights) and every tuning journal;
and the repairs that need no recomputation (moving damaged things aside, never deleting them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.store import integrity
from bench.store.results import RunState, Store, set_aside

TUNING_DIR = "tuning"  # <results>/tuning: the trial runs' own store and the studies' journals (bench/run/tune.py)
CACHE_FILES = ("info.json", "model.pt")  # a cached training (baselines/gru4rec.py cached_training)


@dataclass(frozen=True)
class Finding:
    """One checked thing that is not complete: ``kind`` is run, cache or journal; ``state`` damaged,
    failed, orphaned or pruned; ``problem`` says what, in one line."""

    kind: str
    state: str
    path: Path
    problem: str
    run: RunState | None = None


@dataclass
class StoreCheck:
    root: Path
    stores: list[Store]
    complete: int = 0  # runs
    cache_entries: int = 0
    journals: int = 0
    findings: list[Finding] = field(default_factory=list)

    def count(self, state: str, kinds=("run", "file")) -> int:
        return sum(f.state == state and f.kind in kinds for f in self.findings)

    def summary(self) -> str:
        """One line: runs complete / damaged / failed / orphaned (and pruned), then the cache and journals."""
        runs = self.complete + sum(f.kind == "run" for f in self.findings)
        pruned = f", {self.count('pruned')} pruned" if self.count("pruned") else ""
        return (
            f"{self.root}: {runs} run(s): {self.complete} complete, {self.count('damaged')} damaged, {self.count('failed')} failed, "
            f"{self.count('orphaned')} orphaned{pruned}; {self.cache_entries} cached model(s), {self.count('damaged', ('cache',))} damaged; "
            f"{self.journals} tuning journal(s), {self.count('damaged', ('journal',))} damaged"
        )


def stores_of(root: Path) -> list[Store]:
    """The results folder's store and, when tuning has run, its tuning store."""
    stores = [Store(root, create=False)]
    if (root / TUNING_DIR / "store.json").is_file():
        stores.append(Store(root / TUNING_DIR, create=False))
    return stores


def check_store(root: str | Path) -> StoreCheck:
    """Check every run, cached model and tuning journal under ``root`` (files against their checksums)."""
    root = Path(root)
    check = StoreCheck(root, stores_of(root))
    for store in check.stores:
        for state in store.scan():
            if state.state == "complete":
                check.complete += 1
                continue
            word = {"running": "orphaned"}.get(state.state, state.state)
            problem = state.problem or state.state
            check.findings.append(Finding("run", word, store.run_dir(state.hash), problem, state))
        for tmp in sorted(store.runs_dir.glob("*/.*.tmp")) + sorted(store.cache_dir.glob("**/.*.tmp")):
            check.findings.append(Finding("file", "orphaned", tmp, "a temporary file left by an interrupted write"))
        for folder in sorted(p for p in store.cache_dir.glob("*/*") if p.is_dir()):
            check.cache_entries += 1
            problem = cache_problem(folder)
            if problem:
                state = "orphaned" if problem.startswith("incomplete") else "damaged"
                check.findings.append(Finding("cache", state, folder, problem))
    for path in sorted((root / TUNING_DIR).glob("*/*.log")):
        check.journals += 1
        problem = journal_problem(path)
        if problem:
            check.findings.append(Finding("journal", "damaged", path, problem))
    return check


def cache_problem(folder: Path) -> str | None:
    """What is wrong with a cached training: info.json must parse and model.pt pass its CRC-32s."""
    present = [name for name in CACHE_FILES if (folder / name).is_file()]
    if not present:
        return None if not any(folder.iterdir()) else "incomplete: no info.json, no model.pt (retrained when needed)"
    if len(present) < len(CACHE_FILES):
        return f"incomplete: only {present[0]} (retrained when needed)"
    data = (folder / "info.json").read_bytes()
    try:
        json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return integrity.json_problem("info.json", data)
    return integrity.torch_file_problem(folder / "model.pt")


def journal_lines(path: Path) -> tuple[list[bytes], int | None]:
    """A journal's lines, and the index of the first that does not parse as JSON (None: all parse)."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    for n, line in enumerate(lines):
        try:
            json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return lines, n
        if not line.endswith(b"\n"):
            return lines, n
    return lines, None


def journal_problem(path: Path) -> str | None:
    lines, bad = journal_lines(path)
    return None if bad is None else f"line {bad + 1} of {len(lines)} does not parse (truncated or overwritten)"


def repair_cache(root: Path, finding: Finding) -> str:
    """A damaged cached model moved aside: the next run that needs it trains it again."""
    target = set_aside(root, finding.path, f"cache-{finding.path.parent.name}-{finding.path.name[:16]}")
    return f"moved to {target}; the next run that needs it trains it again"


def repair_journal(root: Path, finding: Finding) -> str:
    """A journal is an append-only log: keep its lines before the first bad one (an earlier state of the
    study, which `bench tune` resumes from); the whole damaged file is kept aside."""
    lines, bad = journal_lines(finding.path)
    target = set_aside(root, finding.path, f"journal-{finding.path.parent.name}-{finding.path.stem}")
    from bench.core.atomic import atomic_write

    atomic_write(finding.path, lambda tmp: tmp.write_bytes(b"".join(lines[:bad])))
    return f"kept its first {bad} line(s), the whole file moved to {target}; `bench tune` resumes from there"
