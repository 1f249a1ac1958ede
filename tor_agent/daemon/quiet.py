"""The daemon's FRR driver: FRR is read in full (vtysh, ~25 ms of CPU here) only when it may have changed.

FRR announces no change, so the periodic full pass is what repairs a hand edit in FRR. Most passes find it
as tor-agent left it: before reading, this driver takes a fingerprint of every daemon's running configuration
over their vty sockets (tor_agent.frr.vty: no process, ~1 ms), and when it equals the one taken before the
last read that found nothing to change, it hands the engine that read (and its plan) again. Any change (a
hand edit, a daemon restarted or down, tor-agent's own apply) makes the next read a full one: a hand edit
is still found by the next full pass, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tor_agent.frr.apply import FrrApplyResult, FrrPlan, FrrState
from tor_agent.reconcile.drivers import FrrPort

log = logging.getLogger(__name__)


class QuietFrr:
    """`FrrPort` over `inner`, reading FRR again only when `fingerprint()` moved (see the module)."""

    def __init__(self, inner: FrrPort, fingerprint: Callable[[], str]) -> None:
        self.inner = inner
        self.fingerprint = fingerprint
        self.reads = 0  # full reads (vtysh): the status file shows how rarely they happen
        self.skipped = 0
        self._synced: tuple[str, FrrState] | None = None  # (fingerprint, the read that needed no change)
        self._taken: str | None = None  # the fingerprint taken before the last full read
        self._last: FrrState | None = None
        self._plan: tuple[str, FrrState, FrrPlan] | None = None

    def check(self, desired_text: str) -> None:
        self.inner.check(desired_text)

    def read(self) -> FrrState:
        mark = self.fingerprint()
        if self._synced is not None and self._synced[0] == mark:
            self.skipped += 1
            return self._synced[1]
        self._synced = None
        self._taken = mark
        self._last = self.inner.read()
        self.reads += 1
        return self._last

    def plan(self, desired_text: str, state: FrrState) -> FrrPlan:
        if self._plan is not None and self._plan[0] == desired_text and self._plan[1] is state:
            return self._plan[2]
        plan = self.inner.plan(desired_text, state)
        self._plan = (desired_text, state, plan)
        return plan

    def apply(self, plan: FrrPlan) -> FrrApplyResult:
        try:
            result = self.inner.apply(plan)
        except BaseException:
            self._synced = None
            raise
        if result.changed or self._taken is None or self._last is None:
            self._synced = None  # FRR changed (by this apply): the next pass reads it in full
        elif self._synced is None:
            self._synced = (self._taken, self._last)  # as read, FRR needed nothing: trusted until it moves
        return result
