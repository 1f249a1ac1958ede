"""The lab itself, before tor-agent manages OVS: the namespace realisation of fabric.clab.yml is a real fabric.

Layer by layer, each check polled until it holds: nodes and links as the file says, OSPF Full on every
leaf-spine link, ECMP in every leaf's kernel through every spine, ovs-vswitchd on every leaf, hosts
exchanging packets with their leaf at full MTU, the controller reachable over the management network.
"""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

import pytest

from labs.labkit.lab import CONVERGE_BUDGET_S, LAB_CLI, Lab, host_links
from labs.labkit.nodes import INTENT
from labs.nslab import realise, state

pytestmark = pytest.mark.lab


def leaf_spine_links(lab: Lab) -> list[tuple[str, str, str, str]]:
    """(leaf, leaf interface, spine, spine interface) for every leaf-spine link."""
    found = []
    for leaf in lab.role("leaf"):
        for local, remote, _ in lab.topo.links_of(leaf):
            if lab.nodes[remote.node].role == "spine":
                found.append((leaf, local.iface, remote.node, remote.iface))
    return found


def full_neighbours(lab: Lab, node: str) -> dict[str, str]:
    """Router ID -> interface (`ifaceName` without the address) of every Full OSPF neighbour."""
    data = lab.vtysh(node, "show ip ospf neighbor json")
    return {
        rid: e["ifaceName"].split(":")[0]
        for rid, entries in data.get("neighbors", {}).items()
        for e in entries
        if e["nbrState"].startswith("Full")
    }


def test_nodes_have_their_own_hostname_and_private_tree(fabric: Lab) -> None:
    for name in fabric.nodes:
        assert fabric.exec(name, "hostname").stdout.strip() == name
    leaf_conf = fabric.exec("leaf1", "cat", "/etc/frr/frr.conf").stdout
    spine_conf = fabric.exec("spine1", "cat", "/etc/frr/frr.conf").stdout
    assert "hostname leaf1" in leaf_conf and "hostname spine1" in spine_conf
    assert fabric.exec("host1", "ls", "/run").stdout.split() == []  # a fresh tmpfs: nothing of the host's


def test_nothing_is_created_in_the_host_network_namespace(fabric: Lab) -> None:
    assert host_links() == fabric.host_links_before


def test_links_have_the_file_mtu_on_both_ends(fabric: Lab) -> None:
    for link in fabric.topo.links:
        for end in (link.a, link.b):
            data = fabric.json(end.node, "ip", "-j", "link", "show", "dev", end.iface)
            assert (data[0]["mtu"], data[0]["operstate"]) == (link.mtu, "UP"), f"{end}"


def test_management_network_reaches_the_controller_from_every_node(fabric: Lab) -> None:
    controller = str(fabric.nodes["controller"].mgmt_ipv4)
    for name in fabric.nodes:
        addr = fabric.json(name, "ip", "-j", "-4", "address", "show", "dev", "eth0")[0]["addr_info"][0]["local"]
        assert addr == str(fabric.nodes[name].mgmt_ipv4)
        fabric.exec(name, "ping", "-c", "1", "-W", "2", controller)


def test_ospf_full_on_every_leaf_spine_link(fabric: Lab, wait_until: Any) -> None:
    links = leaf_spine_links(fabric)
    assert len(links) == 6
    rid = {n: fabric.intent(n)["node"]["router_id"] for n in fabric.role("leaf") + fabric.role("spine")}

    def missing() -> list[str]:
        gaps = []
        for leaf, leaf_if, spine, spine_if in links:
            if full_neighbours(fabric, leaf).get(rid[spine]) != f"br-{leaf_if}":  # netdev leaf: OSPF on the bridge
                gaps.append(f"{leaf}:br-{leaf_if} -> {spine}")
            if full_neighbours(fabric, spine).get(rid[leaf]) != spine_if:
                gaps.append(f"{spine}:{spine_if} -> {leaf}")
        return gaps

    wait_until(lambda: not missing(), CONVERGE_BUDGET_S, 0.1, "OSPF Full on every leaf-spine link")


def test_every_leaf_has_one_ecmp_nexthop_per_spine_to_every_other_leaf(fabric: Lab, wait_until: Any) -> None:
    leaves = fabric.role("leaf")
    loopback = {leaf: str(ipaddress.IPv4Interface(fabric.intent(leaf)["node"]["loopback"]).ip) for leaf in leaves}

    def expected(leaf: str) -> set[tuple[str, str]]:
        """(gateway, dev): each spine's address on the link to `leaf`, via that link's uplink bridge."""
        hops = set()
        for uplink in fabric.intent(leaf)["underlay"]["uplinks"]:
            net = ipaddress.IPv4Interface(uplink["address"]).network
            mine = ipaddress.IPv4Interface(uplink["address"]).ip
            (gateway,) = [a for a in (net.network_address, net.broadcast_address) if a != mine]
            hops.add((str(gateway), f"br-{uplink['name']}"))
        return hops

    def nexthops(leaf: str, dst: str) -> set[tuple[str, str]]:
        routes = fabric.json(leaf, "ip", "-j", "route", "show", f"{dst}/32", "proto", "ospf")
        return {(h["gateway"], h["dev"]) for r in routes for h in r.get("nexthops", [r])}

    def missing() -> list[str]:
        return [
            f"{a} -> {b}: {sorted(nexthops(a, loopback[b]))}"
            for a in leaves
            for b in leaves
            if a != b and nexthops(a, loopback[b]) != expected(a)
        ]

    wait_until(lambda: not missing(), CONVERGE_BUDGET_S, 0.1, "ECMP through every spine between all leaves")
    assert all(len(expected(leaf)) == len(fabric.role("spine")) == 2 for leaf in leaves)


def test_bfd_sessions_up_on_every_switch(fabric: Lab, wait_until: Any) -> None:
    def down_sessions() -> list[str]:
        gaps = []
        for node in fabric.role("leaf") + fabric.role("spine"):
            peers = fabric.vtysh(node, "show bfd peers json")
            want = len(fabric.intent(node)["underlay"]["uplinks"])
            up = sum(1 for p in peers if p["status"] == "up")
            if up != want:
                gaps.append(f"{node}: {up}/{want}")
        return gaps

    wait_until(lambda: not down_sessions(), CONVERGE_BUDGET_S, 0.1, "BFD up on every fabric link")


def test_ovs_vswitchd_answers_on_every_leaf(fabric: Lab) -> None:
    for leaf in fabric.role("leaf"):
        assert "ovs-vswitchd (Open vSwitch)" in fabric.exec(leaf, "ovs-appctl", "-t", "ovs-vswitchd", "version").stdout
        for uplink in fabric.intent(leaf)["underlay"]["uplinks"]:
            bridge = f"br-{uplink['name']}"
            assert fabric.exec(leaf, "ovs-vsctl", "get", "Bridge", bridge, "datapath_type").stdout.strip() == "netdev"
            assert fabric.exec(leaf, "ovs-vsctl", "port-to-br", uplink["name"]).stdout.strip() == bridge


def test_spines_have_no_ovs(fabric: Lab) -> None:
    for spine in fabric.role("spine"):
        assert fabric.exec(spine, "ovs-appctl", "version", check=False).returncode != 0


RAW_RECV = """
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sock.bind((sys.argv[1], 0))
sock.settimeout(0.1)
print("ready", flush=True)
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        frame = sock.recv(65535)
    except socket.timeout:
        continue
    if frame[12:14] == bytes.fromhex("88b5") and frame[14:20] == b"tatest":
        print(len(frame), flush=True)
        break
"""
RAW_SEND = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
size = int(sys.argv[2])
frame = b"\\xff" * 6 + bytes.fromhex("020000000001") + bytes.fromhex("88b5") + b"tatest"
sock.send(frame + bytes(size - len(frame)))
"""


def raw_frame_crosses(lab: Lab, src: str, src_if: str, dst: str, dst_if: str, size: int) -> int:
    """Send one `size`-byte Ethernet frame out of src:src_if; the length the capture on dst:dst_if saw (0: none)."""
    full, env = realise.exec_argv(lab.topo, dst, ["python3", "-c", RAW_RECV, dst_if])
    capture = subprocess.Popen(full, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert capture.stdout is not None and capture.stdout.readline().strip() == "ready"
        lab.exec(src, "python3", "-c", RAW_SEND, src_if, str(size))
        seen = capture.communicate(timeout=15)[0].strip()
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait(5)
    return int(seen or 0)


def test_hosts_exchange_packets_with_their_leaf_at_full_mtu(fabric: Lab) -> None:
    """A frame of the link's full MTU crosses each host link in both directions, and one byte more does not leave.
    Seen by a raw socket on the far end: the leaf's end is an OVS port, which the leaf's kernel no longer
    answers on (tor-agent drops its frames at netdev ingress, docs/design.md, fact 3; taps still see them)."""
    for host in fabric.role("host"):
        (local, remote, mtu) = fabric.topo.links_of(host)[0]
        frame = mtu + 14  # Ethernet header
        assert raw_frame_crosses(fabric, host, local.iface, remote.node, remote.iface, frame) == frame, host
        assert raw_frame_crosses(fabric, remote.node, remote.iface, host, local.iface, frame) == frame, host
        too_big = ["python3", "-c", RAW_SEND, local.iface, str(frame + 1)]
        assert fabric.exec(host, *too_big, check=False).returncode != 0  # EMSGSIZE: larger than the MTU


def test_exec_lines_gave_hosts_their_tenant_addresses(fabric: Lab) -> None:
    for host in fabric.role("host"):
        addrs = [
            a["local"]
            for link in fabric.json(host, "ip", "-j", "-4", "address", "show", "dev", "eth1")
            for a in link["addr_info"]
        ]
        want = [line.split()[3].split("/")[0] for line in fabric.nodes[host].exec]
        assert addrs == want


def test_controller_accepts_connections_from_every_leaf(fabric: Lab, wait_until: Any) -> None:
    target = f"('{fabric.nodes['controller'].mgmt_ipv4}', 6653)"
    for leaf in fabric.role("leaf"):
        fabric.exec(leaf, "python3", "-c", f"import socket; socket.create_connection({target}, 2).close()")


def test_switch_frr_config_is_tor_agent_render_of_the_intent(fabric: Lab) -> None:
    """FRR runs exactly tor-agent's rendering of each switch's intent, and its saved frr.conf is what runs
    (frr-reload.py --test, FRR's own tool, as the referee: nothing to change either way)."""
    for node in fabric.role("leaf") + fabric.role("spine"):
        assert fabric.rendered_in_sync(node, INTENT) == "", node
        assert fabric.frr_reload_test(node, "/etc/frr/frr.conf") == "", node
        assert "router ospf" in fabric.exec(node, "cat", "/etc/frr/frr.conf").stdout


def test_status_reports_a_healthy_fabric(fabric: Lab, wait_until: Any) -> None:
    wait_until(lambda: fabric.status().healthy, CONVERGE_BUDGET_S, 0.1, "labs/lab status to be healthy")
    out = subprocess.run([str(LAB_CLI), "status", str(fabric.topo.path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "healthy" in out.stdout and "2/2" in out.stdout


def test_up_again_is_a_no_op(fabric: Lab) -> None:
    before = state.load(fabric.topo.name)
    out = subprocess.run([str(LAB_CLI), "up", str(fabric.topo.path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "already up" in out.stdout, out.stdout + out.stderr
    assert state.load(fabric.topo.name) == before
