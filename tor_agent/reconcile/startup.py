"""Start-up protection: after FRR or the switch starts, the switch advertises the maximum metric on every transit
link until tor-agent's first pass is done and its uplinks are verified, at most `underlay.ospf.startup_max_metric_s`
(a returning spine must not attract traffic it cannot forward yet). Pure: fed observations with explicit times.

A hold begins when a new ospfd is seen that started less than the limit ago (at the agent's start too, which
covers the switch's boot), or when a pass finds `max-metric` in FRR that the drain state does not explain (an
agent restarted in the middle of a hold; one typed by hand is released at once, its uplinks being Full).
Which ospfd's hold is over is remembered in /run/tor-agent (gone after a reboot, as the hold should be), so
that an agent restarted shortly after FRR does not hold the switch again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from tor_agent.fileio import replace_file
from tor_agent.frr.daemons import DaemonProcess

STARTUP_FILE = Path("/run/tor-agent/startup.json")


@dataclass
class StartupHold:
    """The hold and what it was last told."""

    limit_s: float
    pid: int | None = None  # the ospfd seen last
    since: float | None = None  # monotonic: when the hold began (None: not holding)
    released: int | None = None  # the ospfd whose hold is over: its max-metric is now the agent's to remove

    @property
    def active(self) -> bool:
        return self.since is not None

    def ospfd(self, process: DaemonProcess | None, now: float) -> bool:
        """What runs as ospfd now; True when that begins a hold (a new ospfd, younger than the limit, whose
        hold is not already over)."""
        if process is None or process.pid == self.pid:
            return False
        self.pid = process.pid
        if self.limit_s <= 0 or process.age_s >= self.limit_s or self.released == process.pid:
            return False
        self.since = now - process.age_s
        return True

    def found_max_metric(self, running: bool, drained: bool, now: float) -> None:
        """A pass read FRR: `max-metric` there while not drained begins a hold (unless one runs, or this ospfd's
        hold is already over)."""
        over = self.released is not None and self.released == self.pid
        if running and not drained and self.since is None and self.limit_s > 0 and not over:
            self.since = now

    def expired(self, now: float) -> bool:
        return self.since is not None and now - self.since >= self.limit_s

    def release(self) -> None:
        self.since, self.released = None, self.pid


def remembered(path: Path = STARTUP_FILE) -> int | None:
    """The ospfd whose hold is over, as an earlier agent recorded it."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return int(json.loads(path.read_text())["released"])
    return None


def remember(hold: StartupHold, path: Path = STARTUP_FILE) -> None:
    """Record which ospfd's hold is over (a failure only costs an extra hold after an agent restart)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps({"released": hold.released}) + "\n")
