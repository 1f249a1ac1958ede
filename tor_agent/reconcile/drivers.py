"""The one contract every driver keeps, and the factory that builds a switch's drivers.

Each driver (FRR, kernel links, OVS rows, OVS routes) exposes:
- `read() -> State`: what its daemon or the kernel has now (I/O);
- `plan(desired, state) -> Plan`: pure; a plan is falsy when there is nothing to do, and says what it would
  change (`changes()`), what it found it cannot do (`findings()`: typed errors, e.g. a missing interface) and
  what the operator should know (`notes()`);
- `apply(plan) -> Result`: one batch, then verify; the result says what it changed (`changes()`) and what
  went wrong (`errors`: typed errors whose `retryable` says whether a retry can help). A driver raises only
  when its daemon cannot be asked at all.
The engine (tor_agent.reconcile.engine) drives all of them alike; tests drive it with fakes of this contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from tor_agent.errors import RuntimeFailure
from tor_agent.frr.apply import FrrApplyResult, FrrDriver, FrrPlan, FrrState
from tor_agent.frr.ledger import DEFAULT_STATE_DIR, InterfaceLedger
from tor_agent.frr.vtysh import Vtysh
from tor_agent.model.links import LinksSpec
from tor_agent.model.overlay import OvsDesired
from tor_agent.model.routes import KernelRoute
from tor_agent.net import KernelState, LinkResult, LinksDriver, LinksPlan, interface_macs, kernel_routes
from tor_agent.ovs.plan import Plan as OvsPlan
from tor_agent.ovs.routes import OvsRouteTable, RouteApplyResult, RoutePlan, RoutesDesired, RouteTableState
from tor_agent.ovs.state import OvsSnapshot
from tor_agent.reconcile.overlay import PassReport
from tor_agent.reconcile.ovs_rows import OvsRows
from tor_agent.render.frr import BFD_PROFILE

D = TypeVar("D", contravariant=True)
S = TypeVar("S")
P = TypeVar("P", bound="PlanLike")
R = TypeVar("R", bound="ResultLike", covariant=True)


class PlanLike(Protocol):
    """What every driver's plan offers."""

    def __bool__(self) -> bool: ...

    def changes(self) -> tuple[str, ...]: ...

    def findings(self) -> Sequence[RuntimeFailure]: ...

    def notes(self) -> tuple[str, ...]: ...


class ResultLike(Protocol):
    """What every driver's result offers."""

    def changes(self) -> tuple[str, ...]: ...

    @property
    def errors(self) -> Sequence[RuntimeFailure]: ...


class Driver(Protocol[D, S, P, R]):
    """read, plan, apply (see the module docstring)."""

    def read(self) -> S: ...

    def plan(self, desired: D, state: S) -> P: ...

    def apply(self, plan: P) -> R: ...


class FrrPort(Driver[str, FrrState, FrrPlan, FrrApplyResult], Protocol):
    """The FRR driver also checks a rendering with FRR's own parser, before anything is changed."""

    def check(self, desired_text: str) -> None: ...


class KernelReader(Protocol):
    """What the engine reads from the kernel besides links: MACs (for the uplink bridges) and routes (peers)."""

    def macs(self) -> Mapping[str, str]: ...

    def routes(self) -> tuple[KernelRoute, ...]: ...


class NetKernel:
    """KernelReader over tor_agent.net (this process's network namespace)."""

    def macs(self) -> Mapping[str, str]:
        return interface_macs()

    def routes(self) -> tuple[KernelRoute, ...]:
        return kernel_routes()


@dataclass
class Drivers:
    """Every driver the engine uses."""

    frr: FrrPort
    links: Driver[LinksSpec, KernelState, LinksPlan, LinkResult]
    ovs: Driver[OvsDesired, OvsSnapshot, OvsPlan, PassReport]
    routes: Driver[RoutesDesired, RouteTableState, RoutePlan, RouteApplyResult]
    kernel: KernelReader


def switch_drivers(state_dir: Path = DEFAULT_STATE_DIR, ovs: OvsRows | None = None) -> Drivers:
    """The drivers of the switch tor-agent runs on (FRR's ledger in `state_dir`)."""
    frr = FrrDriver(Vtysh(), InterfaceLedger.in_dir(state_dir), BFD_PROFILE)
    return Drivers(frr, LinksDriver(), ovs or OvsRows(), OvsRouteTable(), NetKernel())
