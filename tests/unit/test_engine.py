"""The engine (tor_agent.reconcile) against in-memory drivers: stage order per role and datapath, what each
driver is handed, failures that stop nothing else, missing parts that stop nothing else, an intent refused
before anything changes, dry runs that change nothing, and the lock."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import ECMP, FakeFrr, FakeKernel, FakeLinks, FakeOvs, Fakes, ospf
from intents import intent_from

from tor_agent.config import Intent
from tor_agent.frr.apply import DaemonsDown
from tor_agent.model.peers import TunnelHold
from tor_agent.model.routes import KernelNexthop, KernelRoute
from tor_agent.net import NetError
from tor_agent.ovs.errors import OvsdbUnavailable
from tor_agent.reconcile.engine import IntentRefused
from tor_agent.reconcile.report import EngineReport
from tor_agent.reconcile.stages import Scope

OWN, PEER2, PEER3 = IPv4Address("198.18.0.11"), IPv4Address("198.18.0.12"), IPv4Address("198.18.0.13")

LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {
        "ospf": {"area": "0.0.0.0"},
        "uplinks": [
            {"name": "eth1", "address": "198.18.1.1/31", "mtu": 9000},
            {"name": "eth2", "address": "198.18.1.3/31", "mtu": 9000},
        ],
    },
    "overlay": {
        "bridge": "br-tor",
        "datapath": "netdev",
        "dpid": "00000000000000a1",
        "protocols": ["OpenFlow13"],
        "fail_mode": "secure",
        "access_ports": ["eth3"],
        "tunnels": {"key": 100, "bfd": True, "discover": {"ospf_prefix": "198.18.0.0/24"}},
    },
}


def intent(
    datapath: str = "netdev", spine: bool = False, peers: tuple[str, ...] = (), hold_down_s: int | None = None
) -> Intent:
    if spine:
        return intent_from(LEAF, **{"node.role": "spine", "overlay": None})
    edits: dict[str, Any] = {"overlay.datapath": datapath, "overlay.tunnels.peers": list(peers)}
    if hold_down_s is not None:
        edits["overlay.tunnels.hold_down_s"] = hold_down_s
    return intent_from(LEAF, **edits)


def apply(
    fakes: Fakes, tmp_path: Path, doc: Intent, scope: Scope = "full", hold: TunnelHold | None = None
) -> EngineReport:
    engine = fakes.engine(tmp_path, hold)
    return engine.apply(engine.prepare(doc), scope)


def test_netdev_leaf_full_pass_runs_every_stage_in_order(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.11", *ECMP))))
    report = apply(fakes, tmp_path, intent())
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels", "routes"]
    assert report.ok and report.changed
    first, second = fakes.ovs.converged
    assert first.tunnels == {} and "br-eth1" in first.bridges  # bridges first, no tunnel decided on a guess
    assert dict(first.bridges["br-eth1"].other_config)["hwaddr"] == "02:00:00:00:00:01"
    assert set(second.tunnels) == {PEER2}  # own VTEP never a peer
    (plan,) = fakes.routes.applied
    assert [str(r) for r in plan.add] in (
        ["198.18.0.12/32 dev br-eth1 via 198.18.1.0"],
        ["198.18.0.12/32 dev br-eth2 via 198.18.1.2"],
    )
    assert fakes.kernel.calls == ["macs", "routes"] and len(fakes.links.applied) == 1
    assert fakes.frr.calls == ["check", "read", "apply"]  # FRR's parser saw the rendering before anything


def test_routes_pass_moves_ovs_routes_over_the_given_table_without_dumping_or_touching_tunnels(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), ovs=FakeOvs.with_tunnels(PEER2))
    engine = fakes.engine(tmp_path)
    prepared = engine.prepare(intent())
    engine.apply(prepared, "overlay")
    (before,) = fakes.routes.table
    (left,) = [hop for hop in ECMP if hop[1] != before.device]
    fakes.kernel.calls.clear()
    converged = len(fakes.ovs.converged)
    report = engine.apply(prepared, "routes", routes=(ospf("198.18.0.12", left),))
    assert [s.stage for s in report.stages] == ["peers", "routes"] and report.scope == "routes"
    assert [str(r) for r in fakes.routes.table] == [f"198.18.0.12/32 dev {left[1]} via {left[0]}"]
    assert fakes.kernel.calls == [] and len(fakes.ovs.converged) == converged  # no dump, no MACs, no OVSDB write


def test_existing_tunnels_are_kept_by_the_first_ovs_stage(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), ovs=FakeOvs.with_tunnels(PEER3))
    apply(fakes, tmp_path, intent())
    first, second = fakes.ovs.converged
    assert set(first.tunnels) == {PEER3}
    assert set(second.tunnels) == {PEER2}  # PEER3 has no route any more: its tunnel goes in the tunnels stage


def test_the_daemons_hold_keeps_a_tunnel_whose_route_went_until_the_hold_down_ends(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), ovs=FakeOvs.with_tunnels(PEER2, PEER3))
    hold = TunnelHold()
    report = apply(fakes, tmp_path, intent(), "overlay", hold)
    assert fakes.ovs.tunnels == {PEER2, PEER3}  # PEER3's route went: held
    assert set(report.held) == {PEER3} and 9 < report.held[PEER3] <= 10  # hold_down_s defaults to 10
    assert "(+1 held)" in report.summary() and report.as_json()["held_peers"] == {"198.18.0.13": 10.0}
    hold.missing_since[PEER3] -= 10  # the hold-down is over
    report = apply(fakes, tmp_path, intent(), "overlay", hold)
    assert fakes.ovs.tunnels == {PEER2} and report.held == {}


def test_a_returning_route_ends_the_hold_and_a_later_loss_starts_a_new_one(tmp_path: Path) -> None:
    kernel = FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),))
    fakes = Fakes(kernel=kernel, ovs=FakeOvs.with_tunnels(PEER2, PEER3))
    hold = TunnelHold()
    apply(fakes, tmp_path, intent(), "overlay", hold)
    hold.missing_since[PEER3] -= 9
    kernel.routes_now = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))
    assert apply(fakes, tmp_path, intent(), "overlay", hold).held == {} and hold.missing_since == {}
    kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
    assert apply(fakes, tmp_path, intent(), "overlay", hold).held[PEER3] > 9


def test_no_hold_for_one_shot_apply_for_zero_hold_down_or_a_peer_the_intent_no_longer_allows(tmp_path: Path) -> None:
    outside = IPv4Address("198.18.9.9")  # outside the discovery prefix, not static
    for hold, doc, current in (
        (None, intent(), PEER3),
        (TunnelHold(), intent(hold_down_s=0), PEER3),
        (TunnelHold(), intent(), outside),
    ):
        fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), ovs=FakeOvs.with_tunnels(current))
        report = apply(fakes, tmp_path, doc, "overlay", hold)
        assert fakes.ovs.tunnels == {PEER2} and report.held == {}


def test_without_any_ospf_route_the_tunnels_are_left_as_they_are(tmp_path: Path) -> None:
    """FRR restarting (or every uplink down) empties the kernel of OSPF routes for seconds: that is no
    reason to delete every tunnel (and renumber its OpenFlow port) and add it back."""
    connected = KernelRoute(IPv4Network("198.18.1.0/31"), "kernel", (KernelNexthop(None, "br-eth1"),))
    fakes = Fakes(kernel=FakeKernel(routes_now=(connected,)), ovs=FakeOvs.with_tunnels(PEER3))
    report = apply(fakes, tmp_path, intent())
    assert len(fakes.ovs.converged) == 1 and fakes.ovs.tunnels == {PEER3}
    assert fakes.routes.applied == []
    skipped = {s.stage: s.skipped for s in report.stages if s.skipped}
    assert set(skipped) == {"tunnels", "routes"} and "no OSPF route" in skipped["tunnels"]
    assert report.ok


def test_spine_runs_links_and_frr_only(tmp_path: Path) -> None:
    fakes = Fakes()
    report = apply(fakes, tmp_path, intent(spine=True))
    assert [s.stage for s in report.stages] == ["links", "frr"]
    assert fakes.ovs.converged == [] and fakes.routes.applied == []
    assert fakes.kernel.calls == []


def test_system_datapath_leaf_has_no_ovs_route_stage(tmp_path: Path) -> None:
    system_hops = (("198.18.1.0", "eth1"), ("198.18.1.2", "eth2"))
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.13", *system_hops),)))
    report = apply(fakes, tmp_path, intent("system"))
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels"]
    assert fakes.ovs.tunnels == {PEER3}
    assert "br-eth1" not in fakes.ovs.converged[-1].bridges


def test_overlay_scope_recomputes_peers_tunnels_and_routes_only(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)))
    report = apply(fakes, tmp_path, intent(), scope="overlay")
    assert [s.stage for s in report.stages] == ["peers", "tunnels", "routes"]
    assert fakes.frr.calls == ["check"] and fakes.links.applied == []
    assert len(fakes.ovs.converged) == 1


def test_a_failed_stage_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    fakes = Fakes(
        kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)),
        links=FakeLinks(error=NetError("cannot open a netlink socket: too many open files")),
        frr=FakeFrr(error=DaemonsDown(frozenset({"ospfd"}))),
    )
    report = apply(fakes, tmp_path, intent())
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels", "routes"]
    assert len(report.problems) == 2 and report.unreachable  # FRR's daemon is down: retry soon
    assert report.problems[1].startswith("FRR daemon(s) not running")
    assert fakes.ovs.tunnels == {PEER2}


def test_a_missing_access_port_is_named_and_everything_else_applied(tmp_path: Path) -> None:
    fakes = Fakes(
        kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), links=FakeLinks(absent=frozenset({"eth3"}))
    )
    report = apply(fakes, tmp_path, intent())
    assert report.missing == ("overlay.access_ports[0] eth3",)
    assert report.problems == ("links: overlay.access_ports[0] eth3: no such interface (set up when it appears)",)
    assert not report.unreachable and "1 missing: overlay.access_ports[0] eth3" in report.summary()
    (plan,) = fakes.links.applied
    addressed = {a.ifname for a in plan.actions if type(a).__name__ == "AddAddress"}
    assert addressed == {"lo", "br-eth1", "br-eth2"}  # the uplinks still get their addresses
    assert all("eth3" not in str(a) for a in plan.actions)
    assert fakes.frr.calls[-1] == "apply" and fakes.ovs.tunnels == {PEER2}


def test_an_intent_frr_refuses_changes_nothing_anywhere(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), frr=FakeFrr(refuse="line 3 `bogus`"))
    engine = fakes.engine(tmp_path)
    with pytest.raises(IntentRefused, match=r"refused: FRR's parser .* nothing was changed"):
        engine.prepare(intent())
    assert fakes.ovs.converged == [] and fakes.links.applied == [] and fakes.routes.applied == []
    assert fakes.frr.calls == ["check"] and fakes.kernel.calls == []


def test_ovsdb_unreachable_is_marked_for_retry(tmp_path: Path) -> None:
    fakes = Fakes(ovs=FakeOvs(error=OvsdbUnavailable("unix:/run/openvswitch/db.sock", "cannot connect")))
    report = apply(fakes, tmp_path, intent())
    assert report.unreachable and report.stage("ovs") is not None
    assert report.problems[0].startswith("OVS: ovsdb-server at unix:")
    assert len(fakes.links.applied) == 1


def test_peer_whose_route_goes_through_the_overlay_gets_no_tunnel(tmp_path: Path) -> None:
    routes = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", ("198.51.100.1", "br-tor")))
    fakes = Fakes(kernel=FakeKernel(routes_now=routes))
    report = apply(fakes, tmp_path, intent(peers=("198.18.0.14",)))
    assert set(report.peers.usable) == {PEER2}
    assert "goes through the overlay (br-tor)" in report.peers.dropped[PEER3]
    assert report.peers.dropped[IPv4Address("198.18.0.14")] == "no underlay route with a live nexthop"
    assert fakes.ovs.tunnels == {PEER2}  # the static peer too waits for a route


def test_a_second_pass_changes_nothing_in_any_driver(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))))
    assert apply(fakes, tmp_path, intent()).changed
    again = apply(fakes, tmp_path, intent())
    assert not again.changed and again.ok, again.as_json()
    assert [s.changes for s in again.stages] == [()] * 6 and len(fakes.routes.applied) == 2


def test_diff_changes_nothing(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)))
    engine = fakes.engine(tmp_path)
    report = engine.diff(engine.prepare(intent()))
    assert [s.stage for s in report.stages] == ["links", "frr", "peers", "tunnels", "routes"]
    assert fakes.ovs.converged == [] and fakes.routes.applied == [] and "apply" not in fakes.frr.calls
    assert fakes.links.applied == []
    routes = report.stage("routes")
    assert routes is not None and len(routes.changes) == 1 and routes.changes[0].startswith("route 198.18.0.12/32 dev")
    frr = report.stage("frr")
    assert frr is not None and frr.detail == "router ospf\n+ maximum-paths 8\n" and report.changed


def test_apply_holds_the_engine_lock(tmp_path: Path) -> None:
    fakes = Fakes(links=FakeLinks(lock=tmp_path / "engine.lock"))
    assert apply(fakes, tmp_path, intent(spine=True)).ok  # FakeLinks checked the lock was held


def test_unreadable_routes_leave_tunnels_and_ovs_routes_alone(tmp_path: Path) -> None:
    """A failed peers stage must not look like "no peers": that would delete every tunnel."""
    fakes = Fakes(
        kernel=FakeKernel(fail_routes=NetError("cannot read routes: netlink error 105")),
        ovs=FakeOvs.with_tunnels(PEER2),
    )
    report = apply(fakes, tmp_path, intent(), scope="overlay")
    assert [(s.stage, bool(s.skipped)) for s in report.stages] == [
        ("peers", False),
        ("tunnels", True),
        ("routes", True),
    ]
    assert fakes.ovs.converged == [] and fakes.routes.applied == []
    assert report.problems == ("peers: cannot read routes: netlink error 105",)


def test_a_bridge_that_stopped_terminating_tunnels_gets_a_route_re_inserted(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))))
    apply(fakes, tmp_path, intent())
    fakes.routes.deaf = ("br-eth2",)
    routes = apply(fakes, tmp_path, intent(), scope="overlay").stage("routes")
    assert routes is not None and len(routes.changes) == 1
    assert routes.changes[0].endswith("re-inserted (tunnel termination on br-eth2)")


def test_report_json_carries_typed_errors(tmp_path: Path) -> None:
    fakes = Fakes(links=FakeLinks(absent=frozenset({"eth3"})), frr=FakeFrr(error=DaemonsDown(frozenset({"ospfd"}))))
    doc = apply(fakes, tmp_path, intent()).as_json()
    links = next(s for s in doc["stages"] if s["stage"] == "links")
    frr = next(s for s in doc["stages"] if s["stage"] == "frr")
    assert links["errors"] == [
        {
            "kind": "NoSuchInterface",
            "message": "overlay.access_ports[0] eth3: no such interface (set up when it appears)",
            "retryable": False,
            "subject": "overlay.access_ports[0] eth3",
        }
    ]
    assert frr["errors"][0]["kind"] == "DaemonsDown" and frr["errors"][0]["retryable"] is True
    assert doc["missing"] == ["overlay.access_ports[0] eth3"]
