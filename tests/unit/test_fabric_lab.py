"""The lab's switch files (labs/containerlab/configs*/) are exactly what `tor-agent fabric render` makes of
each topology and its settings file. When a test here fails, run `make lab-configs` and read the diff."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
import yaml

from tor_agent.fabric import read_settings, read_topology, render_fabric

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "labs" / "containerlab"
# topology -> the directory its switches' files are rendered into (also labs/lab.mk's LAB_CONFIGS)
CONFIGS = {"fabric": "configs", "fabric-3x4": "configs-3x4", "fabric-leaf4": "configs-leaf4"}


def rendered(topology: str) -> dict[str, str | bytes]:
    """`relative path -> content` of what fabric render writes for `topology`."""
    topo, problems = read_topology(CLAB / f"{topology}.clab.yml")
    settings, more = read_settings(CLAB / f"{topology}.settings.yml")
    assert topo is not None and settings is not None, [p.text() for p in problems + more]
    rendering, found = render_fabric(topo, settings)
    assert rendering is not None, [f.text() for f in found]
    assert [f.text() for f in found] == []  # the lab's fabrics render without a warning or a note
    files: dict[str, str | bytes] = {}
    for name, node in rendering.nodes.items():
        files.update({f"{name}/{rel}": text for rel, text in node.texts.items()})
        files.update({f"{name}/{rel}": src.read_bytes() for rel, src in node.copies.items()})
    return files


def checked_in(directory: Path) -> dict[str, str | bytes]:
    return {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_every_topology_has_rendered_configs_and_settings() -> None:
    assert {p.name.removesuffix(".clab.yml") for p in CLAB.glob("*.clab.yml")} == set(CONFIGS)
    assert all((CLAB / f"{t}.settings.yml").is_file() for t in CONFIGS)
    make = (REPO / "labs" / "lab.mk").read_text()
    pairs = re.search(r"^LAB_CONFIGS\s*:=\s*(.+)$", make, re.MULTILINE)
    assert pairs is not None and dict(p.split(":") for p in pairs.group(1).split()) == CONFIGS


@pytest.mark.parametrize("topology", sorted(CONFIGS))
def test_checked_in_configs_are_what_render_makes(topology: str) -> None:
    want, have = rendered(topology), checked_in(CLAB / CONFIGS[topology])
    assert sorted(have) == sorted(want), f"{CONFIGS[topology]}/ is stale: run `make lab-configs`"
    for rel, text in want.items():
        diff = "".join(difflib.unified_diff(str(have[rel]).splitlines(True), str(text).splitlines(True), rel, "render"))
        assert have[rel] == text, f"{CONFIGS[topology]}/{rel} is stale: run `make lab-configs`\n{diff}"


@pytest.mark.parametrize("topology", sorted(CONFIGS))
def test_each_switch_is_bound_the_files_rendered_for_it(topology: str) -> None:
    """A switch's binds into /etc/tor-agent/ carry what render made for that switch of this topology (for
    fabric-leaf4's leaf1..3: the demo fabric's agent.yaml, which renders the same)."""
    want = rendered(topology)
    nodes = yaml.safe_load((CLAB / f"{topology}.clab.yml").read_text())["topology"]["nodes"]
    switches = {n: node for n, node in nodes.items() if node["labels"]["tor-agent.role"] in ("spine", "leaf")}
    for name, node in switches.items():
        bound = {}
        for bind in node["binds"]:
            source, target = bind.split(":")[:2]
            bound[target.removeprefix("/etc/tor-agent/")] = (CLAB / source).read_text(encoding="utf-8")
        assert set(bound) == {"agent.yaml", "fabric.yaml"}, name
        for rel, text in bound.items():
            assert text == want[f"{name}/{rel}"], f"{topology}: {name}'s {rel} is not the one rendered for it"
