"""The kernel links driver against real netlink, sysctls and nftables, in namespaces the tests create."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from links_stage import converge, converge_links, planned
from nsutil import Netns

from tor_agent.config import Intent, load_text
from tor_agent.net import LinkResult, NetlinkFailure, NoSuchInterface
from tor_agent.net.actions import AddAddress, RemoveAddress, SetNftDropPorts
from tor_agent.net.netlink import Netlink
from tor_agent.net.state import LinkState

MakeNetns = Callable[[str], Netns]
NUMBERED = "{name: eth1, address: 198.18.1.0/31, mtu: 9000}"
UNNUMBERED = "{name: eth2, unnumbered: true, mtu: 9000}"


def spine(*uplinks: str, loopback: str = "198.18.0.1/32") -> Intent:
    """A spine intent: plain kernel uplinks, no overlay."""
    text = (
        "version: 1\n"
        f"node: {{hostname: spine1, role: spine, router_id: 198.18.0.1, loopback: {loopback}}}\n"
        "underlay:\n  ospf: {area: 0.0.0.0}\n  uplinks:\n" + "".join(f"    - {u}\n" for u in uplinks)
    )
    return load_text(text)


def netdev_leaf() -> Intent:
    """A userspace-datapath leaf: uplink bridges br-eth1 (numbered) and br-eth2 (unnumbered), access port eth9."""
    return load_text(
        """
version: 1
node: {hostname: leaf1, role: leaf, router_id: 198.18.0.11, loopback: 198.18.0.11/32}
underlay:
  ospf: {area: 0.0.0.0}
  uplinks:
    - {name: eth1, address: 198.18.1.1/31, mtu: 9000}
    - {name: eth2, unnumbered: true, mtu: 9000}
overlay:
  bridge: br-tor
  datapath: netdev
  dpid: "00000000000000a1"
  access_ports: [eth9]
  tunnels: {peers: [198.18.0.12]}
"""
    )


def veths(ns: Netns, *names: str) -> None:
    """One veth pair per name (`eth1` <-> `p-eth1`), both ends in `ns` and down, MTU 1500."""
    for name in names:
        ns.ip("link", "add", name, "type", "veth", "peer", "name", f"p-{name}")


def taps(ns: Netns, *names: str) -> None:
    """Stand-ins for the OVS bridges' internal ports (the OVS driver creates the real ones: tap devices)."""
    for name in names:
        ns.ip("tuntap", "add", "dev", name, "mode", "tap")


def apply(ns: Netns, intent: Intent, owned: Path) -> LinkResult:
    return ns.run(converge_links, owned, intent)


def snapshot(ns: Netns) -> str:
    """Everything the driver could change, as iproute2/nft/sysctl print it."""
    return "\n".join(
        [
            ns.ip("-4", "-o", "address", "show"),
            ns.ip("-o", "link", "show"),
            ns.sysctl("net.ipv4.ip_forward"),
            ns.exec("nft", "list", "ruleset").stdout,
        ]
    )


@pytest.fixture
def owned(tmp_path: Path) -> Path:
    return tmp_path / "run" / "addresses.json"


def test_first_apply_brings_links_to_the_intent(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1", "eth2")
    ns.exec("sysctl", "-w", "net.ipv4.ip_forward=0")
    result = apply(ns, spine(NUMBERED, UNNUMBERED), owned)
    assert result.changed
    assert ns.addresses("lo") == {"127.0.0.1/8", "198.18.0.1/32"}
    assert ns.addresses("eth1") == {"198.18.1.0/31"}
    assert ns.addresses("eth2") == {"198.18.0.1/32"}  # unnumbered: the borrowed loopback
    for name in ("eth1", "eth2"):
        link = ns.link(name)
        assert link["mtu"] == 9000 and "UP" in link["flags"], link
    assert ns.sysctl("net.ipv4.ip_forward") == "1"
    recorded = json.loads(owned.read_text())["addresses"]
    assert {(e["ifname"], e["address"]) for e in recorded} == {
        ("eth1", "198.18.1.0/31"),
        ("eth2", "198.18.0.1/32"),
        ("lo", "198.18.0.1/32"),
    }


def test_second_apply_is_a_no_op(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1", "eth2")
    intent = spine(NUMBERED, UNNUMBERED)
    apply(ns, intent, owned)
    before = snapshot(ns)
    result = apply(ns, intent, owned)
    assert result.applied == () and not result.changed
    assert snapshot(ns) == before
    assert not ns.run(planned, owned, intent)


def test_intent_change_moves_our_addresses_and_leaves_hand_added_ones(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1", "eth2")
    apply(ns, spine(NUMBERED, UNNUMBERED), owned)
    ns.ip("address", "add", "192.0.2.7/24", "dev", "eth1")
    ns.ip("address", "add", "203.0.113.9/32", "dev", "lo")

    result = apply(ns, spine("{name: eth1, address: 198.18.1.4/31, mtu: 9000}", loopback="198.18.0.5/32"), owned)

    assert RemoveAddress("eth2", IPv4Interface("198.18.0.1/32")) in result.applied  # uplink dropped from the intent
    assert ns.addresses("eth1") == {"198.18.1.4/31", "192.0.2.7/24"}
    assert ns.addresses("lo") == {"127.0.0.1/8", "198.18.0.5/32", "203.0.113.9/32"}
    assert ns.addresses("eth2") == set()
    removals = [a for a in result.applied if isinstance(a, RemoveAddress)]
    additions = [a for a in result.applied if isinstance(a, AddAddress)]
    assert result.applied.index(removals[-1]) < result.applied.index(additions[0])  # removals first


def test_an_address_already_there_is_kept_but_never_claimed(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1")
    ns.ip("address", "add", "198.18.1.0/31", "dev", "eth1")  # by hand, before tor-agent ran
    result = apply(ns, spine(NUMBERED), owned)
    assert ("eth1", IPv4Interface("198.18.1.0/31")) in result.unowned
    assert AddAddress("eth1", IPv4Interface("198.18.1.0/31")) not in result.applied
    apply(ns, spine("{name: eth1, address: 198.18.1.4/31}"), owned)
    assert ns.addresses("eth1") == {"198.18.1.0/31", "198.18.1.4/31"}  # not ours: not removed


def test_a_recreated_interface_is_another_one(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1", "eth2")
    apply(ns, spine(NUMBERED, UNNUMBERED), owned)
    ns.ip("link", "delete", "eth2")
    veths(ns, "eth2")
    ns.ip("address", "add", "198.18.0.1/32", "dev", "eth2")  # same address, someone else's now
    apply(ns, spine(NUMBERED), owned)
    assert ns.addresses("eth2") == {"198.18.0.1/32"}
    recorded = json.loads(owned.read_text())["addresses"]
    assert "eth2" not in {e["ifname"] for e in recorded}


def test_an_apply_with_nothing_to_do_forgets_our_address_removed_by_hand(make_netns: MakeNetns, owned: Path) -> None:
    """The record keeps only what is still there, also when nothing is applied: an address put back by hand
    later is someone else's and is never removed."""
    ns = make_netns("spine")
    veths(ns, "eth1", "eth2")
    apply(ns, spine(NUMBERED, UNNUMBERED), owned)
    ns.ip("address", "del", "198.18.1.0/31", "dev", "eth1")
    assert apply(ns, spine(UNNUMBERED), owned).applied == ()  # eth1 left the intent; its address is gone already
    assert "eth1" not in {e["ifname"] for e in json.loads(owned.read_text())["addresses"]}
    ns.ip("address", "add", "198.18.1.0/31", "dev", "eth1")  # by hand: not tor-agent's
    apply(ns, spine(UNNUMBERED), owned)
    assert ns.addresses("eth1") == {"198.18.1.0/31"}


def test_a_missing_interface_is_skipped_and_set_up_when_it_appears(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("spine")
    veths(ns, "eth1")
    intent = spine(NUMBERED, UNNUMBERED)
    plan, result = ns.run(converge, owned, intent)
    (missing,) = plan.findings()
    assert isinstance(missing, NoSuchInterface) and missing.subject == "underlay.uplinks[1] eth2"
    assert str(missing) == "underlay.uplinks[1] eth2: no such interface (set up when it appears)"
    assert result.errors == ()  # the rest went through
    assert ns.addresses("eth1") == {"198.18.1.0/31"} and "UP" in ns.link("eth1")["flags"]
    assert ns.addresses("lo") == {"127.0.0.1/8", "198.18.0.1/32"}
    veths(ns, "eth2")  # cabled now
    plan, result = ns.run(converge, owned, intent)
    assert plan.missing == () and result.changed
    assert ns.addresses("eth2") == {"198.18.0.1/32"} and "UP" in ns.link("eth2")["flags"]
    assert not ns.run(planned, owned, intent)


def test_netdev_leaf_addresses_on_bridges_ports_shielded(make_netns: MakeNetns, owned: Path) -> None:
    ns = make_netns("leaf")
    veths(ns, "eth1", "eth2", "eth9")
    taps(ns, "br-eth1", "br-eth2")
    intent = netdev_leaf()
    result = apply(ns, intent, owned)
    assert SetNftDropPorts(("eth1", "eth2", "eth9")) in result.applied
    assert ns.addresses("br-eth1") == {"198.18.1.1/31", "198.18.0.11/32"}
    assert ns.addresses("br-eth2") == {"198.18.0.11/32"}
    assert ns.addresses("lo") == {"127.0.0.1/8", "198.18.0.11/32"}
    for port in ("eth1", "eth2", "eth9"):
        assert ns.addresses(port) == set()
        assert ns.sysctl(f"net.ipv6.conf.{port}.disable_ipv6") == "1"
        assert "UP" in ns.link(port)["flags"]
    assert ns.link("br-eth1")["mtu"] == 9000 and ns.link("eth1")["mtu"] == 9000
    ruleset = ns.exec("nft", "list", "table", "netdev", "tor_agent").stdout
    for port in ("eth1", "eth2", "eth9"):
        assert f'type filter hook ingress device "{port}" priority filter; policy drop;' in ruleset
    assert apply(ns, intent, owned).applied == ()


def test_nft_table_is_repaired_and_keeps_the_kernel_off_ovs_ports(make_netns: MakeNetns, owned: Path) -> None:
    leaf, peer = make_netns("leaf"), make_netns("peer")
    leaf.ip("link", "add", "eth1", "type", "veth", "peer", "name", "p-eth1", "netns", peer.name)
    veths(leaf, "eth2", "eth9")
    taps(leaf, "br-eth1", "br-eth2")
    peer.ip("address", "add", "198.18.0.99/32", "dev", "p-eth1")
    peer.ip("link", "set", "p-eth1", "up")
    peer.ip("route", "add", "198.18.0.11/32", "dev", "p-eth1")
    intent = netdev_leaf()
    apply(leaf, intent, owned)
    leaf.ip("route", "add", "198.18.0.99/32", "dev", "eth1")  # the way back, were the kernel to answer

    def kernel_answers() -> bool:
        peer.ip("neigh", "flush", "dev", "p-eth1")  # an unanswered ARP is retried only after 1 s otherwise
        return peer.exec("ping", "-c", "1", "-W", "0.3", "198.18.0.11", check=False).returncode == 0

    # The kernel owns the VTEP address and would answer ARP and ping on the OVS port: the chain stops it.
    assert not kernel_answers()
    leaf.exec("nft", "add", "rule", "netdev", "tor_agent", "drop-eth1", "accept")
    assert kernel_answers()  # the tampered table lets frames through
    assert apply(leaf, intent, owned).applied == (SetNftDropPorts(("eth1", "eth2", "eth9")),)
    assert not kernel_answers()


def test_netlink_errors_name_interface_and_errno(make_netns: MakeNetns) -> None:
    ns = make_netns("spine")
    ghost = LinkState(index=99999, name="ghost0", up=False, mtu=1500)

    def set_mtu() -> None:
        with Netlink() as nl:
            nl.set_mtu(ghost, 9000)

    with pytest.raises(NetlinkFailure) as e:
        ns.run(set_mtu)
    assert e.value.interface == "ghost0" and e.value.errno == errno.ENODEV
    assert str(e.value) == "ghost0: cannot set mtu 9000: No such device (ENODEV)"
