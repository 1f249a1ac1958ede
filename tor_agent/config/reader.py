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
from tor_agent.config.quote import one_line, shown
from tor_agent.config.quote import type_name as _type_name
from tor_agent.errors import Problem

T = TypeVar("T")
_MISSING: Any = object()
_IFNAME = re.compile(r"[A-Za-z0-9_.@-]+", re.ASCII)
_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}", re.ASCII)
# How YAML 1.1 writes integers that tor-agent's loader keeps as text (see yamlio): explain why refused.
_INTEGER_TEXT = re.compile(r"[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|[0-9][0-9_:]*)", re.ASCII)
_NOT_UNICAST_V4 = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "in 0.0.0.0/8, this network"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "a loopback address"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4, with the broadcast address)"),
)


def join(path: str, key: object) -> str:
    """Dotted path of `key` under `path`: join('a', 'b') == 'a.b', join('a', 1) == 'a[1]'.

    A key that is not a plain name (an unknown key can be anything) is quoted, bounded and on one line."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    text = key if isinstance(key, str) and _KEY.fullmatch(key) else shown(key, 40)
    return f"{path}.{text}" if path else text


def unicast_problem(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, loopback_ok: bool = False) -> str | None:
    """Why `addr` cannot be the address of a host (an interface, a VTEP, a controller), or None.

    `loopback_ok`: 127.0.0.0/8 and ::1 are fine (a controller may run on the switch itself)."""
    if addr.is_loopback:
        return None if loopback_ok else "a loopback address"
    if addr.version == 4:
        return next((why for net, why in _NOT_UNICAST_V4 if addr in net), None)
    if addr.is_unspecified:
        return "the unspecified address"
    return "a multicast address" if addr.is_multicast else None


class Reader:
    """Collects problems while reading one intent document."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def require(self, cond: bool, path: str, message: str) -> bool:
        """Record `message` at `path` unless `cond`; return `cond`."""
        if not cond:
            self.problems.append(Problem(path, message))
        return cond

    def warn(self, path: str, message: str) -> None:
        """Record a warning: the intent is valid, but something about it is unsafe."""
        self.warnings.append(Problem(path, message))

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
                join(path, key),
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
            f"must be an integer, got {_type_name(value)} {shown(value)} (allowed: {lo}..{hi}){integer_hint(value)}",
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
            f"must be true or false, got {_type_name(value)} {shown(value)}",
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
            ok = self.require(value in choices, where, f"{shown(value)} is not supported ({allowed})")
            return value if ok else None
        if not self.require(
            isinstance(value, str) and value != "",
            where,
            f"must be a non-empty string, got {_type_name(value)} {shown(value)}",
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
            self.require(False, path, f"{shown(value)} is not valid ({what})")
            return None

    def ipv4(self, value: object, path: str) -> ipaddress.IPv4Address | None:
        """A unicast IPv4 address such as 198.18.0.11."""
        addr = self.parsed(value, path, ipaddress.IPv4Address, "an IPv4 address such as 198.18.0.11")
        if addr is None:
            return None
        why = unicast_problem(addr)
        ok = self.require(
            why is None, path, f"{addr} is not a unicast address ({why}; allowed: a unicast IPv4 address)"
        )
        return addr if ok else None


def integer_hint(value: object) -> str:
    """Why a number the loader kept as text is not an integer here (see `tor_agent.config.yamlio`)."""
    if not isinstance(value, str) or not _INTEGER_TEXT.fullmatch(value):
        return ""
    return ": write it in decimal without a leading 0, `_` or `:` (YAML 1.1 reads 010 as octal 8 and 1:40 as 100)"


def ifname(value: object, path: str, r: Reader) -> str | None:
    """A Linux interface name: 1..15 characters of letters, digits and _ . @ -."""
    if not r.require(isinstance(value, str), path, f"must be an interface name string, got {shown(value)}"):
        return None
    name = str(value)
    ok = r.require(
        0 < len(name) <= L.IFNAME_MAX and bool(_IFNAME.fullmatch(name)) and name not in (".", ".."),
        path,
        f"{shown(name)} is not a valid interface name "
        f"(allowed: 1..{L.IFNAME_MAX} characters of letters, digits, _ . @ -)",
    )
    return name if ok else None


def secret_file_mode(mode: int, path: str, where: str, r: Reader) -> None:
    """Warn when a file holding a secret can be read by anyone but its owner."""
    if mode & 0o077:
        r.warn(where, f"{one_line(path)} is readable by group or others (mode {mode:04o}): chmod 600 it")


def resolve(base_dir: Path, value: str) -> str:
    """An absolute path: relative paths in the intent file are relative to the file's directory."""
    return str(base_dir / value) if not Path(value).is_absolute() else value
