"""Property-based fuzzing of the loader: valid intents mutated field by field and as text, and raw bytes.

Whatever the input, `load` returns an `Intent` or raises `ConfigError` whose problems are one bounded line
each, and `tor-agent check` exits 0 or 2. The examples are derandomized (the same every run) and few, so
the unit suite stays quick; raise FUZZ_EXAMPLES in the environment for a longer campaign.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import run
from test_config import LEAF
from test_config_hostile import LINE_MAX

from tor_agent.config import Intent, load
from tor_agent.errors import ConfigError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # hangs are caught by test_config_hostile's resource limits, not by timing here
    database=None,
    derandomize=EXAMPLES <= 60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
TRICKY = st.sampled_from(
    [
        "010",
        "1:40",
        "0x1F",
        "1_000",
        "flow",
        "leaf1\n",
        "gre-c612000c",
        "tcp:203.0.113.10:²",
        "ssl:[::1]:6653",
        "198.18.0.11",
        "198.18.1.0/31",
        "224.0.0.5",
        "/dev/zero",
        "ospf.key",
        "00000000000000a1",
        "2024-02-30",
        "x" * 300,
    ]
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, TRICKY)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.one_of(TEXT, TRICKY), children, max_size=4),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a document: mappings by key, lists by index."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found = [prefix] if prefix else []
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


PATHS = _paths(LEAF)


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    """LEAF with a few fields replaced, deleted or joined by an unknown key."""
    doc = copy.deepcopy(LEAF)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["set", "delete", "add"]))
            if action == "set":
                parent[path[-1]] = draw(VALUES)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(TEXT)] = draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return doc


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """LEAF's YAML with a few slices deleted, duplicated or replaced by YAML-ish text."""
    text = yaml.safe_dump(LEAF)
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        piece = draw(
            st.sampled_from(["", text[start:end] * 2, "&a ", "*a", "!!int ", "? ", "- ", "[", "{", "\n  ", ": "])
        )
        text = text[:start] + piece + draw(TEXT | TRICKY) * draw(st.integers(0, 1)) + text[end:]
    return text


def check_file(path: Path) -> None:
    """`load` accepts or refuses with bounded one-line problems; `tor-agent check` exits 0 or 2."""
    try:
        assert isinstance(load(path), Intent)
    except ConfigError as e:
        assert e.problems
        assert all(len(line) <= LINE_MAX for line in str(e).splitlines())
        assert len(str(e).splitlines()) == len(e.problems)
    code, _, err = run("check", str(path))
    assert code in (0, 2) and "Traceback" not in err


@FUZZ
@given(doc=mutated_docs())
def test_mutated_intents(doc: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    check_file(path)


@FUZZ
@given(text=mutated_texts())
def test_mutated_yaml_text(text: str, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    check_file(path)


@FUZZ
@given(data=st.binary(max_size=512) | mutated_texts().map(lambda t: t.encode()[: len(t) // 2] + b"\xff\x00"))
def test_raw_bytes(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(data)
    check_file(path)
