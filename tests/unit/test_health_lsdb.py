"""The area's link-state database as a graph (tor_agent.health.lsdb), over router LSAs recorded from the demo
fabric's leaf1 (FRR 8.4.4): 2 spines, 3 leaves; spine2 drained; spine2's link to leaf3 down."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from tor_agent.health.frr_state import FrrOutputError
from tor_agent.health.lsdb import Lsdb, RouterLsa, drain_losses, drain_state, parse_lsdb

DATA = Path(__file__).resolve().parent / "data" / "lsdb"
S1, S2 = IPv4Address("198.18.255.1"), IPv4Address("198.18.255.2")
L1, L2, L3 = (IPv4Address(f"198.18.0.1{i}") for i in (1, 2, 3))


def recorded(name: str) -> Lsdb:
    return parse_lsdb(json.loads((DATA / f"{name}.json").read_text()))


def test_the_recorded_fabric_is_a_full_two_tier_graph() -> None:
    lsdb = recorded("fabric-healthy")
    assert set(lsdb.routers) == {S1, S2, L1, L2, L3}
    assert lsdb.neighbours(S1) == [L1, L2, L3] and lsdb.neighbours(L1) == [S1, S2]
    assert lsdb.drained() == frozenset()
    assert lsdb.paths(L1, L2, frozenset()) == 2  # ECMP over both spines


def test_draining_one_of_two_spines_loses_nothing() -> None:
    assert drain_losses(recorded("fabric-healthy"), S1) == []


def test_draining_the_last_healthy_spine_names_every_leaf_pair() -> None:
    lsdb = recorded("fabric-spine2-drained")
    assert lsdb.drained() == {S2} and drain_state(lsdb, S2) == (True, [L1, L2, L3])
    losses = drain_losses(lsdb, S1)
    assert {(x.a, x.b) for x in losses} == {(L1, L2), (L1, L3), (L2, L3)}
    assert all((x.before, x.after) == (1, 0) for x in losses)
    assert str(losses[0]) == "198.18.0.11 <-> 198.18.0.12: 1 path(s) now, 0 once drained"


def test_a_spine_the_only_way_to_a_leaf_cannot_be_drained() -> None:
    lsdb = recorded("fabric-spine2-leaf3-down")
    assert lsdb.neighbours(L3) == [S1]
    assert {(x.a, x.b) for x in drain_losses(lsdb, S1)} == {(L1, L3), (L2, L3), (L3, S2)}
    assert drain_losses(lsdb, S2) == []  # the other spine: leaf3 keeps spine1


def test_a_policy_of_two_paths_refuses_draining_either_spine_of_two() -> None:
    losses = drain_losses(recorded("fabric-healthy"), S1, min_paths=2)
    assert {(x.a, x.b) for x in losses} == {(L1, L2), (L1, L3), (L2, L3)}
    assert all((x.before, x.after) == (2, 1) for x in losses)


def test_a_leaf_draining_leaves_the_others_paths_alone() -> None:
    assert drain_losses(recorded("fabric-healthy"), L1) == []


def test_a_one_way_adjacency_does_not_count() -> None:
    lsdb = Lsdb({S1: RouterLsa(S1, {L1: 10}), L1: RouterLsa(L1, {})})
    assert lsdb.neighbours(S1) == [] and lsdb.paths(S1, L1, frozenset()) == 0


@pytest.mark.parametrize("data", [None, {}, {"routerLinkStates": {"areas": {"0.0.0.0": [{"advertisingRouter": "x"}]}}}])
def test_unexpected_json_is_a_typed_error(data: object) -> None:
    with pytest.raises(FrrOutputError, match="show ip ospf database router json"):
        parse_lsdb(data)
