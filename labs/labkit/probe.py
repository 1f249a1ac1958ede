"""The traffic probe: UDP flows between two nodes of a running lab, in both directions, each sending a
numbered datagram every 2 ms, and the loss windows they saw.

Between two leaves the probe runs loopback to loopback with several flows (one per source port: the
kernel's ECMP hash spreads them over the spines); between two hosts it runs tenant address to tenant
address with one flow each way (GRE has no L4 ports: every flow between two hosts rides the same tunnel).
The receiver reports every gap in a flow's sequence numbers, and every datagram that arrives late into one
(overtaken when a path changes: reordered, not lost); a gap counts what never came. A loss window is the
sender's time between the last datagram before the gap and the first one after it (an upper bound, within
one interval). The
halves inside the nodes are `udp_probe.py`, run by path with the python that runs this.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labs.labkit.fabric import FabricLink, fabric_links, loopback, tenant_address
from labs.labkit.nodes import NodeProcess, node_run
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

PROBE_PORT = 47000
PROBE_SPORTS = (47001, 47002, 47003, 47004)
PROBE_INTERVAL_S = 0.002
FLOWING_BUDGET_S = 10.0
RECENT_NS = 200_000_000  # a flow that delivered within the last 0.2 s is flowing
UDP_PROBE = Path(__file__).resolve().with_name("udp_probe.py")


@dataclass(frozen=True)
class End:
    """One end of the probe: a node and the address its flows start and end at."""

    node: str
    address: str


@dataclass(frozen=True)
class Flow:
    """One probe flow: UDP from `src` to `dst`."""

    src: str
    dst: str
    src_address: str
    dst_address: str
    sport: int
    dport: int = PROBE_PORT

    @property
    def key(self) -> str:
        """How the receiver names the flow."""
        return f"{self.src_address}:{self.sport}"

    def gateway(self, topo: Topology) -> str:
        """The nexthop the sender's kernel picks for this flow now (ECMP hashes on its addresses and ports)."""
        done = node_run(
            topo, self.src, "ip", "-j", "route", "get", self.dst_address, "from", self.src_address,
            "ipproto", "udp", "sport", str(self.sport), "dport", str(self.dport),
        )  # fmt: skip
        (route,) = json.loads(done.stdout)
        return str(route.get("gateway", ""))


@dataclass(frozen=True)
class Window:
    """The longest loss window of one flow in a time span, and the datagrams lost in that span."""

    flow: str
    seconds: float
    lost: int


class Probe:
    """UDP flows between `a` and `b`, both ways, one per source port in `sports`; use as a context manager."""

    def __init__(
        self,
        topo: Topology,
        a: End,
        b: End,
        sports: Sequence[int] = PROBE_SPORTS,
        interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self.topo, self.a, self.b, self.interval_s = topo, a, b, interval_s
        self.sports = tuple(sports)
        self.flows = [
            Flow(src.node, dst.node, src.address, dst.address, sport) for src, dst in ((a, b), (b, a))
            for sport in self.sports
        ]  # fmt: skip
        self._receivers: list[NodeProcess] = []
        self._senders: list[NodeProcess] = []

    @classmethod
    def between_leaves(cls, topo: Topology, a: str, b: str) -> Probe:
        """Flows between the loopbacks of leaves `a` and `b`, several per direction (spread by ECMP)."""
        return cls(topo, End(a, loopback(topo, a)), End(b, loopback(topo, b)))

    @classmethod
    def between_hosts(cls, topo: Topology, a: str, b: str) -> Probe:
        """One flow each way between the tenant addresses of hosts `a` and `b`."""
        return cls(topo, End(a, tenant_address(topo, a)), End(b, tenant_address(topo, b)), PROBE_SPORTS[:1])

    def __enter__(self) -> Probe:
        try:
            for end in (self.a, self.b):
                argv = [sys.executable, str(UDP_PROBE), "recv", end.address, str(PROBE_PORT)]
                self._receivers.append(NodeProcess(self.topo, end.node, argv))
            wait_until(self._ready, FLOWING_BUDGET_S, 0.02, "the probe receivers to listen")
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                argv = [sys.executable, str(UDP_PROBE), "send", src.address, dst.address, str(PROBE_PORT)]
                argv += [str(self.interval_s), *map(str, self.sports)]
                self._senders.append(NodeProcess(self.topo, src.node, argv))
            wait_until(self._flowing, FLOWING_BUDGET_S, 0.02, "every probe flow to arrive")
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill()

    def _ready(self) -> bool:
        return all(r.alive() and r.seen("ready") for r in self._receivers)

    def _flowing(self) -> bool:
        firsts = {e["flow"] for r in self._receivers for e in r.seen("first")}
        return all(s.alive() for s in self._senders) and firsts >= {f.key for f in self.flows}

    def _kill(self) -> None:
        for p in self._senders + self._receivers:
            p.kill()

    def gaps(self) -> list[dict[str, Any]]:
        """Every gap reported so far, less the datagrams that arrived late into it; those filled completely
        by late arrivals are left out."""
        late = [e for r in self._receivers for e in r.seen("late")]
        found = []
        for gap in (e for r in self._receivers for e in r.seen("gap")):
            filled = sum(1 for e in late if e["flow"] == gap["flow"] and gap["from_ns"] < e["sent_ns"] < gap["to_ns"])
            if gap["lost"] > filled:
                found.append({**gap, "lost": gap["lost"] - filled})
        return found

    def latest(self) -> dict[str, int]:
        """Per flow, the send time of the latest datagram received (at the receivers' last progress report)."""
        latest: dict[str, int] = {}
        for r in self._receivers:
            for e in r.seen("progress")[-1:]:
                latest.update(e["last_ns"])
        return latest

    def recovered(self, since_ns: int, flows: Sequence[Flow] | None = None) -> bool:
        """True once traffic lost after `since_ns` flows again: each of `flows` (default: at least one flow)
        lost datagrams sent after `since_ns` and then received again, and every flow delivered within the
        last 0.2 s."""
        closed = {g["flow"] for g in self.gaps() if g["to_ns"] > since_ns}
        lost = closed >= {f.key for f in flows} if flows is not None else bool(closed)
        latest, now = self.latest(), time.monotonic_ns()
        flowing = all(latest.get(f.key, 0) > now - RECENT_NS for f in self.flows)
        return all(s.alive() for s in self._senders) and lost and flowing

    def arrived_since(self, since_ns: int) -> bool:
        """True once every flow has delivered a datagram sent after `since_ns`."""
        latest = self.latest()
        return all(latest.get(f.key, 0) > since_ns for f in self.flows)

    def windows(self, since_ns: int, until_ns: int | None = None) -> dict[str, Window]:
        """Per flow, the longest loss window closed in (`since_ns`, `until_ns`] and the datagrams lost then."""
        found = {f.key: Window(f.key, 0.0, 0) for f in self.flows}
        for g in self.gaps():
            if g["to_ns"] <= since_ns or (until_ns is not None and g["to_ns"] > until_ns):
                continue
            before = found[g["flow"]]
            seconds = max(before.seconds, (g["to_ns"] - g["from_ns"]) / 1e9)
            found[g["flow"]] = Window(g["flow"], seconds, before.lost + int(g["lost"]))
        return found

    def stop(self) -> dict[str, Any]:
        """Stop the senders, then the receivers; every flow's totals."""
        for s in self._senders:
            s.finish()
        totals: dict[str, Any] = {}
        for r in self._receivers:
            r.finish()
            for e in r.seen("totals"):
                totals.update(e["flows"])
        return totals


def first_spine(topo: Topology, flow: Flow) -> FabricLink:
    """The leaf-spine link `flow` leaves its sender (a leaf) by, to the spine it hands the flow to."""
    gateway = flow.gateway(topo)
    for link in fabric_links(topo, flow.src):
        if link.spine_address == gateway:
            return link
    raise RuntimeError(f"{flow.src}: the flow {flow.key} -> {flow.dst_address} goes via {gateway}, not a spine")


def crossing(topo: Topology, flows: Sequence[Flow], link: FabricLink) -> list[Flow]:
    """The flows between leaves whose path crosses `link` now: those between `link.leaf` and another leaf that
    the sender hands to `link.spine` (one hop from spine to leaf: the spine has a direct link to every leaf)."""
    return [f for f in flows if link.leaf in (f.src, f.dst) and first_spine(topo, f).spine == link.spine]
