"""When the daemon runs its next pass, and which kind: pure, with an explicit `now` (as `KeepalivePolicy`).

- Netlink changes are debounced and batched: a pass runs `debounce` s after the last change, and a stream of
  changes delays it by at most `DEBOUNCE_CAP` debounce intervals. A link or address change asks for a full
  pass; route changes alone for an overlay pass (peers, tunnels, OVS routes).
- Route changes the daemon can act on at once (`reroute`: a netdev leaf, the kernel's table kept from the
  route events) ask for a routes pass first, `settle` s after the last one (a burst of a route change
  arrives within a millisecond or two; capped at `DEBOUNCE_CAP` settles): OVS's tunnel routes follow the
  kernel's before the overlay pass, which still comes `debounce` s later.
- A full pass every `full_every` s is the safe fallback; after a pass with problems the next full pass comes
  sooner, backing off 1, 2, 4 ... s up to `full_every`.
- When a held tunnel's hold-down ends, an overlay pass decides it.
- Before the first good pass, no event pass runs: the retried full pass does everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Literal

from tor_agent.net.monitor import NetlinkChanges

Scope = Literal["full", "overlay", "routes"]
DEBOUNCE_CAP = 5
HOLD_MARGIN_S = 0.05  # a pass exactly at a hold-down's end would still hold it
REROUTE_SETTLE_S = 0.002


@dataclass
class Schedule:
    """The daemon's timers and pending events."""

    full_every: float
    debounce: float
    next_full: float = 0.0
    backoff: float = 0.0
    hold_ends: float | None = None  # when the first held tunnel's hold-down ends
    changes: NetlinkChanges = field(default_factory=NetlinkChanges)
    first_change: float = 0.0
    last_change: float = 0.0
    settle: float = REROUTE_SETTLE_S
    reroute_first: float | None = None  # a routes pass is pending since then
    reroute_last: float = 0.0

    def netlink(self, changes: NetlinkChanges, now: float) -> None:
        """Netlink reported `changes`."""
        if not changes:
            return
        if not self.changes:
            self.first_change = now
        self.changes.merge(changes)
        self.last_change = now

    def reroute(self, now: float) -> None:
        """Route changes the daemon can apply to OVS's route table at once arrived."""
        if self.reroute_first is None:
            self.reroute_first = now
        self.reroute_last = now

    def full_now(self, now: float) -> None:
        """Ask for a full pass at once (start, reload, a new intent)."""
        self.next_full = now

    def due(self, now: float, ready: bool) -> Scope | None:
        """The pass to run now, if any."""
        if now >= self.next_full:
            return "full"
        if not ready:
            return None
        events = self._events_due()
        if (self.hold_ends is not None and now >= self.hold_ends) or (events is not None and now >= events):
            return "full" if self.changes.links else "overlay"
        reroute = self._reroute_due()
        if reroute is not None and now >= reroute:
            return "routes"
        return None

    def deadline(self, ready: bool) -> float:
        """When `due` may next say something (the daemon sleeps until then unless woken)."""
        times = [self.next_full]
        if ready:
            times += [t for t in (self.hold_ends, self._events_due(), self._reroute_due()) if t is not None]
        return min(times)

    def started(self, scope: Scope = "full") -> NetlinkChanges:
        """A pass starts: a full or overlay pass covers every change so far; a routes pass only the reroute (the
        overlay pass stays due)."""
        self.reroute_first = None
        if scope == "routes":
            return NetlinkChanges()
        changes, self.changes = self.changes, NetlinkChanges()
        self.hold_ends = None
        return changes

    def finished(self, scope: Scope, failed: bool, now: float, held: Mapping[IPv4Address, float] | None = None) -> None:
        """A pass ended (`failed`: with problems, or it crashed); `held`: tunnels kept, seconds left each. A routes
        pass changes no timer: the overlay pass due after it does what it could not."""
        if scope == "routes":
            return
        self.backoff = min(self.full_every, max(1.0, self.backoff * 2)) if failed else 0.0
        if scope == "full":
            self.next_full = now + (self.backoff if failed else self.full_every)
        elif failed:
            self.next_full = min(self.next_full, now + self.backoff)
        self.hold_ends = now + min(held.values()) + HOLD_MARGIN_S if held else None

    def _reroute_due(self) -> float | None:
        if self.reroute_first is None:
            return None
        return min(self.reroute_last + self.settle, self.reroute_first + DEBOUNCE_CAP * self.settle)

    def _events_due(self) -> float | None:
        if not self.changes:
            return None
        return min(self.last_change + self.debounce, self.first_change + DEBOUNCE_CAP * self.debounce)
