"""The switch's writer: what runs now, and every change an operator makes to it. The daemon holds one (and is
then the only writer, docs/design.md §6); without a daemon, each mutating command makes its own.

- `candidate(path)` / `candidate_from(entry)`: load and prepare an intent file, or a history entry (a refusal
  changes nothing);
- `adopt(candidate, who)`: it runs from now on; recorded in the history (and `pinned` for a rollback, so that
  it survives a restart of the agent instead of the intent file);
- `run(scope)`: one pass of the running intent, drained or not as the agent state says;
- `drain(force)` / `undrain()`: the drain state (agent state, not intent), with the path check from the live
  link-state database before draining;
- commit-confirm: `begin_trial`, `confirm`, and `roll_back_trial` (the timer and the health watch are the
  daemon's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tor_agent.config import load, load_text
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, RuntimeFailure, TorAgentError
from tor_agent.health.lsdb import PairLoss
from tor_agent.model.routes import KernelRoute
from tor_agent.reconcile.agentstate import AgentState, Drain, PendingConfirm, boot_id
from tor_agent.reconcile.engine import Engine
from tor_agent.reconcile.history import Entry, History, Who
from tor_agent.reconcile.report import EngineReport
from tor_agent.reconcile.stages import Prepared, Scope
from tor_agent.reconcile.startup import StartupHold

log = logging.getLogger(__name__)


class DrainRefused(TorAgentError):
    """Draining would leave router pairs with fewer paths than the policy allows; names them."""

    def __init__(self, losses: list[PairLoss]) -> None:
        self.losses = losses
        pairs = "; ".join(map(str, losses))
        super().__init__(f"drain refused, {len(losses)} pair(s) would be short of paths: {pairs} (--force drains)")


class NothingPending(TorAgentError):
    """`confirm` with no commit-confirm waiting."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class Candidate:
    """An intent file (or history entry) loaded and checked by every stage, with its text."""

    prepared: Prepared
    text: str
    source: Path


@dataclass
class Writer:
    """The running intent and the changes made to it; `losses` reads the path check from the live LSDB."""

    engine: Engine
    history: History
    state: AgentState
    losses: Callable[[Any, int], list[PairLoss]] | None = None  # (intent, min paths) -> pairs short of paths
    prepared: Prepared | None = None
    entry: Entry | None = None
    drain_state: Drain = field(default_factory=Drain)

    def __post_init__(self) -> None:
        self.drain_state = self.state.drain()

    # --- what runs ---

    def candidate(self, path: Path, intent: Intent | None = None) -> Candidate:
        """`path` loaded (unless the caller already did: `intent`) and prepared. Raises ConfigError or
        IntentRefused (nothing changed)."""
        intent = intent if intent is not None else load(path)
        text = path.read_text(encoding="utf-8")
        return Candidate(self.engine.prepare(intent), text, path)

    def candidate_from(self, entry: Entry) -> Candidate:
        """A history entry, loaded as it was applied (relative paths in it resolve where they did then)."""
        text = self.history.intent_text(entry)
        intent = load_text(text, entry.source, Path(entry.base_dir))
        return Candidate(self.engine.prepare(intent), text, Path(entry.source))

    def adopt(self, candidate: Candidate, who: Who, pinned: bool = False, confirmed: bool = True) -> Entry:
        """Make `candidate` the running intent and record it."""
        self.prepared = candidate.prepared
        entry = self.history.record(candidate.text, candidate.prepared.frr_text, who, candidate.source, confirmed)
        self.history.set_current(entry, pinned)
        self.entry = entry
        return entry

    def pinned_entry(self) -> Entry | None:
        """The history entry to run instead of the intent file (after a rollback), if any."""
        current, pinned = self.history.current()
        if current is None or not pinned:
            return None
        try:
            return self.history.get(current)
        except RuntimeFailure as e:
            log.warning("the pinned intent cannot be read, running the intent file: %s", e)
            return None

    def run(
        self, scope: Scope = "full", startup: StartupHold | None = None, routes: Sequence[KernelRoute] | None = None
    ) -> EngineReport:
        """One pass of the running intent (drained as the agent state says; `startup`: the daemon's protection;
        `routes`: the kernel's route table as the daemon keeps it, for a routes pass)."""
        assert self.prepared is not None
        return self.engine.apply(self.prepared, scope, drained=self.drained, startup=startup, routes=routes)

    # --- drain ---

    @property
    def drained(self) -> bool:
        return self.drain_state.drained

    def check_drain(self, min_paths: int | None = None) -> list[PairLoss]:
        """The pairs draining would leave short of paths (empty: safe to drain); `min_paths` defaults to the
        intent's `underlay.ospf.drain_min_paths`."""
        if self.losses is None or self.prepared is None:
            return []
        intent = self.prepared.intent
        wanted = intent.underlay.ospf.drain_min_paths if min_paths is None else min_paths
        return self.losses(intent, wanted) if wanted > 0 else []

    def drain(self, force: bool = False, min_paths: int | None = None) -> list[PairLoss]:
        """Drain the switch (persisted); refused with DrainRefused when the path check fails, unless `force`.
        Returns the pairs that are short of paths (only non-empty when forced)."""
        losses: list[PairLoss] = []
        if not self.drained:
            try:
                losses = self.check_drain(min_paths)
            except RuntimeFailure:
                if not force:
                    raise
                log.warning("drain --force: the path check could not run; draining without it")
        if losses and not force:
            raise DrainRefused(losses)
        if not self.drained:
            self.drain_state = Drain(True, time.time(), forced=bool(losses))
            self.state.set_drain(self.drain_state)
        return losses

    def undrain(self) -> None:
        """Undrain the switch (persisted)."""
        self.drain_state = Drain()
        self.state.set_drain(self.drain_state)

    # --- commit-confirm ---

    def begin_trial(self, candidate: Candidate, seconds: float, degrade: bool, baseline: dict[str, Any]) -> Entry:
        """Run `candidate` on trial: unless confirmed within `seconds`, the switch goes back to the intent
        confirmed last (kept as the trial's `previous` when a trial replaces another)."""
        pending = self.state.pending()
        previous = pending.previous if pending is not None else self._confirmed_now().id
        entry = self.adopt(candidate, "cli", confirmed=False)
        trial = PendingConfirm(entry.id, previous, time.time() + seconds, boot_id(), degrade, baseline)
        self.state.set_pending(trial)
        return entry

    def confirm(self) -> Entry:
        """Keep the intent on trial. Raises NothingPending."""
        pending = self.state.pending()
        if pending is None:
            raise NothingPending("nothing to confirm: no `apply --confirm` is waiting")
        self.state.set_pending(None)
        entry = self.history.mark_confirmed(self.history.get(pending.entry))
        if self.entry is not None and self.entry.id == entry.id:
            self.entry = entry
        return entry

    def roll_back_trial(self, who: Who) -> Entry:
        """Go back to the trial's previous intent (the pass is the caller's). Raises NothingPending."""
        pending = self.state.pending()
        if pending is None:
            raise NothingPending("no `apply --confirm` is waiting")
        entry = self.adopt(self.candidate_from(self.history.get(pending.previous)), who, pinned=True)
        self.state.set_pending(None)
        return entry

    def settle_plain_apply(self) -> None:
        """A plain apply during a trial confirms it (as a plain commit does on Junos): the trial is over."""
        if self.state.pending() is not None:
            self.state.set_pending(None)

    def _confirmed_now(self) -> Entry:
        """The entry running now, which a trial goes back to."""
        if self.entry is None:
            raise RuntimeFailure("no intent is running yet: nothing to go back to")
        return self.entry
