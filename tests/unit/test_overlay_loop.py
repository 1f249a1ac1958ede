"""The OVSDB loop (tor_agent.reconcile.overlay.OverlayLoop) over an in-memory replica: OVSDB's own bursts of
changes are debounced, the engine's update is applied at once (the engine holds its lock while it waits)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ovs_rows import snapshot_of

from tor_agent.model.overlay import EMPTY
from tor_agent.ovs.state import Action, ApplyResult, OvsSnapshot
from tor_agent.reconcile.overlay import OverlayLoop, OverlayReconciler, PassReport
from tor_agent.wait import wait_until


@dataclass
class Replica:
    """An OVSDB replica that records how the loop waits on it (and whether a debounce wait came first)."""

    generation: int = 0
    waits: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    _wake: threading.Event = field(default_factory=threading.Event)

    def snapshot(self, full: bool = False) -> OvsSnapshot:
        return snapshot_of(EMPTY)

    def apply(self, actions: Sequence[Action]) -> ApplyResult:
        return ApplyResult(committed=False)

    def run(self) -> None:
        pass

    def wait(self, timeout: float, fds: Sequence[int] = ()) -> None:
        self.waits.append(timeout)
        self.events.append("short wait" if timeout <= 0.025 else "wait")  # a debounce, or the loop's sleep
        self._wake.wait(min(timeout, 0.05))


def test_an_engine_update_is_applied_at_once_and_ovsdb_changes_are_debounced() -> None:
    replica = Replica()
    reports: list[PassReport] = []
    loop = OverlayLoop(OverlayReconciler(replica, EMPTY), replica, debounce=0.02, full_every=3600.0)
    loop.on_report = lambda report: (replica.events.append("pass"), reports.append(report))  # type: ignore[func-returns-value]
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: reports, 5, 0.01, "the loop's first (full) pass")
        replica.events.clear()
        loop.update(EMPTY)
        wait_until(lambda: "pass" in replica.events, 5, 0.01, "the pass for the engine's update")
        assert "short wait" not in replica.events[: replica.events.index("pass")]  # no debounce before it
        replica.events.clear()
        replica.generation += 1  # OVSDB reported a change
        wait_until(lambda: "pass" in replica.events, 5, 0.01, "the pass for OVSDB's change")
        assert "short wait" in replica.events[: replica.events.index("pass")]  # debounced: a burst is let in first
    finally:
        loop.stop()
        thread.join(5)
        loop.close()
