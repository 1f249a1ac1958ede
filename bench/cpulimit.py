"""A switch-class CPU for the benches: processes confined to one core and a CPU quota (a cgroup), so that costs
that only show on a ToR's management CPU (one ~825 MHz core: roughly a tenth of one of our cores) show here.

cgroup v2's `cpu.max` where the unified hierarchy has the cpu controller; else cgroup v1's
`cpu.cfs_quota_us` (this machine: the v2 hierarchy carries no cpu controller); else none, and `why` says why.
A quota of P % gives the group P ms of CPU time per 100 ms period: a process needing 10 ms of CPU takes
about 100 ms at 10 %. Every process started from a confined one stays confined (cgroups and CPU affinity
are inherited). `add(pid)` confines a process by its pid as this (the host's) namespace sees it: lab nodes
have their own /sys, without the cgroup file systems, so processes there cannot join by themselves.
`close()` removes the group (its processes move back to the root group first).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PERIOD_US = 100_000
CGROUP_ROOT = Path("/sys/fs/cgroup")


class CpuLimit:
    """A cgroup `name` with `percent` % of one CPU, its processes pinned to CPU `cpu`."""

    def __init__(self, name: str, percent: float, cpu: int = 0) -> None:
        self.name, self.percent, self.cpu = name, percent, cpu
        self.path: Path | None = None
        self.mechanism = ""
        self.why = ""
        quota_us = max(1000, int(PERIOD_US * percent / 100))
        for mechanism, make in (("cgroup v2 cpu.max", self._v2), ("cgroup v1 cpu.cfs_quota_us", self._v1)):
            try:
                self.path = make(quota_us)
            except OSError as e:
                self.why += f"{mechanism}: {e.strerror or e}; "
                continue
            if self.path is not None:
                self.mechanism = mechanism
                return
        self.why = self.why.rstrip("; ") or "no cpu controller found"

    @property
    def active(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        if not self.active:
            return f"no CPU quota possible here ({self.why})"
        return f"{self.percent:g} % of one core (CPU {self.cpu}), by {self.mechanism}"

    def _v2(self, quota_us: int) -> Path | None:
        for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
            controllers = root / "cgroup.controllers"
            if controllers.exists() and "cpu" in controllers.read_text().split():
                (root / "cgroup.subtree_control").write_text("+cpu")
                path = root / self.name
                path.mkdir(exist_ok=True)
                (path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
                return path
        return None

    def _v1(self, quota_us: int) -> Path | None:
        root = CGROUP_ROOT / "cpu"
        if not (root / "cpu.cfs_quota_us").exists():
            return None
        path = root / self.name
        path.mkdir(exist_ok=True)
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(quota_us))
        return path

    @property
    def procs(self) -> Path:
        assert self.path is not None
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        """Confine a running process (every one of its threads)."""
        if self.path is None:
            return
        self.procs.write_text(str(pid))
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), {self.cpu})

    def close(self) -> None:
        """Move the group's processes back to the root group (all CPUs) and remove it."""
        if self.path is None:
            return
        for pid in self.procs.read_text().split():
            with contextlib.suppress(OSError):
                (self.path.parent / "cgroup.procs").write_text(pid)
                for task in os.listdir(f"/proc/{pid}/task"):
                    os.sched_setaffinity(int(task), range(os.cpu_count() or 1))
        with contextlib.suppress(OSError):
            self.path.rmdir()
        self.path = None
