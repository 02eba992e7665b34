"""Declared parameter types: each method param's type and valid range or choices.

``Param.int(ge=1)``, ``Param.float(gt=0)``, ``Param.float(ge=0, lt=1)``, ``Param.bool()``,
``Param.choice("a", "b")``, ``Param.path(exists=True)``. ``parse(value)`` returns the value in its
declared type (an int given for a float becomes a float, so ``1`` and ``1.0`` are one run) or
raises ``ValueError`` saying what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Param:
    kind: str  # "int", "float", "bool", "str" or "path"
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    optional: bool = False  # None allowed (written "none": TOML has no null)
    exists: bool = False  # for paths: must exist when the grid is expanded

    @classmethod
    def int(cls, *, ge=None, gt=None, le=None, lt=None, optional=False) -> Param:
        return cls("int", ge=ge, gt=gt, le=le, lt=lt, optional=optional)

    @classmethod
    def float(cls, *, ge=None, gt=None, le=None, lt=None, optional=False) -> Param:
        return cls("float", ge=ge, gt=gt, le=le, lt=lt, optional=optional)

    @classmethod
    def bool(cls) -> Param:
        return cls("bool")

    @classmethod
    def choice(cls, *choices: str) -> Param:
        return cls("str", choices=tuple(choices))

    @classmethod
    def floats(cls, *, ge=None) -> Param:
        """Comma-separated numbers (or a TOML list), kept as one canonical string: "0,0.1,1"."""
        return cls("floats", ge=ge)

    @classmethod
    def path(cls, *, exists: bool = True, optional: bool = False) -> Param:
        return cls("path", exists=exists, optional=optional)

    def allowed(self) -> str:
        """What this param accepts, in words: ``a float > 0``, ``one of per-task, batched``."""
        if self.kind == "bool":
            text = "true or false"
        elif self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "path":
            text = "a path that exists" if self.exists else "a path"
        else:
            text = {"int": "an integer", "float": "a float", "str": "a string", "floats": "comma-separated numbers, each"}[self.kind]
            bounds = [(op, bound) for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if bound is not None]
            lower = [b for b in bounds if b[0][0] == ">"]
            upper = [b for b in bounds if b[0][0] == "<"]
            if lower and upper:
                (lo_op, lo), (hi_op, hi) = lower[0], upper[0]
                text += f" in {'[' if lo_op == '>=' else '('}{lo:g}, {hi:g}{']' if hi_op == '<=' else ')'}"
            elif bounds:
                text += " " + " and ".join(f"{op} {bound:g}" for op, bound in bounds)
        return text + (" (or none)" if self.optional else "")

    def parse(self, value: Any) -> Any:
        """``value`` in the declared type, checked against the range or choices; else ValueError."""
        if self.optional and (value is None or value == "none"):  # TOML has no null: --set key=none
            return None
        parsed = self._convert(value)
        if parsed is None or not self._in_range(parsed):
            raise ValueError(f"must be {self.allowed()}")
        return parsed

    def _convert(self, value: Any) -> Any:
        if isinstance(value, bool):  # bool is an int to Python, never to a grid
            return value if self.kind == "bool" else None
        if self.kind == "int":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():  # 1e3 written for 1000
                return int(value)
            return None
        if self.kind == "float":
            return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        if self.kind in ("str", "path"):
            return value if isinstance(value, str) else None
        if self.kind == "floats":
            items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
            try:
                numbers = [float(x) for x in items if not isinstance(x, bool)]
            except (TypeError, ValueError):
                return None
            if len(numbers) != len(items) or not numbers or not all(map(math.isfinite, numbers)):
                return None
            return ",".join(f"{x:g}" for x in numbers)  # one spelling: "0.10, 1" and "0.1,1" are one run
        return None

    def _in_range(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.kind == "path":
            return not self.exists or Path(value).expanduser().exists()
        if self.kind == "floats":
            return all(self.ge is None or float(x) >= self.ge for x in value.split(","))
        if self.kind in ("int", "float"):
            return (
                (self.ge is None or value >= self.ge)
                and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt)
            )
        return True


@dataclass(frozen=True)
class Space:
    """A declared hyperparameter search range (bench/run/tune.py asks Optuna for a value in it).

    ``Space.float(1e-4, 1e-2, log=True)``, ``Space.int(1, 10)``, ``Space.choice("a", "b")``; both
    bounds inclusive. Every value it can yield must parse by the param's ``Param`` (tests check)."""

    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    @classmethod
    def int(cls, low: int, high: int, *, log: bool = False) -> Space:
        return cls("int", low, high, log)

    @classmethod
    def float(cls, low: float, high: float, *, log: bool = False) -> Space:
        return cls("float", low, high, log)

    @classmethod
    def choice(cls, *choices) -> Space:
        return cls("choice", choices=tuple(choices))

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"{self.kind} {'log ' if self.log else ''}[{self.low:g}, {self.high:g}]"
