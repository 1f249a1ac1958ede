"""The live fabric against the plan it was rendered from (`tor-agent verify --fabric`). Pure, over the JSON of
FRR 8.4's `show ip ospf database router json` (read by the caller) and a `FabricView` (fabric.yaml).

Every router of the area holds the same database, so any switch sees the whole fabric. A router's LSA lists
one point-to-point link per adjacency: the neighbour's router ID, the local interface address
(`routerInterfaceAddress`; for an unnumbered interface its ifindex, 0.0.0.N) and the metric; and, whatever
the adjacency's state, a stub network per numbered interface. An adjacency is a pair of such links, one in
each router's LSA. A planned link matches the adjacency between its two switches' router IDs over its two
addresses (unnumbered: any adjacency between the two). What is left over on either side is a finding:

- `absent`: a planned switch without a router LSA (its links are not listed again);
- `unknown`: a router ID the plan does not have;
- `missing`: a planned link with no adjacency (a numbered link cabled to the wrong port forms none: whether
  both ends still advertise the link's subnet tells "up but not adjacent" from "down");
- `wrong`: a planned link whose port is adjacent to another switch, or whose two switches are adjacent over
  other addresses (or, unnumbered, a switch of it adjacent to another one instead);
- `extra`: an adjacency the plan does not have;
- `cost`: a metric other than the planned cost (not checked for a drained router: it advertises 65535);
- `ecmp`: a pair of leaves with fewer equal-cost paths than the plan gives them. Paths avoid drained routers
  in the plan as in the network: a drained router is a note, not a fault.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any, Literal

from tor_agent.health.finding import Finding
from tor_agent.health.frr_state import FrrOutputError
from tor_agent.health.lsdb import MAX_METRIC, P2P, ROUTER_LSAS

if TYPE_CHECKING:  # the fabric package is imported by `verify --fabric` itself: `tor-agent --help` stays quick
    from tor_agent.fabric.planned import FabricView, PlannedLink

FabricKind = Literal["read", "absent", "unknown", "missing", "extra", "wrong", "cost", "ecmp"]
STUB = "Stub Network"
UNNUMBERED = IPv4Network("0.0.0.0/8")  # FRR writes an unnumbered interface's ifindex as 0.0.0.N
NAMES_SHOWN = 8


@dataclass(frozen=True)
class HalfLink:
    """One point-to-point link as one router's LSA lists it."""

    router: IPv4Address
    neighbour: IPv4Address
    address: IPv4Address  # the router's interface address, or 0.0.0.<ifindex> when unnumbered
    metric: int

    @property
    def unnumbered(self) -> bool:
        return self.address in UNNUMBERED

    def where(self) -> str:
        return f"unnumbered (ifindex {int(self.address)})" if self.unnumbered else str(self.address)


@dataclass(frozen=True)
class RouterLinks:
    """One router's LSA: its point-to-point links and its stub networks."""

    router_id: IPv4Address
    links: tuple[HalfLink, ...]
    stubs: tuple[IPv4Network, ...]

    @property
    def drained(self) -> bool:
        """Every point-to-point link at the maximum metric (`max-metric router-lsa`)."""
        return bool(self.links) and all(h.metric >= MAX_METRIC for h in self.links)

    def advertises(self, address: IPv4Interface) -> bool:
        """A stub network holds `address`'s subnet: the interface is up and in OSPF."""
        return address.network in self.stubs


@dataclass(frozen=True)
class Adjacency:
    """Two half-links that list each other."""

    a: HalfLink
    b: HalfLink

    @property
    def routers(self) -> frozenset[IPv4Address]:
        return frozenset((self.a.router, self.b.router))

    def end(self, router: IPv4Address) -> HalfLink:
        return self.a if self.a.router == router else self.b

    def other(self, router: IPv4Address) -> HalfLink:
        return self.b if self.a.router == router else self.a


@dataclass(frozen=True)
class FabricFinding(Finding):
    """One way the live fabric differs from the plan; `subject` names the link, switch or router."""

    kind: FabricKind


@dataclass(frozen=True)
class FabricReport:
    """The comparison: findings (each a fault), notes (planned states such as a drain) and what was compared."""

    fabric: str
    findings: tuple[FabricFinding, ...]
    notes: tuple[str, ...]
    routers: int  # router LSAs in the area
    links: int  # planned links
    matched: int  # planned links found as planned
    leaf_pairs: int  # pairs of leaves whose paths were counted

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self, hostname: str) -> list[str]:
        """The `verify --fabric` report: a headline, then one line per finding and per note."""
        if self.ok:
            head = (
                f"{hostname}: fabric {self.fabric} as planned: {self.routers} routers, {self.matched}/{self.links} "
                f"links, ECMP as planned between {self.leaf_pairs} leaf pair(s)"
            )
        else:
            head = f"{hostname}: fabric {self.fabric} differs from the plan ({len(self.findings)}):"
        return [head, *(f"  {f}" for f in self.findings), *(f"  note: {n}" for n in self.notes)]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "fabric": self.fabric,
            "findings": [f.as_json() for f in self.findings],
            "notes": list(self.notes),
            "routers": self.routers,
            "links": self.links,
            "matched": self.matched,
            "leaf_pairs": self.leaf_pairs,
        }


# --- reading the LSDB --------------------------------------------------------------------------------


def parse_router_links(data: Any) -> dict[IPv4Address, RouterLinks]:
    """Every router LSA of area 0 with its point-to-point links and stub networks (FRR 8.4's layout)."""
    try:
        routers = {}
        for lsa in data["routerLinkStates"]["areas"].get("0.0.0.0", []):
            router = IPv4Address(lsa["advertisingRouter"])
            links, stubs = [], []
            for link in lsa.get("routerLinks", {}).values():
                if link.get("linkType") == P2P:
                    neighbour = IPv4Address(link["neighborRouterId"])
                    address = IPv4Address(link["routerInterfaceAddress"])
                    links.append(HalfLink(router, neighbour, address, int(link["tos0Metric"])))
                elif link.get("linkType") == STUB:
                    stubs.append(IPv4Network(f"{link['networkAddress']}/{link['networkMask']}"))
            routers[router] = RouterLinks(router, tuple(links), tuple(stubs))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FrrOutputError(ROUTER_LSAS, f"{type(e).__name__}: {e}") from e
    return routers


def adjacencies(routers: Mapping[IPv4Address, RouterLinks]) -> list[Adjacency]:
    """The two-way adjacencies: each router's link to a neighbour paired with the neighbour's link back, over
    one subnet where numbered (parallel links between two routers stay apart). One-way links are left out."""
    halves: dict[tuple[IPv4Address, IPv4Address], list[HalfLink]] = defaultdict(list)
    for lsa in routers.values():
        for h in lsa.links:
            halves[(h.router, h.neighbour)].append(h)
    found = []
    for (r, n), mine in sorted(halves.items()):
        if r < n:
            found += _pair(routers[r], mine, list(halves.get((n, r), [])))
    return found


def _pair(router: RouterLinks, mine: list[HalfLink], theirs: list[HalfLink]) -> list[Adjacency]:
    pairs = []
    for h in [h for h in mine if not h.unnumbered]:
        net = _subnet(router, h.address)
        back = next((g for g in theirs if not g.unnumbered and g.address in net), None)
        if back is not None:
            theirs.remove(back)
            mine.remove(h)
            pairs.append(Adjacency(h, back))
    pairs += [Adjacency(h, g) for h, g in zip(mine, theirs, strict=False)]  # unnumbered, or addressed oddly
    return pairs


def _subnet(router: RouterLinks, address: IPv4Address) -> IPv4Network:
    """The router's stub network holding `address` (the longest), else its /31."""
    nets = [n for n in router.stubs if address in n and n.prefixlen < 32]
    return max(nets, key=lambda n: n.prefixlen) if nets else IPv4Network(f"{address}/31", strict=False)


# --- comparing -----------------------------------------------------------------------------------------


class _Free:
    """The adjacencies no planned link has taken yet, by router pair and by router (a fabric of 400 leaves has
    1600 of them: no scan of all for each planned link)."""

    def __init__(self, adjacencies: Iterable[Adjacency]) -> None:
        self.all = list(adjacencies)
        self.left = dict(enumerate(self.all))
        self.index = {id(a): i for i, a in self.left.items()}
        self.pairs: dict[frozenset[IPv4Address], list[int]] = defaultdict(list)
        self.touching: dict[IPv4Address, list[int]] = defaultdict(list)
        for i, a in self.left.items():
            self.pairs[a.routers].append(i)
            for router in a.routers:
                self.touching[router].append(i)

    def between(self, a: IPv4Address, b: IPv4Address) -> list[Adjacency]:
        return [self.left[i] for i in self.pairs.get(frozenset((a, b)), ()) if i in self.left]

    def at(self, router: IPv4Address) -> list[Adjacency]:
        return [self.left[i] for i in self.touching.get(router, ()) if i in self.left]

    def take(self, adjacency: Adjacency) -> Adjacency:
        del self.left[self.index[id(adjacency)]]
        return adjacency

    def __iter__(self) -> Iterator[Adjacency]:
        return iter(list(self.left.values()))


@dataclass
class _Compare:
    view: FabricView
    routers: Mapping[IPv4Address, RouterLinks]
    free: _Free
    findings: list[FabricFinding] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # the leaves of planned links found missing or wrong

    def __post_init__(self) -> None:
        self.rid = {n.name: n.router_id for n in self.view.nodes}
        self.by_rid = {n.router_id: n for n in self.view.nodes}
        self.ends = {  # planned address -> the planned end that has it
            end.address.ip: (end, link) for link in self.view.links for end in (link.spine, link.leaf) if end.address
        }

    def name(self, router: IPv4Address) -> str:
        node = self.by_rid.get(router)
        return node.name if node is not None else f"router {router}"

    def add(self, kind: FabricKind, subject: str, message: str) -> None:
        self.findings.append(FabricFinding(kind, subject, message))

    def take(self, adjacency: Adjacency) -> Adjacency:
        return self.free.take(adjacency)


def compare(view: FabricView, routers: Mapping[IPv4Address, RouterLinks]) -> FabricReport:
    """Every way the area's LSDB differs from the plan in `view`, and the notes (drained routers)."""
    c = _Compare(view, routers, _Free(adjacencies(routers)))
    _nodes(c)
    present = [lk for lk in view.links if c.rid[lk.spine.node] in routers and c.rid[lk.leaf.node] in routers]
    matched = {}
    for numbered in (True, False):  # exact addresses first: they must not be taken by an unnumbered guess
        for link in (lk for lk in present if lk.numbered == numbered):
            adjacency = _as_planned(c, link)
            if adjacency is not None:
                matched[link] = c.take(adjacency)
    for link, adjacency in matched.items():
        _costs(c, link, adjacency)
    for link in present:
        if link not in matched:
            _unmatched(c, link)
    _extras(c)
    pairs, deficits = _ecmp(c, [lk for lk in present])
    _ecmp_findings(c, deficits)
    drained = sorted(r for r, lsa in routers.items() if lsa.drained)
    notes = tuple(f"{c.name(r)} ({r}) is drained (max-metric): paths avoid it by plan" for r in drained)
    return FabricReport(view.fabric, tuple(c.findings), notes, len(routers), len(view.links), len(matched), pairs)


def _nodes(c: _Compare) -> None:
    for node in c.view.nodes:
        if node.router_id not in c.routers:
            planned = sum(1 for lk in c.view.links if node.name in (lk.spine.node, lk.leaf.node))
            c.add(
                "absent",
                f"{node.role} {node.name} ({node.router_id})",
                f"has no router LSA in the area (down, OSPF not running, or another router ID): its {planned} "
                "planned link(s) are missing",
            )
    for router in sorted(set(c.routers) - set(c.by_rid)):
        peers = sorted({c.name(h.neighbour) for h in c.routers[router].links})
        adjacent = f" (adjacent to {_names(peers)})" if peers else ""
        c.add(
            "unknown",
            f"router {router}",
            f"is not in the plan{adjacent}: a switch rendered from another topology, or a router ID changed by hand",
        )


def _as_planned(c: _Compare, link: PlannedLink) -> Adjacency | None:
    s, lf = c.rid[link.spine.node], c.rid[link.leaf.node]
    between = c.free.between(s, lf)
    if link.numbered:
        assert link.spine.address is not None and link.leaf.address is not None
        planned = (link.spine.address.ip, link.leaf.address.ip)
        return next((a for a in between if (a.end(s).address, a.end(lf).address) == planned), None)
    return next((a for a in between if a.end(s).unnumbered and a.end(lf).unnumbered), None)


def _costs(c: _Compare, link: PlannedLink, adjacency: Adjacency) -> None:
    wrong = []
    for end in (link.spine, link.leaf):
        router = c.rid[end.node]
        half = adjacency.end(router)
        if end.cost is not None and half.metric != end.cost and not c.routers[router].drained:
            wrong.append(f"{end.node} advertises cost {half.metric} on {end.port}, the plan {end.cost}")
    if wrong:
        c.add("cost", f"link {link}", "; ".join(wrong))


def _unmatched(c: _Compare, link: PlannedLink) -> None:
    s, lf = c.rid[link.spine.node], c.rid[link.leaf.node]
    c.broken.append(link.leaf.node)
    for end, router in ((link.spine, s), (link.leaf, lf)):  # a planned port adjacent to another switch
        if end.address is None:
            continue
        expected_rid = lf if router == s else s
        taken = next(
            (a for a in c.free.at(router) if a.end(router).address == end.address.ip and expected_rid not in a.routers),
            None,
        )
        if taken is not None:
            far = c.take(taken).other(router)
            expected = link.leaf.node if router == s else link.spine.node
            c.add(
                "wrong",
                f"link {link}",
                f"{end.node}'s {end.port} ({end.address.ip}) is adjacent to {c.name(far.router)} "
                f"({far.where()}) instead of {expected}",
            )
            return
    same_pair = next(iter(c.free.between(s, lf)), None)
    if same_pair is not None:
        c.take(same_pair)
        here, there = same_pair.end(s), same_pair.end(lf)
        planned = c.ends.get(here.address)
        other = f" (planned for link {planned[1]})" if planned is not None else ""
        c.add(
            "wrong",
            f"link {link}",
            f"{link.spine.node} and {link.leaf.node} are adjacent over {here.where()} -- {there.where()} "
            f"instead{other}: another pair of ports",
        )
        return
    if not link.numbered:
        for router, end in ((lf, link.leaf), (s, link.spine)):
            instead = next((a for a in c.free.at(router) if a.end(router).unnumbered), None)
            if instead is not None:
                far = c.take(instead).other(router)
                expected = link.spine.node if router == lf else link.leaf.node
                c.add(
                    "wrong",
                    f"link {link}",
                    f"{end.node} is adjacent to {c.name(far.router)} over an unnumbered link instead of {expected}",
                )
                return
    c.add("missing", f"link {link}", _missing_why(c, link))


def _missing_why(c: _Compare, link: PlannedLink) -> str:
    if not link.numbered:
        return "no adjacency between the two switches"
    down = [
        f"{end.node} does not advertise {end.address.network} (its {end.port} is down or not in OSPF)"
        for end in (link.spine, link.leaf)
        if end.address is not None and not c.routers[c.rid[end.node]].advertises(end.address)
    ]
    if down:
        return "no adjacency: " + "; ".join(down)
    assert link.spine.address is not None
    return (
        f"no adjacency, though both ends advertise {link.spine.address.network}: the ports are up and addressed "
        "but do not reach each other (cabled to other ports?)"
    )


def _extras(c: _Compare) -> None:
    for adjacency in c.free:
        if not adjacency.routers <= c.by_rid.keys():
            continue  # a router the plan does not have: reported once as unknown
        a, b = sorted((adjacency.a, adjacency.b), key=lambda h: (c.by_rid[h.router].role != "spine", c.name(h.router)))
        c.add(
            "extra",
            f"adjacency {c.name(a.router)} -- {c.name(b.router)}",
            f"over {a.where()} -- {b.where()} (metrics {a.metric}/{b.metric}) is not in the plan",
        )


# --- ECMP ----------------------------------------------------------------------------------------------

Graph = dict[
    int, list[tuple[int, int]]
]  # router ID as an integer (hashing IPv4Address costs 10x) -> (neighbour, metric)


def _ecmp(c: _Compare, present: Sequence[PlannedLink]) -> tuple[int, list[tuple[str, str, int, int]]]:
    """Leaf pairs counted, and those with fewer equal-cost paths live than planned: (a, b, planned, live)."""
    live: Graph = defaultdict(list)
    for adjacency in c.free.all:
        for h in (adjacency.a, adjacency.b):
            live[int(h.router)].append((int(h.neighbour), h.metric))
    usual = _usual_metric(c.routers.values())
    plan: Graph = defaultdict(list)
    for link in present:
        s, lf = int(c.rid[link.spine.node]), int(c.rid[link.leaf.node])
        plan[s].append((lf, link.spine.cost or usual))
        plan[lf].append((s, link.leaf.cost or usual))
    avoid = frozenset(int(r) for r, lsa in c.routers.items() if lsa.drained)
    leaves = [(n.name, int(n.router_id)) for n in c.view.nodes if n.role == "leaf" and n.router_id in c.routers]
    deficits, pairs = [], 0
    for i, (name, source) in enumerate(leaves):
        planned, now = _path_counts(plan, source, avoid), _path_counts(live, source, avoid)
        for target, router in leaves[i + 1 :]:
            pairs += 1
            p, q = planned.get(router, 0), now.get(router, 0)
            if q < p:
                deficits.append((name, target, p, q))
    return pairs, deficits


def _usual_metric(routers: Iterable[RouterLinks]) -> int:
    """The most common live metric below the maximum: the cost of a link whose planned cost is FRR's auto-cost."""
    metrics = Counter(h.metric for lsa in routers for h in lsa.links if h.metric < MAX_METRIC)
    return metrics.most_common(1)[0][0] if metrics else 1


def _path_counts(graph: Graph, source: int, avoid: frozenset[int]) -> dict[int, int]:
    """Equal-cost shortest paths from `source` to every router, crossing none of `avoid` (an endpoint may be
    one); parallel links count as separate paths, as in FRR's ECMP."""
    best = {source: 0}
    count = {source: 1}
    queue = [(0, source)]
    done: set[int] = set()
    while queue:
        cost, router = heapq.heappop(queue)
        if router in done:
            continue
        done.add(router)
        if router in avoid and router != source:
            continue
        for neighbour, metric in graph.get(router, ()):
            step = cost + metric
            if neighbour not in best or step < best[neighbour]:
                best[neighbour], count[neighbour] = step, count[router]
                heapq.heappush(queue, (step, neighbour))
            elif step == best[neighbour] and neighbour not in done:
                count[neighbour] += count[router]
    return count


def _ecmp_findings(c: _Compare, deficits: list[tuple[str, str, int, int]]) -> None:
    """One finding per leaf and (planned, live) count: first the leaves with a link found wrong or missing
    (the cause), then the leaf in most deficient pairs."""
    order = {n.name: i for i, n in enumerate(c.view.nodes)}
    broken = Counter(c.broken)
    left = list(deficits)
    while left:
        seen = Counter(x for a, b, _, _ in left for x in (a, b))
        leaf = min(seen, key=lambda n: (-broken[n], -seen[n], order[n]))
        mine = [d for d in left if leaf in d[:2]]
        left = [d for d in left if leaf not in d[:2]]
        groups: dict[tuple[int, int], list[str]] = defaultdict(list)
        for a, b, p, q in mine:
            groups[(p, q)].append(b if a == leaf else a)
        for (p, q), others in sorted(groups.items()):
            c.add("ecmp", f"ECMP {leaf}", f"{q} of {p} planned equal-cost path(s) to {_names(others)}")


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMES_SHOWN])
    return shown + (f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else "")


__all__ = [
    "Adjacency",
    "FabricFinding",
    "FabricReport",
    "HalfLink",
    "RouterLinks",
    "adjacencies",
    "compare",
    "parse_router_links",
]
