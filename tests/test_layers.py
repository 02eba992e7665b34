"""The layering of bench/, baselines/ and meta/, checked on the source (every import statement,
function-level ones included): no import cycle, no upward import, no private name borrowed across
modules. The same rule is the import-linter contract in pyproject.toml (`lint-imports`)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "baselines", "meta")

# Lowest first. A module may import its own layer and the layers before it, never one after it.
# Layers on one line are siblings that may not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bench.core",),
    ("bench.data",),
    ("baselines",),
    ("meta",),
    ("bench.methods",),
    ("bench.plan",),
    ("bench.store",),
    ("bench.run", "bench.analysis"),
    ("bench.output",),
    ("bench.commands",),
)
UNLAYERED = {"bench", "bench.__main__"}  # the package marker and `python -m bench` (it imports the CLI only)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every import statement in the file."""
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:  # `from bench.data import pipeline`: a module, not a name
                    found.append((submodule, (), node.lineno))
                else:
                    found.append((base, (alias.name,), node.lineno))
    return [(target, names, line) for target, names, line in found if target.split(".")[0] in PACKAGES]


def layer_of(module: str) -> int | None:
    for index, siblings in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in siblings):
            return index
    return None


def sibling_of(module: str) -> str | None:
    index = layer_of(module)
    if index is None:
        return None
    return next(top for top in LAYERS[index] if module == top or module.startswith(top + "."))


@pytest.fixture(scope="module")
def graph():
    modules = source_modules()
    known = set(modules)
    return modules, {name: imports_of(path, name, known) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    modules, _ = graph
    unplaced = sorted(m for m in modules if m not in UNLAYERED and layer_of(m) is None)
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_no_module_imports_a_layer_above_its_own_or_a_sibling(graph):
    _, edges = graph
    problems = []
    for module, imports in edges.items():
        if module in UNLAYERED:
            continue
        mine = layer_of(module)
        for target, _, line in imports:
            theirs = layer_of(target)
            if theirs is None:
                continue
            if theirs > mine or (theirs == mine and sibling_of(target) != sibling_of(module)):
                problems.append(f"{module}:{line} imports {target}")
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_import_cycle(graph):
    modules, edges = graph
    adjacency = {m: sorted({t for t, _, _ in edges[m] if t in modules and t != m}) for m in modules}
    # Tarjan's strongly connected components: a cycle is a component of two or more modules
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in adjacency[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in adjacency:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_module(graph):
    _, edges = graph
    borrowed = [
        f"{module}:{line} takes {name} from {target}"
        for module, imports in edges.items()
        for target, names, line in imports
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not borrowed, "private names used across modules:\n" + "\n".join(borrowed)


def test_the_layer_check_fails_on_an_upward_import(tmp_path):
    """The checks above see a function-level upward import (the kind that hid the old cycles)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from bench.commands.cli import main\n    from bench.data.pipeline import _private\n")
    found = imports_of(source, "bench.core.probe", {"bench.commands.cli", "bench.data.pipeline"})
    assert [(t, n) for t, n, _ in found] == [("bench.commands.cli", ("main",)), ("bench.data.pipeline", ("_private",))]
    assert layer_of("bench.commands.cli") > layer_of("bench.core.probe")


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None, reason="import-linter not installed")
def test_import_linter_contract_passes():
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    done = subprocess.run([tool, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
