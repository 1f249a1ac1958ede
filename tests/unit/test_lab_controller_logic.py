"""The lab controller's tenant-network logic (labs/containerlab/controller/l2logic.py) on simulated switches.

A small OpenFlow simulator applies the FlowMods to per-switch tables (cookies, non-strict and strict
deletes) and forwards frames through a full mesh of three leaves whose tunnels carry the tunnel ID as their
key (`key=flow`), calling the logic for every frame that reaches the controller, as the switches would.
Two networks, blue and red, whose hosts share MAC addresses. No os-ken needed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from labs.containerlab.controller.l2logic import (
    COOKIE_APP_MASK,
    COOKIE_BASE,
    COOKIE_EXACT,
    P_LEARNED,
    T_CLASSIFY,
    T_FROM_ACCESS,
    Action,
    Fabric,
    Flow,
    FlowMod,
    Location,
    Network,
    Port,
    PortRef,
    cookie,
)

BCAST = "ff:ff:ff:ff:ff:ff"
LEAVES = {0xA1: ("leaf1", "198.18.0.11"), 0xA2: ("leaf2", "198.18.0.12"), 0xA3: ("leaf3", "198.18.0.13")}
BLUE, RED = 1001, 1002
M1, M2, M3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"  # blue and red hosts share them
MAX_HOPS = 8
ETH3, ETH4 = 1, 2  # access ports, numbered in intent order as tor-agent pins them


def tunnel(vtep: str) -> str:
    return f"gre-{int(ipaddress.IPv4Address(vtep)):08x}"


def networks() -> list[Network]:
    blue = frozenset(PortRef(f"leaf{i}", "eth3") for i in (1, 2, 3))
    red = frozenset(PortRef(f"leaf{i}", "eth4") for i in (1, 2))
    return [Network("blue", BLUE, blue), Network("red", RED, red)]


@dataclass
class Installed:
    priority: int
    match: dict[str, int | str]
    actions: tuple[Action, ...]
    cookie: int


@dataclass
class Sim:
    """Switches with flow tables; access ports eth3 = 1, eth4 = 2; tunnel to leaf X on port 10 + index of X."""

    fabric: Fabric = field(default_factory=lambda: Fabric(networks()))
    tables: dict[int, dict[int, dict[tuple[int, tuple[tuple[str, int | str], ...]], Installed]]] = field(
        default_factory=dict
    )
    hosts: dict[tuple[int, int], str] = field(default_factory=dict)  # (leaf, access port) -> host name
    packet_ins: list[tuple[int, int, int, str]] = field(default_factory=list)  # (leaf, port, tunnel ID, src)
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (host, frame id)
    tunnel_hops: list[tuple[int, int, int]] = field(default_factory=list)  # (from leaf, to leaf, GRE key)

    def ports(self, dpid: int) -> list[Port]:
        ports = [Port(ETH3, "eth3"), Port(ETH4, "eth4")]
        ports += [Port(10 + i, tunnel(v)) for i, (d, (_, v)) in enumerate(LEAVES.items()) if d != dpid]
        return [*ports, Port(0xFFFFFFFE, "br-tor")]

    def tunnel_port(self, dpid: int, towards: int) -> int:
        return 10 + list(LEAVES).index(towards)

    def peer_of(self, dpid: int, port: int) -> int | None:
        for i, d in enumerate(LEAVES):
            if port == 10 + i and d != dpid:
                return d
        return None

    def up(self, dpid: int, named: bool = True) -> None:
        self.tables.setdefault(dpid, {})
        name, vtep = LEAVES[dpid] if named else (None, None)
        self.apply(self.fabric.switch_up(dpid, self.ports(dpid), name, vtep))

    def flows(self, dpid: int) -> list[tuple[int, Installed]]:
        return [(t, f) for t, flows in self.tables[dpid].items() for f in flows.values()]

    def apply(self, mods: list[FlowMod] | tuple[FlowMod, ...]) -> None:
        for m in mods:
            table = self.tables.setdefault(m.dpid, {})
            if m.command == "add":
                assert m.table is not None and m.vni is not None
                installed = Installed(m.priority, dict(m.match), m.actions, cookie(m.vni))
                table.setdefault(m.table, {})[(m.priority, m.match)] = installed
                continue
            want, mask = (COOKIE_BASE, COOKIE_APP_MASK) if m.vni is None else (cookie(m.vni), COOKIE_EXACT)
            for t, flows in table.items():
                if m.table is not None and t != m.table:
                    continue
                for key, f in list(flows.items()):
                    if f.cookie & mask != want & mask:
                        continue
                    if m.command == "delete_strict":
                        hit = (f.priority, f.match) == (m.priority, dict(m.match))
                    else:
                        hit = all(f.match.get(k) == v for k, v in m.match) and (
                            m.out_port is None or Action("output", m.out_port) in f.actions
                        )
                    if hit:
                        del flows[key]

    def send(self, dpid: int, port: int, src: str, dst: str, frame: str) -> None:
        """A frame enters `dpid` on `port`; controller decisions land after the frame is forwarded."""
        pending: list[tuple[int, int, int, str, str]] = []
        self._forward(dpid, {"in_port": port, "eth_src": src, "eth_dst": dst, "tunnel_id": 0}, frame, 0, pending, 0)
        for d, p, tid, s, t in pending:
            self.packet_ins.append((d, p, tid, s))
            self.apply(self.fabric.packet_in(d, p, tid, s, t))

    def _forward(
        self, dpid: int, fields: dict[str, int | str], frame: str, table: int, pending: list, hops: int
    ) -> None:
        assert hops <= MAX_HOPS, f"loop: frame {frame} still travelling after {hops} hops"
        flows = self.tables[dpid].get(table, {}).values()
        hit = max(
            (f for f in flows if all(fields.get(k) == v for k, v in f.match.items())),
            key=lambda f: f.priority,
            default=None,
        )
        if hit is None:
            return  # table miss: dropped
        fields = dict(fields)
        for action in hit.actions:
            if action.kind == "set_tunnel":
                fields["tunnel_id"] = action.arg
            elif action.kind == "controller":
                pending.append(
                    (dpid, int(fields["in_port"]), int(fields["tunnel_id"]), fields["eth_src"], fields["eth_dst"])
                )
            elif action.kind == "goto":
                self._forward(dpid, fields, frame, action.arg, pending, hops)
            elif (host := self.hosts.get((dpid, action.arg))) is not None:
                self.delivered.append((host, frame))
            elif (peer := self.peer_of(dpid, action.arg)) is not None:
                key = int(fields["tunnel_id"])
                self.tunnel_hops.append((dpid, peer, key))
                arrived = {**fields, "in_port": self.tunnel_port(peer, dpid), "tunnel_id": key}
                self._forward(peer, arrived, frame, 0, pending, hops + 1)

    def got(self, frame: str) -> list[str]:
        return sorted(h for h, f in self.delivered if f == frame)


@pytest.fixture
def sim() -> Sim:
    """Three leaves up; blue: host1..3 on eth3 of leaf1..3; red: red1, red2 on eth4 of leaf1, leaf2 (same MACs
    as host1, host2); leaf3's eth4 (spare) in no network."""
    s = Sim()
    for dpid in LEAVES:
        s.up(dpid)
    s.hosts = {(0xA1, ETH3): "host1", (0xA2, ETH3): "host2", (0xA3, ETH3): "host3"}
    s.hosts |= {(0xA1, ETH4): "red1", (0xA2, ETH4): "red2", (0xA3, ETH4): "spare"}
    return s


def test_base_flows_per_network_carry_its_vni_and_cookie(sim: Sim) -> None:
    flows = sim.flows(0xA3)
    assert {f.cookie for _, f in flows} == {cookie(BLUE)}  # leaf3 has no red port: nothing of red
    classify = next(f for t, f in flows if t == T_CLASSIFY and f.match == {"in_port": ETH3})
    assert classify.actions == (Action("set_tunnel", BLUE), Action("controller"), Action("goto", T_FROM_ACCESS))
    assert all(f.match.get("in_port") != ETH4 for _, f in flows)  # a port in no network: no flow, dropped
    red_flood = next(f for t, f in sim.flows(0xA1) if t == T_FROM_ACCESS and f.match == {"in_port": ETH4})
    assert red_flood.actions == (Action("output", 11),)  # only the tunnel to leaf2, the other red switch


def test_a_port_in_no_network_carries_nothing(sim: Sim) -> None:
    sim.send(0xA3, ETH4, M3, BCAST, "from-spare")
    assert sim.got("from-spare") == [] and sim.packet_ins == [] and sim.tunnel_hops == []


def test_broadcast_stays_in_its_network_and_never_loops(sim: Sim) -> None:
    sim.send(0xA1, ETH3, M1, BCAST, "blue-arp")
    assert sim.got("blue-arp") == ["host2", "host3"]
    assert sorted(sim.tunnel_hops) == [(0xA1, 0xA2, BLUE), (0xA1, 0xA3, BLUE)]  # nothing re-enters a tunnel
    sim.tunnel_hops.clear()
    sim.send(0xA1, ETH4, M1, BCAST, "red-arp")  # the same MAC, in red
    assert sim.got("red-arp") == ["red2"]
    assert sim.tunnel_hops == [(0xA1, 0xA2, RED)]


def test_the_same_macs_in_two_networks_are_two_sets_of_hosts(sim: Sim) -> None:
    for port, net in ((ETH3, "blue"), (ETH4, "red")):
        sim.send(0xA1, port, M1, BCAST, f"{net}-arp")
        sim.send(0xA2, port, M2, M1, f"{net}-reply")
    assert sim.got("blue-reply") == ["host1"] and sim.got("red-reply") == ["red1"]
    assert sim.fabric.hosts[("blue", M1)] == Location(0xA1, ETH3)
    assert sim.fabric.hosts[("red", M1)] == Location(0xA1, ETH4)
    sim.packet_ins.clear()
    for port, net in ((ETH3, "blue"), (ETH4, "red")):
        sim.send(0xA1, port, M1, M2, f"{net}-ping")
        sim.send(0xA2, port, M2, M1, f"{net}-pong")
    assert (sim.got("blue-ping"), sim.got("blue-pong")) == (["host2"], ["host1"])
    assert (sim.got("red-ping"), sim.got("red-pong")) == (["red2"], ["red1"])
    assert sim.packet_ins == []  # learned: straight through, no controller


def test_the_tunnel_towards_a_leaf_is_the_one_named_after_its_vtep(sim: Sim) -> None:
    f = sim.fabric
    assert f.tunnel_towards(0xA1, 0xA2) == 11 and f.tunnel_towards(0xA1, 0xA3) == 12
    assert f.tunnel_towards(0xA3, 0xA1) == 10 and f.tunnel_towards(0xA2, 0xA3) == 12
    sim.send(0xA2, ETH3, M2, BCAST, "hello")
    sim.send(0xA3, ETH3, M3, M2, "direct")  # reachable from leaf3 at once, before any frame went that way
    assert sim.got("direct") == ["host2"] and sim.tunnel_hops[-1] == (0xA3, 0xA2, BLUE)


def test_switches_without_a_name_are_named_by_dpid_and_their_tunnels_learned_from_traffic() -> None:
    s = Sim(fabric=Fabric([Network("blue", BLUE, frozenset({PortRef("00000000000000a1", "eth3")}))]))
    s.up(0xA1, named=False)
    assert s.fabric.switch_named("00000000000000a1") is s.fabric.switches[0xA1]
    s.fabric.hosts[("blue", M2)] = Location(0xA2, ETH3)  # learned while leaf2 was connected; it is not now
    assert s.fabric.tunnel_towards(0xA1, 0xA2) is None
    mods = s.fabric.packet_in(0xA1, 11, BLUE, M2, M1)
    assert s.fabric.tunnel_towards(0xA1, 0xA2) == 11
    dst = (("tunnel_id", BLUE), ("eth_dst", M2))
    assert FlowMod(0xA1, "add", T_FROM_ACCESS, dst, P_LEARNED, (Action("output", 11),), 300, vni=BLUE) in mods


def test_a_migrated_host_moves_in_its_network_only(sim: Sim) -> None:
    sim.apply(sim.fabric.attach("blue", PortRef("leaf3", "eth4")))
    for port, net in ((ETH3, "blue"), (ETH4, "red")):
        sim.send(0xA1, port, M1, BCAST, f"{net}-arp")
        sim.send(0xA2, port, M2, M1, f"{net}-to-old")
    # host1 (blue) leaves leaf1 eth3 and appears on leaf3 eth4 (same MAC): its first frame there moves it.
    sim.hosts[(0xA3, ETH4)] = "host1@leaf3"
    del sim.hosts[(0xA1, ETH3)]
    sim.send(0xA3, ETH4, M1, M2, "from-new")
    assert sim.got("from-new") == ["host2"] and sim.fabric.moves == 1
    sim.tunnel_hops.clear()
    sim.send(0xA2, ETH3, M2, M1, "to-new")
    sim.send(0xA2, ETH4, M2, M1, "red-to-red1")
    assert sim.got("to-new") == ["host1@leaf3"] and sim.got("red-to-red1") == ["red1"]  # red's M1 stays
    assert sim.tunnel_hops == [(0xA2, 0xA3, BLUE), (0xA2, 0xA1, RED)]
    assert sim.fabric.hosts[("red", M1)] == Location(0xA1, ETH4)


def test_a_frame_still_in_flight_from_the_old_place_does_not_move_it_back(sim: Sim) -> None:
    sim.apply(sim.fabric.attach("blue", PortRef("leaf3", "eth4")))
    sim.send(0xA1, ETH3, M1, BCAST, "arp")
    sim.send(0xA3, ETH4, M1, BCAST, "garp")  # moved to leaf3
    mods = sim.fabric.packet_in(0xA2, 10, BLUE, M1, M2)  # a late copy that came through leaf1's tunnel
    assert mods == [] and sim.fabric.hosts[("blue", M1)].dpid == 0xA3


def test_attach_and_detach_a_port(sim: Sim) -> None:
    sim.apply(sim.fabric.attach("red", PortRef("leaf3", "eth4")))
    sim.send(0xA1, ETH4, M1, BCAST, "red-1")
    assert sim.got("red-1") == ["red2", "spare"]
    sim.send(0xA3, ETH4, M3, M1, "from-leaf3")
    assert sim.got("from-leaf3") == ["red1"]
    mods = sim.fabric.detach("red", PortRef("leaf3", "eth4"))
    deletes = [i for i, m in enumerate(mods) if m.command != "add"]
    assert deletes and max(i for i, m in enumerate(mods) if m.command == "add") < min(deletes)  # floods first
    sim.apply(mods)
    sim.send(0xA1, ETH4, M1, BCAST, "red-2")
    sim.send(0xA3, ETH4, M3, M1, "from-leaf3-again")
    assert sim.got("red-2") == ["red2"] and sim.got("from-leaf3-again") == []
    assert ("red", M3) not in sim.fabric.hosts
    assert all(f.cookie != cookie(RED) for _, f in sim.flows(0xA3))  # red left leaf3 entirely


def test_deleting_a_network_takes_only_its_flows(sim: Sim) -> None:
    sim.send(0xA1, ETH4, M1, BCAST, "red-arp")
    blue_before = {d: [f for _, f in sim.flows(d) if f.cookie == cookie(BLUE)] for d in LEAVES}
    sim.apply(sim.fabric.delete_network("red"))
    assert all(f.cookie != cookie(RED) for d in LEAVES for _, f in sim.flows(d))
    assert {d: [f for _, f in sim.flows(d) if f.cookie == cookie(BLUE)] for d in LEAVES} == blue_before
    assert not [k for k in sim.fabric.hosts if k[0] == "red"]
    sim.send(0xA1, ETH4, M1, BCAST, "red-gone")
    assert sim.got("red-gone") == []


def test_port_gone_deletes_its_flows_and_forgets_its_hosts(sim: Sim) -> None:
    sim.send(0xA2, ETH4, M2, BCAST, "hello")
    sim.apply(sim.fabric.port_down(0xA2, ETH4))
    assert ("red", M2) not in sim.fabric.hosts
    assert all(f.match.get("in_port") != ETH4 and f.cookie != cookie(RED) for _, f in sim.flows(0xA2))
    assert all(f.match.get("eth_dst") != M2 for _, f in sim.flows(0xA1) if f.cookie == cookie(RED))


def test_a_switch_that_reconnects_gets_flows_back_before_anything_is_deleted(sim: Sim) -> None:
    sim.send(0xA1, ETH3, M1, BCAST, "arp")
    mods = sim.fabric.switch_up(0xA2, sim.ports(0xA2), "leaf2", "198.18.0.12")
    assert all(m.command == "add" for m in mods)
    dst = (("tunnel_id", BLUE), ("eth_dst", M1))
    assert FlowMod(0xA2, "add", T_FROM_ACCESS, dst, P_LEARNED, (Action("output", 10),), 300, vni=BLUE) in mods


def read_back(sim: Sim, dpid: int) -> list[Flow]:
    return [
        Flow(t, f.priority, f.cookie, tuple(f.match.items()), f.actions)
        for t, f in sim.flows(dpid)
        if f.cookie & COOKIE_APP_MASK == COOKIE_BASE
    ]


def test_resync_after_a_restart_keeps_what_is_right_learns_hosts_and_deletes_the_stale(sim: Sim) -> None:
    """The controller restarts with red gone and leaf2's eth3 moved from blue to a new network green: leaf2's
    flows are read back; blue's learned hosts are learned again from them, the rest of red and leaf2's blue
    flows for eth3 go, and a flow the app never makes is deleted too."""
    for port in (ETH3, ETH4):
        sim.send(0xA1, port, M1, BCAST, "arp")
        sim.send(0xA2, port, M2, M1, "reply")
    foreign = FlowMod(0xA2, "add", T_FROM_ACCESS, (("eth_type", 0x88CC),), 50, (), vni=BLUE)
    sim.apply([foreign])
    blue = Network("blue", BLUE, frozenset({PortRef("leaf1", "eth3"), PortRef("leaf3", "eth3")}))
    restarted = Fabric([blue, Network("green", 7, frozenset({PortRef("leaf2", "eth3")}))])
    for dpid in LEAVES:
        sim.apply(restarted.switch_up(dpid, sim.ports(dpid), *LEAVES[dpid]))
    sim.fabric = restarted
    sim.apply(restarted.resync(0xA1, read_back(sim, 0xA1)))
    sim.apply(restarted.resync(0xA2, read_back(sim, 0xA2)))
    assert restarted.hosts == {("blue", M1): Location(0xA1, ETH3)}  # red's M1 and blue's M2 are not learned
    assert {f.cookie for _, f in sim.flows(0xA2)} == {cookie(7)}
    assert {f.cookie for _, f in sim.flows(0xA1)} == {cookie(BLUE)}
    assert not [f for _, f in sim.flows(0xA2) if f.priority == 50]
    sim.send(0xA3, ETH3, M3, M1, "after")  # leaf3 knows where blue's M1 is without a flood
    assert sim.got("after") == ["host1"] and sim.tunnel_hops[-1] == (0xA3, 0xA1, BLUE)


def test_packet_ins_that_teach_nothing_are_ignored(sim: Sim) -> None:
    assert sim.fabric.packet_in(0xA1, ETH3, 0, "01:00:5e:00:00:01", BCAST) == []
    assert sim.fabric.packet_in(0xA1, 99, 0, M1, BCAST) == []
    assert sim.fabric.packet_in(0xBB, ETH3, 0, M1, BCAST) == []
    assert sim.fabric.packet_in(0xA3, ETH4, 0, M1, BCAST) == []  # a port in no network
    assert sim.fabric.packet_in(0xA3, 10, RED, M1, BCAST) == []  # red is not served on leaf3
    assert sim.fabric.packet_in(0xA1, 11, 4242, M1, BCAST) == []  # no network has that VNI
