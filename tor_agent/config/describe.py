"""The intent's declarations described for people and editors: the tables of `docs/config.md` and a JSON
Schema (draft 2020-12, printed by `tor-agent schema`, shipped as `docs/intent.schema.json`).

Both are derived from `tor_agent.config.schema` only; `python -m tor_agent.config.docs` writes them and a
unit test fails when either is stale. The JSON Schema checks each field's form for an editor; rules across
fields (a leaf needs an overlay, subnets apart, ...) are `tor-agent check`'s.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tor_agent.config.declare import (
    Field,
    fields_of,
    is_section,
    list_item,
    literal_choices,
    optional,
    union_members,
    yaml_fields,
)
from tor_agent.config.schema import Intent
from tor_agent.config.values import FORMS

SCHEMA_ID = "https://tor-agent.example/intent-v1.schema.json"
HEADER = "| key | type | default | allowed |\n|---|---|---|---|"


# --- JSON Schema ------------------------------------------------------------------------------------


def intent_json_schema() -> dict[str, Any]:
    """The JSON Schema of an intent file (YAML read as JSON)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "tor-agent intent file, version 1",
        "description": "One switch's intent (/etc/tor-agent/agent.yaml). Generated from tor-agent's declarations; "
        "`tor-agent check` also checks the rules across fields.",
        **_object(Intent),
    }


def schema_json() -> str:
    """The JSON Schema as text: what `tor-agent schema` prints and docs/intent.schema.json holds."""
    return json.dumps(intent_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _object(cls: type) -> dict[str, Any]:
    fields = list(yaml_fields(cls))
    out: dict[str, Any] = {"type": "object", "properties": {f.name: _property(f) for f in fields}}
    required = [f.name for f in fields if f.required]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _property(f: Field) -> dict[str, Any]:
    out = {"description": _plain(f.setting.doc), **_json(f, f.type)}
    if _has_plain_default(f):
        out["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


def _json(f: Field, tp: Any) -> dict[str, Any]:
    tp = optional(tp)
    item = list_item(tp)
    if item is not None:
        out: dict[str, Any] = {"type": "array", "items": _json(f, item)}
        if f.setting.min_items:
            out["minItems"] = f.setting.min_items
        if f.setting.unique:
            out["uniqueItems"] = True
        return out
    if f.setting.parse is not None:
        return copy.deepcopy(f.setting.json or FORMS[f.setting.parse].json)
    if is_section(tp):
        return _object(tp)
    members = [m for m in union_members(tp) if m is not type(None)]
    schemas = [_member(f, m) for m in members]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _member(f: Field, tp: Any) -> dict[str, Any]:
    choices = literal_choices(tp)
    if choices is not None:
        return {"enum": list(choices)}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        lo, hi = f.setting.range or (None, None)
        bounded = {"type": "integer", **({"minimum": lo, "maximum": hi} if lo is not None else {})}
        return {"anyOf": [{"enum": list(f.setting.also)}, bounded]} if f.setting.also else bounded
    if tp is str:
        return {"type": "string", "minLength": 1}
    raise TypeError(f"{f.name}: no JSON Schema for {tp!r}")


def _has_plain_default(f: Field) -> bool:
    """A default an editor can show: a value, not "absent", a section or one computed from other fields."""
    return not (f.required or f.default is None or f.setting.derived or is_section(type(f.default)))


def _plain(markdown: str) -> str:
    return markdown.replace("`", "").replace("**", "")


# --- docs tables ------------------------------------------------------------------------------------


def section_class(path: str) -> type:
    """The declared section at a dotted docs path: "" is the top level, "underlay.uplinks[]" an uplink."""
    cls: type = Intent
    for part in filter(None, path.split(".")):
        name = part.removesuffix("[]")
        (f,) = (f for f in fields_of(cls) if f.name == name)
        tp = optional(f.type)
        tp = list_item(tp) or tp if part.endswith("[]") else tp
        if not is_section(tp):
            raise KeyError(f"{path}: {name} is not a section")
        cls = tp
    return cls


def table(path: str) -> str:
    """The markdown table of the section at `path`: one row per key an intent file may write."""
    rows = [HEADER]
    for f in yaml_fields(section_class(path)):
        cells = [f"`{f.name}`", _kind(f), _default(f), _allowed(f)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def _kind(f: Field) -> str:
    if f.setting.kind is not None:
        return f.setting.kind
    tp = optional(f.type)
    if list_item(tp) is not None:
        return "list"
    if f.setting.parse is not None:
        return FORMS[f.setting.parse].kind
    if is_section(tp):
        return "mapping"
    members = [m for m in union_members(tp) if m is not type(None)]
    return " or ".join(_member_kind(m, alone=len(members) == 1) for m in members)


def _member_kind(tp: Any, alone: bool) -> str:
    choices = literal_choices(tp)
    if choices is not None and not alone:
        return " or ".join(f"`{c}`" for c in choices)  # e.g. "integer or `flow`"
    if choices is not None:
        return "integer" if all(isinstance(c, int) for c in choices) else "string"
    return {bool: "boolean", int: "integer", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _default(f: Field) -> str:
    if f.setting.default_doc is not None:
        return f.setting.default_doc
    if f.required:
        return f"required, ≥ {f.setting.min_items}" if f.setting.min_items else "required"
    value = f.default
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`[{', '.join(map(str, value))}]`"
    return f"`{value}`"


def _allowed(f: Field) -> str:
    constraint = _constraint(f)
    return f"{constraint}: {f.setting.doc}" if constraint else f.setting.doc


def _constraint(f: Field) -> str:
    tp = optional(f.type)
    tp = list_item(tp) or tp
    if f.setting.parse is not None or is_section(tp):
        return ""
    members = [m for m in union_members(tp) if m is not type(None)]
    parts = []
    for m in members:
        choices = literal_choices(m)
        if choices is not None and not all(f"`{c}`" in f.setting.doc for c in choices):  # else the doc says them
            parts.append(" | ".join(f"`{c}`" for c in choices))
        elif m is int and f.setting.range is not None:
            lo, hi = f.setting.range
            parts.append(" or ".join([*(f"`{a}`" for a in f.setting.also), f"{lo}..{hi}"]))
    return " or ".join(parts)
