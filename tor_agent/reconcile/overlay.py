"""Keep OVS equal to the desired overlay: diff as sets → actions → one transaction → verify.

- `diff_overlay(desired, snapshot)` (pure) compares owned rows only and returns a `Plan`: actions for the
  added, changed and deleted bridges, ports, controllers and the SSL row, plus conflicts (foreign rows in
  the way), never touching a row tor-agent does not own. The controller set of a bridge is replaced in the
  same transaction as everything else, so it never passes through zero controllers (which would clear the
  bridge's flow tables); removing the last one is refused unless the desired state allows it.
- `OverlayReconciler.run_once()` does one pass against a driver (`OvsConnection`, or a fake in tests);
  a pass with nothing to do sends nothing to OVSDB.
- `OverlayLoop` drives the reconciler from OVSDB change notifications (debounced), with a periodic full
  pass as the safe fallback; other threads hand it new desired state with `update()`. A `sidecar` (the
  controller keeper, tor_agent.reconcile.controllers) runs in the same thread on the same connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.errors import InterfaceError, OvsError
from tor_agent.ovs.state import (
    Action,
    AddBridge,
    AddController,
    AddPort,
    ApplyResult,
    Conflict,
    ControllerState,
    DeleteBridge,
    DeleteController,
    DeletePort,
    DeleteSsl,
    InterfaceFailure,
    OvsSnapshot,
    ReconnectController,
    SetSsl,
    UpdateBridge,
    UpdateController,
    UpdatePort,
)

log = logging.getLogger(__name__)

_NOT_OURS = "exists without tor-agent's marker: not modified"
_ADDED = (AddBridge, AddPort, AddController)
_CHANGED = (UpdateBridge, UpdatePort, UpdateController, ReconnectController, SetSsl)
_DELETED = (DeleteBridge, DeletePort, DeleteController, DeleteSsl)


@dataclass(frozen=True)
class Plan:
    """The difference between desired and current state, over rows tor-agent owns."""

    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    unchanged: int = 0

    def count(self, kind: type | tuple[type, ...]) -> int:
        return sum(isinstance(a, kind) for a in self.actions)

    def summary(self) -> str:
        parts = [
            f"{self.count(_ADDED)} added",
            f"{self.count(_CHANGED)} changed",
            f"{self.count(_DELETED)} deleted",
            f"{self.unchanged} unchanged",
        ]
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflicts")
        return ", ".join(parts)


def diff_overlay(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """Actions that turn `snap` into `desired`, touching owned rows only."""
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    unchanged = 0
    blocked: set[str] = set()
    for name, spec in desired.bridges.items():
        bridge = snap.bridges.get(name)
        if bridge is None:
            actions.append(AddBridge(spec))
        elif not bridge.owned:
            conflicts.append(Conflict("Bridge", name, _NOT_OURS))
            blocked.add(name)
        elif bridge.matches(spec):
            unchanged += 1
        else:
            actions.append(UpdateBridge(spec))
    for name, port_spec in desired.ports.items():
        if snap.port_matches(port_spec):
            unchanged += 1
        elif port_spec.bridge in blocked:
            conflicts.append(Conflict("Port", name, f"its bridge {port_spec.bridge} is not tor-agent's"))
        elif (clash := _foreign(snap, name)) is not None:
            conflicts.append(clash)
        else:
            actions.append(AddPort(port_spec) if name not in snap.ports else UpdatePort(port_spec))
    actions += [DeletePort(n) for n, p in snap.ports.items() if p.owned and n not in desired.ports]
    for name, bridge in snap.bridges.items():
        if bridge.owned and name not in desired.bridges:
            foreign = sorted(p for p in bridge.ports if p in snap.ports and not snap.ports[p].owned)
            if foreign:
                reason = f"no longer wanted but holds ports tor-agent does not own ({', '.join(foreign)}): kept"
                conflicts.append(Conflict("Bridge", name, reason))
            else:
                actions.append(DeleteBridge(name))
    if snap.controllers is not None:
        for part in (_diff_controllers(desired, snap), _diff_ssl(desired, snap)):
            actions += part.actions
            conflicts += part.conflicts
            unchanged += part.unchanged
    return Plan(tuple(actions), tuple(conflicts), unchanged)


def _diff_controllers(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """Controller rows: added, changed and deleted per bridge, never leaving a kept bridge without any."""
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    unchanged = 0
    held: dict[str, list[ControllerState]] = {}
    for state in snap.controllers or ():
        if state.bridge is not None:
            held.setdefault(state.bridge, []).append(state)
    bridge = desired.controller_bridge
    if bridge is not None and desired.controllers:
        here = held.get(bridge, [])
        foreign = {c.canonical for c in here if not c.owned}
        mine = {c.canonical: c for c in sorted(here, key=lambda c: not c.is_connected) if c.owned}
        for target, spec in desired.controllers.items():
            if target in foreign:
                conflicts.append(Conflict("Controller", target, _NOT_OURS))
            elif target not in mine:
                actions.append(AddController(bridge, spec))
            elif mine[target].spec == spec:
                unchanged += 1
            else:
                actions.append(UpdateController(bridge, spec))
    for name, states in sorted(held.items()):
        if name not in desired.bridges or name not in snap.bridges:
            continue  # goes with its bridge
        wanted = desired.controllers if name == bridge else {}
        kept = _kept_rows(states, wanted)
        drop = [c for c in states if c.owned and c not in kept]
        if drop and not kept and not wanted and not desired.allow_controller_removal:
            targets = ", ".join(sorted(c.target for c in drop))
            reason = (
                f"no controller wanted, but removing the last one ({targets}) would clear the bridge's flow "
                "tables: kept (see docs/controllers.md to remove them on purpose)"
            )
            conflicts.append(Conflict("Controller", name, reason))
            continue
        actions += [DeleteController(name, c.target) for c in drop]
    return Plan(tuple(actions), tuple(conflicts), unchanged)


def _kept_rows(states: Sequence[ControllerState], wanted: Mapping[str, object]) -> list[ControllerState]:
    """The rows that stay on a bridge: every foreign one, and one owned row per wanted target (preferring a
    connected one when a target is there twice)."""
    kept = [c for c in states if not c.owned]
    chosen: set[str] = set()
    for c in sorted(states, key=lambda c: not c.is_connected):
        if c.owned and c.canonical in wanted and c.canonical not in chosen:
            chosen.add(c.canonical)
            kept.append(c)
    return kept


def _diff_ssl(desired: OvsDesired, snap: OvsSnapshot) -> Plan:
    """The switch-wide SSL row: set when wanted, removed when tor-agent owns it and it is not wanted."""
    have = snap.ssl
    if desired.ssl is None:
        return Plan((DeleteSsl(),)) if have is not None and have.owned else Plan()
    if have is None:
        return Plan((SetSsl(desired.ssl),))
    if not have.owned:
        return Plan(conflicts=(Conflict("SSL", "SSL", _NOT_OURS),))
    return Plan(unchanged=1) if have.spec == desired.ssl else Plan((SetSsl(desired.ssl),))


def _foreign(snap: OvsSnapshot, name: str) -> Conflict | None:
    port, iface = snap.ports.get(name), snap.interfaces.get(name)
    if port is not None and not port.owned:
        return Conflict("Port", name, _NOT_OURS)
    if iface is not None and not iface.owned:
        return Conflict("Interface", name, _NOT_OURS)
    return None


class OvsDriver(Protocol):
    """What the reconciler needs from a driver (`tor_agent.ovs.connection.OvsConnection`, or a fake)."""

    def snapshot(self, full: bool = False) -> OvsSnapshot: ...

    def apply(self, actions: Sequence[Action]) -> ApplyResult: ...


@dataclass(frozen=True)
class PassReport:
    """One reconcile pass: the plan, what applying it did, and what is still wrong."""

    plan: Plan
    result: ApplyResult | None = None  # None: nothing to apply (or the pass failed before applying)
    failures: tuple[InterfaceFailure, ...] = ()  # every owned interface ovs-vswitchd has not set up
    error: OvsError | None = None
    seconds: float = 0.0
    full: bool = False

    @property
    def wrote(self) -> bool:
        """True when this pass sent a transaction to OVSDB."""
        return self.result is not None and self.result.committed

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        extra = self.result.conflicts if self.result is not None else ()
        return tuple(dict.fromkeys((*self.plan.conflicts, *extra)))

    def raise_for_errors(self) -> None:
        """Raise the pass's error, or an InterfaceError naming every failed interface."""
        if self.error is not None:
            raise self.error
        if self.failures:
            raise InterfaceError(self.failures)

    def summary(self) -> str:
        text = f"overlay pass{' (full)' if self.full else ''}: {self.plan.summary()} in {self.seconds * 1000:.1f} ms"
        if self.error is not None:
            text += f"; error: {self.error}"
        if self.failures:
            text += f"; {len(self.failures)} interfaces failed: " + "; ".join(map(str, self.failures))
        return text


class OverlayReconciler:
    """Converges OVS to a desired overlay, one pass at a time, through a driver."""

    def __init__(self, driver: OvsDriver, desired: OvsDesired) -> None:
        self.driver = driver
        self.desired = desired
        self._reported: tuple[tuple[Conflict, ...], tuple[InterfaceFailure, ...]] = ((), ())

    def run_once(self, full: bool = False) -> PassReport:
        """Diff against a snapshot (`full`: re-read every row) and apply the actions in one transaction."""
        start = time.monotonic()
        plan = Plan()
        try:
            snap = self.driver.snapshot(full)
            plan = diff_overlay(self.desired, snap)
            result = self.driver.apply(plan.actions) if plan.actions else None
            failures = _failures_after(snap, plan, result)
        except OvsError as e:
            report = PassReport(plan, error=e, seconds=time.monotonic() - start, full=full)
        else:
            report = PassReport(plan, result, failures, seconds=time.monotonic() - start, full=full)
        self._log(report)
        return report

    def _log(self, report: PassReport) -> None:
        if report.error is not None:
            log.warning("%s", report.summary())
        elif report.plan.actions:
            log.info("%s", report.summary())
        state = (report.conflicts, report.failures)
        if report.error is None and state != self._reported:
            for conflict in report.conflicts:
                log.warning("OVS conflict: %s", conflict)
            for failure in report.failures:
                log.warning("OVS %s", failure)
            self._reported = state


def _failures_after(snap: OvsSnapshot, plan: Plan, result: ApplyResult | None) -> tuple[InterfaceFailure, ...]:
    """Failed owned interfaces: as the snapshot saw them, updated for what this pass wrote.

    The driver checked every interface it wrote; the rest did not change. (Re-reading the whole snapshot
    here would cost ~50 ms after writing a thousand rows; the next pass reads them anyway.)
    """
    if result is None:
        return snap.owned_failures()
    acted = {a.name for a in plan.actions if isinstance(a, DeletePort | DeleteBridge)}
    acted |= {a.spec.name for a in plan.actions if isinstance(a, AddPort | UpdatePort | AddBridge | UpdateBridge)}
    kept = [f for f in snap.owned_failures() if f.interface not in acted]
    return tuple(sorted((*kept, *result.failures), key=lambda f: f.interface))


class EventSource(Protocol):
    """An OVSDB replica that can be waited on (`OvsConnection`)."""

    @property
    def generation(self) -> int: ...

    def run(self) -> None: ...

    def wait(self, timeout: float, fds: Sequence[int] = ()) -> None: ...


class Sidecar(Protocol):
    """Work that shares the loop's thread and OVSDB connection (`ControllerKeeper`)."""

    def fds(self) -> Sequence[int]: ...

    def next_wakeup(self) -> float: ...

    def tick(self) -> None: ...


@dataclass
class LoopStats:
    passes: int = 0
    full_passes: int = 0
    writes: int = 0
    errors: int = 0
    last: PassReport | None = None


@dataclass
class OverlayLoop:
    """Run the reconciler whenever OVSDB reports a change (debounced) and every `full_every` s.

    `run()` blocks (call it from one thread, which then owns the connection); `update()` and `stop()` may
    be called from any thread. After a failed pass the next one comes `retry_after` s later. The
    `sidecar`'s `tick()` runs on every wake-up: OVSDB input, one of its fds readable, or its deadline.
    """

    reconciler: OverlayReconciler
    events: EventSource
    debounce: float = 0.02
    full_every: float = 60.0
    retry_after: float = 1.0
    on_report: Callable[[PassReport], None] | None = None
    stats: LoopStats = field(default_factory=LoopStats)
    sidecar: Sidecar | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: OvsDesired | None = None
        self._stopped = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    def update(self, desired: OvsDesired) -> None:
        """Hand the loop new desired state (e.g. the discovered peers changed); safe from any thread."""
        with self._lock:
            self._pending = desired
        os.write(self._wake_w, b"u")

    def stop(self) -> None:
        """Ask `run()` to return after the current pass; safe from any thread."""
        self._stopped = True
        os.write(self._wake_w, b"s")

    def close(self) -> None:
        """Release the wake-up pipe (after `run()` returned)."""
        os.close(self._wake_r)
        os.close(self._wake_w)

    def run(self) -> None:
        """Reconcile until `stop()`: first a full pass, then on every change and every `full_every` s."""
        seen = None
        next_full = time.monotonic()
        while not self._stopped:
            self.events.run()
            if self.sidecar is not None:
                self.sidecar.tick()
            updated = self._take_update()
            now = time.monotonic()
            full = now >= next_full
            if full or updated or self.events.generation != seen:
                if not full:
                    self._settle()
                seen = self.events.generation
                report = self._pass(full)
                next_full = now + self.full_every if full else next_full
                if report.error is not None:
                    next_full = min(next_full, time.monotonic() + self.retry_after)
                continue
            if self.sidecar is None:
                self.events.wait(next_full - now, [self._wake_r])
            else:
                wake = min(next_full, self.sidecar.next_wakeup())
                self.events.wait(wake - now, [self._wake_r, *self.sidecar.fds()])
            self._drain()

    def _settle(self) -> None:
        """Let a burst of changes arrive before diffing: wait `debounce` s, processing updates."""
        end = time.monotonic() + self.debounce
        while (remaining := end - time.monotonic()) > 0 and not self._stopped:
            self.events.wait(remaining, [self._wake_r])
            self.events.run()
            self._drain()
        self._take_update()

    def _pass(self, full: bool) -> PassReport:
        report = self.reconciler.run_once(full=full)
        self.stats.passes += 1
        self.stats.full_passes += full
        self.stats.writes += report.wrote
        self.stats.errors += report.error is not None
        self.stats.last = report
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _take_update(self) -> bool:
        with self._lock:
            desired, self._pending = self._pending, None
        if desired is None:
            return False
        self.reconciler.desired = desired
        return True

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
