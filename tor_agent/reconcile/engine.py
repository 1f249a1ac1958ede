"""One engine driving every driver, in the order a switch needs (DESIGN.md §1 and §2).

A full pass on a `datapath: netdev` leaf:
1. read the uplinks' MACs (net), for the uplink bridges' `hwaddr`;
2. OVS: bridges (overlay and uplink bridges), access ports, and the tunnels OVS has now (no peer is
   decided yet: nothing is added or removed on a guess);
3. links: addresses (also on the bridges' internal ports, which step 2 created), nftables, sysctls;
4. FRR;
5. peers: discovered from the kernel's routes, kept only with a live route that avoids the overlay (with no
   OSPF route at all, FRR is restarting or the node is cut off: the tunnels are left as they are);
6. OVS tunnels to exactly those peers;
7. OVS's tunnel route table: one user route per peer over an uplink bridge (netdev only).
A `datapath: system` leaf skips 1 and 7; a spine has no overlay and runs 3 and 4 only. The overlay pass
(the daemon's answer to a route change) runs 1 and 5-7.

A stage that fails is reported and the pass goes on: every driver checks its own preconditions and
changes nothing it cannot finish (links refuse missing interfaces, FRR rolls back, OVS commits one
transaction), and later stages do not need an earlier one to have succeeded to be safe. A stage that
needs a daemon that does not answer is marked `unreachable`, so the daemon knows to retry soon.
`Engine.apply` holds a lock (flock on /run/tor-agent/engine.lock plus a thread lock), so the CLI's
`apply` and the daemon never interleave.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal, Protocol

from tor_agent.config.schema import Intent
from tor_agent.errors import TorAgentError
from tor_agent.frr.apply import DaemonsDown, FrrApplyResult
from tor_agent.frr.config_tree import redact
from tor_agent.frr.delta import Delta
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.frr.vtysh import LinesRefused, VtyshError
from tor_agent.health.overlay import OSPF, OverlayState, TunnelRow
from tor_agent.model.overlay import OvsDesired, desired_ovs
from tor_agent.model.underlay import uplink_bridge_name
from tor_agent.net import Action as LinkAction
from tor_agent.net import KernelRoute, LinkResult, apply_links, interface_macs, kernel_routes, plan_links
from tor_agent.ovs.errors import OvsdbUnavailable, VswitchdTimeout
from tor_agent.ovs.routes import (
    OvsRoute,
    OvsRouteTable,
    RouteApplyResult,
    RoutePlan,
    RouteTableError,
    deaf_bridges,
    plan_routes,
)
from tor_agent.ovs.state import Action as OvsAction
from tor_agent.ovs.state import AddBridge, AddPort, DeleteBridge, DeletePort, OvsSnapshot, UpdateBridge, UpdatePort
from tor_agent.reconcile.overlay import PassReport, Plan
from tor_agent.reconcile.peers import (
    NO_PEERS,
    Peers,
    TunnelHold,
    only_tunnels_to,
    select_peers,
    tunnel_nexthops,
    uplink_bridges,
)
from tor_agent.reconcile.underlay import UnderlayDrivers, apply_underlay, diff_underlay

log = logging.getLogger(__name__)

LOCK_FILE = Path("/run/tor-agent/engine.lock")
Scope = Literal["full", "overlay"]
STAGES = ("ovs", "links", "frr", "peers", "tunnels", "routes")
_LABELS = {"ovs": "OVS", "links": "links", "frr": "FRR", "peers": "peers", "tunnels": "tunnels", "routes": "OVS routes"}


# --- what the engine needs from the drivers (the real ones below and in tor_agent.daemon; fakes in tests) ----


class KernelPort(Protocol):
    """The kernel, through tor_agent.net."""

    def macs(self) -> Mapping[str, str]: ...

    def routes(self) -> tuple[KernelRoute, ...]: ...

    def plan_links(self, intent: Intent) -> tuple[LinkAction, ...]: ...

    def apply_links(self, intent: Intent) -> LinkResult: ...


class OverlayPort(Protocol):
    """OVSDB, through tor_agent.ovs: directly (`DirectOverlay`) or through the daemon's OverlayLoop."""

    def tunnel_peers(self) -> frozenset[IPv4Address]: ...

    def plan(self, desired: OvsDesired) -> Plan: ...

    def converge(self, desired: OvsDesired) -> PassReport: ...


class RoutesPort(Protocol):
    """ovs-vswitchd's route table (tor_agent.ovs.routes.OvsRouteTable)."""

    def show(self) -> tuple[OvsRoute, ...]: ...

    def terminating(self) -> frozenset[tuple[str, IPv4Address]]: ...

    def apply(self, plan: RoutePlan) -> RouteApplyResult: ...


@dataclass
class EngineDrivers:
    """Every driver the engine uses; `EngineDrivers.default()` builds the switch's own."""

    frr: UnderlayDrivers
    kernel: KernelPort
    overlay: OverlayPort
    routes: RoutesPort

    @classmethod
    def default(cls, state_dir: Path = DEFAULT_STATE_DIR) -> EngineDrivers:
        """The drivers of the switch tor-agent runs on (FRR's ledger in `state_dir`)."""
        return cls(UnderlayDrivers.default(state_dir), NetKernel(), DirectOverlay(), OvsRouteTable())


class NetKernel:
    """KernelPort over tor_agent.net."""

    def macs(self) -> Mapping[str, str]:
        return interface_macs()

    def routes(self) -> tuple[KernelRoute, ...]:
        return kernel_routes()

    def plan_links(self, intent: Intent) -> tuple[LinkAction, ...]:
        return plan_links(intent)

    def apply_links(self, intent: Intent) -> LinkResult:
        return apply_links(intent)


class DirectOverlay:
    """OverlayPort over one OVSDB connection, opened on first use (the CLI; the daemon's first pass)."""

    def __init__(self, remote: str | None = None, timeout: float = 10.0) -> None:
        self.remote, self.timeout = remote, timeout
        self._conn: Any = None
        self.last_desired: OvsDesired | None = None  # what the last `converge` asked for

    def connection(self) -> Any:
        """The open `OvsConnection` (opened now if needed). Raises OvsdbUnavailable."""
        if self._conn is None:
            from tor_agent.ovs.connection import DEFAULT_REMOTE, OvsConnection

            self._conn = OvsConnection.open(self.remote or DEFAULT_REMOTE, self.timeout)
        return self._conn

    def take(self) -> Any:
        """Hand the open connection over (to the daemon's OverlayLoop); this port forgets it."""
        conn, self._conn = self._conn, None
        return conn

    def close(self) -> None:
        """Close the connection, if open."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def tunnel_peers(self) -> frozenset[IPv4Address]:
        return tunnel_peers_in(self.connection().snapshot(full=True))

    def plan(self, desired: OvsDesired) -> Plan:
        from tor_agent.reconcile.overlay import diff_overlay

        return diff_overlay(desired, self.connection().snapshot(full=True))

    def converge(self, desired: OvsDesired) -> PassReport:
        from tor_agent.reconcile.overlay import OverlayReconciler

        self.last_desired = desired
        return OverlayReconciler(self.connection(), desired).run_once(full=True)


def read_overlay(intent: Intent, remote: str | None = None) -> OverlayState:
    """The overlay as OVSDB, ovs-vswitchd and the kernel have it now, for status and verify (reads only)."""
    kernel = NetKernel().routes()
    overlay = DirectOverlay(remote)
    try:
        snap = overlay.connection().snapshot(full=True)
    finally:
        overlay.close()
    table = OvsRouteTable()
    bfd = table.bfd_states() if intent.overlay is not None and intent.overlay.tunnels.bfd else {}
    routes = table.show() if uplink_bridges(intent) else None
    return OverlayState(tunnel_rows(snap), bfd, routes, kernel)


def tunnel_rows(snap: OvsSnapshot) -> tuple[TunnelRow, ...]:
    """Every GRE interface of `snap`, owned or not."""
    rows = []
    for name, iface in sorted(snap.interfaces.items()):
        if iface.spec.type == "gre":
            remote = dict(iface.spec.options).get("remote_ip")
            rows.append(TunnelRow(name, _address(remote), iface.owned, iface.ofport, iface.error))
    return tuple(rows)


def _address(text: str | None) -> IPv4Address | None:
    try:
        return IPv4Address(text) if text else None
    except ValueError:
        return None


def tunnel_peers_in(snap: OvsSnapshot) -> frozenset[IPv4Address]:
    """The remote VTEPs of the tunnel ports tor-agent owns in `snap`."""
    peers = set()
    for iface in snap.interfaces.values():
        remote = dict(iface.spec.options).get("remote_ip")
        if iface.owned and iface.spec.type == "gre" and remote:
            peers.add(IPv4Address(remote))
    return frozenset(peers)


# --- reports ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageReport:
    """One stage of a pass: what it changed (or would change), what went wrong, or why it did not run."""

    stage: str
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: str = ""
    unreachable: bool = False  # a daemon did not answer: worth retrying soon
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """How reports name the stage."""
        return _LABELS.get(self.stage, self.stage)

    def as_json(self) -> dict[str, Any]:
        """The stage as plain data."""
        return {
            "stage": self.stage,
            "changes": list(self.changes),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "skipped": self.skipped or None,
            "unreachable": self.unreachable,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class EngineReport:
    """One pass: a report per stage, the peers it chose, FRR's own result (its delta)."""

    hostname: str
    scope: str
    stages: tuple[StageReport, ...]
    peers: Peers = NO_PEERS
    frr: FrrApplyResult | None = None
    frr_delta: Delta | None = None  # diff only
    seconds: float = 0.0
    held: Mapping[IPv4Address, float] = field(default_factory=dict)  # peer -> seconds its tunnel is still kept

    @property
    def changed(self) -> bool:
        """Whether anything was changed (or, for a diff, would be)."""
        return any(s.changes for s in self.stages)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every problem, each naming its stage."""
        return tuple(_labelled(s.label, p) for s in self.stages for p in s.problems)

    @property
    def unreachable(self) -> bool:
        """Whether a daemon the pass needs did not answer."""
        return any(s.unreachable for s in self.stages)

    @property
    def ok(self) -> bool:
        """No problem at all."""
        return not self.problems

    def stage(self, name: str) -> StageReport | None:
        """The report of stage `name`, if it ran or was skipped in this pass."""
        return next((s for s in self.stages if s.stage == name), None)

    def summary(self) -> str:
        """One line: how many changes per stage, problems, peers."""
        changed = ", ".join(f"{s.label} {len(s.changes)}" for s in self.stages if s.changes) or "nothing changed"
        problems = f", {len(self.problems)} problem(s)" if self.problems else ""
        held = f" (+{len(self.held)} held)" if self.held else ""
        peers = f"{len(self.peers.usable)} tunnel peer(s){held}"
        return f"{self.scope} pass: {changed}{problems}, {peers}, {self.seconds:.2f}s"

    def as_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "hostname": self.hostname,
            "scope": self.scope,
            "changed": self.changed,
            "ok": self.ok,
            "problems": list(self.problems),
            "stages": [s.as_json() for s in self.stages],
            "peers": {str(p): str(r.prefix) for p, r in sorted(self.peers.usable.items())},
            "dropped_peers": {str(p): why for p, why in sorted(self.peers.dropped.items())},
            "held_peers": {str(p): round(left, 1) for p, left in sorted(self.held.items())},
            "seconds": round(self.seconds, 3),
        }


def _labelled(label: str, problem: str) -> str:
    return problem if problem.startswith(label) else f"{label}: {problem}"


# --- the lock ---------------------------------------------------------------------------------------------


class EngineLock:
    """One pass at a time: a thread lock within the process, flock on `path` between processes."""

    def __init__(self, path: Path = LOCK_FILE) -> None:
        self.path = path
        self._thread_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock (blocking until the other holder is done)."""
        with self._thread_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)


# --- the engine -------------------------------------------------------------------------------------------


@dataclass
class Engine:
    """Runs passes over `drivers`; `apply` changes the switch, `diff` only says what it would change."""

    drivers: EngineDrivers
    lock: EngineLock = field(default_factory=EngineLock)
    hold: TunnelHold | None = None  # the daemon's: tunnels outlive a brief loss of their peer's route

    def apply(self, intent: Intent, scope: Scope = "full") -> EngineReport:
        """One pass (`full`, or `overlay`: peers, tunnels and OVS routes only), under the lock."""
        with self.lock.held():
            return _Pass(self.drivers, intent, scope, dry_run=False, hold=self.hold).run()

    def diff(self, intent: Intent) -> EngineReport:
        """What a full pass would change now, per stage. Changes nothing."""
        return _Pass(self.drivers, intent, "full", dry_run=True).run()


class _Pass:
    """One pass: the stages in order, each timed and reported; state handed from stage to stage."""

    def __init__(
        self, drivers: EngineDrivers, intent: Intent, scope: Scope, dry_run: bool, hold: TunnelHold | None = None
    ) -> None:
        self.d, self.intent, self.scope, self.dry_run, self.hold = drivers, intent, scope, dry_run, hold
        self.macs: Mapping[str, str] = {}
        self.peers = NO_PEERS
        self.held: dict[IPv4Address, float] = {}
        # Why tunnels and OVS routes must be left as they are (None once the peers are known): a failed peers
        # stage must not read as "no peers", which would drop every tunnel.
        self.peers_unknown: str | None = "the peers are unknown (their stage failed): left as they are"
        self.frr: FrrApplyResult | None = None
        self.frr_delta: Delta | None = None
        self.stages: list[StageReport] = []

    @property
    def overlay(self) -> bool:
        return self.intent.overlay is not None

    @property
    def netdev(self) -> bool:
        return bool(uplink_bridges(self.intent))

    def run(self) -> EngineReport:
        start = time.monotonic()
        full = self.scope == "full"
        if self.overlay:
            self.macs = self._read_macs()
        if full and self.overlay and not self.dry_run:
            self._stage("ovs", self._ovs_base)
        if full:
            self._stage("links", self._links)
            self._stage("frr", self._frr)
        if self.overlay:
            self._stage("peers", self._peers)
            for name, body in (("tunnels", self._tunnels), ("routes", self._routes)):
                if name == "routes" and not self.netdev:
                    continue
                if self.peers_unknown is None:
                    self._stage(name, body)
                else:
                    self.stages.append(StageReport(name, skipped=self.peers_unknown))
        return EngineReport(
            self.intent.node.hostname,
            self.scope,
            tuple(self.stages),
            self.peers,
            self.frr,
            self.frr_delta,
            time.monotonic() - start,
            self.held,
        )

    def _stage(self, name: str, body: Callable[[], StageReport]) -> None:
        start = time.monotonic()
        try:
            report = body()
        except TorAgentError as e:
            report = StageReport(name, problems=(str(e),), unreachable=_unreachable(e))
        except OSError as e:
            report = StageReport(name, problems=(f"{e}",))
        report = dataclasses.replace(report, seconds=time.monotonic() - start)
        for problem in report.problems:
            log.warning("%s", _labelled(report.label, problem))
        self.stages.append(report)

    def _read_macs(self) -> Mapping[str, str]:
        try:
            return self.d.kernel.macs()
        except TorAgentError as e:
            log.warning("cannot read the uplinks' MACs (hwaddr left as it is this pass): %s", e)
            return {}

    def _desired(self, peers: frozenset[IPv4Address]) -> OvsDesired:
        return only_tunnels_to(desired_ovs(self.intent, peers, self.macs), peers)

    def _ovs_base(self) -> StageReport:
        desired = self._desired(self.d.overlay.tunnel_peers())
        return _ovs_stage("ovs", self.d.overlay.converge(desired))

    def _links(self) -> StageReport:
        if self.dry_run:
            return StageReport("links", changes=tuple(map(str, self.d.kernel.plan_links(self.intent))))
        result = self.d.kernel.apply_links(self.intent)
        notes = tuple(
            f"{name}: {address} was already there (not tor-agent's: never removed)" for name, address in result.unowned
        )
        return StageReport("links", changes=tuple(map(str, result.applied)), notes=notes)

    def _frr(self) -> StageReport:
        if self.dry_run:
            self.frr_delta = diff_underlay(self.intent, self.d.frr)
            return StageReport("frr", changes=_frr_changes(self.frr_delta), notes=self.frr_delta.notes)
        self.frr = apply_underlay(self.intent, self.d.frr).frr
        said = tuple(f"FRR said about {m}" for m in self.frr.messages)
        return StageReport("frr", changes=_frr_changes(self.frr.delta), notes=(*self.frr.delta.notes, *said))

    def _peers(self) -> StageReport:
        routes = self.d.kernel.routes()
        if not any(r.protocol == OSPF for r in routes):
            # FRR restarting (zebra sweeps, ospfd re-learns: seconds) or every uplink down: no peer's absence
            # means it left, and deleting its tunnel would renumber its OpenFlow port for nothing.
            self.peers_unknown = "no OSPF route in the kernel (FRR restarting or every uplink down): left as they are"
            return StageReport("peers", notes=(self.peers_unknown,))
        self.peers = select_peers(self.intent, routes)
        self.peers_unknown = None
        if self.hold is not None:
            self.held = self.hold.held(self.intent, self.peers, self.d.overlay.tunnel_peers(), time.monotonic())
        notes = tuple(f"{peer}: no tunnel: {why}" for peer, why in sorted(self.peers.dropped.items()))
        notes += tuple(f"{peer}: route gone, tunnel kept {left:.1f} s more" for peer, left in sorted(self.held.items()))
        return StageReport("peers", notes=notes)

    def _tunnels(self) -> StageReport:
        desired = self._desired(self.peers.addresses | frozenset(self.held))
        if self.dry_run:
            plan = self.d.overlay.plan(desired)
            return StageReport("tunnels", changes=tuple(map(describe_action, plan.actions)))
        return _ovs_stage("tunnels", self.d.overlay.converge(desired))

    def _routes(self) -> StageReport:
        wanted = tunnel_nexthops(self.intent, self.peers)
        plan = plan_routes(wanted, self.d.routes.show(), uplink_bridges(self.intent), self._deaf())
        problems = tuple(f"{vtep}: no live nexthop over an uplink bridge: no OVS route" for vtep in plan.unroutable)
        if self.dry_run:
            return StageReport("routes", changes=plan.changes(), problems=problems)
        result = self.d.routes.apply(plan) if plan else RouteApplyResult()
        return StageReport("routes", changes=result.applied, problems=(*problems, *result.failures))

    def _deaf(self) -> frozenset[str]:
        """Uplink bridges on which OVS does not terminate tunnels to this VTEP now (see tor_agent.ovs.routes)."""
        if not self.peers.usable:
            return frozenset()  # OVS lists termination entries only while a tunnel port exists
        macs = {uplink_bridge_name(u): self.macs[u.name] for u in self.intent.underlay.uplinks if u.name in self.macs}
        return deaf_bridges(self.d.routes.terminating(), macs, self.intent.node.loopback.ip)


def _ovs_stage(name: str, report: PassReport) -> StageReport:
    problems = [str(c) for c in report.conflicts] + [str(f) for f in report.failures]
    if report.error is not None:
        problems.insert(0, str(report.error))
    changes = tuple(map(describe_action, report.plan.actions)) if report.error is None else ()
    unreachable = isinstance(report.error, OvsdbUnavailable | VswitchdTimeout)
    return StageReport(name, changes=changes, problems=tuple(problems), unreachable=unreachable)


def _frr_changes(delta: Delta) -> tuple[str, ...]:
    """`interface eth1: - ip ospf cost 99`-style lines, keys redacted."""
    lines = []
    for change in delta.changes:
        where = " / ".join(change.path) or "(top)"
        old = f"{redact(change.old)} -> " if change.old is not None else ""
        sign = "-" if change.op == "remove" else "+"
        lines.append(f"{where}: {sign} {old}{redact(change.line)}")
    return tuple(lines)


def _unreachable(e: TorAgentError) -> bool:
    if isinstance(e, DaemonsDown | OvsdbUnavailable | VswitchdTimeout):
        return True
    if isinstance(e, RouteTableError):
        return "not reachable" in str(e)
    return isinstance(e, VtyshError) and not isinstance(e, LinesRefused)


def describe_action(action: OvsAction) -> str:
    """One line for an OVS action: `add port gre-c6120012 on br-tor (gre, remote_ip 198.18.0.18)`."""
    match action:
        case AddBridge(spec=spec) | UpdateBridge(spec=spec):
            verb = "add" if isinstance(action, AddBridge) else "update"
            return f"{verb} bridge {spec.name} ({spec.datapath_type})"
        case AddPort(spec=spec) | UpdatePort(spec=spec):
            verb = "add" if isinstance(action, AddPort) else "update"
            remote = dict(spec.interface.options).get("remote_ip")
            kind = f" ({spec.interface.type}{f', remote_ip {remote}' if remote else ''})" if spec.interface.type else ""
            return f"{verb} port {spec.name} on {spec.bridge}{kind}"
        case DeletePort(name=name):
            return f"delete port {name}"
        case DeleteBridge(name=name):
            return f"delete bridge {name}"
    return str(action)
