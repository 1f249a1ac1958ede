"""In-memory drivers keeping the engine's driver contract (tor_agent.reconcile.drivers): read, plan, apply.

OVS, the links and OVS's route table keep their state in memory and plan with the real, pure planners, so a
second pass over them really has nothing to do; FRR is a stand-in with one fixed change until applied.
Shared by the engine, daemon and CLI unit tests (tests/support is on pytest's pythonpath).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from ovs_rows import snapshot_of

from tor_agent.frr.apply import ConfigRefused, FrrApplyResult, FrrPlan, FrrState
from tor_agent.frr.config_tree import parse_config
from tor_agent.frr.delta import Change, Delta, Scope
from tor_agent.frr.vtysh import Running
from tor_agent.model.links import LinksSpec
from tor_agent.model.overlay import EMPTY, OvsDesired
from tor_agent.model.peers import TunnelHold
from tor_agent.model.routes import KernelNexthop, KernelRoute, OvsRoute
from tor_agent.net import KernelState, LinkResult, LinksPlan
from tor_agent.net.plan import plan_links
from tor_agent.net.state import LinkState, NftTable
from tor_agent.ovs.plan import Plan, diff_overlay
from tor_agent.ovs.routes import RouteApplyResult, RoutePlan, RoutesDesired, RouteTableState, plan_table
from tor_agent.ovs.state import OvsSnapshot
from tor_agent.reconcile.drivers import Drivers
from tor_agent.reconcile.engine import Engine
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.overlay import PassReport

OWN = IPv4Address("198.18.0.11")
MACS = {"eth1": "02:00:00:00:00:01", "eth2": "02:00:00:00:00:02"}
ECMP = (("198.18.1.0", "br-eth1"), ("198.18.1.2", "br-eth2"))


def ospf(dst: str, *hops: tuple[str, str]) -> KernelRoute:
    """An OSPF route to `dst`/32 over (gateway, interface) nexthops."""
    nexthops = tuple(KernelNexthop(IPv4Address(gw), dev) for gw, dev in hops)
    return KernelRoute(IPv4Network(f"{dst}/32"), "ospf", nexthops)


def assert_locked(lock: Path) -> None:
    """The engine lock at `lock` is held (by this process's pass)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        raise AssertionError(f"{lock} is not held")
    finally:
        os.close(fd)


@dataclass
class FakeKernel:
    """The kernel reader: MACs and routes."""

    routes_now: tuple[KernelRoute, ...] = ()
    fail_routes: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def macs(self) -> Mapping[str, str]:
        self.calls.append("macs")
        return MACS

    def routes(self) -> tuple[KernelRoute, ...]:
        self.calls.append("routes")
        if self.fail_routes is not None:
            raise self.fail_routes
        return self.routes_now


@dataclass
class FakeLinks:
    """Kernel links: `absent` interfaces do not exist; every other interface the spec names does, and an apply
    brings it to the spec. `lock`: checked to be held while links are applied."""

    absent: frozenset[str] = frozenset()
    error: Exception | None = None
    lock: Path | None = None
    applied: list[LinksPlan] = field(default_factory=list)
    state: KernelState = field(default_factory=lambda: KernelState({}, {}, None))

    def read(self) -> KernelState:
        return self.state

    def plan(self, spec: LinksSpec, state: KernelState) -> LinksPlan:
        links = {n: LinkState(i, n, False, 1500) for i, n in enumerate(_names(spec), start=1) if n not in self.absent}
        return plan_links(spec, KernelState({**links, **state.links}, state.sysctls, state.nft, state.owned))

    def apply(self, plan: LinksPlan) -> LinkResult:
        if self.lock is not None:
            assert_locked(self.lock)
        if self.error is not None:
            raise self.error
        self.applied.append(plan)
        present = [link for link in plan.spec.links if link.name not in self.absent]
        self.state = KernelState(
            {
                link.name: LinkState(i, link.name, True, link.mtu or 1500, frozenset(link.addresses))
                for i, link in enumerate(present, start=1)
            },
            {s.path: s.value for s in plan.spec.sysctls},
            NftTable(frozenset(plan.spec.ovs_ports) - self.absent, exact=True),
        )
        return LinkResult(plan.actions)


def _names(spec: LinksSpec) -> list[str]:
    return [link.name for link in spec.links]


@dataclass
class FakeOvs:
    """OVSDB in memory: what the last apply asked for, read back as an owned snapshot."""

    current: OvsDesired = EMPTY
    error: Exception | None = None
    converged: list[OvsDesired] = field(default_factory=list)

    @classmethod
    def with_tunnels(cls, *peers: IPv4Address) -> FakeOvs:
        """A database holding owned tunnels to `peers` (nothing else)."""
        from tor_agent.model.overlay import InterfaceSpec, PortSpec, tunnel_port_name

        ports = {
            tunnel_port_name(p): PortSpec("br-tor", InterfaceSpec(tunnel_port_name(p), "gre", (("remote_ip", str(p)),)))
            for p in peers
        }
        return cls(OvsDesired(bridges={}, ports=ports, tunnels={p: tunnel_port_name(p) for p in peers}))

    @property
    def tunnels(self) -> frozenset[IPv4Address]:
        return frozenset(self.current.tunnels)

    def read(self) -> OvsSnapshot:
        if self.error is not None:
            raise self.error
        return snapshot_of(self.current)

    @staticmethod
    def plan(desired: OvsDesired, state: OvsSnapshot) -> Plan:
        return diff_overlay(desired, state)

    def apply(self, plan: Plan) -> PassReport:
        assert plan.desired is not None
        self.converged.append(plan.desired)
        self.current = plan.desired
        return PassReport(plan)


@dataclass
class FakeRoutes:
    """OVS's route table in memory; `deaf` bridges do not terminate tunnels."""

    table: list[OvsRoute] = field(default_factory=list)
    applied: list[RoutePlan] = field(default_factory=list)
    deaf: tuple[str, ...] = ()

    def read(self) -> RouteTableState:
        macs = {"br-eth1": MACS["eth1"], "br-eth2": MACS["eth2"]}
        terminating = frozenset((mac, OWN) for bridge, mac in macs.items() if bridge not in self.deaf)
        return RouteTableState(tuple(self.table), terminating)

    @staticmethod
    def plan(desired: RoutesDesired, state: RouteTableState) -> RoutePlan:
        return plan_table(desired, state)

    def apply(self, plan: RoutePlan) -> RouteApplyResult:
        self.applied.append(plan)
        gone = {r.prefix for r in (*plan.delete, *plan.add)}
        self.table = [r for r in self.table if r.prefix not in gone] + list(plan.add)
        return RouteApplyResult(applied=plan.changes())


CHANGE = Change(("router ospf",), "add", "maximum-paths 8")


@dataclass
class FakeFrr:
    """FRR: one change (`maximum-paths 8`) to make until an apply made it; `error` raised by apply, `refuse` by
    the parser check."""

    error: Exception | None = None
    refuse: str | None = None
    synced: bool = False
    calls: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # what the parser checked
    planned: list[str] = field(default_factory=list)  # what passes planned against

    def read(self) -> FrrState:
        self.calls.append("read")
        return FrrState(Running("", frozenset({"zebra", "ospfd", "bfdd"})), frozenset())

    def plan(self, desired_text: str, state: FrrState) -> FrrPlan:
        self.planned.append(desired_text)
        desired = parse_config(desired_text)
        delta = Delta(() if self.synced else (CHANGE,))
        return FrrPlan(desired_text, desired, parse_config(""), Scope.of(desired), delta, state.recorded)

    def check(self, desired_text: str) -> None:
        self.calls.append("check")
        self.rendered.append(desired_text)
        if self.refuse is not None:
            raise ConfigRefused(f"FRR's parser (vtysh -C) refused {self.refuse}")

    def apply(self, plan: FrrPlan) -> FrrApplyResult:
        self.calls.append("apply")
        if self.error is not None:
            raise self.error
        self.synced = True
        return FrrApplyResult(plan.delta)


@dataclass
class Fakes:
    kernel: FakeKernel = field(default_factory=FakeKernel)
    links: FakeLinks = field(default_factory=FakeLinks)
    ovs: FakeOvs = field(default_factory=FakeOvs)
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    frr: FakeFrr = field(default_factory=FakeFrr)

    def drivers(self) -> Drivers:
        return Drivers(frr=self.frr, links=self.links, ovs=self.ovs, routes=self.routes, kernel=self.kernel)

    def engine(self, tmp_path: Path, hold: TunnelHold | None = None) -> Engine:
        return Engine(self.drivers(), EngineLock(tmp_path / "engine.lock"), hold=hold)
