"""How the realiser reads containerlab files (no root needed): link forms, inheritance, deploy-time rules."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from labs.labkit.lab import FABRIC, FABRIC_3X4
from labs.nslab import realise, status, topology


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.clab.yml"
    path.write_text(text)
    return path


def test_demo_fabric_reads_as_drawn() -> None:
    topo = topology.load(FABRIC)
    roles = {r: [n.name for n in topo.by_role(r)] for r in topology.ROLES}
    assert roles == {
        "spine": ["spine1", "spine2"],
        "leaf": ["leaf1", "leaf2", "leaf3"],
        "host": ["host1", "host2", "host3", "host4", "red1", "red2"],
        "controller": ["controller"],
    }
    assert {(str(lk.a), str(lk.b), lk.mtu) for lk in topo.links} >= {
        ("spine1:eth1", "leaf1:eth1", 9000),  # short form
        ("leaf1:eth3", "host1:eth1", 1500),  # extended form
        ("leaf1:eth4", "red1:eth1", 1500),
    }
    ends = {str(e): e.mac for lk in topo.links for e in (lk.a, lk.b)}
    assert ends["host1:eth1"] == ends["red1:eth1"] == "02:00:00:00:64:11"  # two tenants, the same MAC
    assert topo.nodes["leaf1"].intent_file() == FABRIC.parent / "configs" / "leaf1" / "agent.yaml"
    assert topo.nodes["controller"].mgmt_ipv4 == ipaddress.IPv4Address("203.0.113.10")
    assert topo.netns("leaf1") == "clab-tor-fabric-leaf1"


@pytest.mark.parametrize(("path", "width"), [(FABRIC, 2), (FABRIC_3X4, 3)], ids=["2x3", "3x4"])
def test_expected_ecmp_is_one_path_per_spine(path: Path, width: int) -> None:
    expected = status.expected_ecmp(topology.load(path))
    assert expected and all(w == width for remote in expected.values() for w in remote.values())


def test_inheritance_defaults_kinds_groups_node(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    topo = topology.load(
        write(
            tmp_path,
            """
name: inherit
topology:
  defaults: {kind: linux, labels: {tor-agent.role: host, x: d}, binds: [a.txt:/etc/x], exec: [echo d]}
  kinds: {linux: {env: {K: kind}, labels: {x: k}}}
  groups: {g: {labels: {x: g}, exec: [echo g]}}
  nodes:
    n1: {group: g, binds: [b.txt:/etc/x:ro]}
    n2: {env: {K: node}}
""",
        )
    )
    n1, n2 = topo.nodes["n1"], topo.nodes["n2"]
    assert (n1.labels["x"], n2.labels["x"]) == ("g", "k")
    assert (n1.exec, n2.exec) == (("echo g",), ("echo d",))
    assert [(b.source.name, b.target, b.read_only) for b in n1.binds] == [("b.txt", "/etc/x", True)]
    assert (n1.env, n2.env) == ({"K": "kind"}, {"K": "node"})
    assert n1.role == "host"


def test_management_addresses_are_assigned_like_containerlab(tmp_path: Path) -> None:
    topo = topology.load(
        write(
            tmp_path,
            """
name: mgmt
mgmt: {ipv4-subnet: 192.0.2.0/29}
topology:
  defaults: {labels: {tor-agent.role: host}}
  nodes: {a: {}, b: {mgmt-ipv4: 192.0.2.3}, c: {}}
""",
        )
    )
    assert [str(n.mgmt_ipv4) for n in topo.nodes.values()] == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: broken
mgmt: {ipv4-subnet: 192.0.2.0/24}
topology:
  nodes:
    a: {labels: {tor-agent.role: host}, mgmt-ipv4: 192.0.2.5}
    b: {labels: {tor-agent.role: host}, mgmt-ipv4: 192.0.2.5, binds: [missing.yaml:/etc/x]}
    c: {labels: {tor-agent.role: router}}
    s: {labels: {tor-agent.role: spine}}
  links:
    - {endpoints: [a:eth1, ghost:eth1]}
    - {endpoints: [a:eth1, b:eth1]}
    - {endpoints: [a:eth0, b:eth2]}
    - {type: host, endpoints: [{node: a, interface: eth9}, {node: host, interface: x}]}
""",
    )
    with pytest.raises(topology.TopologyError) as e:
        topology.load(path)
    message = str(e.value)
    for expected in (
        "no node named 'ghost'",
        "endpoint a:eth1 is used by more than one link",
        "eth0 is the management interface",
        "bind source",
        "label tor-agent.role is 'router'",
        "a spine needs its intent file bound to /etc/tor-agent/agent.yaml",
        "mgmt-ipv4 192.0.2.5 is also a's",
        "link type 'host' is not supported",
    ):
        assert expected in message, message


def test_labels_reach_the_node_environment_as_containerlab_sets_them() -> None:
    topo = topology.load(FABRIC)
    env = realise.node_env(topo, topo.nodes["leaf2"], {"TOR_AGENT": "/x/tor-agent"})
    assert env["CLAB_LABEL_TOR_AGENT_ROLE"] == "leaf"
    assert env["CLAB_LABEL_CLAB_NODE_NAME"] == "leaf2"
    assert env["CLAB_INTFS"] == "4"  # two uplinks and two host ports (host2, red2)
    assert env["TOR_AGENT"] == "/x/tor-agent"


def test_endpoint_addresses_short_and_extended_links(tmp_path: Path) -> None:
    topo = topology.load(
        write(
            tmp_path,
            """
name: addrs
topology:
  defaults: {labels: {tor-agent.role: host}}
  nodes: {a: {}, b: {}}
  links:
    - {endpoints: [a:eth1, b:eth1], ipv4: [192.0.2.1/30, 192.0.2.2/30], ipv6: ["", 2001:db8::2/64]}
    - type: veth
      endpoints: [{node: a, interface: eth2, ipv4: 198.51.100.1/24}, {node: b, interface: eth2}]
""",
        )
    )
    first, second = topo.links
    assert (first.a.addresses, first.b.addresses) == (("192.0.2.1/30",), ("192.0.2.2/30", "2001:db8::2/64"))
    assert (second.a.addresses, second.b.addresses) == (("198.51.100.1/24",), ())


def test_a_bad_endpoint_address_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: badaddr
topology:
  defaults: {labels: {tor-agent.role: host}}
  nodes: {a: {}, b: {}}
  links: [{endpoints: [a:eth1, b:eth1], ipv4: [192.0.2.1, 192.0.2.2/30]}]
""",
    )
    with pytest.raises(topology.TopologyError, match=r"links\[0\]: '192.0.2.1' is not an address with a prefix"):
        topology.load(path)


def test_every_node_is_given_the_images_files_and_its_own_binds_win() -> None:
    topo = topology.load(FABRIC)
    tools = {"TOR_AGENT": "/x/.venv/bin/tor-agent"}
    leaf = {b.target: b for b in realise.image_binds(topo.nodes["leaf1"], tools)}
    assert set(leaf) == {"/usr/local/sbin/node-start", "/etc/tor-agent/controller", "/usr/local/bin/tor-agent"}
    assert all(b.read_only for b in leaf.values())
    assert leaf["/usr/local/bin/tor-agent"].source == Path("/x/.venv/bin/tor-agent")
    controller = {b.target for b in realise.image_binds(topo.nodes["controller"], tools)}
    assert "/etc/tor-agent/controller" not in controller  # fabric.clab.yml binds it itself
    installed = {b.target for b in realise.image_binds(topo.nodes["leaf1"], {"TOR_AGENT": "/usr/bin/tor-agent"})}
    assert "/usr/local/bin/tor-agent" not in installed  # the package's is on PATH already


def test_an_intent_directory_bound_over_etc_tor_agent_is_the_intent(tmp_path: Path) -> None:
    (tmp_path / "sp1").mkdir()
    (tmp_path / "sp1" / "agent.yaml").write_text("version: 1\n")
    (tmp_path / "empty").mkdir()
    path = write(
        tmp_path,
        """
name: dirbind
topology:
  nodes:
    sp1: {labels: {tor-agent.role: spine}, binds: [sp1:/etc/tor-agent]}
    sp2: {labels: {tor-agent.role: spine}, binds: [empty:/etc/tor-agent]}
""",
    )
    with pytest.raises(topology.TopologyError) as e:
        topology.load(path)
    assert "node sp2: a spine needs its intent file bound to /etc/tor-agent/agent.yaml" in str(e.value)
    assert "sp1:" not in str(e.value)
    (tmp_path / "empty" / "agent.yaml").write_text("version: 1\n")
    topo = topology.load(path)
    assert topo.nodes["sp1"].intent_file() == tmp_path / "sp1" / "agent.yaml"
    assert topo.nodes["sp1"].bound_file("/etc/tor-agent") == tmp_path / "sp1"
    assert topo.nodes["sp1"].bound_file("/etc/tor-agentx") is None
