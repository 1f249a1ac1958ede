"""What the daemon keeps between passes to answer a route change at once: the kernel's route table, from the
last dump and the route events after it (tor_agent.net.monitor), and CPU time, to report what passes cost."""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass

from tor_agent.model.routes import KernelRoute
from tor_agent.net.monitor import KernelRouteTable
from tor_agent.reconcile.drivers import KernelReader


class KeptRoutes:
    """The engine's kernel reader that keeps the route table of every dump (`table`), for the routes pass."""

    def __init__(self, kernel: KernelReader) -> None:
        self.kernel = kernel
        self.table = KernelRouteTable()

    def macs(self) -> Mapping[str, str]:
        return self.kernel.macs()

    def routes(self) -> tuple[KernelRoute, ...]:
        routes = self.kernel.routes()
        self.table.reset(routes)
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

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.own - other.own, self.children - other.children)
