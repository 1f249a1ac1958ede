"""Deep merge of settings sections into an intent document, remembering where every part came from.

Mappings merge key by key; anything else (lists included) is replaced whole. Every replaced part records
its origin, so a problem the intent loader finds at `underlay.uplinks[1].mtu` can be traced back to
the settings path (`nodes.leaf1.underlay.uplinks[1].mtu`) or topology link that produced it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LAST = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


@dataclass(frozen=True)
class Origin:
    """Where part of an intent came from: a settings path (`exact`: deeper paths extend it) or a topology item."""

    source: str
    path: str
    exact: bool = True

    def child(self, key: object) -> Origin:
        """The origin of `key` inside the mapping this origin produced."""
        return Origin(self.source, join(self.path, key), self.exact) if self.exact else self

    def below(self, rest: str) -> Origin:
        """The origin of `rest` (e.g. `.mtu`, `[1]`) inside the part this origin produced."""
        return Origin(self.source, self.path + rest, self.exact) if self.exact else self

    def text(self) -> str:
        return f"{self.source}: {self.path}" if self.path else self.source


def join(path: str, key: object) -> str:
    """The intent loader's path notation: join('a', 'b') == 'a.b', join('a', 1) == 'a[1]'."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Provenance:
    """Origins by intent path; the origin of a path is that of its longest recorded prefix."""

    def __init__(self, default: Origin) -> None:
        self.default = default
        self.origins: dict[str, Origin] = {}

    def record(self, path: str, origin: Origin) -> None:
        """`path` (and everything under it) now comes from `origin`."""
        for key in [k for k in self.origins if k.startswith((f"{path}.", f"{path}["))]:
            del self.origins[key]
        self.origins[path] = origin

    def of(self, path: str) -> Origin:
        rest = ""
        while True:
            if path in self.origins:
                return self.origins[path].below(rest)
            match = _LAST.search(path)
            if not path or match is None:
                return self.default
            rest = match.group(1) + rest
            path = path[: match.start()]

    def derived(self, path: str) -> bool:
        """Whether `path` still holds what render derived (no settings section replaced it)."""
        return not self.of(path).exact


def merge(doc: dict[str, Any], over: Mapping[Any, Any], at: str, origin: Origin, prov: Provenance) -> None:
    """Merge `over` into `doc` (which sits at intent path `at`); `origin` is where `over` comes from."""
    for key, value in over.items():
        path, source = join(at, key), origin.child(key)
        if isinstance(value, Mapping) and isinstance(doc.get(key), dict):
            merge(doc[key], value, path, source, prov)
        else:
            doc[key] = _plain(copy.deepcopy(value))
            prov.record(path, source)


def _plain(value: Any) -> Any:
    """Mappings as plain dicts, so the writer and the merge see one type."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
