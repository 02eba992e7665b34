"""House habits of the test suite: a test file never imports from another test file (what two of them
share lives in tests/helpers.py or in a conftest.py fixture)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[tuple[str, int]]:
    """(module, line) for every import of a test module (tests/test_*.py) in the file, however spelt:
    `import tests.test_x`, `from tests.test_x import y`, `from tests import test_x`, `from test_x
    import y`, `from .test_x import y`, `from . import test_x`; function-level imports included.
    tests/helpers.py and conftest.py are not test modules: importing them is the way to share."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = node.module or ""
            whole_package = package == "tests" if node.level == 0 else not package  # `from tests import x`, `from . import x`
            names = [alias.name for alias in node.names] if whole_package else [package]
        else:
            continue
        for name in names:
            last = name.removeprefix("tests.")
            if "." not in last and last.startswith("test_"):
                found.append((last, node.lineno))
    return found


def cross_test_imports(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {module}" for path in sorted(root.rglob("*.py")) for module, line in imported_test_modules(path)
    ]


def test_no_test_file_imports_from_another_test_file():
    assert cross_test_imports(TESTS) == [], "move the shared helper to tests/helpers.py (or a conftest.py fixture)"


def test_the_check_finds_every_spelling(tmp_path):
    spellings = [
        "import tests.test_a",
        "from tests.test_a import helper",
        "from tests import test_a",
        "from test_a import _helper",
        "from .test_a import helper",
        "from . import test_a",
        "def f():\n    from tests.test_a import helper",
    ]
    for index, line in enumerate(spellings):
        (tmp_path / f"test_{index}.py").write_text(line + "\n")
    allowed = "from tests.helpers import make_tasks\nfrom tests.conftest import TINY_GRID\nfrom . import helpers\nimport tests.helpers\n"
    (tmp_path / "test_ok.py").write_text(allowed)
    found = cross_test_imports(tmp_path)
    assert len(found) == len(spellings) and all(entry.endswith("imports test_a") for entry in found), found
