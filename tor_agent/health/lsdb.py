"""The area's link-state database as a graph, and what draining a router would do to it. Pure, over the JSON of
FRR 8.4's `show ip ospf database router json` (read by the caller).

Every router of the area holds the same database, so one switch sees the whole fabric: each router's LSA lists
its point-to-point adjacencies with their metrics and its stub networks (its loopback among them). An adjacency
counts when both ends list it. A drained router (`max-metric router-lsa administrative`) advertises every
point-to-point link at the maximum metric (65535): it still forwards, as a last resort, but no shortest path
crosses it while another path exists.

`drain_losses` answers "if this router were drained, which pairs of other routers would keep fewer paths than
the policy allows?": paths are counted as equal-cost shortest paths that cross no drained router (an endpoint
may be drained: it still reaches and is reached).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from tor_agent.health.frr_state import FrrOutputError

ROUTER_LSAS = "show ip ospf database router json"
NEIGHBOR_DETAIL = "show ip ospf neighbor detail json"
MAX_METRIC = 0xFFFF
P2P = "another Router (point-to-point)"


@dataclass(frozen=True)
class RouterLsa:
    """One router's LSA: its adjacencies (neighbour -> metric) and whether it is drained."""

    router_id: IPv4Address
    links: Mapping[IPv4Address, int]

    @property
    def drained(self) -> bool:
        """Every adjacency at the maximum metric (an isolated router is not "drained")."""
        return bool(self.links) and all(m >= MAX_METRIC for m in self.links.values())


@dataclass(frozen=True)
class Lsdb:
    """The area's routers by router ID."""

    routers: Mapping[IPv4Address, RouterLsa]

    def adjacent(self, a: IPv4Address, b: IPv4Address) -> bool:
        """Both ends list the adjacency."""
        ra, rb = self.routers.get(a), self.routers.get(b)
        return ra is not None and rb is not None and b in ra.links and a in rb.links

    def neighbours(self, router: IPv4Address) -> list[IPv4Address]:
        """The routers `router` has a two-way adjacency with, sorted."""
        lsa = self.routers.get(router)
        return sorted(n for n in (lsa.links if lsa else {}) if self.adjacent(router, n))

    def drained(self) -> frozenset[IPv4Address]:
        """The routers advertising max-metric."""
        return frozenset(r for r, lsa in self.routers.items() if lsa.drained)

    def paths(self, source: IPv4Address, target: IPv4Address, avoid: frozenset[IPv4Address]) -> int:
        """How many equal-cost shortest paths lead from `source` to `target` crossing none of `avoid`."""
        best: dict[IPv4Address, int] = {source: 0}
        count: dict[IPv4Address, int] = {source: 1}
        queue = [(0, source)]
        while queue:
            cost, router = heapq.heappop(queue)
            if cost > best.get(router, cost) or (router in avoid and router != source) or router == target:
                continue
            for neighbour in self.neighbours(router):
                step = cost + self.routers[router].links[neighbour]
                if step < best.get(neighbour, step + 1):
                    best[neighbour], count[neighbour] = step, count[router]
                    heapq.heappush(queue, (step, neighbour))
                elif step == best[neighbour]:
                    count[neighbour] += count[router]
        return count.get(target, 0) if target != source else 1


@dataclass(frozen=True)
class PairLoss:
    """A pair of routers that draining would leave with fewer paths than the policy allows."""

    a: IPv4Address
    b: IPv4Address
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.a} <-> {self.b}: {self.before} path(s) now, {self.after} once drained"


def parse_lsdb(data: Any) -> Lsdb:
    """The router LSAs of area 0 from `show ip ospf database router json` (FRR 8.4's layout)."""
    try:
        areas = data["routerLinkStates"]["areas"]
        lsas = areas.get("0.0.0.0", [])
        routers = {}
        for lsa in lsas:
            router_id = IPv4Address(lsa["advertisingRouter"])
            links = {
                IPv4Address(link["neighborRouterId"]): int(link["tos0Metric"])
                for link in lsa.get("routerLinks", {}).values()
                if link.get("linkType") == P2P
            }
            routers[router_id] = RouterLsa(router_id, links)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FrrOutputError(ROUTER_LSAS, f"{type(e).__name__}: {e}") from e
    return Lsdb(routers)


def drain_losses(lsdb: Lsdb, me: IPv4Address, min_paths: int = 1) -> list[PairLoss]:
    """The pairs of other routers that would keep fewer than `min_paths` paths (and fewer than now) avoiding
    every drained router, were `me` drained too."""
    drained_now = lsdb.drained() - {me}
    after_drain = drained_now | {me}
    others = sorted(r for r in lsdb.routers if r != me)
    losses = []
    for i, a in enumerate(others):
        for b in others[i + 1 :]:
            before = lsdb.paths(a, b, drained_now)
            after = lsdb.paths(a, b, after_drain)
            if after < min_paths and after < before:
                losses.append(PairLoss(a, b, before, after))
    return losses


def drain_state(lsdb: Lsdb, me: IPv4Address) -> tuple[bool, list[IPv4Address]]:
    """Whether `me`'s own LSA (as this database holds it) shows it drained, and its adjacent routers."""
    lsa = lsdb.routers.get(me)
    return (lsa is not None and lsa.drained), lsdb.neighbours(me)


def routers_named(routers: Iterable[IPv4Address]) -> str:
    """`198.18.0.11, 198.18.0.12` for messages."""
    return ", ".join(map(str, sorted(routers)))


def retransmissions(neighbor_detail: Any) -> dict[str, int]:
    """Neighbour (by its address) -> LSAs waiting for its acknowledgement, from `show ip ospf neighbor detail
    json`: all zero once every neighbour has acknowledged what this switch flooded."""
    try:
        found = {}
        for neighbours in neighbor_detail["neighbors"].values():
            for n in neighbours:
                found[n["ifaceAddress"]] = int(n["linkStateRetransmissionListCounter"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FrrOutputError(NEIGHBOR_DETAIL, f"{type(e).__name__}: {e}") from e
    return found
