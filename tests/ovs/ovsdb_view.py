"""Read OVSDB with ovs-vsctl (not with tor-agent's code): what the tests assert on."""

from __future__ import annotations

import json
from typing import Any

from ovs_sandbox import OvsSandbox


def _value(v: Any) -> Any:
    """One ovs-vsctl JSON datum as Python: maps as dicts, sets as lists, UUIDs as strings."""
    if isinstance(v, list) and len(v) == 2 and v[0] in ("map", "set", "uuid", "named-uuid"):
        kind, body = v
        if kind == "map":
            return {k: _value(x) for k, x in body}
        if kind == "set":
            return [_value(x) for x in body]
        return body
    return v


def rows(box: OvsSandbox, table: str, *columns: str) -> list[dict[str, Any]]:
    """Every row of `table` with `columns` (plus _uuid)."""
    cols = ",".join(("_uuid", *columns))
    out = json.loads(box.vsctl("--format=json", f"--columns={cols}", "list", table))
    return [dict(zip(out["headings"], map(_value, row), strict=True)) for row in out["data"]]


def by_name(box: OvsSandbox, table: str, *columns: str) -> dict[str, dict[str, Any]]:
    """Rows of `table` keyed by name; fails on duplicate names."""
    found = rows(box, table, "name", *columns)
    names = [r["name"] for r in found]
    assert len(names) == len(set(names)), f"duplicate {table} names: {sorted(names)}"
    return {r["name"]: r for r in found}


def bridge_ports(box: OvsSandbox, bridge: str) -> list[str]:
    """The port names of `bridge`, sorted (duplicates kept, so that tests can see them)."""
    return sorted(box.vsctl("list-ports", bridge).split())


def optional(value: Any) -> Any:
    """An optional column as ovs-vsctl prints it ([] when empty) -> value or None."""
    return None if value == [] else value
