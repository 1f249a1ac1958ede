"""OVS's own route table for native tunnelling (docs/design.md, fact 1): a pure planner and a thin applier;
and the BFD sessions ovs-vswitchd runs on tunnels (read only). Both through ovs-vswitchd's unixctl socket
(what `ovs-appctl` talks to; in-process, tor_agent.ovs.unixctl): neither is in OVSDB (user routes never are;
`bfd/show` is the live session state).

A userspace (`netdev`) OVS encapsulates GRE itself and routes the outer packet with its own table, which
caches the kernel's routes but drops multipath ones (OVS 3.1). So tor-agent keeps exactly one *user* route
per remote VTEP /32, `ovs/route/add <vtep>/32 <uplink bridge> <gateway>`, chosen among the kernel's live
ECMP nexthops for that VTEP by a stable hash of the VTEP (tunnels spread across uplinks; every process
and every restart picks the same), moved when that nexthop dies and moved back when it returns. User
routes are lost when ovs-vswitchd restarts: the next pass finds them missing and adds them again.

Ownership: OVS user routes carry no marker. The /32 user routes whose device is one of tor-agent's
uplink bridges (bridges it created, docs/design.md §8) are tor-agent's; every other user route is left alone.

OVS 3.1 pitfall (found failing in the lab): deleting any route over a bridge (`ovs/route/del`) also drops
that bridge from OVS's tunnel termination table (`tnl/ports/show`: which MAC+IP OVS decapsulates on), and
only the next route *inserted* over that bridge brings it back. GRE arriving through that uplink is then
forwarded to the kernel instead of decapsulated: every tunnel whose peer hashes onto that path goes dark.
(Kernel route changes re-dump OVS's cached routes and repair it by luck; newer OVS reference-counts it.)
So a plan deletes first and then re-inserts a route over every bridge it deleted from, or found not
terminating tunnels ("deaf"); the last route over a bridge is kept (an anchor, harmless: no tunnel
points at a gone VTEP) rather than deleted, so that there is always one to re-insert.

`plan_routes` is pure; `OvsRouteTable` sends `ovs/route/show|add|del` over one kept connection, every
command of a plan in one batch (a reroute of V VTEPs is one round trip, not V `ovs-appctl` processes), each
wait bounded. Adding a route for a prefix that has one replaces it in place: a move has no gap.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from tor_agent.model.routes import Nexthop, OvsRoute
from tor_agent.ovs.errors import OvsError

if TYPE_CHECKING:
    from tor_agent.ovs.unixctl import UnixctlClient

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RouteTableState:
    """OVS's route table and the (MAC, IPv4 address) pairs it decapsulates tunnel packets on."""

    routes: tuple[OvsRoute, ...]
    terminating: frozenset[tuple[str, IPv4Address]]


@dataclass(frozen=True)
class RoutesDesired:
    """What the route table must serve: each VTEP's live nexthops (`tor_agent.model.peers.tunnel_nexthops`),
    over tor-agent's uplink bridges (bridge -> its MAC, for tunnel termination), from this switch's `vtep`."""

    wanted: Mapping[IPv4Address, Collection[Nexthop]]
    bridges: frozenset[str]
    bridge_macs: Mapping[str, str]
    vtep: IPv4Address


@dataclass(frozen=True)
class RoutePlan:
    """What to change in OVS's route table: `add` replaces a route of the same prefix (a move)."""

    add: tuple[OvsRoute, ...] = ()
    delete: tuple[OvsRoute, ...] = ()
    unchanged: int = 0
    unroutable: tuple[IPv4Address, ...] = ()  # VTEPs without a live nexthop over an uplink bridge
    refresh: tuple[OvsRoute, ...] = ()  # re-inserted as they are, after the deletes (see the module's pitfall)
    kept: tuple[OvsRoute, ...] = ()  # not wanted, but the last route over its bridge: kept as the anchor

    def __bool__(self) -> bool:
        return bool(self.add or self.delete or self.refresh)

    def changes(self) -> tuple[str, ...]:
        """One line per change, for reports (refreshes included: they are commands too)."""
        return tuple(what for what, _ in self.commands())

    def commands(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(what, ovs-appctl arguments) per change, in order: deletes, adds (moves), re-inserts."""
        return (
            *((f"route {r.prefix}: delete", ("ovs/route/del", str(r.prefix))) for r in self.delete),
            *((f"route {r}", _add_args(r)) for r in self.add),
            *((f"route {r}: re-inserted (tunnel termination on {r.device})", _add_args(r)) for r in self.refresh),
        )

    def findings(self) -> tuple[RouteTableError, ...]:
        """Every VTEP that gets no OVS route, as an error."""
        return tuple(Unroutable(vtep) for vtep in self.unroutable)

    def notes(self) -> tuple[str, ...]:
        """Routes kept though not wanted: the last one over a bridge (see the module's pitfall)."""
        return tuple(f"route {r}: kept as the last route over {r.device}" for r in self.kept)


def _add_args(route: OvsRoute) -> tuple[str, ...]:
    gateway = (str(route.gateway),) if route.gateway is not None else ()
    return ("ovs/route/add", str(route.prefix), route.device, *gateway)


def plan_table(desired: RoutesDesired, state: RouteTableState) -> RoutePlan:
    """`plan_routes` for `desired` against the table as read; bridges not terminating tunnels to this VTEP
    count as deaf (only while there are VTEPs: OVS lists termination entries only while a tunnel port exists)."""
    deaf = deaf_bridges(state.terminating, desired.bridge_macs, desired.vtep) if desired.wanted else frozenset()
    return plan_routes(desired.wanted, state.routes, desired.bridges, deaf)


def choose_nexthop(vtep: IPv4Address, candidates: Collection[Nexthop]) -> Nexthop:
    """The nexthop `vtep` uses: highest random weight (rendezvous) hashing, stable across processes.

    When a nexthop dies only the VTEPs that used it move; when it returns they move back.
    """
    if not candidates:
        raise ValueError(f"no nexthop for {vtep}")
    return _rendezvous(vtep, tuple(sorted(candidates)))


@lru_cache(maxsize=8192)  # every pass asks again for every VTEP: the answer only changes with the candidates
def _rendezvous(vtep: IPv4Address, candidates: tuple[Nexthop, ...]) -> Nexthop:
    return max(candidates, key=lambda nh: zlib.crc32(f"{vtep}|{nh}".encode()))


def owned_routes(current: Iterable[OvsRoute], bridges: Collection[str]) -> dict[IPv4Network, OvsRoute]:
    """The user /32 routes over tor-agent's uplink bridges, by prefix."""
    return {r.prefix: r for r in current if r.user and r.prefix.prefixlen == 32 and r.device in bridges}


def plan_routes(
    wanted: Mapping[IPv4Address, Collection[Nexthop]],
    current: Iterable[OvsRoute],
    bridges: Collection[str],
    deaf: Collection[str] = (),
) -> RoutePlan:
    """The changes that leave exactly one user route per VTEP of `wanted` (VTEP -> its live nexthops).

    Nexthops not over one of `bridges` are ignored. Owned routes to VTEPs not wanted, or with no live
    nexthop left, are deleted, except the last one over a bridge. Every bridge deleted from, and every
    bridge in `deaf` (not terminating tunnels now), gets a route re-inserted over it.
    """
    owned = owned_routes(current, bridges)
    chosen, unroutable = _choose(wanted, bridges)
    add = [r for r in chosen.values() if owned.get(r.prefix) != r]
    unwanted = [r for p, r in sorted(owned.items()) if p not in chosen]
    on_bridge: dict[str, list[OvsRoute]] = {}
    for route in sorted(chosen.values(), key=lambda r: r.prefix):
        on_bridge.setdefault(route.device, []).append(route)
    kept = [
        leftovers[0]
        for b in sorted(bridges)
        if b not in on_bridge and (leftovers := [r for r in unwanted if r.device == b])
    ]
    delete = [r for r in unwanted if r not in kept]
    refresh = []
    for bridge in sorted({r.device for r in delete} | set(deaf)):
        if any(r.device == bridge for r in add):
            continue  # an insert over this bridge follows the deletes anyway
        survivors = on_bridge.get(bridge) or [r for r in kept if r.device == bridge]
        refresh += survivors[:1]
    unchanged = len(chosen) - len(add)
    return RoutePlan(tuple(add), tuple(delete), unchanged, tuple(unroutable), tuple(refresh), tuple(kept))


def _choose(
    wanted: Mapping[IPv4Address, Collection[Nexthop]], bridges: Collection[str]
) -> tuple[dict[IPv4Network, OvsRoute], list[IPv4Address]]:
    chosen: dict[IPv4Network, OvsRoute] = {}
    unroutable: list[IPv4Address] = []
    for vtep in sorted(wanted):
        candidates = [nh for nh in wanted[vtep] if nh.device in bridges]
        if not candidates:
            unroutable.append(vtep)
            continue
        choice = choose_nexthop(vtep, candidates)
        prefix = IPv4Network((vtep, 32))
        chosen[prefix] = OvsRoute(prefix, choice.device, choice.gateway)
    return chosen, unroutable


def parse_route_show(text: str) -> tuple[OvsRoute, ...]:
    """The IPv4 entries of `ovs-appctl ovs/route/show` (`User: 198.18.0.12/32 dev br-eth1 GW 198.18.1.0 SRC ...`).

    Entries with a packet mark are skipped: tor-agent never adds any.
    """
    routes = []
    for line in text.splitlines():
        kind, _, rest = line.partition(": ")
        words = rest.split()
        if kind not in ("User", "Cached") or len(words) < 3 or words[1] != "dev" or "MARK" in words:
            continue
        try:
            prefix = IPv4Network(words[0])
        except ValueError:
            continue  # IPv6
        gateway = IPv4Address(words[words.index("GW") + 1]) if "GW" in words else None
        routes.append(OvsRoute(prefix, words[2], gateway, user=kind == "User"))
    return tuple(routes)


_LISTENING = re.compile(r"eth\(dst=([0-9a-f:]{17})\),eth_type\(0x0800\),ipv4\(dst=([0-9.]+),")


def parse_tnl_ports(text: str) -> frozenset[tuple[str, IPv4Address]]:
    """(MAC, IPv4 address) of every listening entry of `ovs-appctl tnl/ports/show -v`."""
    return frozenset((m[1], IPv4Address(m[2])) for m in _LISTENING.finditer(text))


def deaf_bridges(
    terminating: Collection[tuple[str, IPv4Address]], bridge_macs: Mapping[str, str], vtep: IPv4Address
) -> frozenset[str]:
    """The bridges (of `bridge_macs`: bridge -> MAC) on which OVS does not decapsulate tunnels to `vtep` now."""
    return frozenset(b for b, mac in bridge_macs.items() if (mac.lower(), vtep) not in terminating)


def parse_bfd_show(text: str) -> dict[str, str]:
    """Interface -> `Local Session State` from `ovs-appctl bfd/show`."""
    states: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("---- ") and stripped.endswith(" ----"):
            current = stripped[5:-5].strip()
        elif current is not None and stripped.startswith("Local Session State:"):
            states[current] = stripped.split(":", 1)[1].strip()
    return states


class RouteTableError(OvsError):
    """ovs-vswitchd could not be reached over its unixctl socket; names the command."""

    retryable = True


@dataclass(frozen=True)
class RouteApplyResult:
    """What `OvsRouteTable.apply` did: the changes made, and each one ovs-vswitchd refused."""

    applied: tuple[str, ...] = ()
    errors: tuple[RouteTableError, ...] = ()

    def changes(self) -> tuple[str, ...]:
        """One line per change made."""
        return self.applied


class OvsRouteTable:
    """ovs-vswitchd's route table over its unixctl socket, in-process (tor_agent.ovs.unixctl): one connection
    kept open, the commands of one apply sent as one batch. `target`: the daemon's name (its socket found
    through its pidfile, as `ovs-appctl -t` finds it) or the socket's path."""

    def __init__(self, target: str = "ovs-vswitchd", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._client: UnixctlClient | None = None

    def read(self) -> RouteTableState:
        """The route table and the tunnel termination entries (one round trip). Raises RouteTableError."""
        show, ports = self._texts([("ovs/route/show", ()), ("tnl/ports/show", ("-v",))])
        return RouteTableState(parse_route_show(show), parse_tnl_ports(ports))

    @staticmethod
    def plan(desired: RoutesDesired, state: RouteTableState) -> RoutePlan:
        """The changes that serve `desired` (pure; see `plan_table`)."""
        return plan_table(desired, state)

    def show(self) -> tuple[OvsRoute, ...]:
        """Every IPv4 route OVS has (user and cached). Raises RouteTableError."""
        return parse_route_show(self._call("ovs/route/show"))

    def terminating(self) -> frozenset[tuple[str, IPv4Address]]:
        """(MAC, IPv4 address) pairs on which OVS decapsulates tunnel packets now (`tnl/ports/show -v`)."""
        return parse_tnl_ports(self._call("tnl/ports/show", "-v"))

    def bfd_states(self) -> dict[str, str]:
        """Interface -> BFD session state (up, down, init, admin_down) of every BFD session ovs-vswitchd runs."""
        return parse_bfd_show(self._call("bfd/show"))

    def apply(self, plan: RoutePlan) -> RouteApplyResult:
        """Delete, add (or move), then re-insert the refreshes, in one batch, in that order; a refused command is
        reported and the rest go on (ovs-vswitchd takes each on its own).

        Raises RouteTableError only when ovs-vswitchd cannot be reached at all.
        """
        commands = plan.commands()
        answers = self._batch([(args[0], args[1:]) for _, args in commands])
        applied: list[str] = []
        failures: list[RouteTableError] = []
        for (what, _), answer in zip(commands, answers, strict=True):
            if isinstance(answer, _Refused):
                failures.append(_Refused(f"{what}: {answer}"))
            else:
                applied.append(what)
        return RouteApplyResult(tuple(applied), tuple(failures))

    def close(self) -> None:
        """Close the connection to ovs-vswitchd (the next call opens one again)."""
        if self._client is not None:
            self._client.close()

    def _call(self, command: str, *args: str) -> str:
        (answer,) = self._texts([(command, args)])
        return answer

    def _texts(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
        """Each request's output; raises the first refusal."""
        texts = []
        for (command, _), answer in zip(requests, self._batch(requests), strict=True):
            if isinstance(answer, _Refused):
                raise _Refused(f"{command}: {answer}")
            texts.append(answer)
        return texts

    def _batch(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[str | _Refused]:
        from tor_agent.ovs.unixctl import UnixctlClient, UnixctlRefused, UnixctlUnreachable

        if self._client is None:
            self._client = UnixctlClient(self.target, self.timeout_s)
        try:
            answers = self._client.batch(requests)
        except UnixctlUnreachable as e:
            raise RouteTableError(f"{requests[0][0]}: ovs-vswitchd not reachable ({e})") from e
        return [_Refused(str(a)) if isinstance(a, UnixctlRefused) else a for a in answers]


class _Refused(RouteTableError):
    """ovs-vswitchd answered and refused the command (e.g. a gateway it has no route to)."""

    retryable = False


class Unroutable(RouteTableError):
    """A VTEP with a tunnel but no live nexthop over an uplink bridge: OVS gets no route to it."""

    retryable = False

    def __init__(self, vtep: IPv4Address) -> None:
        self.vtep = vtep
        super().__init__(f"{vtep}: no live nexthop over an uplink bridge: no OVS route")
