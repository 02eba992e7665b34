"""The code fingerprint hashes behaviour, not bytes (bench/core/fingerprint.py): a comment, a
docstring, a reformat or a move keeps it; a changed constant, operator, default or import binding
changes it."""

from __future__ import annotations

import ast
import shutil
import textwrap

import pytest

from bench.core import provenance
from bench.core.fingerprint import cpp_tokens

BASE = {
    "meta/__init__.py": "",
    "meta/a.py": '''
        """Module a."""
        import torch

        SCALE = 2.0


        def helper(x, k=3):
            """Doubles."""
            return x * SCALE + k


        class Model:
            def forward(self, x):
                return torch.relu(helper(x))
        ''',
    "meta/b.py": """
        from meta.a import Model, helper
        import meta.a as ma


        def run(x):
            from meta.a import SCALE

            return Model().forward(x) - helper(x) + SCALE + ma.helper(1)
        """,
    "meta/other.py": """
        SCALE = 3.0


        def helper(x, k=3):
            return x - k
        """,
    "meta/kernel.cpp": """
        #include <torch/extension.h>
        // the step
        float step(float x) { return x * 2.0f; /* doubled */ }
        """,
}


def write(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip())
    return provenance.code_fingerprint(root)


def variant(tmp_path, name, changes):
    """The fingerprint of BASE with ``changes`` (path -> new text, or None to delete the file)."""
    files = dict(BASE)
    for path, text in changes.items():
        if text is None:
            files.pop(path)
        else:
            files[path] = text
    return write(tmp_path / name, files)


@pytest.fixture
def base(tmp_path):
    return write(tmp_path / "base", BASE)


def edit(path, old, new):
    text = textwrap.dedent(BASE[path]).lstrip()
    assert old in text, old
    return text.replace(old, new)


def test_comments_docstrings_and_formatting_keep_the_fingerprint(tmp_path, base):
    assert variant(tmp_path, "comment", {"meta/a.py": edit("meta/a.py", "SCALE = 2.0", "SCALE = 2.0  # why two")}) == base
    assert variant(tmp_path, "doc", {"meta/a.py": edit("meta/a.py", '"""Doubles."""', '"""Doubles x, then adds k."""')}) == base
    assert variant(tmp_path, "nodoc", {"meta/a.py": edit("meta/a.py", '"""Module a."""\n', "")}) == base
    reformatted = edit("meta/a.py", "def helper(x, k=3):", "def helper(\n    x,\n    k = 3,\n):").replace("x * SCALE + k", "(x*SCALE) + k")
    assert variant(tmp_path, "format", {"meta/a.py": reformatted}) == base
    cpp = "#include <torch/extension.h>\nfloat step( float x )\n{\n  return x*2.0f;  // doubled\n}\n"
    assert variant(tmp_path, "cpp-format", {"meta/kernel.cpp": cpp}) == base


def test_a_move_to_another_module_keeps_the_fingerprint(tmp_path, base):
    # helper and SCALE move to meta/util.py; a imports them back, b's imports (top and in-function) follow them
    util = """
        SCALE = 2.0


        def helper(x, k=3):
            return x * SCALE + k
        """
    a = """
        import torch

        from meta.util import helper


        class Model:
            def forward(self, x):
                return torch.relu(helper(x))
        """
    b = edit("meta/b.py", "    from meta.a import SCALE", "    from meta.util import SCALE").replace("import meta.a as ma", "import meta.util as ma")
    assert variant(tmp_path, "moved", {"meta/util.py": util, "meta/a.py": a, "meta/b.py": b}) == base
    # a module split into a package with the same public names
    model = textwrap.dedent(BASE["meta/a.py"])
    package = {"meta/a.py": None, "meta/a/__init__.py": "from meta.a.model import SCALE, Model, helper\n", "meta/a/model.py": model}
    assert variant(tmp_path, "package", package) == base


@pytest.mark.parametrize(
    "change",
    [
        ("meta/a.py", "SCALE = 2.0", "SCALE = 2.5"),  # a constant
        ("meta/a.py", "x * SCALE + k", "x * SCALE - k"),  # an operator
        ("meta/a.py", "def helper(x, k=3):", "def helper(x, k=4):"),  # a default
        ("meta/b.py", "from meta.a import Model, helper", "from meta.a import Model\nfrom meta.other import helper"),  # a rebinding
        ("meta/b.py", "import meta.a as ma", "import meta.other as ma"),  # a module alias rebound
        ("meta/b.py", "    from meta.a import SCALE", "    from meta.other import SCALE"),  # an in-function import rebound
        ("meta/kernel.cpp", "x * 2.0f", "x * 3.0f"),  # the kernel's arithmetic
    ],
)
def test_a_change_of_behaviour_changes_the_fingerprint(tmp_path, base, change):
    path, old, new = change
    assert variant(tmp_path, "changed", {path: edit(path, old, new)}) != base


def test_the_repository_reformatted_keeps_its_fingerprint(tmp_path):
    """Every fingerprinted module of this checkout rewritten by ast.unparse (no comments, other
    layout and quotes, docstrings re-indented) has the checkout's fingerprint."""
    for package in ("bench", "baselines", "meta"):
        shutil.copytree(provenance.REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for path in provenance.fingerprint_files(tmp_path):
        if path.suffix == ".py":
            target = tmp_path / path
            target.write_text(ast.unparse(ast.parse(target.read_text())))
    assert provenance.code_fingerprint(tmp_path) == provenance.code_fingerprint()


def test_cpp_tokens_drop_comments_and_keep_strings_and_directives():
    source = '#include <a.h>\n#define N 4 // four\nint f() { /* c */ return g("x // y"); }\n'
    assert cpp_tokens(source) == '# include < a . h >\n# define N 4\nint f ( ) { return g ( "x // y" ) ; }'


def test_an_alias_assignment_and_an_import_as_are_the_same_binding(tmp_path, base):
    aliased = {"meta/c.py": "from meta.a import helper\n\nhalf = helper\n\n\ndef go(x):\n    return half(x)\n"}
    imported = {"meta/c.py": "from meta.a import helper as half\n\n\ndef go(x):\n    return half(x)\n"}
    rebound = {"meta/c.py": "from meta.other import helper as half\n\n\ndef go(x):\n    return half(x)\n"}
    assert variant(tmp_path, "aliased", aliased) == variant(tmp_path, "imported", imported) != variant(tmp_path, "rebound", rebound)
