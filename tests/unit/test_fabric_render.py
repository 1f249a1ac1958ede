"""`tor-agent fabric render` goldens: topology (+ settings) -> the expected directory tree, byte for byte.

Each case in tests/golden-fabric/<case>/ holds `topology.clab.yml` or `topology.yml`, optionally
`settings.yml` (and the files it names), and `expected/`. Regenerate with
`TOR_AGENT_REGEN_GOLDEN=1 pytest tests/unit/test_fabric_render.py`, then read every changed file.
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from tor_agent.config import load, load_text
from tor_agent.fabric import Rendering, read_settings, read_topology, render_fabric
from tor_agent.fabric.files import write_rendering

GOLDEN = Path(__file__).resolve().parents[1] / "golden-fabric"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
REGEN = os.environ.get("TOR_AGENT_REGEN_GOLDEN") == "1"


def render_case(case: str) -> tuple[Rendering, list[str]]:
    root = GOLDEN / case
    topology = next(p for p in (root / "topology.clab.yml", root / "topology.yml") if p.is_file())
    settings_file = root / "settings.yml"
    topo, problems = read_topology(topology)
    settings, more = read_settings(settings_file if settings_file.is_file() else None)
    assert topo is not None and settings is not None, [p.text() for p in problems + more]
    rendering, found = render_fabric(topo, settings)
    assert rendering is not None, [f.text() for f in found]
    return rendering, [f.text() for f in problems + found]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_enough_cases() -> None:
    assert len(CASES) >= 3, CASES


@pytest.mark.parametrize("case", CASES)
def test_golden_tree(case: str, tmp_path: Path) -> None:
    rendering, _ = render_case(case)
    write_rendering(rendering, tmp_path)
    expected_dir = GOLDEN / case / "expected"
    if REGEN:
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(tmp_path, expected_dir)
    got, want = tree(tmp_path), tree(expected_dir)
    assert sorted(got) == sorted(want)
    for rel, data in want.items():
        diff = "".join(
            difflib.unified_diff(
                data.decode().splitlines(True), got[rel].decode().splitlines(True), f"expected/{rel}", "rendered"
            )
        )
        assert got[rel] == data, diff


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_intent_passes_check(case: str, tmp_path: Path) -> None:
    """What `tor-agent check` does with each written agent.yaml: it loads, and is the intent render made."""
    rendering, _ = render_case(case)
    write_rendering(rendering, tmp_path)
    for name, node in rendering.nodes.items():
        intent = load(tmp_path / name / "agent.yaml")
        assert intent.node.hostname and intent.node.role == rendering.topology.nodes[name].role
        assert load_text(node.texts["agent.yaml"], base_dir=tmp_path / name).node == intent.node
        assert "None" not in node.texts["agent.yaml"] and "None" not in node.texts["fabric.yaml"]


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic(case: str) -> None:
    first, notes = render_case(case)
    second, again = render_case(case)
    assert {n: r.texts for n, r in first.nodes.items()} == {n: r.texts for n, r in second.nodes.items()}
    assert notes == again


def test_warnings_and_notes_of_the_cases() -> None:
    assert render_case("defaults-2x2")[1] == []
    assert render_case("overrides-ssl-auth")[1] == [
        "warning: t3:e10: faces h3 but is not in overlay.access_ports: the host is cut off"
    ]
    notes = render_case("plain-unnumbered-static")[1]
    assert [n.split(": ", 3)[-1] for n in notes] == [
        "has no tor-agent.role label: left out of the fabric (label it spine, leaf, host or controller)",
        "rack2:swp32 -- mon1:eth1: mon1 is not a node with a tor-agent.role: rack2:swp32 is not rendered",
    ]
