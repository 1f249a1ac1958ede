"""The desired kernel link state derived from an intent (tor_agent.model.links): pure, no kernel."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from tor_agent.config import Intent, load
from tor_agent.model.links import IP_FORWARD, LinkSpec, Sysctl, desired_links, disable_ipv6

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _intent(case: str) -> Intent:
    return load(GOLDEN / case / "intent.yaml")


def _ip(text: str) -> IPv4Interface:
    return IPv4Interface(text)


def test_system_leaf_numbered_uplinks_carry_their_link_address() -> None:
    spec = desired_links(_intent("leaf-system-2-numbered"))
    assert spec.links == (
        LinkSpec("lo", "node.loopback", "loopback", mtu=None, addresses=(_ip("198.18.0.11/32"),)),
        LinkSpec("eth1", "underlay.uplinks[0]", "uplink", mtu=9000, addresses=(_ip("198.18.1.1/31"),)),
        LinkSpec("eth2", "underlay.uplinks[1]", "uplink", mtu=9000, addresses=(_ip("198.18.1.3/31"),)),
    )
    assert spec.sysctls == (IP_FORWARD,)
    assert spec.ovs_ports == ()


def test_unnumbered_uplinks_borrow_the_loopback() -> None:
    spec = desired_links(_intent("leaf-unnumbered"))
    loopback = _ip("198.18.0.13/32")
    assert [(link.name, link.mtu, link.addresses) for link in spec.links] == [
        ("lo", None, (loopback,)),
        ("swp1", 9216, (loopback,)),
        ("swp2", 9216, (loopback,)),
    ]


def test_spine_links_are_plain_uplinks() -> None:
    spec = desired_links(_intent("spine-2-links"))
    assert {link.role for link in spec.links} == {"loopback", "uplink"}
    assert spec.ovs_ports == () and spec.sysctls == (IP_FORWARD,)


def test_netdev_leaf_addresses_go_on_the_bridge_and_the_port_carries_none() -> None:
    spec = desired_links(_intent("leaf-netdev-mixed"))
    vtep = _ip("198.18.0.14/32")
    assert [(link.name, link.role, link.mtu, link.addresses, link.ovs_port) for link in spec.links] == [
        ("lo", "loopback", None, (vtep,), False),
        ("br-eth1", "uplink-bridge", 9000, (_ip("198.18.1.9/31"), vtep), False),
        ("eth1", "uplink-port", 9000, (), True),
        ("up-spine2", "uplink-bridge", 9000, (vtep,), False),  # unnumbered: the VTEP /32 is also the link address
        ("eth2", "uplink-port", 9000, (), True),
        ("eth9", "access-port", None, (), True),
    ]
    assert spec.ovs_ports == ("eth1", "eth2", "eth9")
    assert spec.sysctls == (IP_FORWARD, disable_ipv6("eth1"), disable_ipv6("eth2"), disable_ipv6("eth9"))


def test_every_uplink_is_named_by_its_intent_field() -> None:
    spec = desired_links(_intent("leaf-netdev-mixed"))
    bridge = spec.link("up-spine2")
    assert bridge is not None and bridge.describe().startswith("underlay.uplinks[1] up-spine2 (")
    port = spec.link("eth2")
    assert port is not None and port.describe() == "underlay.uplinks[1] eth2"
    assert spec.link("eth7") is None


def test_no_interface_is_listed_twice() -> None:
    for case in sorted(p.name for p in GOLDEN.iterdir()):
        names = [link.name for link in desired_links(_intent(case)).links]
        assert len(names) == len(set(names)), case


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("net", "ipv4", "ip_forward"), "net.ipv4.ip_forward"),
        (("net", "ipv6", "conf", "eth1.100", "disable_ipv6"), "net.ipv6.conf.eth1/100.disable_ipv6"),
    ],
)
def test_sysctl_key_is_written_as_sysctl8_does(path: tuple[str, ...], key: str) -> None:
    assert Sysctl(path, "1").key == key


def test_disable_ipv6_is_optional_because_ipv6_may_be_off() -> None:
    assert disable_ipv6("eth1").optional and not IP_FORWARD.optional
