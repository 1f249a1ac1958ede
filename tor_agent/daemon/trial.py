"""A commit-confirm on trial (`tor-agent apply --confirm SECONDS`): unless `tor-agent confirm` comes within the
window, the switch goes back to the intent confirmed last; with `--rollback-on-degrade` it goes back as soon as
health is worse than before the change (tor_agent.health.score), checked every half second and after every
pass or netlink event. The window is in the agent state (tor_agent.reconcile.agentstate), so it survives a
restart of the agent; a reboot inside it comes back on the previous intent (the daemon's start)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tor_agent.errors import RuntimeFailure
from tor_agent.health import status as underlay_status
from tor_agent.health.readers import read_underlay
from tor_agent.health.score import Score
from tor_agent.reconcile.history import Who

if TYPE_CHECKING:
    from tor_agent.daemon.service import Daemon

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
READ_TIMEOUT_S = 2.0


class Trial:
    """The daemon's watch over a pending commit-confirm."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._next_check: float | None = None  # monotonic; None: check at the window's end only

    def deadline(self) -> float:
        """When `check` is next due (monotonic), or infinity with nothing pending."""
        pending = self.daemon.writer.state.pending()
        if pending is None:
            return math.inf
        end = time.monotonic() + pending.remaining()
        return min(end, self._next_check) if self._next_check is not None else end

    def due(self, now: float) -> bool:
        return now >= self.deadline()

    def soon(self) -> None:
        """Something changed (a pass, a netlink event): check the health watch at once."""
        pending = self.daemon.writer.state.pending()
        if pending is not None and pending.rollback_on_degrade:
            self._next_check = time.monotonic()

    def check(self) -> None:
        """Roll back a trial whose window passed, or whose health got worse; else plan the next look."""
        pending = self.daemon.writer.state.pending()
        self._next_check = None
        if pending is None:
            return
        if pending.remaining() <= 0:
            self._roll_back("confirm-timeout", f"not confirmed within its window (history entry {pending.entry})")
            return
        if not pending.rollback_on_degrade:
            return
        try:
            worse = self.score().worse_than(Score.from_json(pending.baseline))
        except RuntimeFailure as e:
            log.warning("commit-confirm: cannot read the switch's health (looking again): %s", e)
            worse = []
        if worse:
            self._roll_back("degraded", "health got worse: " + "; ".join(worse))
            return
        self._next_check = time.monotonic() + CHECK_EVERY_S

    def score(self) -> Score:
        """The switch's health now."""
        d = self.daemon
        assert d.intent is not None
        st = underlay_status(read_underlay(d.intent, READ_TIMEOUT_S), d.intent)
        keeper = d.keeper()
        return Score(
            full=sum(1 for u in st.uplinks if u.healthy),
            widths={str(v.address): v.width for v in st.vteps},
            controllers=len(keeper.status().connected) if keeper is not None else 0,
            tunnels=len(d.last.peers.usable) if d.last is not None else 0,
        )

    def _roll_back(self, who: Who, why: str) -> None:
        log.warning("commit-confirm: rolling back to the previous intent: %s", why)
        entry = self.daemon.writer.roll_back_trial(who)
        self.daemon.after_change(Path(entry.source))
        self.daemon.run_pass("full")
