"""Tenant networks over the fabric's GRE mesh: the lab controller's forwarding logic, pure (no os-ken here).

`Fabric` holds what the controller knows — the tenant networks (name, VNI, member ports), every switch's
name, VTEP and ports, where each host MAC lives in each network — and turns events (a switch or port
appears, a frame reaches the controller, a port joins or leaves a network, a switch's flow table is read
back) into `FlowMod` values; lab_app.py sends them with os-ken. Tested without a controller in
tests/unit/test_lab_controller_logic.py.

Switches (tor-agent's controller contract, docs/controllers.md): a switch says its hostname in its OpenFlow
description (dp_desc) and its VTEP in the serial number; a port named `gre-` + 8 hex digits is the tunnel
to the switch whose VTEP that is (tunnels carry `key=flow`: the tunnel ID is the GRE key); every other named
port is an access port; the bridge's LOCAL port is ignored. A switch is named by its hostname, or by its
DPID (16 hex digits) when it gives none.

A network is a name, a VNI (the tunnel ID its frames carry between switches, 1..16777215) and a set of
access ports (switch name, port name); a port is in at most one network, and a port in none carries
nothing. Pipeline on every switch, for each network N (VNI V) with a port there; every flow carries cookie
COOKIE_BASE | V, so a network's flows are found and deleted by cookie, and nothing else on the switch is
touched:
  table 0 (classify, learn): from an access port of N: set tunnel ID V, then a known (in_port, eth_src)
          goes on to table 1; any other frame goes to the controller (first 128 bytes, to learn) *and* on.
          From a tunnel with tunnel ID V: a known (in_port, V, eth_src) goes on to table 2, any other frame
          to the controller and on. Frames of any other port or tunnel ID match nothing: dropped.
  table 1 (from an access port): a known (V, eth_dst) goes out of its access port, or into the tunnel
          towards the switch it lives behind (GRE key V); anything else floods to N's other access ports
          here and to the tunnels towards switches with ports in N (and tunnels whose far end is not known
          yet: the far switch drops a tunnel ID it does not serve).
  table 2 (from a tunnel): a known local (V, eth_dst) goes out of its access port; anything else floods
          to N's access ports here only. Split horizon: what came from a tunnel never goes back into one.
A MAC seen on an access port of N other than before (a migrated VM) moves at once: its flows in N are
deleted on every switch and installed for the new place. The same MAC in another network is another host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

COOKIE_BASE = 0x7A6C_0001 << 32  # the app's flows: this in the upper 32 bits, the network's VNI below
COOKIE_APP_MASK = 0xFFFF_FFFF_0000_0000
COOKIE_EXACT = 0xFFFF_FFFF_FFFF_FFFF
TUNNEL_PREFIX = "gre-"
OFPP_MAX = 0xFFFFFF00  # port numbers above are reserved (LOCAL, CONTROLLER...)
T_CLASSIFY, T_FROM_ACCESS, T_FROM_TUNNEL = 0, 1, 2
P_LEARNED, P_PORT, P_FLOOD = 100, 10, 1
LEARN_BYTES = 128
IDLE_S = 300  # learned flows go when unused; base flows stay
VNI_MAX = 2**24 - 1

PortKind = Literal["access", "tunnel"]
Command = Literal["add", "delete", "delete_strict"]
Match = tuple[tuple[str, int | str], ...]
_TUNNEL = re.compile(r"^gre-([0-9a-f]{8})$")


def cookie(vni: int) -> int:
    """The cookie of network `vni`'s flows."""
    return COOKIE_BASE | vni


@dataclass(frozen=True)
class Port:
    no: int
    name: str

    @property
    def kind(self) -> PortKind:
        return "tunnel" if self.name.startswith(TUNNEL_PREFIX) else "access"

    @property
    def far_vtep(self) -> str | None:
        """The VTEP at the far end of a tunnel named as tor-agent names them (gre-<VTEP as 8 hex digits>)."""
        found = _TUNNEL.match(self.name)
        return str(ipaddress.IPv4Address(int(found[1], 16))) if found else None


def usable(port: Port) -> bool:
    """A real port (not LOCAL or another reserved number)."""
    return 0 < port.no < OFPP_MAX


@dataclass(frozen=True)
class Action:
    """`output` to a port number, `controller` (the first LEARN_BYTES bytes), `goto` a table, or `set_tunnel`
    (the tunnel ID, i.e. the GRE key the frame gets when it goes into a tunnel)."""

    kind: Literal["output", "controller", "goto", "set_tunnel"]
    arg: int = 0


@dataclass(frozen=True)
class FlowMod:
    """One flow to add (replacing one with the same table, priority and match), or flows to delete.

    A delete matches non-strictly in `table` (None: every table), a delete_strict exactly (table, priority,
    match); both only flows with the cookie of network `vni` (None: any of the app's networks)."""

    dpid: int
    command: Command
    table: int | None
    match: Match = ()
    priority: int = 0
    actions: tuple[Action, ...] = ()
    idle_timeout: int = 0
    out_port: int | None = None  # delete: only flows that output to this port
    vni: int | None = None


@dataclass(frozen=True)
class Flow:
    """A flow as a switch reports it (flow stats), for a resync. `foreign`: it has a match field or an
    instruction this app never uses."""

    table: int
    priority: int
    cookie: int
    match: Match
    actions: tuple[Action, ...] = ()
    foreign: bool = False


@dataclass(frozen=True)
class PortRef:
    """A port as the API names it: the switch's name and the port's name."""

    switch: str
    port: str


@dataclass(frozen=True)
class Network:
    name: str
    vni: int
    ports: frozenset[PortRef] = frozenset()


@dataclass(frozen=True)
class Location:
    dpid: int
    port: int


@dataclass
class Switch:
    dpid: int
    name: str
    vtep: str | None = None
    ports: dict[int, Port] = field(default_factory=dict)
    by_name: dict[str, Port] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {p.name: p for p in self.ports.values()}

    def add(self, port: Port) -> None:
        old = self.ports.pop(port.no, None)
        if old is not None:
            self.by_name.pop(old.name, None)
        self.ports[port.no] = port
        self.by_name[port.name] = port

    def remove(self, no: int) -> None:
        port = self.ports.pop(no)
        self.by_name.pop(port.name, None)

    def named(self, name: str) -> Port | None:
        return self.by_name.get(name)

    def refs(self) -> tuple[str, str]:
        """The names the API may use for this switch: its name and its DPID in hex."""
        return (self.name, dpid_name(self.dpid))


def dpid_name(dpid: int) -> str:
    """The name of a switch that gives none: its DPID as 16 hex digits."""
    return f"{dpid:016x}"


def goto(table: int) -> Action:
    return Action("goto", table)


def output(port: int) -> Action:
    return Action("output", port)


class Fabric:
    """What the controller knows about every network, switch and host, and the flows that follow from it."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks: dict[str, Network] = {}
        self._by_vni: dict[int, str] = {}
        self._member: dict[PortRef, str] = {}  # port -> its network
        for net in networks:
            self._set(net)
        self.switches: dict[int, Switch] = {}
        self.vteps: dict[str, str] = {}  # VTEP -> switch name, kept after a switch disconnects
        self.hosts: dict[tuple[str, str], Location] = {}  # (network, MAC) -> the access port it was last seen on
        self.learned_tunnels: dict[tuple[int, int], int] = {}  # (switch, towards switch) -> tunnel port
        self.moves = 0
        self.last_move: tuple[str, str, Location] | None = None  # (network, MAC, new place)

    # --- lookups -------------------------------------------------------------------------------------------

    def switch_named(self, name: str) -> Switch | None:
        """The connected switch called `name` (its hostname, or its DPID in hex)."""
        return next((s for s in self.switches.values() if name in (s.name, dpid_name(s.dpid))), None)

    def network_of(self, ref: PortRef) -> Network | None:
        """The network port `ref` is in."""
        name = self._member.get(ref)
        return None if name is None else self.networks[name]

    def network_by_vni(self, vni: int) -> Network | None:
        name = self._by_vni.get(vni)
        return None if name is None else self.networks[name]

    def _set(self, net: Network) -> None:
        old = self.networks.get(net.name)
        for ref in old.ports if old is not None else ():
            self._member.pop(ref, None)
        self.networks[net.name] = net
        self._by_vni[net.vni] = net.name
        self._member.update((ref, net.name) for ref in net.ports)

    def _drop(self, name: str) -> Network:
        net = self.networks.pop(name)
        self._by_vni.pop(net.vni, None)
        for ref in net.ports:
            self._member.pop(ref, None)
        return net

    def _local_ports(self, switch: Switch, net: Network) -> list[int]:
        """The access ports of `net` that `switch` has now, by number."""
        refs = switch.refs()
        found = (switch.named(ref.port) for ref in net.ports if ref.switch in refs)
        return sorted(p.no for p in found if p is not None and p.kind == "access")

    def _access_network(self, switch: Switch, port: Port) -> Network | None:
        if port.kind != "access":
            return None
        return next((n for r in switch.refs() if (n := self.network_of(PortRef(r, port.name))) is not None), None)

    def serves(self, dpid: int, net: Network) -> bool:
        """Whether `net` has an access port on switch `dpid` now."""
        switch = self.switches.get(dpid)
        return switch is not None and bool(self._local_ports(switch, net))

    def served(self, dpid: int) -> list[Network]:
        """The networks with an access port on switch `dpid` now."""
        switch = self.switches.get(dpid)
        if switch is None:
            return []
        refs = (PortRef(r, p) for r in switch.refs() for p in switch.by_name)
        names = {self._member[ref] for ref in refs if ref in self._member}
        return [self.networks[n] for n in sorted(names) if self._local_ports(switch, self.networks[n])]

    def tunnel_towards(self, dpid: int, other: int) -> int | None:
        """The tunnel port of switch `dpid` leading to switch `other`, if known."""
        switch, target = self.switches.get(dpid), self.switches.get(other)
        if switch is None:
            return None
        if target is not None and target.vtep is not None:
            port = switch.named(f"{TUNNEL_PREFIX}{int(ipaddress.IPv4Address(target.vtep)):08x}")
            if port is not None:
                return port.no
        return self.learned_tunnels.get((dpid, other))

    def _flood_tunnels(self, switch: Switch, net: Network) -> list[int]:
        """The tunnels of `switch` that frames of `net` flood into: towards a switch with ports in `net`, or
        whose far end is not known (safe: a switch drops a tunnel ID it does not serve)."""
        members = {ref.switch for ref in net.ports}
        learned = {t: o for (d, o), t in self.learned_tunnels.items() if d == switch.dpid and o in self.switches}
        found = []
        for port in switch.ports.values():
            if port.kind != "tunnel":
                continue
            far = self.vteps.get(port.far_vtep or "")
            if far is None and port.no in learned:
                far = self.switches[learned[port.no]].name
            if far is None or far in members:
                found.append(port.no)
        return sorted(found)

    # --- switches and ports --------------------------------------------------------------------------------

    def switch_up(
        self, dpid: int, ports: list[Port], name: str | None = None, vtep: str | None = None
    ) -> list[FlowMod]:
        """A switch connected (again): its base flows and everything known that concerns it. Nothing is deleted
        here: flows installed before (by this or another instance) keep forwarding; `resync` tidies up once
        the switch's flows are read back."""
        switch = Switch(dpid, name or dpid_name(dpid), vtep, {p.no: p for p in ports if usable(p)})
        self.switches[dpid] = switch
        if vtep is not None:
            self.vteps[vtep] = switch.name
        return self._base_all() + self._all_hosts()  # the others' flood sets change once its VTEP is known

    def switch_down(self, dpid: int) -> None:
        """A switch disconnected: forget its ports (its hosts stay known; its flows stay on it)."""
        self.switches.pop(dpid, None)

    def port_up(self, dpid: int, port: Port) -> list[FlowMod]:
        """A port was added (or renamed): base flows again, and what a new tunnel or access port reaches."""
        switch = self.switches.get(dpid)
        if switch is None or not usable(port):
            return []
        switch.add(port)
        return self._base(dpid) + self._all_hosts(only=dpid)

    def port_down(self, dpid: int, port_no: int) -> list[FlowMod]:
        """A port went away: flows matching or sending to it go, the flood sets are rebuilt, hosts there are
        forgotten; a network left without a port here loses its flows here."""
        switch = self.switches.get(dpid)
        if switch is None or switch.ports.get(port_no) is None:
            return []
        before = {n.name for n in self.served(dpid)}
        switch.remove(port_no)
        mods = [
            FlowMod(dpid, "delete", None, (("in_port", port_no),)),
            FlowMod(dpid, "delete", None, out_port=port_no),
        ]
        for key in [k for k, loc in self.hosts.items() if loc == Location(dpid, port_no)]:
            del self.hosts[key]
            mods += self._forget(*key)
        self.learned_tunnels = {k: v for k, v in self.learned_tunnels.items() if not (k[0] == dpid and v == port_no)}
        gone = before - {n.name for n in self.served(dpid)}
        mods += [FlowMod(dpid, "delete", None, vni=self.networks[n].vni) for n in sorted(gone)]
        return mods + self._base(dpid)

    # --- networks ------------------------------------------------------------------------------------------

    def add_network(self, name: str, vni: int) -> list[FlowMod]:
        """A new network, without ports yet: no flows."""
        self._set(Network(name, vni))
        return []

    def delete_network(self, name: str) -> list[FlowMod]:
        """Every flow of the network goes from every switch; its hosts are forgotten."""
        net = self._drop(name)
        for key in [k for k in self.hosts if k[0] == name]:
            del self.hosts[key]
        return [FlowMod(dpid, "delete", None, vni=net.vni) for dpid in sorted(self.switches)]

    def attach(self, name: str, ref: PortRef) -> list[FlowMod]:
        """Port `ref` joins network `name`: its flows where it is, the network's flood sets everywhere, and
        the way to the network's hosts from a switch that now serves it."""
        net = self.networks[name]
        self._set(Network(name, net.vni, net.ports | {ref}))
        return self._base_all(self.networks[name]) + self._all_hosts(self.networks[name])

    def detach(self, name: str, ref: PortRef) -> list[FlowMod]:
        """Port `ref` leaves network `name`: its flows and hosts go; the network's flood sets are rebuilt."""
        net = self.networks[name]
        switch = self.switch_named(ref.switch)
        port = switch.named(ref.port) if switch is not None else None
        was_here = switch is not None and self.serves(switch.dpid, net)
        self._set(Network(name, net.vni, net.ports - {ref}))
        net = self.networks[name]
        # The flood sets without the port first, then its own flows: no frame of the network reaches it after.
        mods = self._base_all(net)
        if switch is None or port is None:
            return mods
        mods.append(FlowMod(switch.dpid, "delete", None, (("in_port", port.no),), vni=net.vni))
        for key in [k for k, loc in self.hosts.items() if k[0] == name and loc == Location(switch.dpid, port.no)]:
            del self.hosts[key]
            mods += self._forget(*key)
        if was_here and not self.serves(switch.dpid, net):
            mods.append(FlowMod(switch.dpid, "delete", None, vni=net.vni))  # nothing of it is left here
        return mods

    # --- base flows ----------------------------------------------------------------------------------------

    def _base_all(self, only: Network | None = None) -> list[FlowMod]:
        return [m for dpid in sorted(self.switches) for m in self._base(dpid, only)]

    def _base(self, dpid: int, only: Network | None = None) -> list[FlowMod]:
        """Switch `dpid`'s classify and flood flows for every network with a port there (or just `only`)."""
        switch = self.switches[dpid]
        mods: list[FlowMod] = []
        for net in [only] if only is not None else self.served(dpid):
            local = self._local_ports(switch, net)
            if not local:
                continue
            v, tunnels = net.vni, self._flood_tunnels(switch, net)
            for no in local:
                classify = (Action("set_tunnel", v), Action("controller"), goto(T_FROM_ACCESS))
                flood = tuple(output(p) for p in [*local, *tunnels] if p != no)
                mods += [
                    FlowMod(dpid, "add", T_CLASSIFY, (("in_port", no),), P_PORT, classify, vni=v),
                    FlowMod(dpid, "add", T_FROM_ACCESS, (("in_port", no),), P_FLOOD, flood, vni=v),
                ]
            mods += [
                FlowMod(dpid, "add", T_CLASSIFY, (("tunnel_id", v),), P_PORT, (Action("controller"), goto(2)), vni=v),
                FlowMod(dpid, "add", T_FROM_TUNNEL, (("tunnel_id", v),), P_FLOOD, tuple(map(output, local)), vni=v),
            ]
        return mods

    # --- learning ------------------------------------------------------------------------------------------

    def packet_in(self, dpid: int, in_port: int, tunnel_id: int, src: str, dst: str) -> list[FlowMod]:
        """A frame reached the controller from table 0: learn where `src` is, in the frame's network."""
        switch = self.switches.get(dpid)
        port = switch.ports.get(in_port) if switch is not None else None
        if switch is None or port is None or _multicast(src):
            return []
        if port.kind == "access":
            net = self._access_network(switch, port)
            return [] if net is None else self._seen_on_access(net, src, Location(dpid, in_port))
        net = self.network_by_vni(tunnel_id)
        if net is None or not self.serves(dpid, net):
            return []
        return self._seen_on_tunnel(net, src, dpid, in_port)

    def _seen_on_access(self, net: Network, mac: str, loc: Location) -> list[FlowMod]:
        key = (net.name, mac)
        old = self.hosts.get(key)
        self.hosts[key] = loc
        if old == loc:
            return self._host_flows(net, mac, loc)  # flows expired or were lost: put them back
        if old is not None:
            self.moves += 1
            self.last_move = (net.name, mac, loc)
        return self._forget(*key) + self._host_flows(net, mac, loc)

    def _seen_on_tunnel(self, net: Network, mac: str, dpid: int, tunnel: int) -> list[FlowMod]:
        key = (net.name, mac)
        loc = self.hosts.get(key)
        if loc is not None and loc.dpid != dpid:
            expected = self.tunnel_towards(dpid, loc.dpid)
            if expected is None:
                self.learned_tunnels[(dpid, loc.dpid)] = tunnel
                return self._remote(net, dpid, mac, loc)
            return self._remote(net, dpid, mac, loc) if expected == tunnel else []  # in flight from before a move
        if loc is not None:  # we had it local here: it left for a switch we have not heard from
            del self.hosts[key]
            mods = self._forget(*key)
        else:
            mods = []
        return mods + self._via_tunnel(net, dpid, mac, tunnel)

    # --- host flows ----------------------------------------------------------------------------------------

    def _all_hosts(self, net: Network | None = None, only: int | None = None) -> list[FlowMod]:
        """Every known host's flows (of network `net`, on switch `only`; default: all), adds only: idempotent;
        a switch, port or tunnel that appeared may have made the way to some of them known."""
        return [
            m
            for (name, mac), loc in sorted(self.hosts.items())
            if name in self.networks and (net is None or name == net.name)
            for m in self._host_flows(self.networks[name], mac, loc, only)
        ]

    def _host_flows(self, net: Network, mac: str, loc: Location, only: int | None = None) -> list[FlowMod]:
        """Where `mac` is local: classify and deliver; on every other switch of its network: send into the
        tunnel towards it. On switch `only`, if given."""
        mods: list[FlowMod] = []
        v = net.vni
        for dpid in sorted(self.switches) if only is None else [only]:
            if dpid == loc.dpid:
                src = (("in_port", loc.port), ("eth_src", mac))
                dst = (("tunnel_id", v), ("eth_dst", mac))
                deliver = (output(loc.port),)
                mods += [
                    FlowMod(dpid, "add", T_CLASSIFY, src, P_LEARNED, (Action("set_tunnel", v), goto(1)), IDLE_S, vni=v),
                    FlowMod(dpid, "add", T_FROM_ACCESS, dst, P_LEARNED, deliver, IDLE_S, vni=v),
                    FlowMod(dpid, "add", T_FROM_TUNNEL, dst, P_LEARNED, deliver, IDLE_S, vni=v),
                ]
            elif self.serves(dpid, net):
                mods += self._remote(net, dpid, mac, loc)
        return mods

    def _remote(self, net: Network, dpid: int, mac: str, loc: Location) -> list[FlowMod]:
        tunnel = self.tunnel_towards(dpid, loc.dpid)
        return [] if tunnel is None else self._via_tunnel(net, dpid, mac, tunnel)

    def _via_tunnel(self, net: Network, dpid: int, mac: str, tunnel: int) -> list[FlowMod]:
        v = net.vni
        src = (("in_port", tunnel), ("tunnel_id", v), ("eth_src", mac))
        dst = (("tunnel_id", v), ("eth_dst", mac))
        return [
            FlowMod(dpid, "add", T_CLASSIFY, src, P_LEARNED, (goto(T_FROM_TUNNEL),), IDLE_S, vni=v),
            FlowMod(dpid, "add", T_FROM_ACCESS, dst, P_LEARNED, (output(tunnel),), IDLE_S, vni=v),
        ]

    def _forget(self, name: str, mac: str) -> list[FlowMod]:
        """Delete every flow about `mac` in network `name` on every switch (other networks' flows about the
        same MAC have another cookie and stay)."""
        net = self.networks.get(name)
        if net is None:
            return []
        mods = []
        for dpid in sorted(self.switches):
            mods += [
                FlowMod(dpid, "delete", T_CLASSIFY, (("eth_src", mac),), vni=net.vni),
                FlowMod(dpid, "delete", None, (("eth_dst", mac),), vni=net.vni),
            ]
        return mods

    # --- resynchronisation ---------------------------------------------------------------------------------

    def resync(self, dpid: int, flows: Iterable[Flow]) -> list[FlowMod]:
        """A switch's flows with the app's cookie, read back after `switch_up` (whose adds they include): delete
        what the networks no longer want (a network gone or no longer here, a port that left its network, a
        flow this app does not make) and learn the hosts the switch still delivers to (the controller may have
        restarted: the switches' learned flows are its memory)."""
        switch = self.switches.get(dpid)
        if switch is None:
            return []
        served = {n.vni: n for n in self.served(dpid)}
        base = {(m.table or 0, m.priority, m.match) for m in self._base(dpid)}
        stale: set[int] = set()
        mods: list[FlowMod] = []
        found: dict[tuple[str, str], Location] = {}
        for flow in flows:
            if flow.cookie & COOKIE_APP_MASK != COOKIE_BASE:
                continue
            vni = flow.cookie & ~COOKIE_APP_MASK
            net = served.get(vni)
            if net is None:
                stale.add(vni)
            elif flow.foreign or not self._wanted(switch, net, flow, base):
                mods.append(FlowMod(dpid, "delete_strict", flow.table, flow.match, flow.priority, vni=vni))
            elif (host := _delivered_host(switch, flow)) is not None and (net.name, host[0]) not in self.hosts:
                found[(net.name, host[0])] = Location(dpid, host[1])
        mods += [FlowMod(dpid, "delete", None, vni=v) for v in sorted(stale)]
        self.hosts.update(found)
        for (name, mac), loc in sorted(found.items()):
            mods += self._host_flows(self.networks[name], mac, loc)
        return mods

    def _wanted(self, switch: Switch, net: Network, flow: Flow, base: set[tuple[int, int, Match]]) -> bool:
        """Whether a flow of `net` on `switch` is one the app would make now."""
        if flow.priority != P_LEARNED:
            return (flow.table, flow.priority, flow.match) in base
        local = set(self._local_ports(switch, net))
        ports = [v for k, v in flow.match if k == "in_port"] + [a.arg for a in flow.actions if a.kind == "output"]
        for no in ports:
            port = switch.ports.get(int(no))
            if port is None or (port.kind == "access" and port.no not in local):
                return False
        return True


def _delivered_host(switch: Switch, flow: Flow) -> tuple[str, int] | None:
    """(MAC, access port) when `flow` is a learned delivery to a local host (table 1)."""
    match = dict(flow.match)
    outputs = [a.arg for a in flow.actions if a.kind == "output"]
    if flow.table != T_FROM_ACCESS or "eth_dst" not in match or len(outputs) != 1:
        return None
    port = switch.ports.get(outputs[0])
    return (str(match["eth_dst"]), port.no) if port is not None and port.kind == "access" else None


def _multicast(mac: str) -> bool:
    return int(mac.split(":")[0], 16) & 1 == 1
