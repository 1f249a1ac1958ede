"""The lab's OpenFlow 1.3 controller app: tenant L2 over the fabric's GRE tunnels.

The forwarding logic is l2logic.Fabric (pure, next to this file, unit-tested without os-ken); this app is
its shell: on a switch's connection it reads the port list (port description), installs the base flows,
follows port changes, learns from the frames the switches send up, and sends the resulting flow mods.
Every flow carries l2logic.COOKIE; deletes are limited to it.

Redundancy: several instances may run (e.g. the lab's two controller nodes). Each switch connects to all
of them in OpenFlow's default EQUAL role; every instance receives the same frames and computes the same
flows (adds are idempotent, the delete+add of a move is repeated), so either one alone keeps the fabric
working and no master election is needed. A (re)connecting instance only adds: flows the other instance
installed keep forwarding.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # os-ken loads this file by path
from l2logic import COOKIE, COOKIE_MASK, LEARN_BYTES, Fabric, FlowMod, Port


class LabL2(app_manager.OSKenApp):  # type: ignore[misc]
    """Tenant L2 over tunnels: learning per port and switch, split-horizon flooding, moves at once."""

    OFP_VERSIONS = (ofproto_v1_3.OFP_VERSION,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fabric = Fabric()
        self.datapaths: dict[int, Any] = {}
        self._port_parts: dict[int, list[Port]] = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev: Any) -> None:
        """A switch connected: ask for its ports (the flows follow from them)."""
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        self.logger.info("switch connected: dpid=%016x", dp.id)
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def on_port_desc(self, ev: Any) -> None:
        """The switch's ports (possibly in several parts): base flows and what is already known."""
        dp = ev.msg.datapath
        parts = self._port_parts.setdefault(dp.id, [])
        parts += [Port(p.port_no, _name(p.name)) for p in ev.msg.body]
        if ev.msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
            return
        ports = self._port_parts.pop(dp.id)
        tunnels = sorted(p.name for p in ports if p.kind == "tunnel")
        self.logger.info("dpid=%016x: %d ports, tunnels %s", dp.id, len(ports), ", ".join(tunnels) or "none")
        self.send(self.fabric.switch_up(dp.id, ports))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def on_port_status(self, ev: Any) -> None:
        """A port was added, changed or deleted."""
        msg = ev.msg
        dp, ofp = msg.datapath, msg.datapath.ofproto
        port = Port(msg.desc.port_no, _name(msg.desc.name))
        if msg.reason == ofp.OFPPR_DELETE:
            self.logger.info("dpid=%016x: port %s (%d) deleted", dp.id, port.name, port.no)
            self.send(self.fabric.port_down(dp.id, port.no))
        elif msg.reason == ofp.OFPPR_ADD:
            self.logger.info("dpid=%016x: port %s (%d) added", dp.id, port.name, port.no)
            self.send(self.fabric.port_up(dp.id, port))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def on_dead(self, ev: Any) -> None:
        """A switch disconnected."""
        dpid: int | None = ev.datapath.id
        if dpid is not None and self.datapaths.get(dpid) is ev.datapath:
            del self.datapaths[dpid]
            self.fabric.switch_down(dpid)
            self.logger.info("switch disconnected: dpid=%016x", dpid)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev: Any) -> None:
        """A frame sent up by table 0: learn its source (the switch forwards it by itself)."""
        msg = ev.msg
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        moves = self.fabric.moves
        mods = self.fabric.packet_in(msg.datapath.id, msg.match["in_port"], eth.src, eth.dst)
        if self.fabric.moves != moves:
            loc = self.fabric.hosts[eth.src]
            self.logger.info("MAC %s moved: now dpid=%016x port %d", eth.src, loc.dpid, loc.port)
        self.send(mods)

    def send(self, mods: list[FlowMod]) -> None:
        """Send flow mods to the switches they concern (those not connected miss them)."""
        for mod in mods:
            dp = self.datapaths.get(mod.dpid)
            if dp is not None:
                dp.send_msg(_flow_mod(dp, mod))


def _name(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _flow_mod(dp: Any, mod: FlowMod) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    match = parser.OFPMatch(**dict(mod.match))
    if mod.command == "delete":
        return parser.OFPFlowMod(
            datapath=dp,
            cookie=COOKIE,
            cookie_mask=COOKIE_MASK,
            table_id=ofp.OFPTT_ALL if mod.table is None else mod.table,
            command=ofp.OFPFC_DELETE,
            out_port=ofp.OFPP_ANY if mod.out_port is None else mod.out_port,
            out_group=ofp.OFPG_ANY,
            match=match,
        )
    actions, instructions = [], []
    for action in mod.actions:
        if action.kind == "output":
            actions.append(parser.OFPActionOutput(action.arg))
        elif action.kind == "controller":
            actions.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, LEARN_BYTES))
    if actions:
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    instructions += [parser.OFPInstructionGotoTable(a.arg) for a in mod.actions if a.kind == "goto"]
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=COOKIE,
        table_id=mod.table,
        command=ofp.OFPFC_ADD,
        idle_timeout=mod.idle_timeout,
        priority=mod.priority,
        match=match,
        instructions=instructions,
    )
