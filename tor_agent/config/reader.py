"""Typed reads of raw YAML data that collect every problem instead of stopping at the first.

Each `Reader` method returns the value (or a default) when it is valid and None after recording a
`Problem` when it is not, so a builder can keep going and report all problems at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tor_agent.config import limits as L
from tor_agent.errors import Problem

T = TypeVar("T")
_MISSING: Any = object()
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]+$")


def join(path: str, key: str | int) -> str:
    """Dotted path of `key` under `path`: join('a', 'b') == 'a.b', join('a', 1) == 'a[1]'."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}.get(
        type(value), type(value).__name__
    )


class Reader:
    """Collects problems while reading one intent document."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def require(self, cond: bool, path: str, message: str) -> bool:
        """Record `message` at `path` unless `cond`; return `cond`."""
        if not cond:
            self.problems.append(Problem(path, message))
        return cond

    def mapping(
        self, value: object, path: str, keys: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any] | None:
        """Check `value` is a mapping with only `keys` and all of `required`."""
        allowed = list(keys)
        if not self.require(
            isinstance(value, dict), path or "(top level)", f"must be a mapping, got {_type_name(value)}"
        ):
            return None
        assert isinstance(value, dict)
        for key in value:
            self.require(
                key in allowed,
                join(path, str(key)),
                f"unknown key (allowed here: {', '.join(allowed)})",
            )
        for key in required:
            self.require(key in value, join(path, key), "is required")
        return {k: v for k, v in value.items() if k in allowed}

    def integer(self, m: dict[str, Any], path: str, key: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
        """An integer in lo..hi (booleans are not integers here)."""
        if key not in m:
            return None if default is _MISSING else default
        value, where = m[key], join(path, key)
        if not self.require(
            isinstance(value, int) and not isinstance(value, bool),
            where,
            f"must be an integer, got {_type_name(value)} {value!r} (allowed: {lo}..{hi})",
        ):
            return None
        if not self.require(lo <= value <= hi, where, f"{value} is out of range (allowed: {lo}..{hi})"):
            return None
        return value

    def boolean(self, m: dict[str, Any], path: str, key: str, default: Any = _MISSING) -> Any:
        """true or false."""
        if key not in m:
            return None if default is _MISSING else default
        value = m[key]
        ok = self.require(
            isinstance(value, bool),
            join(path, key),
            f"must be true or false, got {_type_name(value)} {value!r}",
        )
        return value if ok else None

    def string(
        self,
        m: dict[str, Any],
        path: str,
        key: str,
        default: Any = _MISSING,
        choices: tuple[str, ...] = (),
    ) -> Any:
        """A non-empty string, optionally one of `choices`."""
        if key not in m:
            return None if default is _MISSING else default
        value, where = m[key], join(path, key)
        if choices:
            allowed = f"allowed: {' | '.join(choices)}"
            ok = self.require(value in choices, where, f"{value!r} is not supported ({allowed})")
            return value if ok else None
        if not self.require(
            isinstance(value, str) and value != "",
            where,
            f"must be a non-empty string, got {_type_name(value)} {value!r}",
        ):
            return None
        return value

    def items(self, m: dict[str, Any], path: str, key: str) -> list[tuple[str, Any]] | None:
        """The elements of a list at `key` with their paths; [] when absent."""
        if key not in m:
            return []
        value, where = m[key], join(path, key)
        if not self.require(isinstance(value, list), where, f"must be a list, got {_type_name(value)}"):
            return None
        return [(join(where, i), v) for i, v in enumerate(value)]

    def parsed(self, value: object, path: str, parse: Callable[[str], T], what: str) -> T | None:
        """`parse(str(value))`, recording `what` (the allowed form) when it fails."""
        if not self.require(isinstance(value, str), path, f"must be a string, got {_type_name(value)} ({what})"):
            return None
        try:
            return parse(str(value))
        except ValueError:
            self.require(False, path, f"{value!r} is not valid ({what})")
            return None

    def ipv4(self, value: object, path: str) -> ipaddress.IPv4Address | None:
        """A unicast IPv4 address such as 198.18.0.11."""
        addr = self.parsed(value, path, ipaddress.IPv4Address, "an IPv4 address such as 198.18.0.11")
        if addr is None:
            return None
        ok = self.require(
            not (
                addr.is_multicast
                or addr.is_unspecified
                or addr.is_loopback
                or addr == ipaddress.IPv4Address("255.255.255.255")
            ),
            path,
            f"{addr} is not a unicast address (allowed: a unicast IPv4 address)",
        )
        return addr if ok else None


def ifname(value: object, path: str, r: Reader) -> str | None:
    """A Linux interface name: 1..15 characters of letters, digits and _ . @ -."""
    if not r.require(isinstance(value, str), path, f"must be an interface name string, got {value!r}"):
        return None
    name = str(value)
    ok = r.require(
        0 < len(name) <= L.IFNAME_MAX and bool(_IFNAME.match(name)) and name not in (".", ".."),
        path,
        f"{name!r} is not a valid interface name (allowed: 1..{L.IFNAME_MAX} characters of letters, digits, _ . @ -)",
    )
    return name if ok else None


def resolve(base_dir: Path, value: str) -> str:
    """An absolute path: relative paths in the intent file are relative to the file's directory."""
    return str(base_dir / value) if not Path(value).is_absolute() else value
