"""The OVS tunnel route planner (tor_agent.ovs.routes): one user route per VTEP, spread by hash, moved on failure."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Network

import pytest

from tor_agent.ovs.routes import Nexthop, OvsRoute, choose_nexthop, parse_route_show, plan_routes

A = Nexthop("br-eth1", IPv4Address("198.18.1.0"))
B = Nexthop("br-eth2", IPv4Address("198.18.1.2"))
BRIDGES = ("br-eth1", "br-eth2")
VTEPS = [IPv4Address(f"198.18.0.{i}") for i in range(11, 211)]


def route(vtep: str, hop: Nexthop, user: bool = True) -> OvsRoute:
    return OvsRoute(IPv4Network(f"{vtep}/32"), hop.device, hop.gateway, user)


def test_choice_is_stable_and_independent_of_candidate_order() -> None:
    for vtep in VTEPS:
        assert choose_nexthop(vtep, [A, B]) == choose_nexthop(vtep, [B, A]) == choose_nexthop(vtep, (B, A))


def test_vteps_spread_across_uplinks() -> None:
    spread = Counter(choose_nexthop(v, [A, B]) for v in VTEPS)
    assert set(spread) == {A, B}
    assert min(spread.values()) >= 0.35 * len(VTEPS)


def test_only_vteps_on_a_dead_nexthop_move_and_they_move_back() -> None:
    before = {v: choose_nexthop(v, [A, B]) for v in VTEPS}
    after_failure = {v: choose_nexthop(v, [B]) for v in VTEPS}
    assert {v for v in VTEPS if before[v] != after_failure[v]} == {v for v in VTEPS if before[v] == A}
    assert {v: choose_nexthop(v, [A, B]) for v in VTEPS} == before


def test_plan_from_empty_adds_one_route_per_vtep() -> None:
    wanted = {IPv4Address("198.18.0.12"): [A, B], IPv4Address("198.18.0.13"): [A, B]}
    plan = plan_routes(wanted, [], BRIDGES)
    assert len(plan.add) == 2 and not plan.delete and plan.unchanged == 0
    assert {r.prefix for r in plan.add} == {IPv4Network("198.18.0.12/32"), IPv4Network("198.18.0.13/32")}
    assert all(r.nexthop in (A, B) for r in plan.add)


def test_second_plan_over_the_result_is_empty() -> None:
    wanted = {v: [A, B] for v in VTEPS[:20]}
    first = plan_routes(wanted, [], BRIDGES)
    second = plan_routes(wanted, first.add, BRIDGES)
    assert not second and second.unchanged == 20


def test_dead_nexthop_moves_the_route_to_the_survivor() -> None:
    vtep = next(v for v in VTEPS if choose_nexthop(v, [A, B]) == A)
    plan = plan_routes({vtep: [B]}, [route(str(vtep), A)], BRIDGES)
    assert plan.add == (route(str(vtep), B),) and not plan.delete


def test_gone_vtep_loses_its_route_and_unroutable_is_reported() -> None:
    current = [route("198.18.0.12", A), route("198.18.0.13", B), route("198.18.0.15", B)]
    plan = plan_routes({IPv4Address("198.18.0.13"): [], IPv4Address("198.18.0.14"): [A]}, current, BRIDGES)
    assert plan.unroutable == (IPv4Address("198.18.0.13"),)
    assert [str(r) for r in plan.add] == ["198.18.0.14/32 dev br-eth1 via 198.18.1.0"]
    # B keeps no wanted route: its last one stays as the anchor, the others go.
    assert plan.kept == (route("198.18.0.13", B),) and plan.delete == (route("198.18.0.12", A), route("198.18.0.15", B))
    assert plan.refresh == (route("198.18.0.13", B),)  # re-inserted after the delete over B


def test_a_delete_is_followed_by_an_insert_over_the_same_bridge() -> None:
    """OVS 3.1 forgets a bridge's tunnel termination on any route delete over it, until the next insert."""
    keep_b, gone_b = route("198.18.0.13", B), route("198.18.0.15", B)
    wanted = {IPv4Address("198.18.0.13"): [B]}
    plan = plan_routes(wanted, [keep_b, gone_b], BRIDGES)
    assert plan.delete == (gone_b,) and plan.add == () and plan.refresh == (keep_b,)
    assert plan.changes() == (
        "route 198.18.0.15/32: delete",
        "route 198.18.0.13/32 dev br-eth2 via 198.18.1.2: re-inserted (tunnel termination on br-eth2)",
    )


def test_the_anchor_is_stable_and_a_deaf_bridge_gets_a_route_re_inserted() -> None:
    anchor = route("198.18.0.13", B)
    again = plan_routes({}, [anchor], BRIDGES)
    assert not again and again.kept == (anchor,)
    deaf = plan_routes({}, [anchor], BRIDGES, deaf=("br-eth2",))
    assert deaf.refresh == (anchor,) and deaf.delete == ()


def test_routes_tor_agent_does_not_own_are_never_touched() -> None:
    foreign = [
        route("10.0.0.1", Nexthop("br-other", IPv4Address("10.0.0.254"))),  # not over an uplink bridge
        OvsRoute(IPv4Network("198.18.0.0/24"), "br-eth1", A.gateway),  # not a /32
        route("198.18.0.12", A, user=False),  # cached from the kernel
    ]
    plan = plan_routes({}, foreign, BRIDGES)
    assert not plan


def test_nexthops_outside_the_uplink_bridges_are_ignored() -> None:
    plan = plan_routes({IPv4Address("198.18.0.12"): [Nexthop("eth0", IPv4Address("203.0.113.1"))]}, [], BRIDGES)
    assert not plan and plan.unroutable == (IPv4Address("198.18.0.12"),)


SHOW = """Route Table:
Cached: 127.0.0.1/32 dev lo SRC 127.0.0.1 local
Cached: 198.18.0.11/32 dev br-eth1 SRC 198.18.0.11 local
User: 198.18.0.12/32 dev br-eth2 GW 198.18.1.2 SRC 198.18.1.3
User: 198.18.0.14/32 MARK 7 dev br-eth2 GW 198.18.1.2 SRC 198.18.1.3
Cached: 198.18.1.0/31 dev br-eth1 SRC 198.18.1.1
Cached: fe80::/64 dev br-eth2 SRC fe80::fca2:12ff:fe52:874b
"""


def test_parse_route_show() -> None:
    routes = parse_route_show(SHOW)
    assert route("198.18.0.12", B) in routes
    assert OvsRoute(IPv4Network("198.18.1.0/31"), "br-eth1", None, user=False) in routes
    assert len(routes) == 4  # the IPv6 and the marked entries are skipped


@pytest.mark.parametrize("text", ["", "Route Table:\n", "garbage\nUser: nonsense\n"])
def test_parse_route_show_tolerates_empty_or_odd_output(text: str) -> None:
    assert parse_route_show(text) == ()
