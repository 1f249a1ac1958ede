"""The engine (tor_agent.reconcile.engine) against in-memory fakes: stage order per role and datapath, what each
driver is handed, failures that stop nothing else, dry runs that change nothing, and the lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tor_agent.config import Intent, load_text
from tor_agent.frr.apply import DaemonsDown, FrrApplyResult
from tor_agent.frr.delta import Change, Delta
from tor_agent.model.overlay import OvsDesired
from tor_agent.net import KernelNexthop, KernelRoute, LinkResult, NetError, NoSuchInterface
from tor_agent.net.actions import AddAddress
from tor_agent.ovs.errors import OvsdbUnavailable
from tor_agent.ovs.routes import OvsRoute, RouteApplyResult, RoutePlan
from tor_agent.ovs.state import AddPort, DeletePort
from tor_agent.reconcile.engine import Engine, EngineDrivers, EngineLock
from tor_agent.reconcile.overlay import PassReport, Plan
from tor_agent.reconcile.peers import TunnelHold
from tor_agent.reconcile.underlay import UnderlayDrivers

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
    doc = yaml.safe_load(yaml.safe_dump(LEAF))
    if spine:
        doc["node"]["role"] = "spine"
        del doc["overlay"]
    else:
        doc["overlay"]["datapath"] = datapath
        doc["overlay"]["tunnels"]["peers"] = list(peers)
        if hold_down_s is not None:
            doc["overlay"]["tunnels"]["hold_down_s"] = hold_down_s
    return load_text(yaml.safe_dump(doc))


def ospf(dst: str, *hops: tuple[str, str]) -> KernelRoute:
    """An OSPF route to `dst`/32 over (gateway, interface) nexthops."""
    nexthops = tuple(KernelNexthop(IPv4Address(gw), dev) for gw, dev in hops)
    return KernelRoute(IPv4Network(f"{dst}/32"), "ospf", nexthops)


ECMP = (("198.18.1.0", "br-eth1"), ("198.18.1.2", "br-eth2"))


@dataclass
class FakeKernel:
    routes_now: tuple[KernelRoute, ...] = ()
    fail_links: Exception | None = None
    fail_routes: Exception | None = None
    calls: list[str] = field(default_factory=list)
    lock: Path | None = None  # checked to be held while links are applied

    def macs(self) -> Mapping[str, str]:
        self.calls.append("macs")
        return {"eth1": "02:00:00:00:00:01", "eth2": "02:00:00:00:00:02"}

    def routes(self) -> tuple[KernelRoute, ...]:
        self.calls.append("routes")
        if self.fail_routes is not None:
            raise self.fail_routes
        return self.routes_now

    def plan_links(self, intent: Intent) -> tuple[Any, ...]:
        self.calls.append("plan_links")
        return (AddAddress("lo", intent.node.loopback),)

    def apply_links(self, intent: Intent) -> LinkResult:
        self.calls.append("apply_links")
        if self.lock is not None:
            fd = os.open(self.lock, os.O_RDWR)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
        if self.fail_links is not None:
            raise self.fail_links
        return LinkResult(applied=(AddAddress("lo", intent.node.loopback),), unowned=())


@dataclass
class FakeOverlay:
    current: frozenset[IPv4Address] = frozenset()
    error: Exception | None = None
    converged: list[OvsDesired] = field(default_factory=list)
    planned: list[OvsDesired] = field(default_factory=list)

    def tunnel_peers(self) -> frozenset[IPv4Address]:
        if isinstance(self.error, OvsdbUnavailable):
            raise self.error
        return self.current

    def plan(self, desired: OvsDesired) -> Plan:
        self.planned.append(desired)
        return Plan(actions=tuple(AddPort(p) for n, p in desired.ports.items() if n.startswith("gre-")))

    def converge(self, desired: OvsDesired) -> PassReport:
        self.converged.append(desired)
        added = [AddPort(desired.ports[n]) for peer, n in desired.tunnels.items() if peer not in self.current]
        gone = [DeletePort(f"gre-{int(peer):08x}") for peer in self.current if peer not in desired.tunnels]
        self.current = frozenset(desired.tunnels)
        return PassReport(Plan(actions=(*added, *gone)))


@dataclass
class FakeRoutes:
    table: list[OvsRoute] = field(default_factory=list)
    applied: list[RoutePlan] = field(default_factory=list)

    deaf: tuple[str, ...] = ()  # bridges OVS does not terminate tunnels on

    def show(self) -> tuple[OvsRoute, ...]:
        return tuple(self.table)

    def terminating(self) -> frozenset[tuple[str, IPv4Address]]:
        macs = {"br-eth1": "02:00:00:00:00:01", "br-eth2": "02:00:00:00:00:02"}
        return frozenset((mac, OWN) for bridge, mac in macs.items() if bridge not in self.deaf)

    def apply(self, plan: RoutePlan) -> RouteApplyResult:
        self.applied.append(plan)
        gone = {r.prefix for r in (*plan.delete, *plan.add)}
        self.table = [r for r in self.table if r.prefix not in gone] + list(plan.add)
        return RouteApplyResult(applied=plan.changes())


@dataclass
class FakeFrr:
    error: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def apply(self, text: str) -> FrrApplyResult:
        self.calls.append("apply")
        if self.error is not None:
            raise self.error
        return FrrApplyResult(Delta((Change(("router ospf",), "add", "maximum-paths 8"),)))

    def diff(self, text: str) -> Delta:
        self.calls.append("diff")
        return Delta(())


@dataclass
class Fakes:
    kernel: FakeKernel = field(default_factory=FakeKernel)
    overlay: FakeOverlay = field(default_factory=FakeOverlay)
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    frr: FakeFrr = field(default_factory=FakeFrr)

    def engine(self, tmp_path: Path, hold: TunnelHold | None = None) -> Engine:
        drivers = EngineDrivers(
            frr=UnderlayDrivers(cast(Any, self.frr)),
            kernel=self.kernel,
            overlay=self.overlay,
            routes=self.routes,
        )
        return Engine(drivers, EngineLock(tmp_path / "engine.lock"), hold=hold)


def test_netdev_leaf_full_pass_runs_every_stage_in_order(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.11", *ECMP))))
    report = fakes.engine(tmp_path).apply(intent())
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels", "routes"]
    assert report.ok and report.changed
    first, second = fakes.overlay.converged
    assert first.tunnels == {} and "br-eth1" in first.bridges  # bridges first, no tunnel decided on a guess
    assert dict(first.bridges["br-eth1"].other_config)["hwaddr"] == "02:00:00:00:00:01"
    assert set(second.tunnels) == {PEER2}  # own VTEP never a peer
    (plan,) = fakes.routes.applied
    assert [str(r) for r in plan.add] in (
        ["198.18.0.12/32 dev br-eth1 via 198.18.1.0"],
        ["198.18.0.12/32 dev br-eth2 via 198.18.1.2"],
    )
    assert fakes.kernel.calls == ["macs", "apply_links", "routes"]


def test_existing_tunnels_are_kept_by_the_first_ovs_stage(tmp_path: Path) -> None:
    kernel = FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),))
    fakes = Fakes(kernel=kernel, overlay=FakeOverlay(current=frozenset({PEER3})))
    fakes.engine(tmp_path).apply(intent())
    first, second = fakes.overlay.converged
    assert set(first.tunnels) == {PEER3}
    assert set(second.tunnels) == {PEER2}  # PEER3 has no route any more: its tunnel goes in the tunnels stage


def test_the_daemons_hold_keeps_a_tunnel_whose_route_went_until_the_hold_down_ends(tmp_path: Path) -> None:
    fakes = Fakes(
        kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)),
        overlay=FakeOverlay(current=frozenset({PEER2, PEER3})),
    )
    hold = TunnelHold()
    engine = fakes.engine(tmp_path, hold)
    report = engine.apply(intent(), "overlay")
    assert set(fakes.overlay.converged[-1].tunnels) == {PEER2, PEER3}  # PEER3's route went: held
    assert set(report.held) == {PEER3} and 9 < report.held[PEER3] <= 10  # hold_down_s defaults to 10
    assert "(+1 held)" in report.summary() and report.as_json()["held_peers"] == {"198.18.0.13": 10.0}
    tunnels = report.stage("tunnels")
    assert report.ok and tunnels is not None and tunnels.changes == ()
    hold.missing_since[PEER3] -= 10  # the hold-down is over
    report = engine.apply(intent(), "overlay")
    assert set(fakes.overlay.converged[-1].tunnels) == {PEER2} and report.held == {}


def test_a_returning_route_ends_the_hold_and_a_later_loss_starts_a_new_one(tmp_path: Path) -> None:
    kernel = FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),))
    fakes = Fakes(kernel=kernel, overlay=FakeOverlay(current=frozenset({PEER2, PEER3})))
    hold = TunnelHold()
    engine = fakes.engine(tmp_path, hold)
    engine.apply(intent(), "overlay")
    hold.missing_since[PEER3] -= 9
    kernel.routes_now = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))
    assert engine.apply(intent(), "overlay").held == {} and hold.missing_since == {}
    kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
    assert engine.apply(intent(), "overlay").held[PEER3] > 9


def test_no_hold_for_one_shot_apply_for_zero_hold_down_or_a_peer_the_intent_no_longer_allows(tmp_path: Path) -> None:
    outside = IPv4Address("198.18.9.9")  # outside the discovery prefix, not static
    for hold, doc, current in (
        (None, intent(), {PEER3}),
        (TunnelHold(), intent(hold_down_s=0), {PEER3}),
        (TunnelHold(), intent(), {outside}),
    ):
        fakes = Fakes(
            kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)), overlay=FakeOverlay(current=frozenset(current))
        )
        report = fakes.engine(tmp_path, hold).apply(doc, "overlay")
        assert set(fakes.overlay.converged[-1].tunnels) == {PEER2} and report.held == {}


def test_without_any_ospf_route_the_tunnels_are_left_as_they_are(tmp_path: Path) -> None:
    """FRR restarting (or every uplink down) empties the kernel of OSPF routes for seconds: that is no
    reason to delete every tunnel (and renumber its OpenFlow port) and add it back."""
    connected = KernelRoute(IPv4Network("198.18.1.0/31"), "kernel", (KernelNexthop(None, "br-eth1"),))
    fakes = Fakes(kernel=FakeKernel(routes_now=(connected,)), overlay=FakeOverlay(current=frozenset({PEER3})))
    report = fakes.engine(tmp_path).apply(intent())
    assert len(fakes.overlay.converged) == 1 and set(fakes.overlay.converged[0].tunnels) == {PEER3}
    assert fakes.routes.applied == []
    skipped = {s.stage: s.skipped for s in report.stages if s.skipped}
    assert set(skipped) == {"tunnels", "routes"} and "no OSPF route" in skipped["tunnels"]
    assert report.ok


def test_spine_runs_links_and_frr_only(tmp_path: Path) -> None:
    fakes = Fakes()
    report = fakes.engine(tmp_path).apply(intent(spine=True))
    assert [s.stage for s in report.stages] == ["links", "frr"]
    assert fakes.overlay.converged == [] and fakes.routes.applied == []
    assert "macs" not in fakes.kernel.calls and "routes" not in fakes.kernel.calls


def test_system_datapath_leaf_has_no_ovs_route_stage(tmp_path: Path) -> None:
    system_hops = (("198.18.1.0", "eth1"), ("198.18.1.2", "eth2"))
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.13", *system_hops),)))
    report = fakes.engine(tmp_path).apply(intent("system"))
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels"]
    assert set(fakes.overlay.converged[-1].tunnels) == {PEER3}
    assert "br-eth1" not in fakes.overlay.converged[-1].bridges


def test_overlay_scope_recomputes_peers_tunnels_and_routes_only(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)))
    report = fakes.engine(tmp_path).apply(intent(), scope="overlay")
    assert [s.stage for s in report.stages] == ["peers", "tunnels", "routes"]
    assert fakes.frr.calls == [] and "apply_links" not in fakes.kernel.calls
    assert len(fakes.overlay.converged) == 1


def test_a_failed_stage_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    fakes = Fakes(
        kernel=FakeKernel(fail_links=NoSuchInterface(()), routes_now=(ospf("198.18.0.12", *ECMP),)),
        frr=FakeFrr(error=DaemonsDown(frozenset({"ospfd"}))),
    )
    report = fakes.engine(tmp_path).apply(intent())
    assert [s.stage for s in report.stages] == ["ovs", "links", "frr", "peers", "tunnels", "routes"]
    assert len(report.problems) == 2 and report.unreachable  # FRR's daemon is down: retry soon
    assert report.problems[1].startswith("FRR daemon(s) not running")
    assert set(fakes.overlay.converged[-1].tunnels) == {PEER2}


def test_ovsdb_unreachable_is_marked_for_retry(tmp_path: Path) -> None:
    fakes = Fakes(overlay=FakeOverlay(error=OvsdbUnavailable("unix:/run/openvswitch/db.sock", "cannot connect")))
    report = fakes.engine(tmp_path).apply(intent())
    assert report.unreachable and report.stage("ovs") is not None
    assert report.problems[0].startswith("OVS: ovsdb-server at unix:")
    assert fakes.kernel.calls[:2] == ["macs", "apply_links"]


def test_peer_whose_route_goes_through_the_overlay_gets_no_tunnel(tmp_path: Path) -> None:
    routes = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", ("198.51.100.1", "br-tor")))
    fakes = Fakes(kernel=FakeKernel(routes_now=routes))
    report = fakes.engine(tmp_path).apply(intent(peers=("198.18.0.14",)))
    assert set(report.peers.usable) == {PEER2}
    assert "goes through the overlay (br-tor)" in report.peers.dropped[PEER3]
    assert report.peers.dropped[IPv4Address("198.18.0.14")] == "no underlay route with a live nexthop"
    assert set(fakes.overlay.converged[-1].tunnels) == {PEER2}  # the static peer too waits for a route


def test_second_pass_over_the_fakes_changes_nothing_in_ovs_routes(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))))
    engine = fakes.engine(tmp_path)
    engine.apply(intent())
    again = engine.apply(intent())
    routes = again.stage("routes")
    assert routes is not None and routes.changes == () and len(fakes.routes.applied) == 1
    tunnels = again.stage("tunnels")
    assert tunnels is not None and tunnels.changes == ()


def test_diff_changes_nothing(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP),)))
    report = fakes.engine(tmp_path).diff(intent())
    assert [s.stage for s in report.stages] == ["links", "frr", "peers", "tunnels", "routes"]
    assert fakes.overlay.converged == [] and fakes.routes.applied == [] and fakes.frr.calls == ["diff"]
    assert "apply_links" not in fakes.kernel.calls
    routes = report.stage("routes")
    assert routes is not None and len(routes.changes) == 1 and routes.changes[0].startswith("route 198.18.0.12/32 dev")
    assert report.changed


def test_apply_holds_the_engine_lock(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(lock=tmp_path / "engine.lock"))
    assert fakes.engine(tmp_path).apply(intent(spine=True)).ok  # FakeKernel checked the lock was held


def test_unreadable_routes_leave_tunnels_and_ovs_routes_alone(tmp_path: Path) -> None:
    """A failed peers stage must not look like "no peers": that would delete every tunnel."""
    fakes = Fakes(kernel=FakeKernel(fail_routes=NetError("cannot read routes: netlink error 105")))
    fakes.overlay.current = frozenset({PEER2})
    report = fakes.engine(tmp_path).apply(intent(), scope="overlay")
    assert [(s.stage, bool(s.skipped)) for s in report.stages] == [
        ("peers", False),
        ("tunnels", True),
        ("routes", True),
    ]
    assert fakes.overlay.converged == [] and fakes.routes.applied == []
    assert report.problems == ("peers: cannot read routes: netlink error 105",)


def test_a_bridge_that_stopped_terminating_tunnels_gets_a_route_re_inserted(tmp_path: Path) -> None:
    fakes = Fakes(kernel=FakeKernel(routes_now=(ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))))
    engine = fakes.engine(tmp_path)
    engine.apply(intent())
    fakes.routes.deaf = ("br-eth2",)
    routes = engine.apply(intent(), scope="overlay").stage("routes")
    assert routes is not None and len(routes.changes) == 1
    assert routes.changes[0].endswith("re-inserted (tunnel termination on br-eth2)")
