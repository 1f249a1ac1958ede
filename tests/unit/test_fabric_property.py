"""Property tests over random small fabrics: whatever the shape, order and link forms of the topology,
`fabric render` succeeds, `fabric check` finds nothing wrong with what it rendered (also read back from
disk), rendering is deterministic, and one end of one link changed by hand is always found."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tor_agent.fabric import Rendering, parse_settings, parse_topology, render_fabric
from tor_agent.fabric.check import check_fabric
from tor_agent.fabric.files import read_intents, write_rendering

PROPERTY = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Case:
    topology: dict[str, Any]
    settings: dict[str, Any]


def _role(name: str, role: str, mgmt: str | None = None) -> tuple[str, dict[str, Any]]:
    node: dict[str, Any] = {"labels": {"tor-agent.role": role}}
    if mgmt is not None:
        node["mgmt-ipv4"] = mgmt
    return name, node


@st.composite
def fabrics(draw: st.DrawFn) -> Case:
    spines = [f"{draw(st.sampled_from(['spine', 'sp', 'core-']))}{i}" for i in range(draw(st.integers(1, 3)))]
    leaves = [f"{draw(st.sampled_from(['leaf', 'tor', 'rack']))}{i}" for i in range(draw(st.integers(1, 5)))]
    spines = [f"{s}s" if s in leaves else s for s in spines]
    ports: dict[str, list[int]] = {}

    def port(node: str) -> str:  # interface numbers in a random order: natural sorting is exercised
        free = ports.setdefault(node, draw(st.permutations(list(range(1, 25)))))
        return f"eth{free.pop()}"

    pairs = []
    for leaf in leaves:
        chosen = draw(st.lists(st.sampled_from(spines), min_size=1, max_size=len(spines) + 1))
        pairs += [(spine, leaf) for spine in chosen]  # a spine chosen twice: two parallel links
    for spine in spines:
        if all(s != spine for s, _ in pairs):
            pairs.append((spine, draw(st.sampled_from(leaves))))
    links = []
    for spine, leaf in pairs:
        ends = [f"{spine}:{port(spine)}", f"{leaf}:{port(leaf)}"]
        if draw(st.booleans()):
            ends.reverse()
        links.append(_link(ends, draw(st.integers(1600, 9500)), draw(st.booleans())))
    nodes = dict(_role(s, "spine") for s in spines) | dict(_role(n, "leaf") for n in leaves)
    for i in range(draw(st.integers(0, 3))):
        host, leaf = f"host{i}", draw(st.sampled_from(leaves))
        nodes.update([_role(host, "host")])
        links.append(_link([f"{leaf}:{port(leaf)}", f"{host}:eth1"], 1500, draw(st.booleans())))
    if draw(st.booleans()):
        nodes.update([_role("ctl", "controller", "192.0.2.10")])
    order = draw(st.permutations(list(nodes)))
    topology = {
        "name": "prop",
        "topology": {"nodes": {n: nodes[n] for n in order}, "links": draw(st.permutations(links))},
    }
    fabric: dict[str, Any] = {"links": {"unnumbered": draw(st.booleans())}}
    fabric["tunnel_peers"] = draw(st.sampled_from(["discover", "static"]))
    leaf_settings = {"overlay": {"datapath": draw(st.sampled_from(["system", "netdev"]))}}
    return Case(topology, {"fabric": fabric, "leaf": leaf_settings, "uplinks": {"*": {"cost": 10}}})


def _link(ends: list[str], mtu: int, extended: bool) -> dict[str, Any]:
    if not extended:
        return {"endpoints": ends, "mtu": mtu}
    eps = [dict(zip(("node", "interface"), e.split(":"), strict=True)) for e in ends]
    return {"type": "veth", "endpoints": eps, "mtu": mtu}


def render(case: Case) -> tuple[Rendering, list[str]]:
    topo, found = parse_topology(case.topology, "prop.clab.yml")
    assert topo is not None, [f.text() for f in found]
    parsed, problems = parse_settings(case.settings, "s.yml", Path.cwd())
    assert parsed is not None, problems
    rendering, more = render_fabric(topo, parsed)
    assert rendering is not None, [f.text() for f in more]
    return rendering, [f.text() for f in found + more]


@PROPERTY
@given(fabrics())
def test_render_then_check_finds_no_problem_and_render_is_deterministic(case: Case) -> None:
    rendering, lines = render(case)
    assert not [line for line in lines if not line.startswith(("warning: ", "note: "))]
    assert [f for f in check_fabric(rendering.topology, rendering.intents) if f.severity == "error"] == []
    again, _ = render(case)
    assert {n: r.texts for n, r in again.nodes.items()} == {n: r.texts for n, r in rendering.nodes.items()}
    with tempfile.TemporaryDirectory() as tmp:  # and read back from disk as `fabric check --intents` does
        write_rendering(rendering, Path(tmp))
        intents, unread, problems = read_intents(rendering.topology, Path(tmp))
        assert unread == [] and problems == []
        assert [f for f in check_fabric(rendering.topology, intents) if f.severity == "error"] == []


@PROPERTY
@given(fabrics(), st.data())
def test_one_end_of_one_link_changed_is_found(case: Case, data: st.DataObject) -> None:
    rendering, _ = render(case)
    link = data.draw(st.sampled_from(rendering.topology.fabric_links))
    end = data.draw(st.sampled_from([link.spine, link.leaf]))
    doc = yaml.safe_load(rendering.nodes[end.node].texts["agent.yaml"])
    uplink = next(u for u in doc["underlay"]["uplinks"] if u["name"] == end.iface)
    uplink["mtu"] -= 1
    with tempfile.TemporaryDirectory() as tmp:
        write_rendering(rendering, Path(tmp))
        (Path(tmp) / end.node / "agent.yaml").write_text(yaml.safe_dump(doc))
        intents, _, problems = read_intents(rendering.topology, Path(tmp))
        assert problems == []
        errors = [f.text() for f in check_fabric(rendering.topology, intents) if f.severity == "error"]
    assert any(e.startswith(f"link {link}: mtu differs") for e in errors), errors


# --- odd input never raises ---------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["spine", "leaf", "host", "controller", "s1:eth1", "l1:eth1", "eth1", "10.0.0.1/31", "", "x"]),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(
                st.sampled_from(["node", "interface", "endpoints", "mtu", "type", "labels"]), st.text(max_size=8)
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_NODE = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.one_of(st.dictionaries(st.just("tor-agent.role"), _VALUES, max_size=1), _VALUES),
        "kind": _VALUES,
        "group": _VALUES,
        "mgmt-ipv4": _VALUES,
        "hostname": _VALUES,
    },
)


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(["s1", "l1", "h1", "c1", "x"]), st.one_of(_NODE, _VALUES), max_size=5),
    st.lists(
        st.one_of(
            _VALUES,
            st.fixed_dictionaries(
                {"endpoints": st.lists(_VALUES, max_size=3)},
                optional={"mtu": _VALUES, "type": _VALUES, "ipv4": _VALUES},
            ),
        ),
        max_size=6,
    ),
    _VALUES,
)
def test_odd_topologies_and_settings_are_findings_never_exceptions(nodes: Any, links: Any, settings_doc: Any) -> None:
    topo, found = parse_topology({"topology": {"nodes": nodes, "links": links}}, "odd.yml")
    assert all(f.text() for f in found)
    if topo is None:
        assert any(f.severity == "error" for f in found)
        return
    parsed, problems = parse_settings(settings_doc, "s.yml", Path.cwd())
    if parsed is not None:
        render_fabric(topo, parsed)  # may refuse; must not raise
    else:
        assert problems
