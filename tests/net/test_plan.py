"""The links plan and the nftables table parser: pure, no kernel needed."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Interface
from typing import Any

from tor_agent.model.links import IP_FORWARD, LinkSpec, LinksSpec, disable_ipv6
from tor_agent.net.actions import AddAddress, RemoveAddress, SetMtu, SetNftDropPorts, SetSysctl, SetUp
from tor_agent.net.nft import parse_table, table_commands
from tor_agent.net.plan import missing_interfaces, plan, unowned_addresses
from tor_agent.net.state import KernelState, LinkState, NftTable, OwnedAddress

A = IPv4Interface
LO = A("198.18.0.1/32")
SPEC = LinksSpec(
    links=(
        LinkSpec("lo", "node.loopback", "loopback", None, (LO,)),
        LinkSpec("eth1", "underlay.uplinks[0]", "uplink-port", 9000, (), ovs_port=True),
        LinkSpec("br-eth1", "underlay.uplinks[0]", "uplink-bridge", 9000, (A("198.18.1.0/31"), LO)),
    ),
    sysctls=(IP_FORWARD, disable_ipv6("eth1")),
)


OURS = NftTable(frozenset({"eth1"}), exact=True)


def state(
    links: dict[str, tuple[int, bool, int, set[str]]],
    owned: Iterable[tuple[str, int, str]] = (),
    nft: NftTable | None = OURS,
    sysctls: dict[tuple[str, ...], str | None] | None = None,
) -> KernelState:
    return KernelState(
        links={
            name: LinkState(index, name, up, mtu, frozenset(A(a) for a in addrs))
            for name, (index, up, mtu, addrs) in links.items()
        },
        sysctls=sysctls if sysctls is not None else {IP_FORWARD.path: "1", disable_ipv6("eth1").path: "1"},
        nft=nft,
        owned=frozenset(OwnedAddress(n, i, A(a)) for n, i, a in owned),
    )


GOOD = {
    "lo": (1, True, 65536, {"127.0.0.1/8", "198.18.0.1/32"}),
    "eth1": (2, True, 9000, set()),
    "br-eth1": (3, True, 9000, {"198.18.1.0/31", "198.18.0.1/32"}),
}
GOOD_OWNED = {("lo", 1, "198.18.0.1/32"), ("br-eth1", 3, "198.18.1.0/31"), ("br-eth1", 3, "198.18.0.1/32")}


def test_matching_state_plans_nothing() -> None:
    assert plan(SPEC, state(GOOD, GOOD_OWNED)) == ()


def test_fresh_state_plans_everything_in_apply_order() -> None:
    fresh = state(
        {"lo": (1, True, 65536, {"127.0.0.1/8"}), "eth1": (2, False, 1500, set()), "br-eth1": (3, False, 1500, set())},
        nft=None,
        sysctls={IP_FORWARD.path: "0", disable_ipv6("eth1").path: "0"},
    )
    assert plan(SPEC, fresh) == (
        SetSysctl(IP_FORWARD, "0"),
        SetSysctl(disable_ipv6("eth1"), "0"),
        SetNftDropPorts(("eth1",)),
        SetMtu("eth1", 9000, 1500),
        SetMtu("br-eth1", 9000, 1500),
        SetUp("eth1"),
        SetUp("br-eth1"),
        AddAddress("lo", LO),
        AddAddress("br-eth1", A("198.18.1.0/31")),
        AddAddress("br-eth1", LO),
    )


def test_only_owned_addresses_are_removed() -> None:
    links = dict(GOOD, eth1=(2, True, 9000, {"192.0.2.1/24", "198.18.1.4/31"}))
    assert plan(SPEC, state(links, GOOD_OWNED | {("eth1", 2, "198.18.1.4/31")})) == (
        RemoveAddress("eth1", A("198.18.1.4/31")),
    )


def test_owned_on_a_recreated_interface_or_gone_is_not_removed() -> None:
    links = dict(GOOD, eth1=(7, True, 9000, {"198.18.1.4/31"}))
    s = state(links, GOOD_OWNED | {("eth1", 2, "198.18.1.4/31"), ("br-eth1", 3, "198.18.9.9/32")})
    assert plan(SPEC, s) == ()
    assert s.owned_present() == frozenset(OwnedAddress(n, i, A(a)) for n, i, a in GOOD_OWNED)


def test_owned_address_on_an_interface_the_intent_dropped_is_removed() -> None:
    links = dict(GOOD, eth5=(9, True, 1500, {"198.18.0.1/32"}))
    assert plan(SPEC, state(links, GOOD_OWNED | {("eth5", 9, "198.18.0.1/32")})) == (RemoveAddress("eth5", LO),)


def test_nft_table_is_replaced_unless_exactly_ours() -> None:
    assert plan(SPEC, state(GOOD, GOOD_OWNED, nft=NftTable(frozenset({"eth1"}), exact=False))) == (
        SetNftDropPorts(("eth1",)),
    )
    assert plan(SPEC, state(GOOD, GOOD_OWNED, nft=NftTable(frozenset({"eth1", "eth2"}), exact=True))) == (
        SetNftDropPorts(("eth1",)),
    )
    no_ports = LinksSpec(links=SPEC.links[:1], sysctls=(IP_FORWARD,))
    lo_only = {("lo", 1, "198.18.0.1/32")}
    assert plan(no_ports, state(GOOD, lo_only)) == (SetNftDropPorts(()),)  # the table goes when unused
    assert plan(no_ports, state(GOOD, lo_only, nft=None)) == ()


def test_missing_sysctl_is_skipped_only_when_optional() -> None:
    s = state(GOOD, GOOD_OWNED, sysctls={IP_FORWARD.path: "1", disable_ipv6("eth1").path: None})
    assert plan(SPEC, s) == ()


def test_missing_interfaces_and_unowned_addresses() -> None:
    links = {k: v for k, v in GOOD.items() if k != "eth1"}
    assert [link.name for link in missing_interfaces(SPEC, state(links))] == ["eth1"]
    assert unowned_addresses(SPEC, state(GOOD, {("lo", 1, "198.18.0.1/32")})) == (
        ("br-eth1", A("198.18.1.0/31")),
        ("br-eth1", LO),
    )


def _listing(*items: dict[str, Any]) -> dict[str, Any]:
    table = {"table": {"family": "netdev", "name": "tor_agent", "handle": 2}}
    return {"nftables": [{"metainfo": {"version": "1.0.6"}}, table, *items]}


def _chain(name: str, **overrides: Any) -> dict[str, Any]:
    chain = {"family": "netdev", "table": "tor_agent", "name": name, "type": "filter", "hook": "ingress"}
    return {"chain": {**chain, "prio": 0, "policy": "drop", **overrides}}


def test_parse_table_reads_drop_chains_by_name() -> None:
    assert parse_table(_listing(_chain("drop-eth1"), _chain("drop-eth1.100"))) == NftTable(
        frozenset({"eth1", "eth1.100"}), exact=True
    )


def test_parse_table_flags_anything_else() -> None:
    rule = {"rule": {"family": "netdev", "table": "tor_agent", "chain": "drop-eth1", "expr": [{"accept": None}]}}
    assert not parse_table(_listing(_chain("drop-eth1"), rule)).exact
    assert not parse_table(_listing(_chain("drop-eth1", policy="accept"))).exact
    assert not parse_table(_listing(_chain("other"))).exact
    assert not parse_table(_listing(_chain("drop-eth1", dev="eth2"))).exact  # newer nft lists the device


def test_table_commands_replace_atomically() -> None:
    verbs = [next(iter(c)) for c in table_commands(["eth1"])["nftables"]]
    assert verbs == ["add", "delete", "add", "add"]
    assert [next(iter(c)) for c in table_commands([])["nftables"]] == ["add", "delete"]
