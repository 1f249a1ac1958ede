"""Which ospfd runs, and since when: its pid file under /run/frr and the process's start time under /proc.

A new ospfd (FRR or the switch just started, or watchfrr restarted a crashed one) loads frr.conf and starts
attracting traffic as soon as its adjacencies are Full, before tor-agent has checked anything: the daemon's
start-up protection (tor_agent.reconcile.startup) holds the switch at the maximum metric meanwhile. Two small
file reads, cheap enough to look every second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RUN_DIR = Path("/run/frr")
PROC = Path("/proc")


@dataclass(frozen=True)
class DaemonProcess:
    """An FRR daemon's process: its pid and how long it has been running."""

    pid: int
    age_s: float


def ospfd(run_dir: Path = RUN_DIR, proc: Path = PROC) -> DaemonProcess | None:
    """The running ospfd, or None while there is none (not started, crashed, restarting)."""
    try:
        pid = int((run_dir / "ospfd.pid").read_text().strip())
        stat = (proc / str(pid) / "stat").read_text()
        uptime = float((proc / "uptime").read_text().split()[0])
    except (OSError, ValueError):
        return None
    started = _start_ticks(stat)
    if started is None:
        return None
    return DaemonProcess(pid, max(0.0, uptime - started / os.sysconf("SC_CLK_TCK")))


def _start_ticks(stat: str) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot); the name in field 2 may hold spaces."""
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None
