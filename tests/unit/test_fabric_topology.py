"""Reading topologies for `tor-agent fabric`: containerlab's inheritance and link forms, and odd or hostile
files answered with one clear line per problem, never a traceback."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from tor_agent.fabric import Topology, parse_topology, read_topology
from tor_agent.fabric.findings import Finding
from tor_agent.fabric.yamlfile import MAX_FILE_BYTES, natural_key

SPINE = {"labels": {"tor-agent.role": "spine"}}
LEAF = {"labels": {"tor-agent.role": "leaf"}}
HOST = {"labels": {"tor-agent.role": "host"}}


def topo_doc(nodes: dict[str, Any], links: list[Any], **top: Any) -> dict[str, Any]:
    return {"name": "t", "topology": {"nodes": nodes, "links": links}, **top}


def parse(doc: Any) -> tuple[Topology | None, list[str], list[str]]:
    """The topology, its error lines and its note lines."""
    topo, found = parse_topology(doc, "t.clab.yml")
    return topo, lines(found, "error"), lines(found, "note")


def lines(found: list[Finding], severity: str) -> list[str]:
    return [f.text() for f in found if f.severity == severity]


def test_short_and_extended_links_roles_and_defaults() -> None:
    doc = topo_doc(
        {
            "s1": SPINE,
            "l1": {**LEAF, "mgmt-ipv4": "192.0.2.31"},
            "h1": HOST,
            "c1": {"labels": {"tor-agent.role": "controller"}, "mgmt-ipv6": "2001:db8::10"},
        },
        [
            {"endpoints": ["l1:eth1", "s1:eth7"]},  # leaf first: still spine -- leaf
            {
                "type": "veth",
                "mtu": 1500,
                "endpoints": [{"node": "h1", "interface": "eth1"}, {"node": "l1", "interface": "eth3"}],
            },
        ],
    )
    topo, errors, notes = parse(doc)
    assert errors == [] and notes == [] and topo is not None
    (link,) = topo.fabric_links
    assert (str(link.spine), str(link.leaf), link.mtu) == ("s1:eth7", "l1:eth1", 9500)  # containerlab's default MTU
    (access,) = topo.access_links
    assert (str(access.leaf), str(access.host), access.mtu) == ("l1:eth3", "h1:eth1", 1500)
    assert topo.nodes["l1"].mgmt_ipv4 == ipaddress.IPv4Address("192.0.2.31")
    assert topo.nodes["c1"].mgmt_ipv6 == ipaddress.IPv6Address("2001:db8::10")


def test_labels_inherit_defaults_kinds_groups_node() -> None:
    doc = {
        "name": "inherit",
        "topology": {
            "defaults": {"kind": "linux", "labels": {"tor-agent.role": "host"}},
            "kinds": {"ceos": {"labels": {"tor-agent.role": "leaf"}}},
            "groups": {"spines": {"labels": {"tor-agent.role": "spine"}}, "quiet": {"kind": "ceos"}},
            "nodes": {
                "s1": {"group": "spines"},
                "l1": {"kind": "ceos"},
                "l2": {"group": "quiet"},  # the group's kind brings the kind's label
                "h1": None,  # containerlab allows an empty node: the defaults apply
                "s2": {"group": "spines", "labels": {"tor-agent.role": "leaf"}, "hostname": "rack2-tor"},
            },
            "links": [
                {"endpoints": ["s1:eth1", "l1:eth1"]},
                {"endpoints": ["s1:eth2", "l2:eth1"]},
                {"endpoints": ["s1:eth3", "s2:eth1"]},
                {"endpoints": ["l1:eth2", "h1:eth1"]},
            ],
        },
    }
    topo, errors, _ = parse(doc)
    assert errors == [] and topo is not None
    assert {n: node.role for n, node in topo.nodes.items()} == {
        "s1": "spine",
        "l1": "leaf",
        "l2": "leaf",
        "h1": "host",
        "s2": "leaf",
    }
    assert topo.nodes["s2"].hostname == "rack2-tor" and topo.nodes["l1"].hostname == "l1"


def test_plain_yaml_with_nodes_and_links_at_the_top() -> None:
    topo, errors, _ = parse({"nodes": {"s1": SPINE, "l1": LEAF}, "links": [{"endpoints": ["s1:eth1", "l1:eth1"]}]})
    assert errors == [] and topo is not None and topo.section == ""
    assert topo.node_path("s1") == "t.clab.yml: nodes.s1"


def test_topology_ipv4_on_links_is_kept_per_end() -> None:
    doc = topo_doc(
        {"s1": SPINE, "l1": LEAF, "l2": LEAF},
        [
            {"endpoints": ["l1:eth1", "s1:eth1"], "ipv4": ["10.0.0.1/31", "10.0.0.0/31"]},
            {
                "type": "veth",
                "endpoints": [
                    {"node": "s1", "interface": "eth2", "ipv4": "10.0.0.2/31"},
                    {"node": "l2", "interface": "eth1", "ipv4": "10.0.0.3/31"},
                ],
            },
        ],
    )
    topo, errors, _ = parse(doc)
    assert errors == [] and topo is not None
    assert [(str(lk.spine_address), str(lk.leaf_address)) for lk in topo.fabric_links] == [
        ("10.0.0.0/31", "10.0.0.1/31"),
        ("10.0.0.2/31", "10.0.0.3/31"),
    ]


def test_nodes_without_the_role_label_are_left_out_with_a_note() -> None:
    doc = topo_doc(
        {"s1": SPINE, "l1": LEAF, "router9": {"kind": "linux"}},
        [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["l1:eth9", "router9:eth1"]}],
    )
    topo, errors, notes = parse(doc)
    assert errors == [] and topo is not None and "router9" not in topo.nodes
    assert notes == [
        "note: t.clab.yml: topology.nodes.router9: has no tor-agent.role label: left out of the fabric "
        "(label it spine, leaf, host or controller)",
        "note: t.clab.yml: topology.links[1]: l1:eth9 -- router9:eth1: router9 is not a node with a "
        "tor-agent.role: l1:eth9 is not rendered",
    ]


HOSTILE = {
    "a link to an unknown node": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF}, [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["l1:eth2", "ghost:eth1"]}]
        ),
        ["t.clab.yml: topology.links[1].endpoints[1]: no node named 'ghost' in topology.nodes"],
    ),
    "a link between two spines": (
        topo_doc(
            {"s1": SPINE, "s2": SPINE, "l1": LEAF},
            [
                {"endpoints": ["s1:eth1", "l1:eth1"]},
                {"endpoints": ["s2:eth1", "l1:eth2"]},
                {"endpoints": ["s1:eth2", "s2:eth2"]},
            ],
        ),
        [
            "t.clab.yml: topology.links[2]: s1:eth2 -- s2:eth2: a link between two spines is not supported "
            "(a fabric link joins a leaf and a spine; a host link joins a leaf and a host)"
        ],
    ),
    "a leaf with no spine": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF, "l2": LEAF, "h2": HOST},
            [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["l2:eth1", "h2:eth1"]}],
        ),
        ["t.clab.yml: topology.nodes.l2: leaf l2 has no link to a spine (add one to links)"],
    ),
    "an interface name over 15 characters": (
        topo_doc({"s1": SPINE, "l1": LEAF}, [{"endpoints": ["s1:ethernet1-1-long", "l1:eth1"]}]),
        [
            "t.clab.yml: topology.links[0].endpoints[0]: s1:ethernet1-1-long: 'ethernet1-1-long' is not a Linux "
            "interface name (1..15 characters of letters, digits, _ . @ -)",
            "t.clab.yml: topology.nodes.s1: spine s1 has no link to a leaf (add one to links)",
            "t.clab.yml: topology.nodes.l1: leaf l1 has no link to a spine (add one to links)",
        ],
    ),
    "a duplicate endpoint": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF, "l2": LEAF},
            [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["s1:eth1", "l2:eth1"]}],
        ),
        [
            "t.clab.yml: topology.links[1].endpoints[0]: s1:eth1 is already used by links[0] (one link per interface)",
            "t.clab.yml: topology.nodes.l2: leaf l2 has no link to a spine (add one to links)",
        ],
    ),
    "an unknown role": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF, "b1": {"labels": {"tor-agent.role": "border"}}},
            [{"endpoints": ["s1:eth1", "l1:eth1"]}],
        ),
        [
            "t.clab.yml: topology.nodes.b1.labels: tor-agent.role is 'border' (allowed: spine | leaf | host | "
            "controller; remove the label to leave the node out)"
        ],
    ),
    "the management interface": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF}, [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["s1:eth2", "l1:eth0"]}]
        ),
        ["t.clab.yml: topology.links[1].endpoints[1]: l1:eth0: eth0 is the management interface (use eth1 and up)"],
    ),
    "a bad MTU and a one-ended link": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF},
            [{"endpoints": ["s1:eth1", "l1:eth1"], "mtu": "jumbo"}, {"endpoints": ["s1:eth2"]}, "s1:eth3"],
        ),
        [
            "t.clab.yml: topology.links[0].mtu: must be an integer 1..65535, got 'jumbo'",
            't.clab.yml: topology.links[1].endpoints: needs exactly two endpoints, e.g. ["spine1:eth1", "leaf1:eth1"]',
            "t.clab.yml: topology.links[2]: must be a mapping (endpoints, mtu)",
            "t.clab.yml: topology.nodes.s1: spine s1 has no link to a leaf (add one to links)",
            "t.clab.yml: topology.nodes.l1: leaf l1 has no link to a spine (add one to links)",
        ],
    ),
    "a link type with other shape": (
        topo_doc(
            {"s1": SPINE, "l1": LEAF}, [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"type": "vxlan-ish", "endpoints": []}]
        ),
        [
            "t.clab.yml: topology.links[1].type: 'vxlan-ish' is not a link type this tool reads "
            "(veth, or the short form)"
        ],
    ),
    "link addresses that are not a list of two": (
        topo_doc({"s1": SPINE, "l1": LEAF}, [{"endpoints": ["s1:eth1", "l1:eth1"], "ipv4": "10.0.0.0/31"}]),
        ["t.clab.yml: topology.links[0].ipv4: must be a list of one address per end, e.g. [10.0.0.0/31, 10.0.0.1/31]"],
    ),
    "a list instead of a topology": (
        ["s1", "l1"],
        ["t.clab.yml: must be a mapping: a containerlab topology (name, topology.nodes, topology.links)"],
    ),
    "no nodes": (
        {"name": "x", "topology": {"links": []}},
        ["t.clab.yml: topology.nodes: must be a mapping of node names to nodes"],
    ),
    "no switch": (
        topo_doc({"h1": HOST}, []),
        ["t.clab.yml: has no spine or leaf (label the switches tor-agent.role: spine or leaf)"],
    ),
    "a node that is not a mapping": (
        topo_doc({"s1": SPINE, "l1": LEAF, "x": ["a"]}, [{"endpoints": ["s1:eth1", "l1:eth1"]}]),
        ["t.clab.yml: topology.nodes.x: must be a mapping (the node's kind, labels, mgmt-ipv4, ...)"],
    ),
    "a bad management address": (
        topo_doc({"s1": SPINE, "l1": {**LEAF, "mgmt-ipv4": "203.0.113.300"}}, [{"endpoints": ["s1:eth1", "l1:eth1"]}]),
        ["t.clab.yml: topology.nodes.l1.mgmt-ipv4: '203.0.113.300' is not an IP address"],
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_odd_input_one_line_per_problem(case: str) -> None:
    doc, expected = HOSTILE[case]
    topo, errors, _ = parse(doc)
    assert topo is None and errors == expected


def test_single_endpoint_links_of_a_switch_are_noted() -> None:
    doc = topo_doc(
        {"s1": SPINE, "l1": LEAF},
        [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"type": "dummy", "endpoint": {"node": "l1", "interface": "dummy0"}}],
    )
    topo, errors, notes = parse(doc)
    assert topo is not None and errors == []
    assert notes == ["note: t.clab.yml: topology.links[1]: a dummy link of l1: not rendered"]


def test_files_invalid_yaml_huge_and_alias_bombs(tmp_path: Path) -> None:
    def read(text: str) -> list[str]:
        path = tmp_path / "t.clab.yml"
        path.write_text(text)
        topo, found = read_topology(path)
        assert topo is None
        return [f.text().replace(str(path), "FILE") for f in found]

    assert read("nodes: [1, 2") == [
        "FILE: line 2, column 1: while parsing a flow sequence: did not find expected ',' or ']' "
        "(the file must be valid YAML)"
    ]
    assert read("a: 1\na: 2\n") == [
        "FILE: line 2, column 1: duplicate key 'a' (first defined on line 1; each key may appear once)"
    ]
    assert read("x" * (MAX_FILE_BYTES + 1)) == [
        f"FILE: is {MAX_FILE_BYTES + 1} bytes; a topology file this tool reads is at most {MAX_FILE_BYTES}"
    ]
    bomb, previous = ["b: &b [x, x, x, x, x, x, x, x, x, x]"], "b"
    for i in range(7):  # each level holds the previous one ten times: 10**8 nodes from a few hundred bytes
        bomb.append(f"b{i}: &b{i} [{', '.join([f'*{previous}'] * 10)}]")
        previous = f"b{i}"
    assert read("\n".join(bomb)) == ["FILE: expands to more than 1000000 YAML nodes (aliases?): not a topology file"]
    assert read("") == ["FILE: must be a mapping: a containerlab topology (name, topology.nodes, topology.links)"]
    assert read_topology(tmp_path / "missing.yml")[1][0].message == "no such file (give the path of the topology file)"
    assert read_topology(tmp_path)[1][0].message == "is a directory, not a topology file"


def test_natural_order_of_interfaces() -> None:
    names = ["eth10", "eth2", "eth1", "swp1s10", "swp1s2", "eth01"]
    assert sorted(names, key=natural_key) == ["eth01", "eth1", "eth2", "eth10", "swp1s2", "swp1s10"]


def test_lab_topologies_read_without_a_problem() -> None:
    clab = Path(__file__).resolve().parents[2] / "labs" / "containerlab"
    for path in sorted(clab.glob("*.clab.yml")):
        topo, found = read_topology(path)
        assert topo is not None and found == [], (path, [f.text() for f in found])
        doc = yaml.safe_load(path.read_text())
        assert len(topo.nodes) == len(doc["topology"]["nodes"])
