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
from labkit import CONVERGE_BUDGET_S, LAB_CLI, Lab, host_links
from nslab import realise, state

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


def link_local(lab: Lab, node: str, iface: str, wait_until: Any) -> str:
    """The interface's IPv6 link-local address, once duplicate address detection has finished."""

    def ready() -> str | None:
        info = lab.json(node, "ip", "-j", "-6", "address", "show", "dev", iface, "scope", "link")
        addrs = [a for link in info for a in link["addr_info"] if not a.get("tentative")]
        return addrs[0]["local"] if addrs else None

    return str(wait_until(ready, 10, 0.05, f"{node}:{iface} link-local address"))


def test_hosts_exchange_packets_with_their_leaf_at_full_mtu(fabric: Lab, wait_until: Any) -> None:
    """ICMPv6 echo over each host link between the host and its leaf's access port, link-local addresses
    (no tenant address is on the leaf), with the largest packet the link MTU allows and DF set: proves
    both directions carry packets and the MTU is what the file says; one byte more must not leave."""
    for host in fabric.role("host"):
        (local, remote, mtu) = fabric.topo.links_of(host)[0]
        target = link_local(fabric, remote.node, remote.iface, wait_until)
        payload = mtu - 40 - 8  # IPv6 + ICMPv6 headers
        ping = ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do"]
        out = fabric.exec(host, *ping, "-s", str(payload), f"{target}%{local.iface}").stdout
        assert " 0% packet loss" in out, out
        too_big = fabric.exec(
            host, *ping[:3], "1", "-M", "do", "-s", str(payload + 1), f"{target}%{local.iface}", check=False
        )
        assert too_big.returncode != 0


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
    tor_agent = realise.tools_env(fabric.topo)["TOR_AGENT"]
    for node in fabric.role("leaf") + fabric.role("spine"):
        argv = [tor_agent, "render", str(fabric.nodes[node].intent_file())]
        rendered = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
        assert fabric.exec(node, "cat", "/etc/frr/frr.conf").stdout == rendered


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
