"""`tor-agent fabric check`: each cross-switch mistake in a set of intents is found, naming both ends.

Every test renders a good fabric into a directory, breaks the intents there the way a hand edit would,
and checks them as `fabric check TOPOLOGY --intents DIR` does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tor_agent.fabric import parse_settings, parse_topology, read_topology, render_fabric
from tor_agent.fabric.check import check_fabric
from tor_agent.fabric.files import read_intents, write_rendering


def switch(role: str, mgmt: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"labels": {"tor-agent.role": role}}
    if mgmt:
        node["mgmt-ipv4"] = mgmt
    return node


def topology(leaves_on_spine2: int = 3) -> dict[str, Any]:
    """spineS:ethL -- leafL:ethS (MTU 9000), leafL:eth3 -- hostL:eth1, a controller at 192.0.2.10."""
    nodes = {"spine1": switch("spine"), "spine2": switch("spine")}
    nodes |= {f"leaf{i}": switch("leaf", f"192.0.2.3{i}") for i in (1, 2, 3)}
    nodes |= {f"host{i}": switch("host", f"192.0.2.4{i}") for i in (1, 2, 3)}
    nodes["controller"] = switch("controller", "192.0.2.10")
    links = []
    for leaf in (1, 2, 3):
        for spine in (1, 2):
            if spine == 1 or leaf <= leaves_on_spine2:
                links.append({"endpoints": [f"spine{spine}:eth{leaf}", f"leaf{leaf}:eth{spine}"], "mtu": 9000})
        links.append({"endpoints": [f"leaf{leaf}:eth3", f"host{leaf}:eth1"], "mtu": 1500})
    return {"name": "check", "mgmt": {"ipv4-subnet": "192.0.2.0/24"}, "topology": {"nodes": nodes, "links": links}}


SETTINGS = {
    "switches": {"underlay": {"ospf": {"hello_interval_s": 1, "dead_interval_s": 4, "bfd": {"enabled": True}}}},
    "leaf": {"overlay": {"tunnels": {"key": 100}}},
}


class Fabric:
    """A rendered fabric in a directory, edited by hand and checked."""

    def __init__(self, root: Path, topo_doc: dict[str, Any]) -> None:
        self.root, self.intents = root, root / "intents"
        self.topo_file = root / "fabric.clab.yml"
        self.topo_file.write_text(yaml.safe_dump(topo_doc))
        topo, _ = parse_topology(topo_doc, str(self.topo_file))
        settings, _ = parse_settings(SETTINGS, "settings.yml", root)
        assert topo is not None and settings is not None
        rendering, found = render_fabric(topo, settings)
        assert rendering is not None, [f.text() for f in found]
        write_rendering(rendering, self.intents)

    def doc(self, node: str) -> dict[str, Any]:
        data = yaml.safe_load((self.intents / node / "agent.yaml").read_text())
        assert isinstance(data, dict)
        return data

    def edit(self, node: str, **edits: Any) -> None:
        """Dotted-path edits of a node's agent.yaml, e.g. edit("leaf1", **{"underlay.uplinks[0].mtu": 9100})."""
        doc = self.doc(node)
        for path, value in edits.items():
            *parents, last = re.findall(r"[^.\[\]]+", path)
            target: Any = doc
            for key in parents:
                target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
            key: Any = int(last) if last.isdigit() else last
            if value is None:
                del target[key]
            else:
                target[key] = value
        (self.intents / node / "agent.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def check(self) -> tuple[list[str], list[str]]:
        """The error and warning lines of `fabric check`."""
        topo, found = read_topology(self.topo_file)
        assert topo is not None, found
        intents, unread, problems = read_intents(topo, self.intents)
        findings = problems + check_fabric(topo, intents, unread)
        return (
            [f.text() for f in findings if f.severity == "error"],
            [f.text() for f in findings if f.severity == "warning"],
        )


@pytest.fixture
def fabric(tmp_path: Path) -> Fabric:
    return Fabric(tmp_path, topology())


def test_the_rendered_fabric_is_clean(fabric: Fabric) -> None:
    assert fabric.check() == ([], [])


def test_unpaired_link_addresses(fabric: Fabric) -> None:
    uplinks = fabric.doc("leaf1")["underlay"]["uplinks"]
    fabric.edit("leaf1", **{"underlay.uplinks": uplinks[1:]})  # leaf1 forgets eth1
    fabric.edit("leaf2", **{"underlay.uplinks[0].address": "198.18.9.5/31"})
    fabric.edit("leaf3", **{"underlay.uplinks[1].address": "198.18.1.10/31"})  # the spine's own address
    errors, _ = fabric.check()
    assert errors == [
        "link spine1:eth1 -- leaf1:eth1: unpaired: spine1:eth1 is underlay.uplinks[0] (198.18.1.0/31) but leaf1 has "
        "no uplink eth1",
        "link spine1:eth2 -- leaf2:eth1: unpaired addresses: spine1:eth2 has 198.18.1.4/31, leaf2:eth1 has "
        "198.18.9.5/31: not one subnet (give leaf2:eth1 the other address of 198.18.1.4/31)",
        "link spine2:eth3 -- leaf3:eth2: both ends have 198.18.1.10 (spine2:eth3 and leaf3:eth2): each end needs "
        "its own address",
    ]


def test_numbered_against_unnumbered(fabric: Fabric) -> None:
    fabric.edit("leaf3", **{"underlay.uplinks[0].address": None, "underlay.uplinks[0].unnumbered": True})
    errors, _ = fabric.check()
    assert errors == [
        "link spine1:eth3 -- leaf3:eth1: unpaired: spine1:eth3 is 198.18.1.8/31 but leaf3:eth1 is unnumbered "
        "(number both or neither)"
    ]


def test_overlapping_link_addresses_and_a_loopback_in_a_link(fabric: Fabric) -> None:
    fabric.edit("spine2", **{"underlay.uplinks[1].address": "198.18.1.0/31"})
    fabric.edit("leaf2", **{"underlay.uplinks[1].address": "198.18.1.1/31"})
    fabric.edit("leaf3", **{"node.loopback": "198.18.1.5/32", "node.router_id": "198.18.0.13"})
    errors, _ = fabric.check()
    assert (
        "link spine1:eth1 -- leaf1:eth1: 198.18.1.0/31 overlaps link spine2:eth2 -- leaf2:eth2 (198.18.1.0/31): "
        "every link needs its own subnet" in errors
    )
    assert "link spine1:eth2 -- leaf2:eth1: 198.18.1.4/31 holds leaf3's loopback 198.18.1.5 (node.loopback)" in errors


def test_mtu_differs_on_a_link(fabric: Fabric) -> None:
    fabric.edit("spine2", **{"underlay.uplinks[0].mtu": 9100})
    errors, _ = fabric.check()
    assert errors == [
        "link spine2:eth1 -- leaf1:eth2: mtu differs: 9100 on spine2 (underlay.uplinks[0].mtu), 9000 on leaf1 "
        "(underlay.uplinks[1].mtu): OSPF never gets past ExStart"
    ]


def test_ospf_timers_area_and_bfd_differ(fabric: Fabric) -> None:
    fabric.edit("leaf1", **{"underlay.ospf.hello_interval_s": 2, "underlay.ospf.dead_interval_s": None})
    fabric.edit("leaf2", **{"underlay.ospf.area": "0.0.0.1"})
    fabric.edit("leaf3", **{"underlay.ospf.bfd": {"enabled": True, "rx_ms": 50, "tx_ms": 50}})
    errors, _ = fabric.check()
    assert errors == [
        "link spine1:eth1 -- leaf1:eth1: OSPF hello_interval_s differs: 1 on spine1, 2 on leaf1 "
        "(underlay.ospf.hello_interval_s)",
        "link spine1:eth1 -- leaf1:eth1: OSPF dead_interval_s differs: 4 on spine1, 40 on leaf1 "
        "(underlay.ospf.dead_interval_s)",
        "link spine2:eth1 -- leaf1:eth2: OSPF hello_interval_s differs: 1 on spine2, 2 on leaf1 "
        "(underlay.ospf.hello_interval_s)",
        "link spine2:eth1 -- leaf1:eth2: OSPF dead_interval_s differs: 4 on spine2, 40 on leaf1 "
        "(underlay.ospf.dead_interval_s)",
        "link spine1:eth2 -- leaf2:eth1: OSPF area differs: 0.0.0.0 on spine1, 0.0.0.1 on leaf2 (underlay.ospf.area)",
        "link spine2:eth2 -- leaf2:eth2: OSPF area differs: 0.0.0.0 on spine2, 0.0.0.1 on leaf2 (underlay.ospf.area)",
        "link spine1:eth3 -- leaf3:eth1: OSPF bfd differs: rx 300 ms, tx 300 ms, x3 on spine1, rx 50 ms, tx 50 ms, "
        "x3 on leaf3 (underlay.ospf.bfd)",
        "link spine2:eth3 -- leaf3:eth2: OSPF bfd differs: rx 300 ms, tx 300 ms, x3 on spine2, rx 50 ms, tx 50 ms, "
        "x3 on leaf3 (underlay.ospf.bfd)",
    ]


def test_authentication_differs(fabric: Fabric) -> None:
    for name, key in (("a.key", "alpha"), ("b.key", "bravo")):
        (fabric.intents / name).write_text(key + "\n")
    auth = {"key_id": 1, "key_file": "../a.key"}
    for node in ("spine1", "spine2", "leaf1", "leaf2"):
        fabric.edit(node, **{"underlay.ospf.authentication": auth})
    fabric.edit("leaf2", **{"underlay.ospf.authentication.key_file": "../b.key"})
    errors, _ = fabric.check()
    assert errors == [
        f"link spine1:eth2 -- leaf2:eth1: OSPF authentication keys differ: spine1 reads {fabric.intents}/spine1/../"
        f"a.key, leaf2 reads {fabric.intents}/leaf2/../b.key (underlay.ospf.authentication.key_file; keys not shown)",
        f"link spine2:eth2 -- leaf2:eth2: OSPF authentication keys differ: spine2 reads {fabric.intents}/spine2/../"
        f"a.key, leaf2 reads {fabric.intents}/leaf2/../b.key (underlay.ospf.authentication.key_file; keys not shown)",
        "link spine1:eth3 -- leaf3:eth1: OSPF authentication differs: MD5 key_id 1 on spine1, none on leaf3 "
        "(underlay.ospf.authentication)",
        "link spine2:eth3 -- leaf3:eth2: OSPF authentication differs: MD5 key_id 1 on spine2, none on leaf3 "
        "(underlay.ospf.authentication)",
    ]
    assert not any("alpha" in e or "bravo" in e for e in errors)


def test_duplicate_router_ids_loopbacks_and_dpids(fabric: Fabric) -> None:
    fabric.edit("leaf2", **{"node.router_id": "198.18.0.11"})
    fabric.edit("leaf3", **{"node.loopback": "198.18.0.12/32", "overlay.dpid": "00000000000000a1"})
    errors, _ = fabric.check()
    assert errors.pop(0) == (  # the spines' expected neighbours still have leaf2's rendered router ID
        "router ID 198.18.0.11: leaf2's intent has 198.18.0.11, but spine1:eth2 and spine2:eth2 expect 198.18.0.12 "
        "(underlay.uplinks[].neighbour.router_id): render the fabric again"
    )
    assert errors == [
        "router ID 198.18.0.11: is used by leaf1 and leaf2 (node.router_id): each switch needs its own",
        "loopback 198.18.0.12: is used by leaf2 and leaf3 (node.loopback): each switch needs its own",
        "DPID 00000000000000a1: is used by leaf1 and leaf3 (overlay.dpid): each switch needs its own",
    ]


def test_spine_loopback_inside_and_leaf_loopback_outside_the_vtep_prefix(fabric: Fabric) -> None:
    fabric.edit("spine2", **{"node.loopback": "198.18.0.2/32", "node.router_id": "198.18.0.2"})
    fabric.edit("leaf3", **{"node.loopback": "198.18.7.13/32", "node.router_id": "198.18.7.13"})
    errors, _ = fabric.check()
    stale = [e for e in errors if "(underlay.uplinks[].neighbour.router_id)" in e]
    assert [e.split(":")[0] for e in stale] == ["router ID 198.18.0.2", "router ID 198.18.7.13"]
    assert [e for e in errors if e not in stale] == [
        "VTEP prefix 198.18.0.0/24: holds spine2's loopback 198.18.0.2: leaf1, leaf2 and leaf3 would build a tunnel "
        "to a spine (keep spine loopbacks outside overlay.tunnels.discover.ospf_prefix)",
        "leaf3's loopback 198.18.7.13: is outside the VTEP prefix 198.18.0.0/24 (overlay.tunnels.discover.ospf_prefix)"
        " of leaf1 and leaf2: they build no tunnel to leaf3",
    ]


def test_static_peers_that_miss_a_leaf_or_name_a_spine(fabric: Fabric) -> None:
    for leaf, peers in (("leaf1", ["198.18.0.12", "198.18.255.1"]), ("leaf2", ["198.18.0.11", "198.18.0.13"])):
        fabric.edit(leaf, **{"overlay.tunnels.discover": None, "overlay.tunnels.peers": peers})
    errors, _ = fabric.check()
    assert errors == [
        "tunnel peer 198.18.255.1: of leaf1 (overlay.tunnels.peers) is spine1's loopback: a tunnel to a spine",
        "leaf3's loopback 198.18.0.13: is not in overlay.tunnels.peers (and no VTEP is discovered) of leaf1: they "
        "build no tunnel to leaf3",
    ]


def test_tenant_mtu_that_does_not_fit_a_path(fabric: Fabric) -> None:
    """leaf1's own links carry 9100 (its own intent is valid), but its tunnels to leaf2 and leaf3 cross their
    9000-byte links: 9000 + 42 does not fit."""
    for node, index in (("spine1", 0), ("spine2", 0), ("leaf1", 0), ("leaf1", 1)):
        fabric.edit(node, **{f"underlay.uplinks[{index}].mtu": 9100})
    fabric.edit("leaf1", **{"overlay.tunnels.tenant_mtu": 9000})
    errors, _ = fabric.check()
    assert errors == [
        f"link spine{s}:eth{leaf} -- leaf{leaf}:eth{s}: mtu 9000 is too small for the tunnels of leaf1 through "
        f"spine{s}: they need up to 9042 (overlay.tunnels.tenant_mtu plus GRE/IP/Ethernet); raise the mtu of both "
        "ends or lower tenant_mtu"
        for s in (1, 2)
        for leaf in (2, 3)
    ]


def test_controller_target_that_is_not_a_controller_node(fabric: Fabric) -> None:
    fabric.edit("leaf2", **{"controllers.targets": ["tcp:192.0.2.10:6653", "tcp:192.0.2.41:6653"]})
    fabric.edit("leaf3", **{"controllers.targets": ["tcp:192.0.2.99"]})
    errors, _ = fabric.check()
    assert errors == [
        "leaf2: controllers.targets[1]: tcp:192.0.2.41:6653 is not a controller node: 192.0.2.41 is host1's "
        "management address, a host (the topology's controllers: controller 192.0.2.10)",
        "leaf3: controllers.targets[0]: tcp:192.0.2.99:6653 is not a controller node: 192.0.2.99 is no node's address "
        "(the topology's controllers: controller 192.0.2.10)",
    ]


def test_gre_keys_and_tunnel_bfd_must_agree(fabric: Fabric) -> None:
    fabric.edit("leaf3", **{"overlay.tunnels.key": None, "overlay.tunnels.bfd": True})
    errors, warnings = fabric.check()
    assert errors == [
        "overlay.tunnels.key: differs between leaves: 100 on leaf1 and leaf2; none on leaf3: tunnels between them "
        "drop every packet"
    ]
    assert warnings == [
        "warning: overlay.tunnels.bfd: differs between leaves: disabled on leaf1 and leaf2; enabled on leaf3: "
        "tunnels between them report BFD down"
    ]


def test_uplinks_and_intents_the_topology_does_not_have(fabric: Fabric) -> None:
    uplinks = fabric.doc("leaf1")["underlay"]["uplinks"]
    fabric.edit("leaf1", **{"underlay.uplinks": [*uplinks, {"name": "eth7", "address": "198.18.3.1/31", "mtu": 9000}]})
    shutil.rmtree(fabric.intents / "leaf3")
    errors, _ = fabric.check()
    assert errors == [
        f"leaf3: no intent: neither {fabric.intents}/leaf3/agent.yaml nor {fabric.intents}/leaf3.yaml exists",
        "leaf1: underlay.uplinks[2]: eth7 (198.18.3.1/31) is on no link of the topology",
    ]


def test_every_problem_at_once(fabric: Fabric) -> None:
    fabric.edit("spine1", **{"underlay.uplinks[2].mtu": 9100, "underlay.ospf.hello_interval_s": 3})
    fabric.edit("leaf2", **{"node.router_id": "198.18.0.11", "controllers.targets": ["tcp:192.0.2.42"]})
    fabric.edit("leaf3", **{"overlay.dpid": "00000000000000a2", "node.loopback": "198.18.255.13/32"})
    (fabric.intents / "spine2" / "agent.yaml").write_text("version: 1\nnode: [\n")
    errors, warnings = fabric.check()
    assert len(errors) == 10 and warnings == [], (errors, warnings)
    assert errors[0].startswith(f"{fabric.intents}/spine2/agent.yaml: line 3, column 1: ")
    topics = ["mtu differs", "hello_interval_s differs", "router ID 198.18.0.11", "DPID 00000000000000a2"]
    topics += ["is outside the VTEP prefix", "192.0.2.42 is host2's", "spine1:eth2 expects 198.18.0.12"]
    assert all(any(t in e for e in errors) for t in topics), errors


def test_an_expected_neighbour_the_topology_does_not_link_is_an_error(fabric: Fabric) -> None:
    fabric.edit("leaf1", **{"underlay.uplinks[0].neighbour.port": "eth7"})
    fabric.edit("spine2", **{"underlay.uplinks[2].neighbour.node": "leaf9"})
    errors, _ = fabric.check()
    assert errors == [
        "link spine1:eth1 -- leaf1:eth1: leaf1:eth1 expects spine1:eth7 at its far end "
        "(underlay.uplinks[0].neighbour) but the topology links it to spine1:eth1",
        "link spine2:eth3 -- leaf3:eth2: spine2:eth3 expects leaf9:eth2 at its far end "
        "(underlay.uplinks[2].neighbour) but the topology links it to leaf3:eth2",
    ]


def test_intents_without_expected_neighbours_are_checked_as_before(fabric: Fabric) -> None:
    for node in ("spine1", "spine2", "leaf1", "leaf2", "leaf3"):
        uplinks = len(fabric.doc(node)["underlay"]["uplinks"])
        fabric.edit(node, **{f"underlay.uplinks[{i}].neighbour": None for i in range(uplinks)})
    assert fabric.check() == ([], [])


def test_fewer_than_two_spines_is_a_warning(tmp_path: Path) -> None:
    fabric = Fabric(tmp_path, topology(leaves_on_spine2=2))  # leaf3 hangs off spine1 only
    errors, warnings = fabric.check()
    assert errors == []
    assert warnings == [
        "warning: leaf3: shares only one spine (spine1) with leaf1 and leaf2: one failure cuts them apart"
    ]


def test_maximum_paths_below_the_spines_is_a_warning(fabric: Fabric) -> None:
    fabric.edit("leaf1", **{"underlay.ospf.maximum_paths": 1})
    assert fabric.check() == (
        [],
        ["warning: leaf1: underlay.ospf.maximum_paths 1 is less than its 2 spines: ECMP uses only 1"],
    )


def test_access_ports_against_the_topology(fabric: Fabric) -> None:
    fabric.edit("leaf1", **{"overlay.access_ports": ["eth9"]})
    assert fabric.check() == (
        [],
        [
            "warning: leaf1: overlay.access_ports[0]: eth9 faces no host in the topology",
            "warning: leaf1:eth3: faces host1 but is not in overlay.access_ports: the host is cut off",
        ],
    )


def test_a_single_spine_fabric_warns_once(tmp_path: Path) -> None:
    doc = topology(leaves_on_spine2=0)
    del doc["topology"]["nodes"]["spine2"]
    fabric = Fabric(tmp_path, doc)
    assert fabric.check() == (
        [],
        ["warning: leaf1, leaf2 and leaf3: share only one spine (spine1): one failure cuts them apart"],
    )
