"""FRR's daemons asked over their vty sockets (tor_agent.frr.vty) against real FRR 8.4: the same JSON as vtysh,
and a configuration fingerprint that moves with every change of the running configuration, and only then."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from frrnode import FrrNode, veth

from tor_agent.frr.vty import Vty, VtyError, VtyShow, config_fingerprint
from tor_agent.health.frr_state import BFD_PEERS, OSPF_NEIGHBORS, OSPF_ROUTES, ZEBRA_ROUTES
from tor_agent.wait import wait_until

MakeNode = Callable[[str], FrrNode]
CONFIG = """\
interface eth1
 ip ospf network point-to-point
 ip ospf bfd
exit
router ospf
 ospf router-id 198.18.0.11
 network 198.18.1.0/31 area 0.0.0.0
exit
bfd
 profile tor-agent
 exit
exit
"""


def vty_of(node: FrrNode) -> Vty:
    """The node's vty sockets, as seen from outside its mount namespace."""
    return Vty(Path(f"/proc/{node.pid}/root/run/frr"), timeout_s=5)


def configured(frr_node: MakeNode) -> FrrNode:
    node = frr_node("leaf1")
    veth(node, "eth1", "198.18.1.1/31")
    node.run("vtysh", "-c", "configure", *[x for line in CONFIG.splitlines() for x in ("-c", line.strip())])
    return node


def test_show_json_over_the_socket_equals_vtysh(frr_node: MakeNode) -> None:
    node = configured(frr_node)
    show = VtyShow(vty_of(node))
    for command in (OSPF_NEIGHBORS, BFD_PEERS, OSPF_ROUTES, ZEBRA_ROUTES):
        assert show.show_json(command) == node.show_json(command), command


def test_fingerprint_moves_with_a_hand_edit_and_only_then(frr_node: MakeNode) -> None:
    node = configured(frr_node)
    vty = vty_of(node)
    assert vty.daemons() == ["bfdd", "ospfd", "staticd", "zebra"]
    first = config_fingerprint(vty)
    assert config_fingerprint(vty) == first
    node.run("vtysh", "-c", "configure", "-c", "router ospf", "-c", "maximum-paths 4")
    edited = config_fingerprint(vty)
    assert edited != first
    node.run("vtysh", "-c", "configure", "-c", "router ospf", "-c", "no maximum-paths")
    assert config_fingerprint(vty) == first


def test_a_daemon_down_changes_the_fingerprint_and_is_an_error(frr_node: MakeNode) -> None:
    node = configured(frr_node)
    vty = vty_of(node)
    before = config_fingerprint(vty)
    watchfrr, ospfd = (node.run("cat", f"/run/frr/{d}.pid").stdout.strip() for d in ("watchfrr", "ospfd"))
    node.run("kill", "-KILL", watchfrr, ospfd, pid_ns=True)  # without watchfrr, ospfd stays down
    wait_until(lambda: config_fingerprint(vty) != before, 5, what="the fingerprint to see ospfd gone")
    with pytest.raises(VtyError, match="ospfd"):
        VtyShow(vty).show_json(OSPF_NEIGHBORS)


def test_a_refused_command_is_an_error_naming_it(frr_node: MakeNode) -> None:
    node = frr_node("leaf1")
    with pytest.raises(VtyError, match="no such thing"):
        vty_of(node).ask("zebra", "show no such thing")


def test_without_a_vty_socket_here_vtysh_answers(frr_node: MakeNode, tmp_path: Path) -> None:
    node = configured(frr_node)
    show = VtyShow(Vty(tmp_path, timeout_s=5), fallback=node.vtysh())  # no socket in tmp_path
    assert show.show_json(OSPF_NEIGHBORS) == node.show_json(OSPF_NEIGHBORS)
    with pytest.raises(VtyError, match="ospfd"):
        VtyShow(Vty(tmp_path, timeout_s=5)).show_json(OSPF_NEIGHBORS)
