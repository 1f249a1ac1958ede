"""The lab controller's L2 logic (labs/containerlab/controller/l2logic.py) on simulated switches.

A small OpenFlow simulator applies the FlowMods to per-switch tables and forwards frames through a full
mesh of three leaves (tunnels named as tor-agent names them), calling the logic for every frame that
reaches the controller, as the switches would. No os-ken needed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from labs.containerlab.controller.l2logic import COOKIE, T_CLASSIFY, Action, Fabric, FlowMod, Location, Port

BCAST = "ff:ff:ff:ff:ff:ff"
LEAVES = {0xA1: "198.18.0.11", 0xA2: "198.18.0.12", 0xA3: "198.18.0.13"}
H1, H2, H3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
MAX_HOPS = 8
Pending = list[tuple[int, int, str, str]]  # frames that reached the controller: (leaf, in_port, src, dst)


def tunnel(vtep: str) -> str:
    return f"gre-{int(ipaddress.IPv4Address(vtep)):08x}"


@dataclass
class Flow:
    priority: int
    match: dict[str, int | str]
    actions: tuple[Action, ...]
    cookie: int = COOKIE


@dataclass
class Sim:
    """Switches with flow tables; leaf access ports 1..n, tunnel to leaf X on port 10 + index of X."""

    fabric: Fabric = field(default_factory=Fabric)
    tables: dict[int, dict[int, dict[tuple[int, tuple[tuple[str, int | str], ...]], Flow]]] = field(
        default_factory=dict
    )
    hosts: dict[tuple[int, int], str] = field(default_factory=dict)  # (leaf, access port) -> host name
    packet_ins: list[tuple[int, int, str]] = field(default_factory=list)
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (host, frame id)
    tunnel_hops: list[tuple[int, int]] = field(default_factory=list)  # (from leaf, to leaf)

    def ports(self, dpid: int, access: int = 1) -> list[Port]:
        ports = [Port(i, f"eth{i + 2}") for i in range(1, access + 1)]
        ports += [Port(10 + i, tunnel(v)) for i, (d, v) in enumerate(LEAVES.items()) if d != dpid]
        return [*ports, Port(0xFFFFFFFE, "br-tor")]

    def tunnel_port(self, dpid: int, towards: int) -> int:
        return 10 + list(LEAVES).index(towards)

    def peer_of(self, dpid: int, port: int) -> int | None:
        for i, d in enumerate(LEAVES):
            if port == 10 + i and d != dpid:
                return d
        return None

    def up(self, dpid: int, access: int = 1) -> None:
        self.tables.setdefault(dpid, {})
        self.apply(self.fabric.switch_up(dpid, self.ports(dpid, access)))

    def apply(self, mods: list[FlowMod]) -> None:
        for m in mods:
            table = self.tables.setdefault(m.dpid, {})
            if m.command == "add":
                assert m.table is not None
                table.setdefault(m.table, {})[(m.priority, m.match)] = Flow(m.priority, dict(m.match), m.actions)
                continue
            for t, flows in table.items():
                if m.table is not None and t != m.table:
                    continue
                for key, flow in list(flows.items()):
                    if all(flow.match.get(k) == v for k, v in m.match) and (
                        m.out_port is None or Action("output", m.out_port) in flow.actions
                    ):
                        del flows[key]

    def send(self, dpid: int, port: int, src: str, dst: str, frame: str) -> None:
        """A frame enters `dpid` on `port`; controller decisions land after the frame is forwarded."""
        pending: Pending = []
        self._forward(dpid, port, src, dst, frame, 0, pending, hops=0)
        for d, p, s, t in pending:
            self.packet_ins.append((d, p, s))
            self.apply(self.fabric.packet_in(d, p, s, t))

    def _forward(
        self,
        dpid: int,
        port: int,
        src: str,
        dst: str,
        frame: str,
        table: int,
        pending: list[tuple[int, int, str, str]],
        hops: int,
    ) -> None:
        assert hops <= MAX_HOPS, f"loop: frame {frame} still travelling after {hops} hops"
        fields: dict[str, int | str] = {"in_port": port, "eth_src": src, "eth_dst": dst}
        flows = self.tables[dpid].get(table, {}).values()
        hit = max(
            (f for f in flows if all(fields.get(k) == v for k, v in f.match.items())),
            key=lambda f: f.priority,
            default=None,
        )
        if hit is None:
            return  # table miss: dropped
        for action in hit.actions:
            if action.kind == "controller":
                pending.append((dpid, port, src, dst))
            elif action.kind == "goto":
                self._forward(dpid, port, src, dst, frame, action.arg, pending, hops)
            elif (host := self.hosts.get((dpid, action.arg))) is not None:
                self.delivered.append((host, frame))
            elif (peer := self.peer_of(dpid, action.arg)) is not None:
                self.tunnel_hops.append((dpid, peer))
                self._forward(peer, self.tunnel_port(peer, dpid), src, dst, frame, 0, pending, hops + 1)

    def got(self, frame: str) -> list[str]:
        return sorted(h for h, f in self.delivered if f == frame)


@pytest.fixture
def sim() -> Sim:
    """Three leaves up, host1..3 on port 1 of leaf1..3, leaf3 with a spare port 2."""
    s = Sim()
    for dpid in LEAVES:
        s.up(dpid, access=2 if dpid == 0xA3 else 1)
    s.hosts = {(0xA1, 1): "host1", (0xA2, 1): "host2", (0xA3, 1): "host3"}
    return s


def test_base_flows_classify_every_port_and_flood_with_split_horizon(sim: Sim) -> None:
    t = sim.tables[0xA1]
    assert {f.match["in_port"] for f in t[T_CLASSIFY].values()} == {1, 11, 12}  # LOCAL is ignored
    flood_from_access = next(f for f in t[1].values() if f.match == {"in_port": 1})
    assert flood_from_access.actions == (Action("output", 11), Action("output", 12))
    (flood_from_tunnel,) = t[2].values()
    assert flood_from_tunnel.actions == (Action("output", 1),)


def test_broadcast_reaches_every_other_host_once_and_never_loops(sim: Sim) -> None:
    sim.send(0xA1, 1, H1, BCAST, "arp1")
    assert sim.got("arp1") == ["host2", "host3"]
    assert sorted(sim.tunnel_hops) == [(0xA1, 0xA2), (0xA1, 0xA3)]  # nothing re-enters a tunnel
    assert [p[:2] for p in sim.packet_ins] == [(0xA1, 1), (0xA2, 10), (0xA3, 10)]  # port 10: from leaf1


def test_learned_unicast_goes_straight_and_skips_the_controller(sim: Sim) -> None:
    sim.send(0xA1, 1, H1, BCAST, "arp")
    sim.send(0xA2, 1, H2, H1, "reply")
    assert sim.got("reply") == ["host1"] and sim.tunnel_hops[-1] == (0xA2, 0xA1)
    sim.packet_ins.clear()
    sim.tunnel_hops.clear()
    sim.send(0xA1, 1, H1, H2, "ping")
    sim.send(0xA2, 1, H2, H1, "pong")
    assert sim.got("ping") == ["host2"] and sim.got("pong") == ["host1"]
    assert sim.tunnel_hops == [(0xA1, 0xA2), (0xA2, 0xA1)] and sim.packet_ins == []


def test_the_tunnel_towards_a_leaf_is_known_by_elimination(sim: Sim) -> None:
    f = sim.fabric
    assert f.tunnel_towards(0xA1, 0xA2) == 11 and f.tunnel_towards(0xA1, 0xA3) == 12
    assert f.tunnel_towards(0xA3, 0xA1) == 10 and f.tunnel_towards(0xA2, 0xA3) == 12
    # A host seen at leaf2 is reachable from leaf3 at once, before any frame went that way.
    sim.send(0xA2, 1, H2, BCAST, "hello")
    sim.send(0xA3, 1, H3, H2, "direct")
    assert sim.got("direct") == ["host2"] and sim.tunnel_hops[-1] == (0xA3, 0xA2)


def test_with_a_leaf_not_connected_the_tunnel_is_learned_from_traffic() -> None:
    s = Sim()
    s.up(0xA1)
    s.fabric.hosts[H2] = Location(0xA2, 1)  # learned while leaf2 was connected; it is not now
    assert s.fabric.tunnel_towards(0xA1, 0xA2) is None
    mods = s.fabric.packet_in(0xA1, 11, H2, H1)
    assert s.fabric.tunnel_towards(0xA1, 0xA2) == 11
    assert FlowMod(0xA1, "add", 1, (("eth_dst", H2),), 100, (Action("output", 11),), 300) in mods


def test_a_migrated_host_moves_on_every_switch_at_once(sim: Sim) -> None:
    sim.send(0xA1, 1, H1, BCAST, "arp")
    sim.send(0xA2, 1, H2, H1, "to-old")
    sim.send(0xA3, 1, H3, H1, "to-old-3")
    assert sim.got("to-old") == ["host1"] == sim.got("to-old-3")
    # host1 leaves leaf1 port 1 and appears on leaf3 port 2 (same MAC): its first frame there moves it.
    del sim.hosts[(0xA1, 1)]
    sim.hosts[(0xA3, 2)] = "host1@leaf3"
    sim.send(0xA3, 2, H1, H2, "from-new")
    assert sim.got("from-new") == ["host2"] and sim.fabric.moves == 1
    sim.tunnel_hops.clear()
    sim.send(0xA2, 1, H2, H1, "to-new")
    sim.send(0xA3, 1, H3, H1, "to-new-local")
    assert sim.got("to-new") == ["host1@leaf3"] and sim.got("to-new-local") == ["host1@leaf3"]
    assert sim.tunnel_hops == [(0xA2, 0xA3)]  # straight to leaf3, nothing sent to leaf1
    leaf1 = [f.match for f in sim.tables[0xA1][T_CLASSIFY].values() if f.match.get("eth_src") == H1]
    assert leaf1 == [{"in_port": 12, "eth_src": H1}]  # now known behind the tunnel to leaf3, not on port 1


def test_a_frame_still_in_flight_from_the_old_place_does_not_move_it_back(sim: Sim) -> None:
    sim.send(0xA1, 1, H1, BCAST, "arp")
    sim.hosts[(0xA3, 2)] = "host1@leaf3"
    sim.send(0xA3, 2, H1, BCAST, "garp")  # moved to leaf3
    mods = sim.fabric.packet_in(0xA2, 10, H1, H2)  # a late copy that came through leaf1's tunnel
    assert mods == [] and sim.fabric.hosts[H1].dpid == 0xA3


def test_port_gone_deletes_its_flows_and_forgets_its_hosts(sim: Sim) -> None:
    sim.send(0xA3, 2, "02:00:00:00:00:44", BCAST, "hello")
    mods = sim.fabric.port_down(0xA3, 2)
    sim.apply(mods)
    assert "02:00:00:00:00:44" not in sim.fabric.hosts
    assert FlowMod(0xA3, "delete", None, out_port=2) in mods
    assert all(f.match.get("in_port") != 2 for t in sim.tables[0xA3].values() for f in t.values())


def test_a_switch_that_reconnects_gets_flows_back_without_deletes(sim: Sim) -> None:
    sim.send(0xA1, 1, H1, BCAST, "arp")
    mods = sim.fabric.switch_up(0xA2, sim.ports(0xA2))
    assert all(m.command == "add" for m in mods)
    assert FlowMod(0xA2, "add", 1, (("eth_dst", H1),), 100, (Action("output", 10),), 300) in mods


def test_multicast_sources_and_unknown_ports_are_ignored(sim: Sim) -> None:
    assert sim.fabric.packet_in(0xA1, 1, "01:00:5e:00:00:01", BCAST) == []
    assert sim.fabric.packet_in(0xA1, 99, H1, BCAST) == []
    assert sim.fabric.packet_in(0xBB, 1, H1, BCAST) == []
