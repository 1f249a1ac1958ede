"""What the daemon keeps of the kernel between passes, and the CPU time its passes take.

The kernel announces every change of its links, addresses and routes (tor_agent.net.monitor): the
interfaces' MACs and the main route table, once read, are kept up to date from those announcements and
read again only when they cannot be (a link or address change: the kernel drops a downed link's routes
without a word; lost announcements) or after `max_age_s`. So a periodic full pass dumps nothing, and a
route change is answered from the kept table at once (the routes pass).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tor_agent.model.routes import KernelRoute
from tor_agent.net.monitor import KernelRouteTable, NetlinkChanges
from tor_agent.reconcile.drivers import KernelReader

MAX_AGE_S = 300.0  # a dump at least this often all the same


class KernelView:
    """The engine's kernel reader, answering from what it kept while the announcements cover it."""

    def __init__(
        self, kernel: KernelReader, max_age_s: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kernel, self.max_age_s, self.clock = kernel, max_age_s, clock
        self.table = KernelRouteTable()
        self.dumps = 0  # route table dumps (the status file shows how rarely they happen)
        self._routes_at = 0.0
        self._macs: Mapping[str, str] | None = None
        self._macs_at = 0.0

    def changed(self, changes: NetlinkChanges) -> bool:
        """The kernel announced `changes`; whether the kept route table still has every route."""
        if changes.links or changes.routes_lost:
            self._macs = None
        return self.table.update(changes)

    def macs(self) -> Mapping[str, str]:
        if self._macs is None or self.clock() - self._macs_at >= self.max_age_s:
            self._macs, self._macs_at = self.kernel.macs(), self.clock()
        return self._macs

    def routes(self) -> tuple[KernelRoute, ...]:
        if self.table.valid and self.clock() - self._routes_at < self.max_age_s:
            return self.table.routes()
        routes = self.kernel.routes()
        self.table.reset(routes)
        self._routes_at = self.clock()
        self.dumps += 1
        return routes


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds (user + system): this process's, all threads, and its child processes' that ended (vtysh,
    nft, ...: work done for the agent)."""

    own: float
    children: float

    @classmethod
    def now(cls) -> CpuTimes:
        """The times so far (getrusage: microseconds, where os.times counts 10 ms ticks)."""
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime)

    @property
    def total(self) -> float:
        """Own and children's."""
        return self.own + self.children

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.own + other.own, self.children + other.children)

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.own - other.own, self.children - other.children)
