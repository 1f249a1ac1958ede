"""Reading the fabric's YAML files safely, writing rendered ones deterministically, sorting names naturally."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tor_agent.config.yamlio import parse_yaml
from tor_agent.fabric.findings import Finding

# A 1000-leaf, 4-spine topology is about 0.3 MB and parses in under a second; past this, refuse early.
MAX_FILE_BYTES = 2 * 1024 * 1024
# Aliases let a small file expand into a huge tree (`a: &a [...]`, `b: [*a, *a, ...]`): bound the walk.
MAX_ITEMS = 1_000_000
_DIGITS = re.compile(r"(\d+)")


def read_yaml(path: Path, what: str) -> tuple[Any, list[Finding]]:
    """The document in `path` (a `what`, for messages), or the one problem that stops reading it."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [_error(source, f"is {size} bytes; a {what} this tool reads is at most {MAX_FILE_BYTES}")]
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [_error(source, f"no such file (give the path of the {what})")]
    except IsADirectoryError:
        return None, [_error(source, f"is a directory, not a {what}")]
    except PermissionError:
        return None, [_error(source, "permission denied (make the file readable)")]
    except (OSError, UnicodeDecodeError) as e:
        return None, [_error(source, f"cannot read: {e}")]
    doc, problems = parse_yaml(text)
    if problems:
        return None, [_error(f"{source}: {p.path}" if p.path else source, p.message) for p in problems]
    if not _bounded(doc):
        return None, [_error(source, f"expands to more than {MAX_ITEMS} YAML nodes (aliases?): not a {what}")]
    return doc, []


def _error(subject: str, message: str) -> Finding:
    return Finding("error", subject, message)


def _bounded(doc: Any) -> bool:
    """Whether walking `doc` (aliases followed) visits at most MAX_ITEMS nodes; stops as soon as it is not."""
    count = 0
    stack = [doc]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_ITEMS:
            return False
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting eth2 before eth10 (equal numbers, eth01 and eth1, fall back to the plain string)."""
    parts = _DIGITS.split(name)
    key = tuple((1, int(p)) if i % 2 else (0, p) for i, p in enumerate(parts))
    return (*key, (0, name))


# --- writing -------------------------------------------------------------------------------------------


class Flow(dict[str, Any]):
    """A mapping written on one line: `{name: eth1, mtu: 9000}`."""


class Quoted(str):
    """A string always written in double quotes (a DPID: hex digits that could read as a number)."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """Block style, except `Flow` mappings and lists of scalars; never reorders keys."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_flow(dumper: yaml.SafeDumper, data: Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


def _represent_quoted(dumper: yaml.SafeDumper, data: Quoted) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


_Dumper.add_representer(Flow, _represent_flow)
_Dumper.add_representer(Quoted, _represent_quoted)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)

# A mapping of scalars this short is written on one line, as the hand-written intents do.
FLOW_WIDTH = 100


def flowed(value: Any) -> Any:
    """`value` with every short mapping of scalars below the top level marked `Flow`."""
    return _flowed(value, top=True)


def _flowed(value: Any, top: bool) -> Any:
    if isinstance(value, Mapping):
        inner = {k: _flowed(v, top=False) for k, v in value.items()}
        if isinstance(value, Flow) or (not top and _short(inner)):
            return Flow(inner)
        return inner
    if isinstance(value, list):
        return [_flowed(v, top=False) for v in value]
    return value


def _short(m: Mapping[str, Any]) -> bool:
    if any(isinstance(v, dict) for v in m.values()):
        return False
    width = sum(len(str(k)) + len(str(v)) + 4 for k, v in m.items())
    return width <= FLOW_WIDTH and all(not isinstance(v, list) or len(str(v)) < 40 for v in m.values())


def dump(doc: Mapping[str, Any], header: str) -> str:
    """`doc` as YAML after `header` (comment lines), deterministic for a given `doc`."""
    body = yaml.dump(flowed(doc), Dumper=_Dumper, sort_keys=False, width=1 << 16, allow_unicode=True)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())  # "" for no header
    return comments + body
