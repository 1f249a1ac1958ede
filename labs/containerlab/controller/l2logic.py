"""Tenant L2 over the fabric's GRE mesh: the lab controller's forwarding logic, pure (no os-ken here).

`Fabric` holds what the controller knows — every switch's ports, where each host MAC lives — and turns
events (a switch or port appears, a packet reaches the controller) into `FlowMod` values; lab_app.py
sends them with os-ken. Tested without a controller in tests/unit/test_lab_controller_logic.py.

Ports: a name starting with `gre-` is a tunnel (tor-agent names them gre-<peer VTEP as 8 hex digits>);
every other named port is an access port facing hosts; the bridge's LOCAL port is ignored.

Pipeline, on every switch (every flow carries COOKIE; nothing else on the switch is touched):
  table 0 (classify, learn): a known (in_port, eth_src) goes on to table 1 (from an access port) or 2 (from
          a tunnel); any other frame from a port goes to the controller (first 128 bytes, to learn) *and*
          on, so it is never held up by the controller;
  table 1 (from access): a known eth_dst goes out of its access port, or into the tunnel towards the
          switch it lives behind; anything else floods to the other access ports and every tunnel;
  table 2 (from a tunnel): a known local eth_dst goes out of its access port; anything else floods to the
          access ports only. Split horizon: what came from a tunnel never goes back into one, so a full
          mesh cannot loop.
A MAC seen on an access port of another switch than before (a migrated VM) moves at once: its flows are
deleted on every switch and installed for the new place, every switch pointing at the new leaf.
The tunnel from switch X towards switch S is found by name: S's own VTEP is the one address every other
switch has a tunnel to but S has not (a full mesh), or, failing that, learned from traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

COOKIE = 0x7A6C_0001
COOKIE_MASK = 0xFFFF_FFFF_FFFF_FFFF
TUNNEL_PREFIX = "gre-"
OFPP_MAX = 0xFFFFFF00  # port numbers above are reserved (LOCAL, CONTROLLER...)
T_CLASSIFY, T_FROM_ACCESS, T_FROM_TUNNEL = 0, 1, 2
P_LEARNED, P_PORT, P_FLOOD = 100, 10, 1
LEARN_BYTES = 128
IDLE_S = 300  # learned flows go when unused; base flows stay

PortKind = Literal["access", "tunnel"]
Command = Literal["add", "delete"]
Match = tuple[tuple[str, int | str], ...]


@dataclass(frozen=True)
class Port:
    no: int
    name: str

    @property
    def kind(self) -> PortKind:
        return "tunnel" if self.name.startswith(TUNNEL_PREFIX) else "access"


def usable(port: Port) -> bool:
    """A real port (not LOCAL or another reserved number)."""
    return 0 < port.no < OFPP_MAX


@dataclass(frozen=True)
class Action:
    """`output` to a port number, `controller` (the first LEARN_BYTES bytes), or `goto` a table."""

    kind: Literal["output", "controller", "goto"]
    arg: int = 0


@dataclass(frozen=True)
class FlowMod:
    """One flow to add (replacing one with the same table, priority and match) or flows to delete.

    A delete matches non-strictly, in `table` (None: every table), and only flows with COOKIE."""

    dpid: int
    command: Command
    table: int | None
    match: Match = ()
    priority: int = 0
    actions: tuple[Action, ...] = ()
    idle_timeout: int = 0
    out_port: int | None = None  # delete: only flows that output to this port


@dataclass(frozen=True)
class Location:
    dpid: int
    port: int


@dataclass
class Switch:
    dpid: int
    ports: dict[int, Port] = field(default_factory=dict)

    def of_kind(self, kind: PortKind) -> list[int]:
        return sorted(p.no for p in self.ports.values() if p.kind == kind)

    def tunnel_names(self) -> dict[str, int]:
        return {p.name: p.no for p in self.ports.values() if p.kind == "tunnel"}


def goto(table: int) -> Action:
    return Action("goto", table)


def output(port: int) -> Action:
    return Action("output", port)


class Fabric:
    """What the controller knows about every switch and host, and the flows that follow from it."""

    def __init__(self) -> None:
        self.switches: dict[int, Switch] = {}
        self.hosts: dict[str, Location] = {}  # MAC -> the access port it was last seen on
        self.learned_tunnels: dict[tuple[int, int], int] = {}  # (switch, towards switch) -> tunnel port
        self.moves = 0

    # --- switches and ports ------------------------------------------------------------------------

    def switch_up(self, dpid: int, ports: list[Port]) -> list[FlowMod]:
        """A switch connected (again): its base flows and everything learned that concerns it. Nothing is
        deleted: flows installed before (by this or another controller) keep forwarding meanwhile."""
        self.switches[dpid] = Switch(dpid, {p.no: p for p in ports if usable(p)})
        return self._base(dpid) + self._all_hosts()

    def switch_down(self, dpid: int) -> None:
        """A switch disconnected: forget its ports (its hosts stay known; its flows stay on it)."""
        self.switches.pop(dpid, None)

    def port_up(self, dpid: int, port: Port) -> list[FlowMod]:
        """A port was added (or renamed): the switch's base flows again, and what a new tunnel reaches."""
        switch = self.switches.get(dpid)
        if switch is None or not usable(port):
            return []
        switch.ports[port.no] = port
        return self._base(dpid) + self._all_hosts()

    def port_down(self, dpid: int, port_no: int) -> list[FlowMod]:
        """A port went away: flows matching or sending to it go, the flood sets are rebuilt, hosts there
        are forgotten."""
        switch = self.switches.get(dpid)
        if switch is None or switch.ports.pop(port_no, None) is None:
            return []
        mods = [
            FlowMod(dpid, "delete", None, (("in_port", port_no),)),
            FlowMod(dpid, "delete", None, out_port=port_no),
        ]
        for mac in [m for m, loc in self.hosts.items() if loc == Location(dpid, port_no)]:
            del self.hosts[mac]
            mods += self._forget(mac)
        self.learned_tunnels = {k: v for k, v in self.learned_tunnels.items() if not (k[0] == dpid and v == port_no)}
        return mods + self._base(dpid)

    def _base(self, dpid: int) -> list[FlowMod]:
        switch = self.switches[dpid]
        access, tunnels = switch.of_kind("access"), switch.of_kind("tunnel")
        mods: list[FlowMod] = []
        for port in sorted(switch.ports.values(), key=lambda p: p.no):
            table = T_FROM_ACCESS if port.kind == "access" else T_FROM_TUNNEL
            mods.append(
                FlowMod(dpid, "add", T_CLASSIFY, (("in_port", port.no),), P_PORT, (Action("controller"), goto(table)))
            )
        for no in access:
            flood = tuple(output(p) for p in [*access, *tunnels] if p != no)
            mods.append(FlowMod(dpid, "add", T_FROM_ACCESS, (("in_port", no),), P_FLOOD, flood))
        mods.append(FlowMod(dpid, "add", T_FROM_TUNNEL, (), P_FLOOD, tuple(output(p) for p in access)))
        return mods

    # --- learning ----------------------------------------------------------------------------------

    def packet_in(self, dpid: int, in_port: int, src: str, dst: str) -> list[FlowMod]:
        """A frame reached the controller from table 0: learn where `src` is."""
        switch = self.switches.get(dpid)
        port = switch.ports.get(in_port) if switch is not None else None
        if port is None or _multicast(src):
            return []
        if port.kind == "access":
            return self._seen_on_access(src, Location(dpid, in_port))
        return self._seen_on_tunnel(src, dpid, in_port)

    def _seen_on_access(self, mac: str, loc: Location) -> list[FlowMod]:
        old = self.hosts.get(mac)
        self.hosts[mac] = loc
        if old == loc:
            return self._host_flows(mac, loc)  # flows expired or were lost: put them back
        if old is not None:
            self.moves += 1
        return self._forget(mac) + self._host_flows(mac, loc)

    def _seen_on_tunnel(self, mac: str, dpid: int, tunnel: int) -> list[FlowMod]:
        loc = self.hosts.get(mac)
        if loc is not None and loc.dpid != dpid:
            expected = self.tunnel_towards(dpid, loc.dpid)
            if expected is None:
                self.learned_tunnels[(dpid, loc.dpid)] = tunnel
                return self._remote(dpid, mac, loc)
            return self._remote(dpid, mac, loc) if expected == tunnel else []  # else: in flight from before a move
        if loc is not None:  # we had it local here: it left for a switch we have not heard from
            del self.hosts[mac]
            mods = self._forget(mac)
        else:
            mods = []
        return mods + self._via_tunnel(dpid, mac, tunnel)

    def tunnel_towards(self, dpid: int, other: int) -> int | None:
        """The tunnel port of switch `dpid` leading to switch `other`, if known."""
        switch, target = self.switches.get(dpid), self.switches.get(other)
        if switch is None:
            return None
        if target is not None:
            names = switch.tunnel_names()
            everyone = {n for s in self.switches.values() if s.dpid != other for n in s.tunnel_names()}
            own = everyone - set(target.tunnel_names())
            if len(own) == 1 and (name := own.pop()) in names:
                return names[name]
        return self.learned_tunnels.get((dpid, other))

    # --- flows -------------------------------------------------------------------------------------

    def _all_hosts(self) -> list[FlowMod]:
        """Every known host's flows on every switch (adds only: idempotent; a switch or tunnel that appeared
        may have made the way to some of them known)."""
        return [m for mac, loc in sorted(self.hosts.items()) for m in self._host_flows(mac, loc)]

    def _host_flows(self, mac: str, loc: Location) -> list[FlowMod]:
        """Where `mac` is local: classify and deliver; everywhere else: send into the tunnel towards it."""
        mods: list[FlowMod] = []
        for dpid in self.switches:
            if dpid == loc.dpid:
                src = (("in_port", loc.port), ("eth_src", mac))
                dst = (("eth_dst", mac),)
                mods += [
                    FlowMod(dpid, "add", T_CLASSIFY, src, P_LEARNED, (goto(T_FROM_ACCESS),), IDLE_S),
                    FlowMod(dpid, "add", T_FROM_ACCESS, dst, P_LEARNED, (output(loc.port),), IDLE_S),
                    FlowMod(dpid, "add", T_FROM_TUNNEL, dst, P_LEARNED, (output(loc.port),), IDLE_S),
                ]
            else:
                mods += self._remote(dpid, mac, loc)
        return mods

    def _remote(self, dpid: int, mac: str, loc: Location) -> list[FlowMod]:
        tunnel = self.tunnel_towards(dpid, loc.dpid)
        return [] if tunnel is None else self._via_tunnel(dpid, mac, tunnel)

    def _via_tunnel(self, dpid: int, mac: str, tunnel: int) -> list[FlowMod]:
        src = (("in_port", tunnel), ("eth_src", mac))
        return [
            FlowMod(dpid, "add", T_CLASSIFY, src, P_LEARNED, (goto(T_FROM_TUNNEL),), IDLE_S),
            FlowMod(dpid, "add", T_FROM_ACCESS, (("eth_dst", mac),), P_LEARNED, (output(tunnel),), IDLE_S),
        ]

    def _forget(self, mac: str) -> list[FlowMod]:
        """Delete every flow about `mac` on every switch."""
        mods = []
        for dpid in self.switches:
            mods += [
                FlowMod(dpid, "delete", T_CLASSIFY, (("eth_src", mac),)),
                FlowMod(dpid, "delete", None, (("eth_dst", mac),)),
            ]
        return mods


def _multicast(mac: str) -> bool:
    return int(mac.split(":")[0], 16) & 1 == 1
