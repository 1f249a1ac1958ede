"""One pass over every driver, in the order a switch needs (docs/design.md).

A full pass on a `datapath: netdev` leaf:
1. read the uplinks' MACs (kernel), for the uplink bridges' `hwaddr`;
2. OVS: bridges (overlay and uplink bridges), access ports, and the tunnels OVS has now (no peer is
   decided yet: nothing is added or removed on a guess);
3. links: addresses (also on the bridges' internal ports, which step 2 created), nftables, sysctls;
4. FRR;
5. peers: discovered from the kernel's routes, kept only with a live route that avoids the overlay (with no
   OSPF route at all, FRR is restarting or the node is cut off: the tunnels are left as they are);
6. OVS tunnels to exactly those peers;
7. OVS's tunnel route table: one user route per peer over an uplink bridge (netdev only).
A `datapath: system` leaf skips 1 and 7; a spine has no overlay and runs 3 and 4 only. The overlay pass
(the daemon's answer to a route change) runs 1 and 5-7. The routes pass (the daemon's first answer to a
route change on a netdev leaf, before the overlay pass) runs 5 and 7 over a route table it is given (the
kernel's, kept from the route events: no dump), without the MACs: it moves OVS's tunnel routes at once;
the overlay pass after it adds and removes tunnels.

Every driver stage is the same: read, plan, apply (tor_agent.reconcile.drivers). A stage that fails is
reported and the pass goes on: within a stage each object stands alone where it can (a missing interface
is skipped, the rest applied), FRR's batch is all or nothing with a rollback, OVS rows go in one
transaction, and later stages do not need an earlier one to have succeeded to be safe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Literal

from tor_agent.config.schema import Intent
from tor_agent.errors import RuntimeFailure, TorAgentError
from tor_agent.frr.apply import FrrApplyResult, FrrPlan
from tor_agent.frr.config_tree import redact
from tor_agent.model.links import LinksSpec
from tor_agent.model.overlay import OvsDesired, desired_ovs
from tor_agent.model.peers import (
    NO_PEERS,
    TunnelHold,
    any_ospf_route,
    only_tunnels_to,
    select_peers,
    tunnel_nexthops,
    uplink_bridges,
)
from tor_agent.model.routes import KernelRoute
from tor_agent.model.underlay import uplink_bridge_name
from tor_agent.ovs.routes import RoutesDesired
from tor_agent.reconcile.drivers import Driver, Drivers, PlanLike, ResultLike
from tor_agent.reconcile.report import EngineReport, StageReport, labelled
from tor_agent.reconcile.startup import StartupHold

log = logging.getLogger(__name__)

Scope = Literal["full", "overlay", "routes"]
PEERS_UNKNOWN = "the peers are unknown (their stage failed): left as they are"
NO_OSPF_ROUTE = "no OSPF route in the kernel (FRR restarting or every uplink down): left as they are"


@dataclass(frozen=True)
class Prepared:
    """An intent every stage has checked (tor_agent.reconcile.engine.Engine.prepare): its FRR rendering, parsed
    by FRR, and its kernel link spec."""

    intent: Intent
    frr_text: str
    links: LinksSpec
    frr_drained_text: str = ""  # the same, drained (`max-metric router-lsa administrative`)

    def frr(self, drained: bool) -> str:
        """The rendering to apply: drained or not."""
        return self.frr_drained_text if drained and self.frr_drained_text else self.frr_text


class Pass:
    """One pass: the stages in order, each timed and reported; what a stage learns is handed to the next."""

    def __init__(
        self,
        drivers: Drivers,
        prepared: Prepared,
        scope: Scope,
        dry_run: bool,
        hold: TunnelHold | None = None,
        drained: bool = False,
        startup: StartupHold | None = None,
        routes: Sequence[KernelRoute] | None = None,
    ) -> None:
        self.d, self.prepared, self.scope, self.dry_run, self.hold = drivers, prepared, scope, dry_run, hold
        self.drained, self.startup = drained, startup
        self.routes = routes  # the kernel's route table, when the caller has it (else the peers stage dumps it)
        self.intent = prepared.intent
        self.macs: Mapping[str, str] = {}
        self.peers = NO_PEERS
        self.held: dict[IPv4Address, float] = {}
        # Why tunnels and OVS routes must be left as they are (None once the peers are known): a failed peers
        # stage must not read as "no peers", which would drop every tunnel.
        self.peers_unknown: str | None = PEERS_UNKNOWN
        self.stages: list[StageReport] = []

    @property
    def overlay(self) -> bool:
        return self.intent.overlay is not None

    def run(self) -> EngineReport:
        start = time.monotonic()
        full = self.scope == "full"
        if self.overlay and self.scope != "routes":
            self.macs = self._read_macs()
        if full and self.overlay and not self.dry_run:
            self._stage("ovs", self._ovs_base)
        if full:
            self._stage("links", lambda: self._converge("links", self.d.links, self.prepared.links))
            self._stage("frr", self._frr)
        if self.overlay:
            self._stage("peers", self._peers)
            for name, body in (("tunnels", self._tunnels), ("routes", self._routes)):
                if (name == "routes" and not uplink_bridges(self.intent)) or (
                    name == "tunnels" and self.scope == "routes"
                ):
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
            time.monotonic() - start,
            self.held,
            self.dry_run,
        )

    # --- the stage runner ---

    def _stage(self, name: str, body: Callable[[], StageReport]) -> None:
        start = time.monotonic()
        try:
            report = body()
        except RuntimeFailure as e:
            report = StageReport(name, errors=(e,))
        except OSError as e:
            report = StageReport(name, errors=(RuntimeFailure(str(e)),))
        report = dataclasses.replace(report, seconds=time.monotonic() - start)
        for problem in report.problems:
            log.warning("%s", labelled(report.label, problem))
        self.stages.append(report)

    def _converge(self, name: str, driver: Driver[Any, Any, Any, Any], desired: Any, state: Any = None) -> StageReport:
        """read (unless given), plan, and (unless a dry run) apply: the same for every driver."""
        plan: PlanLike = driver.plan(desired, driver.read() if state is None else state)
        findings = tuple(plan.findings())
        if self.dry_run:
            return StageReport(name, changes=plan.changes(), errors=findings, notes=plan.notes())
        result: ResultLike = driver.apply(plan)
        return StageReport(name, result.changes(), _unique((*findings, *result.errors)), plan.notes())

    # --- the stages ---

    def _read_macs(self) -> Mapping[str, str]:
        try:
            return self.d.kernel.macs()
        except TorAgentError as e:
            log.warning("cannot read the uplinks' MACs (hwaddr left as it is this pass): %s", e)
            return {}

    def _desired(self, peers: frozenset[IPv4Address]) -> OvsDesired:
        return only_tunnels_to(desired_ovs(self.intent, peers, self.macs), peers)

    def _ovs_base(self) -> StageReport:
        state = self.d.ovs.read()
        return self._converge("ovs", self.d.ovs, self._desired(state.owned_tunnel_peers()), state)

    def _frr(self) -> StageReport:
        state = self.d.frr.read()
        drained = self.drained
        if self.startup is not None:  # the daemon's start-up protection: keep a max-metric FRR started with
            self.startup.found_max_metric(state.max_metric, self.drained, time.monotonic())
            drained = drained or self.startup.active
        plan: FrrPlan = self.d.frr.plan(self.prepared.frr(drained), state)
        detail = plan.delta.diff_text() if plan.delta else ""
        data = {"changes": [c.as_dict() for c in plan.delta.changes], "commands": redact(plan.delta.commands())}
        if self.dry_run:
            return StageReport("frr", plan.changes(), notes=plan.notes(), detail=detail, data=data)
        result: FrrApplyResult = self.d.frr.apply(plan)
        said = tuple(f"FRR said about {m}" for m in result.messages)
        data["said"] = list(said)
        return StageReport("frr", result.changes(), notes=(*plan.notes(), *said), detail=detail, data=data)

    def _peers(self) -> StageReport:
        routes = self.d.kernel.routes() if self.routes is None else self.routes
        if not any_ospf_route(routes):
            # FRR restarting (zebra sweeps, ospfd re-learns: seconds) or every uplink down: no peer's absence
            # means it left, and deleting its tunnel would renumber its OpenFlow port for nothing.
            self.peers_unknown = NO_OSPF_ROUTE
            return StageReport("peers", notes=(NO_OSPF_ROUTE,))
        self.peers = select_peers(self.intent, routes)
        self.peers_unknown = None
        if self.hold is not None:
            existing = self.d.ovs.read().owned_tunnel_peers()
            self.held = self.hold.held(self.intent, self.peers, existing, time.monotonic())
        notes = tuple(f"{peer}: no tunnel: {why}" for peer, why in sorted(self.peers.dropped.items()))
        notes += tuple(f"{peer}: route gone, tunnel kept {left:.1f} s more" for peer, left in sorted(self.held.items()))
        return StageReport("peers", notes=notes)

    def _tunnels(self) -> StageReport:
        return self._converge("tunnels", self.d.ovs, self._desired(self.peers.addresses | frozenset(self.held)))

    def _routes(self) -> StageReport:
        uplinks = self.intent.underlay.uplinks
        desired = RoutesDesired(
            wanted=tunnel_nexthops(self.intent, self.peers),
            bridges=uplink_bridges(self.intent),
            bridge_macs={uplink_bridge_name(u): self.macs[u.name] for u in uplinks if u.name in self.macs},
            vtep=self.intent.node.loopback.ip,
        )
        return self._converge("routes", self.d.routes, desired)


def _unique(errors: Sequence[RuntimeFailure]) -> tuple[RuntimeFailure, ...]:
    """Each error once (a plan's finding may come back in the result of its apply)."""
    return tuple({str(e): e for e in errors}.values())
