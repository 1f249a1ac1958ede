"""Settings of `tor-agent fabric render`: defaults, deep merge (lists replaced), per-node and per-uplink
overrides, and errors that name the node and the settings path that produced them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tor_agent.config.schema import Intent
from tor_agent.fabric import Rendering, parse_settings, parse_topology, render_fabric
from tor_agent.fabric.merge import Origin, Provenance, merge

SPINE = {"labels": {"tor-agent.role": "spine"}}
LEAF = {"labels": {"tor-agent.role": "leaf"}}
TOPO: dict[str, Any] = {
    "name": "t",
    "topology": {
        "nodes": {
            "s1": SPINE,
            "s2": SPINE,
            "l1": LEAF,
            "l2": LEAF,
            "h1": {"labels": {"tor-agent.role": "host"}},
            "c1": {"labels": {"tor-agent.role": "controller"}, "mgmt-ipv4": "192.0.2.10"},
        },
        "links": [
            {"endpoints": ["s1:eth1", "l1:eth1"], "mtu": 9000},
            {"endpoints": ["s2:eth1", "l1:eth2"], "mtu": 9000},
            {"endpoints": ["s1:eth2", "l2:eth1"], "mtu": 9000},
            {"endpoints": ["s2:eth2", "l2:eth2"], "mtu": 9000},
            {"endpoints": ["l1:eth3", "h1:eth1"], "mtu": 1500},
        ],
    },
}


def render(settings: Any, topo: Any = None, base_dir: Path | None = None) -> tuple[Rendering | None, list[str]]:
    """Render `topo` (default TOPO) with the settings document; the rendering and every finding's line."""
    parsed_topo, found = parse_topology(topo or TOPO, "t.clab.yml")
    assert parsed_topo is not None, found
    parsed, problems = parse_settings(settings, "s.yml", base_dir or Path.cwd())
    if parsed is None:
        return None, [p.text() for p in problems]
    rendering, found = render_fabric(parsed_topo, parsed)
    return rendering, [f.text() for f in problems + found]


def intents(settings: Any, topo: Any = None, base_dir: Path | None = None) -> dict[str, Intent]:
    rendering, lines = render(settings, topo, base_dir)
    assert rendering is not None, lines
    return rendering.intents


def test_defaults_reproduce_the_lab_address_plan() -> None:
    got = intents(None)
    assert [str(got[n].node.loopback) for n in ("s1", "s2", "l1", "l2")] == [
        "198.18.255.1/32",
        "198.18.255.2/32",
        "198.18.0.11/32",
        "198.18.0.12/32",
    ]
    assert [str(u.address) for u in got["l1"].underlay.uplinks] == ["198.18.1.1/31", "198.18.1.3/31"]
    assert [str(u.address) for u in got["s2"].underlay.uplinks] == ["198.18.1.2/31", "198.18.1.6/31"]
    leaf = got["l1"]
    assert leaf.overlay is not None and leaf.controllers is not None
    assert (leaf.overlay.dpid, leaf.overlay.access_ports, leaf.overlay.bridge) == (
        "00000000000000a1",
        ("eth3",),
        "br-tor",
    )
    assert str(leaf.overlay.tunnels.discover.ospf_prefix) == "198.18.0.0/24"  # type: ignore[union-attr]
    assert [str(t) for t in leaf.controllers.targets] == ["tcp:192.0.2.10:6653"]
    assert [u.mtu for u in leaf.underlay.uplinks] == [9000, 9000]
    assert got["l2"].overlay.access_ports == ()  # type: ignore[union-attr]


def test_sections_deep_merge_in_order_and_lists_are_replaced() -> None:
    got = intents(
        {
            "switches": {"underlay": {"ospf": {"hello_interval_s": 2, "dead_interval_s": 8, "area": 5}}},
            "spine": {"underlay": {"ospf": {"maximum_paths": 4}}},
            "leaf": {"overlay": {"protocols": ["OpenFlow13", "OpenFlow15"], "tunnels": {"key": 9}}},
            "nodes": {"l2": {"overlay": {"protocols": ["OpenFlow10"]}, "controllers": {"max_backoff_ms": 4000}}},
        }
    )
    assert got["s1"].underlay.ospf.maximum_paths == 4 and got["l1"].underlay.ospf.maximum_paths == 256
    assert {i.underlay.ospf.area for i in got.values()} == {"0.0.0.5"}
    assert got["l1"].overlay.protocols == ("OpenFlow13", "OpenFlow15")  # type: ignore[union-attr]
    assert got["l2"].overlay.protocols == ("OpenFlow10",)  # type: ignore[union-attr]
    tunnels = got["l2"].overlay.tunnels  # type: ignore[union-attr]
    assert tunnels.key == 9 and tunnels.discover is not None  # merged into what render derived
    assert got["l2"].controllers.max_backoff_ms == 4000 and len(got["l2"].controllers.targets) == 1  # type: ignore[union-attr]


def test_uplink_selectors_from_all_to_one() -> None:
    got = intents({"uplinks": {"*": {"cost": 10}, "s2": {"cost": 20}, "l1:eth2": {"cost": 30, "mtu": 9000}}})
    assert [u.cost for u in got["s1"].underlay.uplinks] == [10, 10]
    assert [u.cost for u in got["s2"].underlay.uplinks] == [20, 20]
    assert [u.cost for u in got["l1"].underlay.uplinks] == [10, 30]


def test_a_moved_loopback_takes_the_router_id_along_unless_set() -> None:
    got = intents(
        {"nodes": {"l2": {"node": {"loopback": "198.18.0.99/32"}}, "s1": {"node": {"router_id": "192.0.2.1"}}}}
    )
    assert (str(got["l2"].node.router_id), str(got["l2"].node.loopback)) == ("198.18.0.99", "198.18.0.99/32")
    assert (str(got["s1"].node.router_id), str(got["s1"].node.loopback)) == ("192.0.2.1", "198.18.255.1/32")


def test_static_peers_follow_overridden_loopbacks() -> None:
    got = intents({"fabric": {"tunnel_peers": "static"}, "nodes": {"l2": {"node": {"loopback": "198.18.0.77/32"}}}})
    tunnels = got["l1"].overlay.tunnels  # type: ignore[union-attr]
    assert [str(p) for p in tunnels.peers] == ["198.18.0.77"] and tunnels.discover is None


def test_fabric_settings_change_the_plan() -> None:
    got = intents(
        {
            "fabric": {
                "leaf_loopbacks": {"prefix": "10.0.0.0/24", "first_host": 1},
                "spine_loopbacks": {"prefix": "10.0.255.0/24"},
                "links": {"prefix": "10.1.0.0/30"},
                "first_dpid": "00000000000000FF",
                "controllers": {"port": 6633},
            }
        },
        topo=_two_links(),
    )
    assert str(got["l1"].node.loopback) == "10.0.0.1/32" and str(got["s1"].node.loopback) == "10.0.255.1/32"
    assert [str(u.address) for u in got["s1"].underlay.uplinks] == ["10.1.0.0/31", "10.1.0.2/31"]
    assert got["l2"].overlay.dpid == "0000000000000100"  # type: ignore[union-attr]


def _two_links() -> dict[str, Any]:
    return {
        "topology": {
            "nodes": {"s1": SPINE, "l1": LEAF, "l2": LEAF},
            "links": [{"endpoints": ["s1:eth1", "l1:eth1"]}, {"endpoints": ["s1:eth2", "l2:eth1"]}],
        }
    }


def test_link_addresses_skip_the_loopback_prefixes_and_given_ones() -> None:
    topo = _two_links()
    topo["topology"]["links"][1]["ipv4"] = ["10.9.0.0/31", "10.9.0.1/31"]  # spine end first, as listed
    topo["topology"]["links"].append({"endpoints": ["s1:eth3", "l1:eth2"]})
    got = intents({"fabric": {"links": {"prefix": "10.9.0.0/29"}}}, topo=topo)
    assert {u.name: str(u.address) for u in got["s1"].underlay.uplinks} == {
        "eth1": "10.9.0.2/31",
        "eth2": "10.9.0.0/31",
        "eth3": "10.9.0.4/31",
    }
    assert {u.name: str(u.address) for u in got["l2"].underlay.uplinks} == {"eth1": "10.9.0.1/31"}
    # the default link prefix holds the loopback prefixes: the first /31 is after the leaves' /24
    assert str(intents(None, topo=_two_links())["s1"].underlay.uplinks[0].address) == "198.18.1.0/31"
    _, lines = render({"fabric": {"links": {"prefix": "10.9.0.0/30"}}}, topo=topo)
    assert lines == [
        "s.yml: fabric.links.prefix: 10.9.0.0/30 runs out of /31s at link s1:eth3 -- l1:eth2 (2 links need one; "
        "the loopback prefixes are skipped): use a larger prefix"
    ]


def test_unnumbered_links() -> None:
    got = intents({"fabric": {"links": {"unnumbered": True}}})
    assert all(u.unnumbered and u.address is None for i in got.values() for u in i.underlay.uplinks)


def test_relative_files_are_copied_from_beside_the_settings(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "ospf.key"
    key.write_text("s3cret\n")
    os.chmod(key, 0o600)
    auth = {"underlay": {"ospf": {"authentication": {"key_id": 1, "key_file": "keys/ospf.key"}}}}
    rendering, lines = render({"switches": auth}, base_dir=tmp_path)
    assert rendering is not None, lines
    assert all(node.copies == {"keys/ospf.key": key} for node in rendering.nodes.values())
    from tor_agent.fabric.files import write_rendering

    out = tmp_path / "out"
    write_rendering(rendering, out)
    assert (out / "l1" / "keys" / "ospf.key").read_text() == "s3cret\n"
    assert (out / "l1" / "keys" / "ospf.key").stat().st_mode & 0o777 == 0o600  # the key keeps its mode


# --- errors -------------------------------------------------------------------------------------------

BAD_SETTINGS = {
    "unknown top-level key": (
        {"leafs": {}},
        ["s.yml: leafs: unknown key (allowed here: fabric, switches, spine, leaf, nodes, uplinks)"],
    ),
    "not a mapping": (["leaf"], ["s.yml: (top level): must be a mapping, got list"]),
    "bad fabric values": (
        {
            "fabric": {
                "leaf_loopbacks": {"prefix": "198.18.0.1/24"},
                "spine_loopbacks": {"first_host": -1},
                "links": {"unnumbered": "yes"},
                "first_dpid": 161,
                "tunnel_peers": "all",
                "controllers": {"scheme": "udp", "port": 0},
                "vtep": 1,
            }
        },
        [
            "s.yml: fabric.vtep: unknown key (allowed here: leaf_loopbacks, spine_loopbacks, links, first_dpid, "
            "tunnel_peers, controllers)",
            "s.yml: fabric.leaf_loopbacks.prefix: '198.18.0.1/24' is not an IPv4 prefix such as 198.18.0.0/24 "
            "(host bits zero)",
            "s.yml: fabric.spine_loopbacks.first_host: must be an integer 0..255, got -1",
            "s.yml: fabric.links.unnumbered: must be true or false, got 'yes'",
            "s.yml: fabric.first_dpid: 161 is not a datapath ID (1..16 hex digits, not all zero, quoted, e.g. "
            '"00000000000000a1")',
            "s.yml: fabric.tunnel_peers: 'all' is not supported (allowed: discover | static)",
            "s.yml: fabric.controllers.scheme: 'udp' is not supported (allowed: tcp | ssl)",
            "s.yml: fabric.controllers.port: must be an integer 1..65535, got 0",
        ],
    ),
    "spine loopbacks inside the VTEP prefix": (
        {"fabric": {"spine_loopbacks": {"prefix": "198.18.0.128/25"}}},
        [
            "s.yml: fabric.spine_loopbacks.prefix: 198.18.0.128/25 overlaps the leaf loopbacks' 198.18.0.0/24 "
            "(the VTEP prefix must hold no spine loopback)"
        ],
    ),
    "an intent section that is not a mapping": (
        {"leaf": ["overlay"], "nodes": {"l1": 3}},
        ["s.yml: leaf: must be a mapping, got list", "s.yml: nodes.l1: must be a mapping, got int"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_settings_one_line_each(case: str) -> None:
    doc, expected = BAD_SETTINGS[case]
    rendering, lines = render(doc)
    assert rendering is None and lines == expected


def test_intent_errors_name_the_settings_path_and_the_nodes() -> None:
    rendering, lines = render(
        {
            "leaf": {"underlay": {"ospf": {"hello_interval_s": 5, "dead_interval_s": 5}}, "overlay": {"colour": 1}},
            "spine": {"overlay": {"bridge": "br0"}},
            "nodes": {"l2": {"underlay": {"uplinks": [{"name": "eth1", "mtu": 9000}]}}},
            "uplinks": {"*": {"cost": 0}},
        }
    )
    assert rendering is None
    assert lines == [
        "s.yml: uplinks.*.cost: 0 is out of range (allowed: 1..65535) [s1, s2, l1 and l2: underlay.uplinks[0].cost "
        "and underlay.uplinks[1].cost]",
        "s.yml: spine.overlay: a spine carries no overlay: remove this section (or set node.role: leaf) [s1 and s2: "
        "overlay]",
        "s.yml: leaf.overlay.colour: unknown key (allowed here: bridge, datapath, dpid, protocols, fail_mode, "
        "access_ports, tunnels) [l1 and l2: overlay.colour]",
        "s.yml: leaf.underlay.ospf.dead_interval_s: must be greater than hello_interval_s (5); 4 x hello is usual "
        "[l1 and l2: underlay.ospf.dead_interval_s]",
    ]


def test_errors_from_the_topology_name_the_node() -> None:
    topo = _two_links()
    topo["topology"]["nodes"]["l_1"] = topo["topology"]["nodes"].pop("l1")
    topo["topology"]["links"][0]["endpoints"][1] = "l_1:eth1"
    rendering, lines = render(None, topo=topo)
    assert rendering is None
    assert lines == [
        "t.clab.yml: topology.nodes.l_1: 'l_1' is not a valid hostname (allowed: letters, digits and - in "
        "dot-separated labels of 1..63, at most 253 characters) [l_1: node.hostname]"
    ]


def test_settings_for_unknown_nodes_and_uplinks() -> None:
    rendering, lines = render({"nodes": {"l9": {}}, "uplinks": {"x9": {"cost": 1}, "l1:eth9": {"cost": 2}}})
    assert rendering is None
    assert lines == [
        "s.yml: nodes.l9: no spine or leaf named 'l9' in t.clab.yml",
        "s.yml: uplinks.x9: no spine or leaf named 'x9' in t.clab.yml (allowed: \"*\", NODE, NODE:INTERFACE)",
        "s.yml: uplinks.l1:eth9: l1 has no uplink 'eth9' (its uplinks: eth1, eth2)",
    ]


def test_files_outside_the_settings_directory_are_refused(tmp_path: Path) -> None:
    auth = {"underlay": {"ospf": {"authentication": {"key_id": 1, "key_file": "../ospf.key"}}}}
    (tmp_path.parent / "ospf.key").write_text("k\n")
    rendering, lines = render({"leaf": auth, "spine": auth}, base_dir=tmp_path)
    assert rendering is None
    assert (
        "s.yml: leaf.underlay.ospf.authentication.key_file: '../ospf.key' leaves the node's directory: name a "
        "file at or below the settings file" in lines
    )


def test_pools_that_run_out_and_controllers_without_an_address() -> None:
    topo = _two_links()
    topo["topology"]["nodes"]["c"] = {"labels": {"tor-agent.role": "controller"}}
    rendering, lines = render(
        {"fabric": {"leaf_loopbacks": {"prefix": "10.0.0.0/31", "first_host": 1}, "first_dpid": "ffffffffffffffff"}},
        topo=topo,
    )
    assert rendering is None
    assert lines == [
        "s.yml: fabric.leaf_loopbacks: 10.0.0.0/31 from host 1 has room for 1 loopbacks; the topology has 2 leaves "
        "(use a larger prefix)",
        "s.yml: fabric.first_dpid: 2 leaves from ffffffffffffffff need DPIDs past ffffffffffffffff",
        "t.clab.yml: topology.nodes.c: a controller needs a mgmt-ipv4 (or mgmt-ipv6) for the leaves to connect to",
    ]


def test_render_refuses_what_fabric_check_refuses() -> None:
    """Overrides can make single intents valid and the fabric wrong: render checks the fabric too."""
    rendering, lines = render({"nodes": {"l2": {"node": {"loopback": "198.18.0.11/32"}}}})
    assert rendering is None
    assert "router ID 198.18.0.11: is used by l1 and l2 (node.router_id): each switch needs its own" in lines


def test_settings_file_yaml_problems(tmp_path: Path) -> None:
    from tor_agent.fabric import read_settings

    path = tmp_path / "s.yml"
    path.write_text("leaf: {overlay: {}}\nleaf: {}\n")
    settings, problems = read_settings(path)
    assert settings is None
    assert [p.text() for p in problems] == [
        f"{path}: line 2, column 1: duplicate key 'leaf' (first defined on line 1; each key may appear once)"
    ]
    path.write_text("")
    settings, problems = read_settings(path)
    assert settings is not None and problems == []  # an empty file: every default


def test_merge_records_origins() -> None:
    doc: dict[str, Any] = {"a": {"b": 1, "c": [1]}}
    prov = Provenance(Origin("topo", "", exact=False))
    merge(doc, {"a": {"c": [2, 3], "d": {"e": 1}}}, "", Origin("s.yml", "leaf"), prov)
    assert doc == {"a": {"b": 1, "c": [2, 3], "d": {"e": 1}}}
    assert prov.of("a.c[1]").text() == "s.yml: leaf.a.c[1]"
    assert prov.of("a.d.e").text() == "s.yml: leaf.a.d.e"
    assert prov.of("a.b").text() == "topo"
    assert yaml.safe_dump(doc)  # plain data: dicts and lists only
