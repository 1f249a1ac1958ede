"""The lab's OpenFlow 1.3 controller app: tenant networks on demand over the fabric's GRE tunnels.

The forwarding logic is l2logic.Fabric and the network API netapi.Api (both pure, next to this file,
unit-tested without os-ken); this app is their shell:
- on a switch's connection it reads the switch's description (its name and VTEP, docs/controllers.md) and
  port list, installs the flows of the networks with ports there, then reads the switch's flows with the
  app's cookie back and deletes what the networks no longer want (a resync: the controller may have
  restarted, or changed while the switch was away) and learns the hosts the switch still delivers to;
- it follows port changes, learns from the frames the switches send up and sends the resulting flow mods;
- with `--api HOST:PORT` (osken_run.py) it serves the network API over HTTP (netapi's docstring); a change
  is written to the `--state` file before it is applied, and the reply is sent once every switch it
  concerns has confirmed the new flows (an OpenFlow barrier);
- at start it takes its networks from the `--state` file, or, when there is none yet, from the `--seed`
  file (same format), which then becomes the state.
Every flow carries l2logic's cookie (the network's VNI in its low bits); deletes are limited to it.

Redundancy: several instances may run (e.g. the lab's two controller nodes). Each switch connects to all
of them in OpenFlow's default EQUAL role; every instance receives the same frames and computes the same
flows (adds are idempotent, the delete+add of a move is repeated), so either one alone keeps the fabric
working and no master election is needed, as long as they have the same networks (the same seed; the API
of one instance changes only its own). A (re)connecting instance adds before it deletes.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oslo_config.cfg
from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # os-ken loads this file by path
from l2logic import (
    COOKIE_APP_MASK,
    COOKIE_BASE,
    COOKIE_EXACT,
    LEARN_BYTES,
    Action,
    Fabric,
    Flow,
    FlowMod,
    Network,
    Port,
    cookie,
)
from netapi import MAX_BODY, Api, Invalid, Reply, parse_state, state_doc

BARRIER_TIMEOUT_S = 2.0
OPTIONS = ("api", "state", "seed")  # osken_run.py's --api, --state, --seed (cfg group "lab")


@dataclass
class Joining:
    """What is read from a switch that (re)connected before its flows are made and resynchronised."""

    desc: tuple[str | None, str | None] | None = None  # (name, VTEP)
    ports: list[Port] | None = None
    port_parts: list[Port] | None = None
    flows: list[Flow] | None = None


def settings() -> dict[str, str | None]:
    """The launcher's --api, --state and --seed (osken_run.py registers them), or None each."""
    try:
        group = cfg.CONF.lab
        return {name: getattr(group, name) for name in OPTIONS}
    except (oslo_config.cfg.NoSuchOptError, oslo_config.cfg.NoSuchGroupError):
        return dict.fromkeys(OPTIONS)


def load_networks(state: str | None, seed: str | None) -> list[Network]:
    """The state file's networks; without one, the seed's (then written as the state)."""
    source = state if state and Path(state).exists() else seed
    if not source:
        return []
    try:
        networks = parse_state(json.loads(Path(source).read_text()))
    except (OSError, ValueError, Invalid) as e:
        raise SystemExit(f"lab_app: {source}: {e}") from e
    if state and source != state:
        write_state(state, state_doc({n.name: n for n in networks}))
    return networks


def write_state(path: str, doc: dict[str, Any]) -> None:
    """Write the state file atomically (a crash leaves the old one or the new one, never half)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.", delete=False) as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, target)


class LabL2(app_manager.OSKenApp):  # type: ignore[misc]
    """Tenant networks over tunnels: learning per network, port and switch; split-horizon flooding inside a
    network; moves at once; networks on demand over HTTP."""

    OFP_VERSIONS = (ofproto_v1_3.OFP_VERSION,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = settings()
        self.state_file = conf["state"]
        self.fabric = Fabric(load_networks(conf["state"], conf["seed"]))
        self.api = Api(self.fabric, self._save)
        self.lock = threading.RLock()  # the fabric is shared by os-ken's event thread and the API's threads
        self.datapaths: dict[int, Any] = {}
        self._joining: dict[int, Joining] = {}
        self._barriers: dict[tuple[int, int], threading.Event] = {}
        names = ", ".join(f"{n.name} (VNI {n.vni}, {len(n.ports)} ports)" for n in self.fabric.networks.values())
        self.logger.info("networks: %s", names or "none")
        if conf["api"]:
            self._serve(conf["api"])

    def _save(self, doc: dict[str, Any]) -> None:
        if self.state_file:
            write_state(self.state_file, doc)

    # --- switches ------------------------------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev: Any) -> None:
        """A switch connected: ask for its description and ports (the flows follow from them)."""
        dp = ev.msg.datapath
        with self.lock:
            self.datapaths[dp.id] = dp
            self._joining[dp.id] = Joining()
        self.logger.info("switch connected: dpid=%016x", dp.id)
        dp.send_msg(dp.ofproto_parser.OFPDescStatsRequest(dp, 0))
        dp.send_msg(dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0))

    # The replies may come before os-ken's own handshake has moved the switch to MAIN: listen in both states.
    @set_ev_cls(ofp_event.EventOFPDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def on_desc(self, ev: Any) -> None:
        """The switch's description: dp_desc is its name, serial_num its VTEP (tor-agent sets both)."""
        body, dpid = ev.msg.body, ev.msg.datapath.id
        name, vtep = _text(body.dp_desc), _text(body.serial_num)
        with self.lock:
            joining = self._joining.get(dpid)
            if joining is not None and joining.desc is None:
                joining.desc = (name if name and name != "None" else None, vtep if _ipv4(vtep) else None)
                self._maybe_up(ev.msg.datapath, joining)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def on_port_desc(self, ev: Any) -> None:
        """The switch's ports (possibly in several parts; os-ken's handshake asks for them too: the first
        complete list counts)."""
        dp = ev.msg.datapath
        with self.lock:
            joining = self._joining.get(dp.id)
            if joining is None or joining.ports is not None:
                return
            joining.port_parts = (joining.port_parts or []) + [Port(p.port_no, _text(p.name)) for p in ev.msg.body]
            if ev.msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
                return
            joining.ports, joining.port_parts = joining.port_parts, None
            self._maybe_up(dp, joining)

    def _maybe_up(self, dp: Any, joining: Joining) -> None:
        """Once description and ports are in: the switch's flows, then read them back for the resync."""
        if joining.desc is None or joining.ports is None:
            return
        name, vtep = joining.desc
        tunnels = sorted(p.name for p in joining.ports if p.kind == "tunnel")
        self.logger.info(
            "dpid=%016x is %s (VTEP %s): %d ports, tunnels %s",
            dp.id, name or "unnamed", vtep or "unknown", len(joining.ports), ", ".join(tunnels) or "none",
        )  # fmt: skip
        self.send(self.fabric.switch_up(dp.id, joining.ports, name, vtep))
        parser, ofp = dp.ofproto_parser, dp.ofproto
        request = parser.OFPFlowStatsRequest(
            dp, cookie=COOKIE_BASE, cookie_mask=COOKIE_APP_MASK, table_id=ofp.OFPTT_ALL
        )
        dp.send_msg(request)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def on_flow_stats(self, ev: Any) -> None:
        """The switch's flows with the app's cookie: delete what is stale, learn the hosts it delivers to."""
        dp = ev.msg.datapath
        with self.lock:
            joining = self._joining.get(dp.id)
            if joining is None:
                return
            joining.flows = (joining.flows or []) + [_flow(dp, stat) for stat in ev.msg.body]
            if ev.msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
                return
            flows = joining.flows
            del self._joining[dp.id]
            mods = self.fabric.resync(dp.id, flows)
            stale = sum(m.command != "add" for m in mods)
            self.logger.info("dpid=%016x resynchronised: %d flows read, %d stale deleted", dp.id, len(flows), stale)
            self.send(mods)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def on_port_status(self, ev: Any) -> None:
        """A port was added, changed or deleted."""
        msg = ev.msg
        dp, ofp = msg.datapath, msg.datapath.ofproto
        port = Port(msg.desc.port_no, _text(msg.desc.name))
        with self.lock:
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
        with self.lock:
            if dpid is not None and self.datapaths.get(dpid) is ev.datapath:
                del self.datapaths[dpid]
                self._joining.pop(dpid, None)
                self.fabric.switch_down(dpid)
                self.logger.info("switch disconnected: dpid=%016x", dpid)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev: Any) -> None:
        """A frame sent up by table 0: learn its source in its network (the switch forwards it by itself)."""
        msg = ev.msg
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        with self.lock:
            moves = self.fabric.moves
            tunnel_id = int(msg.match.get("tunnel_id", 0))
            mods = self.fabric.packet_in(msg.datapath.id, msg.match["in_port"], tunnel_id, eth.src, eth.dst)
            if self.fabric.moves != moves and self.fabric.last_move is not None:
                net, mac, loc = self.fabric.last_move
                self.logger.info("MAC %s moved in %s: now dpid=%016x port %d", mac, net, loc.dpid, loc.port)
            self.send(mods)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def on_barrier(self, ev: Any) -> None:
        """A switch confirmed every message sent before the barrier."""
        event = self._barriers.pop((ev.msg.datapath.id, ev.msg.xid), None)
        if event is not None:
            event.set()

    def send(self, mods: list[FlowMod] | tuple[FlowMod, ...]) -> set[int]:
        """Send flow mods to the switches they concern (those not connected miss them); the DPIDs reached."""
        reached = set()
        for mod in mods:
            dp = self.datapaths.get(mod.dpid)
            if dp is not None:
                dp.send_msg(_flow_mod(dp, mod))
                reached.add(mod.dpid)
        return reached

    def confirm(self, dpids: set[int]) -> None:
        """Wait (at most BARRIER_TIMEOUT_S) until switches `dpids` have processed what was sent to them."""
        waiting = []
        for dpid in dpids:
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
            dp.set_xid(barrier)
            event = self._barriers[(dpid, barrier.xid)] = threading.Event()
            dp.send_msg(barrier)
            waiting.append(event)
        for event in waiting:
            if not event.wait(BARRIER_TIMEOUT_S):
                self.logger.warning("a switch did not confirm the API's flows within %.0f s", BARRIER_TIMEOUT_S)
                return

    # --- the network API -----------------------------------------------------------------------------------

    def request(self, method: str, target: str, body: bytes) -> Reply:
        """One API request: handled under the lock; the reply waits for the switches' confirmation."""
        with self.lock:
            reply = self.api.handle(method, target, body)
            reached = self.send(reply.mods)
        self.confirm(reached)  # outside the lock: the barrier replies come through os-ken's event thread
        self.logger.info("API %s %s -> %d", method, target, reply.status)
        return reply

    def _serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        try:
            server = http.server.ThreadingHTTPServer((host, int(port)), _Handler)
        except (OSError, ValueError) as e:
            raise SystemExit(f"lab_app: cannot serve the network API on {listen}: {e}") from e
        server.app = self  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="network-api", daemon=True).start()
        self.logger.info("network API on http://%s/networks", listen)


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 requests of the network API, answered with JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "tor-agent-lab-controller"

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._reply(Reply(413 if length > MAX_BODY else 400, {"error": f"Content-Length must be 0..{MAX_BODY}"}))
            return
        body = self.rfile.read(length) if length else b""
        self._reply(self.server.app.request(self.command, self.path, body))  # type: ignore[attr-defined]

    def _reply(self, reply: Reply) -> None:
        data = (json.dumps(reply.body, indent=1) + "\n").encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by the app, with their outcome."""


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace").rstrip("\0") if isinstance(raw, bytes) else raw


def _ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _flow(dp: Any, stat: Any) -> Flow:
    """A flow from the switch's flow stats, as l2logic compares them."""
    ofp = dp.ofproto
    match = tuple((k, v) for k, v in stat.match.items())
    foreign = any(isinstance(v, tuple) or k not in ("in_port", "tunnel_id", "eth_src", "eth_dst") for k, v in match)
    actions: list[Action] = []
    for inst in stat.instructions:
        if inst.type == ofp.OFPIT_GOTO_TABLE:
            actions.append(Action("goto", inst.table_id))
        elif inst.type == ofp.OFPIT_APPLY_ACTIONS:
            for act in inst.actions:
                if act.type == ofp.OFPAT_OUTPUT:
                    actions.append(
                        Action("controller") if act.port == ofp.OFPP_CONTROLLER else Action("output", act.port)
                    )
                elif act.type == ofp.OFPAT_SET_FIELD and act.key == "tunnel_id":
                    actions.append(Action("set_tunnel", act.value))
                else:
                    foreign = True
        else:
            foreign = True
    return Flow(stat.table_id, stat.priority, stat.cookie, match, tuple(actions), foreign)


def _flow_mod(dp: Any, mod: FlowMod) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    match = parser.OFPMatch(**dict(mod.match))
    if mod.command in ("delete", "delete_strict"):
        return parser.OFPFlowMod(
            datapath=dp,
            cookie=COOKIE_BASE if mod.vni is None else cookie(mod.vni),
            cookie_mask=COOKIE_APP_MASK if mod.vni is None else COOKIE_EXACT,
            table_id=ofp.OFPTT_ALL if mod.table is None else mod.table,
            command=ofp.OFPFC_DELETE if mod.command == "delete" else ofp.OFPFC_DELETE_STRICT,
            priority=mod.priority,
            out_port=ofp.OFPP_ANY if mod.out_port is None else mod.out_port,
            out_group=ofp.OFPG_ANY,
            match=match,
        )
    actions: list[Any] = []
    for action in mod.actions:
        if action.kind == "output":
            actions.append(parser.OFPActionOutput(action.arg))
        elif action.kind == "controller":
            actions.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, LEARN_BYTES))
        elif action.kind == "set_tunnel":
            actions.append(parser.OFPActionSetField(tunnel_id=action.arg))
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    instructions += [parser.OFPInstructionGotoTable(a.arg) for a in mod.actions if a.kind == "goto"]
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=cookie(mod.vni or 0),
        table_id=mod.table,
        command=ofp.OFPFC_ADD,
        idle_timeout=mod.idle_timeout,
        priority=mod.priority,
        match=match,
        instructions=instructions,
    )
