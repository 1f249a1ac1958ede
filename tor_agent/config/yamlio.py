"""Parse the intent's YAML safely, and so that values stay what the operator wrote.

- Duplicate keys are errors (a typo never silently overrides a value), and so are merge keys (`<<`):
  their expansion can grow exponentially, and writing the keys out is clearer.
- YAML 1.1 would read `010` as octal 8 and `1:40` as 100 (base 60): a number written with a leading zero,
  `:` or `_` stays the text it is, so a field that wants an integer refuses it and a string field (a
  DPID, a hostname) keeps it as written. Integers have at most 30 digits (or 30 hexadecimal digits).
- Dates and times are not read as timestamps (`2024-02-30` is a string, not a crash).
- Nesting is limited to `MAX_DEPTH` levels (the intent needs 5), so no input exhausts the stack, and a
  document to `MAX_NODES` values, so none takes long to read.
Every failure is one `Problem` naming the line and column; nothing raises past `parse_yaml`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from tor_agent.config.quote import one_line, shown
from tor_agent.errors import Problem

MAX_DEPTH = 32
MAX_NODES = 50_000  # 20 000 static peers are 20 000 values; parsing 50 000 takes about 0.25 s

_INT = "tag:yaml.org,2002:int"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]{0,29})", re.ASCII)
_HEX = re.compile(r"[-+]?0x[0-9a-fA-F]{1,30}", re.ASCII)
# Everything else YAML 1.1 resolves as an integer: octal, binary, base 60, with `_`, or too long.
_YAML11_INT = re.compile(
    r"[-+]?(?:0b[01_]+|0[0-7_]+|(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|[1-9][0-9_]*(?::[0-5]?[0-9])+)", re.ASCII
)

try:  # libyaml's parser: 8x faster; it is iterative, so deep nesting cannot exhaust the C stack there
    from yaml._yaml import CParser as _EventSource
except ImportError:  # pragma: no cover - PyYAML built without libyaml

    class _EventSource(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that an intent file may not use; the message needs no "must be valid YAML" hint."""


class _Resolver(Resolver):
    pass


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}


class _IntentLoader(_EventSource, Composer, SafeConstructor, _Resolver):
    """libyaml's events, Python's composer (so nesting can be bounded) and constructors."""

    def __init__(self, stream: str) -> None:
        _EventSource.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    # CParser composes nodes itself, recursively in C: use the Python composer, whose depth is checked.
    check_node = Composer.check_node
    get_node = Composer.get_node
    get_single_node = Composer.get_single_node

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH or self._nodes > MAX_NODES:
                event = self.peek_event()
                mark: Any = event.start_mark if event is not None else None  # libyaml's or PyYAML's Mark
                too_deep = f"nested more than {MAX_DEPTH} levels deep"
                too_many = f"more than {MAX_NODES} values (an intent file needs far fewer)"
                raise _Refused(problem=too_deep if self._depth > MAX_DEPTH else too_many, problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep=deep)  # raises PyYAML's own error
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            mark = key_node.start_mark
            if key_node.tag == _MERGE:
                raise _Refused(problem="merge keys (<<) are not supported: write the keys out", problem_mark=mark)
            if not isinstance(key_node, ScalarNode):
                raise _Refused(
                    problem="a key must be a plain value such as a name, not a list or mapping", problem_mark=mark
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # e.g. `!!set` on a key
                raise _Refused(problem=f"{shown(key)} cannot be a key", problem_mark=mark) from None
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise _Refused(
                    problem=f"duplicate key {shown(key)} (first defined on line {first}; each key may appear once)",
                    problem_mark=mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: _IntentLoader, node: ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    if _DECIMAL.fullmatch(text):
        return int(text)
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _YAML11_INT.fullmatch(text):
        return text  # as written: not YAML 1.1's octal or base-60 reading of it
    raise ConstructorError(None, None, f"{shown(text)} is not an integer (!!int)", node.start_mark)


def _construct_float(loader: _IntentLoader, node: ScalarNode) -> float:
    try:
        return loader.construct_yaml_float(node)
    except (ValueError, OverflowError):
        text = str(loader.construct_scalar(node))
        raise ConstructorError(None, None, f"{shown(text)} is not a number (!!float)", node.start_mark) from None


def _construct_bool(loader: _IntentLoader, node: ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if text.lower() not in loader.bool_values:
        raise ConstructorError(None, None, f"{shown(text)} is not true or false (!!bool)", node.start_mark)
    return bool(loader.bool_values[text.lower()])


def _construct_text(loader: _IntentLoader, node: ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_IntentLoader.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    _INT: _construct_int,
    "tag:yaml.org,2002:float": _construct_float,
    "tag:yaml.org,2002:bool": _construct_bool,
    _TIMESTAMP: _construct_text,
}


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """Return the document and, if it could not be parsed, one problem naming line and column."""
    loader = _IntentLoader(text)
    try:
        return loader.get_single_data(), []
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        what = one_line(": ".join(str(part) for part in (e.context, e.problem) if part) or "invalid YAML")
        hint = "" if isinstance(e, _Refused) else " (the file must be valid YAML)"
        return None, [Problem(where, f"{what}{hint}")]
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        return None, [Problem(f"line {line}", f"character #x{e.character:04x} is not allowed in YAML ({e.reason})")]
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        # PyYAML's constructors raise plain exceptions on some odd inputs: still a problem of the file.
        return None, [Problem("", f"invalid YAML: {one_line(str(e))}")]
    finally:
        loader.dispose()
