"""The code fingerprint: a hash of what the fingerprinted source *does*, not of its bytes.

Python modules are hashed as definitions (functions, classes, module-level assignments and other
module-level statements), each as its AST with docstrings removed, keyed by definition rather than by
file. So comments, docstrings, formatting and moving a definition to another module leave the hash
unchanged, while a changed constant, operator or default changes it.

Keying by name alone would let a behaviour change through when a name is rebound to another
definition (``from a import f`` becoming ``from b import f``, both defining an ``f``; or ``import x as
y``). So each definition also records what every global name it uses resolves to: a definition of
the fingerprinted source by its content (its own AST digest, never its module path, so a move keeps
it), an outside name by its full dotted path (``torch.nn.functional.relu``), an internal module by
what is used of it. Imports inside function bodies are rewritten the same way before hashing.

C++ sources are hashed as their token stream: comments removed, whitespace between tokens normalised,
preprocessor lines kept apart.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT_PACKAGES = ("bench", "baselines", "meta")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _strip_docstrings(node: ast.AST) -> ast.AST:
    """``node`` (a copy) with the docstring of every module, class and function in it removed."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = inner.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                inner.body = body[1:] or [ast.Pass()]
    return node


@dataclass
class _Module:
    name: str  # dotted
    is_package: bool
    tree: ast.Module
    bindings: dict[str, tuple] = field(default_factory=dict)  # module-level name -> what it is bound to

    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _absolute(module: _Module, level: int, target: str | None) -> str:
    """The dotted name of ``from <level dots><target> import ...`` seen from ``module``."""
    if level == 0:
        return target or ""
    base = module.package().split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


class _Index:
    """Every fingerprinted module's top-level bindings, and how a name resolves across modules."""

    def __init__(self, root: Path, modules: dict[str, _Module]):
        self.root, self.modules = root, modules
        self.definition_ids: dict[tuple[str, str], str] = {}
        for module in modules.values():
            self._bind(module)

    @staticmethod
    def internal(dotted: str) -> bool:
        return dotted.split(".")[0] in ROOT_PACKAGES

    def is_module(self, dotted: str) -> bool:
        if dotted in self.modules:
            return True
        path = self.root.joinpath(*dotted.split("."))
        return self.internal(dotted) and (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file())

    def _bind(self, module: _Module) -> None:
        for statement in module.tree.body:
            if isinstance(statement, ast.Import):
                for alias in statement.names:  # `import a.b` binds `a`
                    module.bindings[alias.asname or alias.name.split(".")[0]] = ("module", alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(statement, ast.ImportFrom):
                source = _absolute(module, statement.level, statement.module)
                for alias in statement.names:
                    if alias.name != "*":
                        module.bindings[alias.asname or alias.name] = ("from", source, alias.name)
            elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                module.bindings[statement.name] = ("def", module.name, statement.name)
            elif _alias(statement):  # `name = other`: another name for what other is, like `import x as name`
                module.bindings[statement.targets[0].id] = ("alias", module.name, statement.value.id)
            else:
                for name in _assigned_names(statement):
                    module.bindings[name] = ("def", module.name, name)

    def module_of(self, binding: tuple) -> str | None:
        """The internal module a binding names, if it names one."""
        if binding[0] == "module":
            return binding[1] if self.internal(binding[1]) else None
        if binding[0] == "from" and self.is_module(f"{binding[1]}.{binding[2]}"):
            return f"{binding[1]}.{binding[2]}"
        return None

    def resolve_attribute(self, dotted: str, attribute: str, depth: int = 0) -> str:
        """What ``attribute`` of module ``dotted`` is: a fingerprinted definition by content (wherever it
        lives), an internal module (not by path, so a module may move), a name of an internal module
        outside the fingerprint or of an outside package by its dotted path."""
        module = self.modules.get(dotted)
        if module is not None and attribute in module.bindings and depth < 20:
            return self.resolve_binding(module.bindings[attribute], depth + 1)
        if self.internal(dotted) and self.is_module(f"{dotted}.{attribute}"):
            return "internal-module"
        return f"{'internal' if module is not None else 'outside'}:{dotted}.{attribute}"

    def resolve_binding(self, binding: tuple, depth: int = 0) -> str:
        if binding[0] == "alias":
            bound = self.modules[binding[1]].bindings.get(binding[2])
            return self.resolve_binding(bound, depth + 1) if bound is not None and depth < 20 else f"builtin:{binding[2]}"
        if binding[0] == "def":
            return f"def:{self.definition_ids[(binding[1], binding[2])]}"
        if binding[0] == "module":
            return "internal-module" if self.internal(binding[1]) else f"outside:{binding[1]}"
        return self.resolve_attribute(binding[1], binding[2], depth)


def _alias(statement: ast.stmt) -> bool:
    """``name = other_name``: a binding, hashed through what ``other_name`` resolves to."""
    return (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and isinstance(statement.value, ast.Name)
    )


def _assigned_names(statement: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
        targets = [statement.target]
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


class _InternalImports(ast.NodeTransformer):
    """A definition with the module paths of the internal imports in its body removed (the names
    imported are kept; what they resolve to is recorded beside it, in ``resolved``)."""

    def __init__(self, index: _Index, module: _Module):
        self.index, self.module = index, module
        self.imports: list[tuple[str, str, str]] = []  # (bound name, source module, attribute)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        source = _absolute(self.module, node.level, node.module)
        if not self.index.internal(source):
            return node
        self.imports += [(alias.asname or alias.name, source, alias.name) for alias in node.names]
        return ast.ImportFrom(module="<internal>", names=[ast.alias(name=a.name, asname=a.asname) for a in node.names], level=0)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        return ast.Import(names=[ast.alias(name="<internal>" if self.index.internal(a.name) else a.name, asname=a.asname) for a in node.names])

    def resolved(self) -> list[str]:
        return [f"{bound}={self.index.resolve_attribute(source, attribute)}" for bound, source, attribute in self.imports]


def _used_globals(node: ast.AST, module: _Module, index: _Index) -> list[str]:
    """What each module-level name ``node`` uses resolves to (``mod.name`` of an internal module
    resolved through the module), sorted; names bound nowhere at module level (builtins, locals) are
    left out."""
    found: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute):
            chain, base = [inner.attr], inner.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            dotted = index.module_of(module.bindings[base.id]) if isinstance(base, ast.Name) and base.id in module.bindings else None
            if dotted is not None:  # `package.sub.name`: follow the chain through internal modules
                parts = list(reversed(chain))
                while len(parts) > 1 and index.is_module(f"{dotted}.{parts[0]}"):
                    dotted = f"{dotted}.{parts.pop(0)}"
                found.add(f"{base.id}.{'.'.join(parts)}={index.resolve_attribute(dotted, parts[0])}")
        elif isinstance(inner, ast.Name) and inner.id in module.bindings:
            found.add(f"{inner.id}={index.resolve_binding(module.bindings[inner.id])}")
    return sorted(found)


def _entries(root: Path, modules: dict[str, _Module]) -> list[str]:
    """One entry per module-level statement (imports aside): its own digest (key and AST, docstrings and
    internal module paths removed), then what every global name it uses resolves to."""
    index = _Index(root, modules)
    statements: list[tuple[_Module, str, ast.AST, _InternalImports]] = []
    for module in modules.values():
        counts: dict[str, int] = {}
        for statement in _strip_docstrings(module.tree).body:
            if isinstance(statement, ast.Import | ast.ImportFrom) or _alias(statement):
                continue  # bindings: recorded through what the definitions use
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names = [statement.name]
            else:
                names = _assigned_names(statement) or ["<statement>"]
            key = ",".join(names)
            counts[key] = counts.get(key, 0) + 1  # a name assigned twice in one module: the order counts
            imports = _InternalImports(index, module)
            normalised = imports.visit(statement)
            own = _digest(f"{key}#{counts[key]}\0{ast.dump(normalised, include_attributes=False)}")
            for name in names:
                index.definition_ids[(module.name, name)] = own
            statements.append((module, own, normalised, imports))
    return sorted(
        f"{own}\0{';'.join(sorted({*_used_globals(node, module, index), *imports.resolved()}))}" for module, own, node, imports in statements
    )


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


_CPP_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/|\n|\w+|\S', re.S)


def cpp_tokens(source: str) -> str:
    """C++ ``source`` as its tokens joined by one space: comments removed, other whitespace
    normalised, each preprocessor line (``#include``, ``#define``) on a line of its own."""
    out: list[str] = []
    line_start, directive = True, False
    for token in _CPP_TOKEN.findall(source.replace("\\\n", " ")):
        if token == "\n":
            if directive:
                out.append("\n")
            line_start, directive = True, False
        elif not token.startswith(("//", "/*")):
            if line_start and token == "#":
                out.append("\n")
                directive = True
            out.append(token)
            line_start = False
    return re.sub(r" ?\n[ \n]*", "\n", " ".join(out)).strip()


def fingerprint(root: Path, files: list[Path]) -> str:
    """The fingerprint of ``files`` (paths relative to ``root``): Python by definitions, C++ by tokens."""
    modules: dict[str, _Module] = {}
    cpp: list[str] = []
    for path in files:
        source = (root / path).read_text()
        if path.suffix == ".py":
            name, is_package = _module_name(path)
            modules[name] = _Module(name, is_package, ast.parse(source, filename=str(path)))
        else:
            cpp.append(_digest(cpp_tokens(source)))
    digest = hashlib.sha256()
    for entry in [*_entries(root, modules), *sorted(f"cpp\0{c}" for c in cpp)]:
        digest.update(entry.encode() + b"\n")
    return digest.hexdigest()[:12]
