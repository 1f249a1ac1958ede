"""The OVS rows driver the engine uses: `read()`, a pure `plan(desired, state)`, `apply(plan)`.

It talks to OVSDB directly over one connection, opened on first use (the CLI; the daemon's first pass). The
daemon then calls `start_loop()`: the connection moves to an `OverlayLoop` thread, which repairs drift as
OVSDB reports it, and from then on `apply` hands the plan's desired state to that loop and waits for the pass
that applied it. Either way `apply` re-plans against the replica right before the transaction (OVSDB may
have changed since `read()`), and `read()` in loop mode returns the loop's latest snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tor_agent.model.overlay import EMPTY, OvsDesired
from tor_agent.ovs.errors import OvsdbUnavailable, OvsError
from tor_agent.ovs.plan import Plan, diff_overlay
from tor_agent.ovs.state import OvsSnapshot
from tor_agent.reconcile.overlay import LoopStats, OverlayLoop, OverlayReconciler, PassReport, Sidecar, TryLock

log = logging.getLogger(__name__)

CONVERGE_TIMEOUT_S = 20.0  # a pass through the loop: a transaction plus ovs-vswitchd's reconfiguration
SidecarFactory = Callable[[Any], Sidecar | None]  # the open connection -> work sharing the loop's thread


@dataclass
class _Looping:
    loop: OverlayLoop
    thread: threading.Thread
    sidecar: Sidecar | None


class OvsRows:
    """OVSDB's bridges, ports, interfaces, controllers and SSL row, as the engine's driver."""

    def __init__(
        self, remote: str | None = None, timeout: float = 10.0, converge_timeout: float = CONVERGE_TIMEOUT_S
    ) -> None:
        self.remote, self.timeout, self.converge_timeout = remote, timeout, converge_timeout
        self._conn: Any = None
        self._reconciler: OverlayReconciler | None = None
        self._looping: _Looping | None = None
        self._cond = threading.Condition()
        self._applied: tuple[OvsDesired, PassReport] | None = None

    # --- the contract ---

    def read(self) -> OvsSnapshot:
        """Every row, owned and foreign. Raises OvsdbUnavailable."""
        if self._looping is not None:
            last = self._looping.loop.reconciler.last_snapshot
            if last is None:
                raise OvsdbUnavailable(self.remote or "ovsdb-server", "the OVSDB loop has not read the database yet")
            return last
        snap: OvsSnapshot = self.connection().snapshot(full=True)
        return snap

    @staticmethod
    def plan(desired: OvsDesired, state: OvsSnapshot) -> Plan:
        """The actions that turn `state` into `desired`, over owned rows (pure; `diff_overlay`)."""
        return diff_overlay(desired, state)

    def apply(self, plan: Plan) -> PassReport:
        """Converge to `plan.desired` in one transaction, verified (see the module docstring)."""
        desired = plan.desired if plan.desired is not None else EMPTY
        if self._looping is not None:
            return self._through_loop(desired)
        try:
            reconciler = self._direct_reconciler()
        except OvsError as e:
            return PassReport(plan, error=e)
        reconciler.desired = desired
        return reconciler.run_once(full=True)

    # --- the connection and the loop ---

    def connection(self) -> Any:
        """The open `OvsConnection` (opened now if needed). Raises OvsdbUnavailable."""
        if self._looping is not None:
            raise OvsError("the OVSDB connection belongs to the loop thread")
        if self._conn is None:
            from tor_agent.ovs.connection import DEFAULT_REMOTE, OvsConnection

            self._conn = OvsConnection.open(self.remote or DEFAULT_REMOTE, self.timeout)
        return self._conn

    @property
    def looping(self) -> bool:
        """Whether an OverlayLoop thread owns the connection."""
        return self._looping is not None

    @property
    def sidecar(self) -> Sidecar | None:
        """The work sharing the loop's thread (the controller keeper), if any."""
        return self._looping.sidecar if self._looping is not None else None

    def loop_stats(self) -> LoopStats | None:
        """The loop's counters, while it runs."""
        return self._looping.loop.stats if self._looping is not None else None

    def start_loop(self, full_every: float, lock: TryLock, sidecar: SidecarFactory | None = None) -> bool:
        """Hand the open connection to an OverlayLoop thread (after a first `apply`); False when there is none
        to hand over yet. `lock` is taken by the loop's own passes; `sidecar` builds work for its thread."""
        if self._looping is not None or self._conn is None or self._reconciler is None:
            return self._looping is not None
        conn = self._conn
        side = sidecar(conn) if sidecar is not None else None
        loop = OverlayLoop(self._reconciler, conn, full_every=full_every, sidecar=side, lock=lock)
        loop.on_report = self._on_report
        thread = threading.Thread(target=loop.run, name="ovsdb-loop", daemon=True)
        self._looping = _Looping(loop, thread, side)
        thread.start()
        log.info("OVSDB loop started: drift is repaired as OVSDB reports it")
        return True

    def loop_alive(self) -> bool:
        """False when a started loop thread has died."""
        return self._looping is None or self._looping.thread.is_alive()

    def stop_loop(self) -> None:
        """Stop the loop thread and close the connection; the next `apply` opens a new one."""
        looping, self._looping = self._looping, None
        if looping is not None:
            looping.loop.stop()
            looping.thread.join(timeout=30)
            looping.loop.close()
            close = getattr(looping.sidecar, "close", None)
            if close is not None:
                close()
        self.close()

    def close(self) -> None:
        """Close the connection, if open (the loop must be stopped first)."""
        if self._conn is not None:
            self._conn.close()
        self._conn, self._reconciler = None, None

    def _direct_reconciler(self) -> OverlayReconciler:
        conn = self.connection()
        if self._reconciler is None:
            self._reconciler = OverlayReconciler(conn, EMPTY)
        return self._reconciler

    def _on_report(self, report: PassReport) -> None:
        """The loop's callback (its own thread): remember which desired state this pass applied."""
        assert self._looping is not None
        with self._cond:
            self._applied = (self._looping.loop.reconciler.desired, report)
            self._cond.notify_all()

    def _through_loop(self, desired: OvsDesired) -> PassReport:
        assert self._looping is not None
        with self._cond:
            self._looping.loop.update(desired)
            done = self._cond.wait_for(
                lambda: self._applied is not None and self._applied[0] is desired, self.converge_timeout
            )
            if done and self._applied is not None:
                return self._applied[1]
        error = OvsError(f"the OVSDB loop did not apply the new state within {self.converge_timeout:g}s")
        return PassReport(Plan(desired=desired), error=error)
