"""The docs a reader finds their way in: README.md stays a landing page and ARCHITECTURE.md names every module.

How a module counts as named is documented at the top of ARCHITECTURE.md: in its tree (the first fenced
block), a line at column 0 ending in ``/`` opens a folder and the names in the indented lines below it
(before the two or more spaces that start the description) are relative to that folder; anywhere else
in the file, a path from the repository root counts. An ``__init__.py`` holding only a docstring is a
package marker and need not be named.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("bench", "meta", "baselines")
README_MAX_LINES = 150


def modules(root: Path = ROOT) -> list[str]:
    """Every .py file under the source folders that must be named, as a path from ``root``."""
    found = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "__init__.py":
                body = ast.parse(path.read_text()).body
                if all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body):
                    continue  # a package marker: empty or docstring only
            found.append(path.relative_to(root).as_posix())
    return found


def tree_names(text: str) -> set[str]:
    """Paths from the root named in the first fenced block (the tree), by the folder-line convention."""
    block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    names, folder = set(), ""
    for line in (block.group(1) if block else "").splitlines():
        names_part = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]  # the description starts after 2+ spaces
        if not line.startswith(" "):
            first = line.split()[0] if line.split() else ""
            if first.endswith("/"):
                folder = first
                continue
            folder_here = ""
        else:
            folder_here = folder
        names |= {folder_here + name for name in re.findall(r"[\w/]+\.py\b", names_part)}
    return names


def named_modules(text: str) -> set[str]:
    """Paths ARCHITECTURE.md names: its tree's, plus every root-relative path anywhere in it."""
    return tree_names(text) | set(re.findall(r"(?<![\w/])((?:bench|meta|baselines)/[\w/]*\.py)\b", text))


def test_every_module_is_named_in_architecture():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = sorted(set(modules()) - named_modules(text))
    assert not missing, f"ARCHITECTURE.md does not name these modules (add them to its tree): {missing}"


def test_tree_convention_reads_folders_and_ignores_descriptions():
    text = "```\nbench/core/   layer 1\n  a.py, b.py   see meta/c.py\n  figures/d.py  x\nbench/e.py   top\n```\n"
    assert tree_names(text) == {"bench/core/a.py", "bench/core/b.py", "bench/core/figures/d.py", "bench/e.py"}
    # a module only mentioned in a description is named elsewhere by its root path, so it still counts
    assert "meta/c.py" in named_modules(text) and "bench/core/x.py" not in named_modules(text)


def test_architecture_opens_with_the_tree_and_the_layer_rule():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    first_sections = text.split("\n## ")[1]
    assert first_sections.startswith("The tree and the rule") and "**Rule:**" in first_sections
    assert not (ROOT / "bench" / "ARCHITECTURE.md").exists()


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/ (at most {README_MAX_LINES})"
    first_screen = "\n".join(lines[:40])
    assert "ARCHITECTURE.md" in first_screen and "make bench" in first_screen and "make test" in first_screen


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r'src="([^"]+)"', text)
    broken = [t for t in targets if not t.startswith(("http://", "https://")) and not (ROOT / t).exists()]
    assert targets and not broken, broken
