"""The links driver on a netdev leaf whose uplink bridges a real userspace OVS made (docs/design.md §8).

The bridges are created here with ovs-vsctl the way the OVS driver lays them out (a netdev bridge per
uplink holding the physical port, `mtu_request` on its internal port), inside the namespace of a private
ovs-vswitchd (tests/support/ovs_sandbox.py). Checked: addresses land on the internal ports, OVS and tor-agent
agree on the MTU, an ovs-vswitchd restart changes nothing (its internal ports are persistent taps), and a
bridge deleted and made again is a new interface: the next apply puts the addresses back, and the record
forgets the old interface instead of taking the new one for its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from links_stage import planned
from nsutil import Netns
from ovs_sandbox import OvsSandbox, missing_binaries
from prerequisites import skip_or_fail
from test_links_netns import apply, netdev_leaf

from tor_agent.net.actions import AddAddress
from tor_agent.wait import wait_until


@pytest.fixture
def ovs() -> Iterator[tuple[OvsSandbox, Netns]]:
    """A private ovsdb-server + ovs-vswitchd, its namespace holding eth1, eth2, eth9 and the uplink bridges."""
    reason = "needs root" if os.geteuid() != 0 else None
    missing = missing_binaries()
    reason = reason or (f"needs Open vSwitch: missing {', '.join(missing)}" if missing else None)
    skip_or_fail(reason, "OVS links tests")
    box = OvsSandbox()
    try:
        box.start()
        ns = Netns(box.netns, create=False)
        for name in ("eth1", "eth2", "eth9"):
            ns.ip("link", "add", name, "type", "veth", "peer", "name", f"p-{name}")
        for bridge, port in (("br-eth1", "eth1"), ("br-eth2", "eth2"), ("br-tor", "eth9")):
            box.vsctl(
                "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                "--", "add-port", bridge, port,
            )  # fmt: skip
        for bridge in ("br-eth1", "br-eth2"):
            box.vsctl("set", "interface", bridge, "mtu_request=9000")
        yield box, ns
    finally:
        box.stop()


def test_netdev_uplink_bridges_from_ovs(ovs: tuple[OvsSandbox, Netns], tmp_path: Path) -> None:
    box, ns = ovs
    owned = tmp_path / "addresses.json"
    intent = netdev_leaf()
    apply(ns, intent, owned)
    assert ns.addresses("br-eth1") == {"198.18.1.1/31", "198.18.0.11/32"}
    assert ns.addresses("br-eth2") == {"198.18.0.11/32"}
    assert ns.addresses("eth1") == ns.addresses("eth2") == set()
    assert [ns.link(n)["mtu"] for n in ("br-eth1", "br-eth2", "eth1", "eth2")] == [9000] * 4
    assert apply(ns, intent, owned).applied == ()  # OVS and tor-agent agree: nothing to redo
    old_index = ns.link("br-eth1")["ifindex"]

    box.restart_vswitchd()  # its internal ports are persistent tap devices: they keep index and addresses
    assert ns.link("br-eth1")["ifindex"] == old_index
    assert not ns.run(planned, owned, intent)

    # The bridge deleted and made again (by the OVS driver or by hand) is another interface.
    box.vsctl("del-br", "br-eth1")
    box.vsctl(
        "add-br",
        "br-eth1",
        "--",
        "set",
        "bridge",
        "br-eth1",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-eth1",
        "eth1",
    )
    box.vsctl("set", "interface", "br-eth1", "mtu_request=9000")
    wait_until(lambda: ns.ip("link", "show", "br-eth1", check=False), 5, what="br-eth1 to come back")
    assert ns.link("br-eth1")["ifindex"] != old_index and ns.addresses("br-eth1") == set()

    link_address = IPv4Interface("198.18.1.1/31")
    assert AddAddress("br-eth1", link_address) in apply(ns, intent, owned).applied
    assert ns.addresses("br-eth1") == {"198.18.1.1/31", "198.18.0.11/32"}
    recorded = {(e["ifname"], e["ifindex"]) for e in json.loads(owned.read_text())["addresses"]}
    assert ("br-eth1", old_index) not in recorded and ("br-eth1", ns.link("br-eth1")["ifindex"]) in recorded
    assert not ns.run(planned, owned, intent)
