"""Keep OVS equal to the desired overlay, driven by OVSDB's own change notifications.

- `OverlayReconciler.run_once()` does one pass against a driver (`OvsConnection`, or a fake in tests):
  snapshot, `tor_agent.ovs.plan.diff_overlay`, one transaction, verify; a pass with nothing to do sends
  nothing to OVSDB.
- `OverlayLoop` drives the reconciler from OVSDB change notifications (debounced), with a periodic full
  pass as the safe fallback; the engine hands it new desired state with `update()` from another thread. A
  `sidecar` (the controller keeper, tor_agent.reconcile.controllers) runs in the same thread on the same
  connection. The loop's own passes (drift repair) take the engine's lock, as every writer does; a pass for
  an engine update runs under the lock the engine already holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from tor_agent.errors import RuntimeFailure
from tor_agent.model.overlay import OvsDesired
from tor_agent.ovs.errors import InterfaceError, OvsError
from tor_agent.ovs.plan import Plan, diff_overlay
from tor_agent.ovs.state import (
    Action,
    AddBridge,
    AddPort,
    ApplyResult,
    Conflict,
    DeleteBridge,
    DeletePort,
    InterfaceFailure,
    OvsSnapshot,
    UpdateBridge,
    UpdatePort,
)

log = logging.getLogger(__name__)

LOCK_RETRY_S = 0.05  # a drift repair waits this long when another writer holds the lock


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

    def changes(self) -> tuple[str, ...]:
        """One line per change made (none when the pass failed)."""
        return self.plan.changes() if self.error is None else ()

    @property
    def errors(self) -> tuple[RuntimeFailure, ...]:
        """What went wrong, one error each: the pass's own, every conflict, every failed interface."""
        found: list[RuntimeFailure] = [] if self.error is None else [self.error]
        found += Plan(conflicts=self.conflicts, failures=self.failures).findings()
        return tuple(found)

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
        self.last_snapshot: OvsSnapshot | None = None  # what the last pass read (a frozen value: any thread may look)
        self._reported: tuple[tuple[Conflict, ...], tuple[InterfaceFailure, ...]] = ((), ())

    def run_once(self, full: bool = False) -> PassReport:
        """Diff against a snapshot (`full`: re-read every row) and apply the actions in one transaction."""
        start = time.monotonic()
        plan = Plan()
        try:
            snap = self.last_snapshot = self.driver.snapshot(full)
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


class TryLock(Protocol):
    """A lock the loop may take without blocking (`tor_agent.reconcile.lock.EngineLock`)."""

    def try_held(self) -> AbstractContextManager[bool]: ...


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
    lock_waits: int = 0  # passes of its own put off because another writer held the lock
    last: PassReport | None = None


@dataclass
class OverlayLoop:
    """Run the reconciler whenever OVSDB reports a change (debounced) and every `full_every` s.

    `run()` blocks (call it from one thread, which then owns the connection); `update()` and `stop()` may
    be called from any thread. After a failed pass the next one comes `retry_after` s later. The
    `sidecar`'s `tick()` runs on every wake-up: OVSDB input, one of its fds readable, or its deadline.
    A pass of the loop's own (an OVSDB change, the periodic full pass) runs only while it holds `lock`; when
    another writer holds it, the loop tries again `LOCK_RETRY_S` later. A pass for an `update()` runs at once
    (no debounce) and without taking it: the engine that handed the update holds it and waits for that pass.
    """

    reconciler: OverlayReconciler
    events: EventSource
    debounce: float = 0.02
    full_every: float = 60.0
    retry_after: float = 1.0
    on_report: Callable[[PassReport], None] | None = None
    stats: LoopStats = field(default_factory=LoopStats)
    sidecar: Sidecar | None = None
    lock: TryLock | None = None

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
        retry_at = 0.0  # a pass of the loop's own that found the lock taken waits until then
        while not self._stopped:
            self.events.run()
            if self.sidecar is not None:
                self.sidecar.tick()
            updated = self._take_update()
            now = time.monotonic()
            due = now >= next_full and now >= retry_at
            if due or updated or (self.events.generation != seen and now >= retry_at):
                if not due and not updated:  # an engine update runs at once: the engine holds its lock meanwhile
                    updated = self._settle() or updated
                with self._held(updated) as mine:
                    if not mine:
                        self.stats.lock_waits += 1
                        retry_at = now + LOCK_RETRY_S
                        continue
                    seen = self.events.generation
                    report = self._pass(due)
                next_full = now + self.full_every if due else next_full
                if report.error is not None:
                    next_full = min(next_full, time.monotonic() + self.retry_after)
                continue
            waiting_for_lock = self.events.generation != seen or now >= next_full
            self._sleep(now, retry_at if waiting_for_lock else next_full)

    def _sleep(self, now: float, until: float) -> None:
        fds = [self._wake_r]
        if self.sidecar is not None:
            until = min(until, self.sidecar.next_wakeup())
            fds += self.sidecar.fds()
        self.events.wait(until - now, fds)
        self._drain()

    def _held(self, updated: bool) -> AbstractContextManager[bool]:
        """The lock for this pass: none for an engine update (the engine holds it), else the lock if free."""
        if updated or self.lock is None:
            return _granted()
        return self.lock.try_held()

    def _settle(self) -> bool:
        """Let a burst of changes arrive before diffing: wait `debounce` s; True if an update came meanwhile."""
        end = time.monotonic() + self.debounce
        while (remaining := end - time.monotonic()) > 0 and not self._stopped:
            self.events.wait(remaining, [self._wake_r])
            self.events.run()
            self._drain()
        return self._take_update()

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


@contextmanager
def _granted() -> Iterator[bool]:
    yield True
