"""Parse YAML safely: duplicate keys are errors, syntax errors name line and column."""

from __future__ import annotations

from typing import Any

import yaml

from tor_agent.errors import Problem


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark
                raise _DuplicateKey(
                    problem=f"duplicate key {key!r} (first defined on line {first.line + 1}; each key may appear once)",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    """Return the document and, if it could not be parsed, one problem naming line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader), []
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        what = e.problem or e.context or "invalid YAML"
        hint = "" if isinstance(e, _DuplicateKey) else " (the file must be valid YAML)"
        return None, [Problem(where, f"{what}{hint}")]
    except yaml.YAMLError as e:
        return None, [Problem("", f"invalid YAML: {e}")]
