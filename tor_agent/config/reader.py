"""The generic reader: builds any declared section (`tor_agent.config.schema`) from a YAML mapping by
walking its fields, and collects every problem with its field path instead of stopping at the first.

Unknown keys, required keys, types, ranges, choices, parsers, nested sections and lists all come from the
declarations; rules across fields are checked afterwards, in `validate*.py`, on the sections that were
built (`Reader.sections`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from tor_agent.config.declare import (
    Field,
    Invalid,
    is_section,
    list_item,
    literal_choices,
    optional,
    union_members,
    yaml_fields,
)
from tor_agent.config.quote import got, one_line, shown, type_name
from tor_agent.errors import Problem

T = TypeVar("T")
_BAD: Any = object()  # a value that was refused (its problem is recorded)
_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}", re.ASCII)
# How YAML 1.1 writes integers that tor-agent's loader keeps as text (see yamlio): explain why refused.
_INTEGER_TEXT = re.compile(r"[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|[0-9][0-9_:]*)", re.ASCII)


def join(path: str, key: object) -> str:
    """Dotted path of `key` under `path`: join('a', 'b') == 'a.b', join('a', 1) == 'a[1]'.

    A key that is not a plain name (an unknown key can be anything) is quoted, bounded and on one line."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    text = key if isinstance(key, str) and _KEY.fullmatch(key) else shown(key, 40)
    return f"{path}.{text}" if path else text


def integer_hint(value: object) -> str:
    """Why a number the loader kept as text is not an integer here (see `tor_agent.config.yamlio`)."""
    if not isinstance(value, str) or not _INTEGER_TEXT.fullmatch(value):
        return ""
    return ": write it in decimal without a leading 0, `_` or `:` (YAML 1.1 reads 010 as octal 8 and 1:40 as 100)"


MAX_PROBLEMS = 1000  # a file with more is not an intent with typos: stop reading it (bounded time and output)


class TooManyProblems(Exception):
    """Raised by `Reader.require` at the MAX_PROBLEMS-th problem; the problems so far are in the reader."""


class Reader:
    """Collects problems (and warnings) while reading one intent document."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.sections: dict[str, Any] = {}  # path -> every section built without a problem, e.g. "underlay.ospf"

    def require(self, cond: bool, path: str, message: str) -> bool:
        """Record `message` at `path` unless `cond`; return `cond`."""
        if not cond:
            self.problems.append(Problem(path, message))
            if len(self.problems) >= MAX_PROBLEMS:
                raise TooManyProblems
        return cond

    def warn(self, path: str, message: str) -> None:
        """Record a warning: the intent is valid, but something about it is unsafe."""
        self.warnings.append(Problem(path, message))

    def section(self, cls: type[T], raw: Any, path: str) -> T | None:
        """Build the declared section `cls` from the mapping `raw` found at `path`; None after a problem."""
        if not self.require(isinstance(raw, dict), path or "(top level)", f"must be a mapping, got {type_name(raw)}"):
            return None
        fields = list(yaml_fields(cls))
        names = [f.name for f in fields]
        for key in raw:
            self.require(key in names, join(path, key), f"unknown key (allowed here: {', '.join(names)})")
        n = len(self.problems)
        values = {}
        for f in fields:
            where = join(path, f.name)
            if f.name not in raw:
                self.require(not f.required, where, "is required")
                continue
            value = self._value(f, f.type, raw[f.name], where)
            if value is not _BAD:
                values[f.name] = value
        if len(self.problems) > n:
            return None
        built = cls(**values)
        self.sections[path] = built
        return built

    def _value(self, f: Field, tp: Any, raw: Any, where: str) -> Any:
        tp = optional(tp)  # a YAML null is not "absent": it is refused by the type's own check
        item = list_item(tp)
        if item is not None:
            return self._list(f, item, raw, where)
        if f.setting.parse is not None:
            try:
                return f.setting.parse(raw)
            except Invalid as e:
                self.require(False, where, str(e))
                return _BAD
        if is_section(tp):
            built = self.section(tp, raw, where)
            return _BAD if built is None else built
        return self._scalar(f, tp, raw, where)

    def _list(self, f: Field, item: Any, raw: Any, where: str) -> Any:
        if not self.require(isinstance(raw, list), where, f"must be a list, got {type_name(raw)}"):
            return _BAD
        n, least = len(self.problems), f.setting.min_items
        self.require(len(raw) >= least, where, "needs at least one item" if least == 1 else f"needs {least}+ items")
        items, seen = [], set()
        for i, value in enumerate(raw):
            got = self._value(f, item, value, join(where, i))
            if got is _BAD:
                continue
            if f.setting.unique:  # a set: 20 000 peers are checked in linear time
                if got in seen:
                    self.require(
                        False, join(where, i), f"{shown(got) if isinstance(got, str) else got} is listed twice"
                    )
                seen.add(got)
            items.append(got)
        return tuple(items) if len(self.problems) == n else _BAD

    def _scalar(self, f: Field, tp: Any, raw: Any, where: str) -> Any:
        members = [m for m in union_members(tp) if m is not type(None)]
        choices = tuple(c for m in members for c in (literal_choices(m) or ()))
        if int in members and _is_int(raw):
            return self._integer(f, raw, where)
        if choices and any(raw == c and type(raw) is type(c) for c in choices):
            return raw
        if int in members and choices:  # e.g. int | Literal["flow"]
            words = " | ".join(map(str, choices))
            message = f"must be an integer or {words}, got {got(raw)}"
            return self._refuse(where, f"{message} (allowed: {_int_range(f)} or {words}){integer_hint(raw)}")
        if choices:
            return self._refuse(where, f"{shown(raw)} is not supported (allowed: {' | '.join(map(str, choices))})")
        if int in members:
            message = f"must be an integer, got {got(raw)}"
            return self._refuse(where, f"{message} (allowed: {_int_range(f)}){integer_hint(raw)}")
        if bool in members:
            if isinstance(raw, bool):
                return raw
            return self._refuse(where, f"must be true or false, got {got(raw)}")
        if str in members and isinstance(raw, str) and raw:
            return raw
        return self._refuse(where, f"must be a non-empty string, got {got(raw)}")

    def _integer(self, f: Field, value: int, where: str) -> Any:
        lo, hi = f.setting.range or (-(2**63), 2**63 - 1)
        if lo <= value <= hi or value in f.setting.also:
            return value
        return self._refuse(where, f"{value} is out of range (allowed: {_int_range(f)})")

    def _refuse(self, where: str, message: str) -> Any:
        self.require(False, where, message)
        return _BAD


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(f: Field) -> str:
    lo, hi = f.setting.range or (None, None)
    text = f"{lo}..{hi}" if lo is not None else "any integer"
    return " or ".join([*map(str, f.setting.also), text])


def secret_file_mode(mode: int, path: str, where: str, r: Reader) -> None:
    """Warn when a file holding a secret can be read by anyone but its owner."""
    if mode & 0o077:
        r.warn(where, f"{one_line(path)} is readable by group or others (mode {mode:04o}): chmod 600 it")


def resolve(base_dir: Path, value: str) -> str:
    """An absolute path: relative paths in the intent file are relative to the file's directory."""
    return str(base_dir / value) if not Path(value).is_absolute() else value
