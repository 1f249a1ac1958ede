"""The OVS rows a leaf needs, computed from its intent: pure data, no I/O.

`desired_ovs(intent, peers, uplink_macs)` returns the bridges and ports tor-agent owns:
- the overlay bridge (pinned DPID, OpenFlow versions, fail mode, in-band control off when out-of-band, the
  switch's hostname and VTEP in the OpenFlow description a controller reads) with its internal port, the
  access ports and one GRE port per peer VTEP;
- on a `datapath: netdev` leaf, one bridge per uplink holding the physical port, its internal port carrying
  the uplink's MTU and the bridge carrying the physical port's MAC (docs/design.md, facts 2 and 5);
- the overlay bridge's OpenFlow controllers (one Controller row per target) and, for `ssl:` targets, the
  switch-wide SSL row (key, certificate, CA) — see docs/controllers.md.
Every port has exactly one interface of the same name. Map columns are sorted `(key, value)` pairs so
that specs compare and hash by value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from tor_agent.config.schema import Bfd, Controllers, Intent, Overlay, Uplink
from tor_agent.model.underlay import uplink_bridge_name

OWNER_KEY = "tor-agent-owner"  # in external_ids of every Bridge, Port, Interface, Controller and SSL row it creates
OWNER_VALUE = "tor-agent"
TUNNEL_PREFIX = "gre-"

# Bridge.other_config keys tor-agent manages: set when desired, removed when not; other keys are left alone.
DATAPATH_ID = "datapath-id"
DISABLE_IN_BAND = "disable-in-band"
HWADDR = "hwaddr"
# What a controller reads over OpenFlow (the OFPMP_DESC reply) to know which switch it talks to:
DP_DESC = "dp-desc"  # dp_desc: the switch's hostname
DP_SN = "dp-sn"  # serial_num: the switch's VTEP, the local end of every tunnel (docs/controllers.md)

OPENFLOW_PORT = 6653  # OVS's default port for tcp: and ssl: controller targets

Pairs = tuple[tuple[str, str], ...]


def pairs(mapping: Mapping[str, str]) -> Pairs:
    """A map column as sorted (key, value) pairs: the form every spec and snapshot uses."""
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class InterfaceSpec:
    """The Interface columns tor-agent sets; `options` and `bfd` are owned as whole maps."""

    name: str
    type: str = ""  # "" = a system (kernel) device, "internal", "gre"
    options: Pairs = ()
    bfd: Pairs = ()
    mtu_request: int | None = None
    ofport_request: int | None = None


@dataclass(frozen=True)
class PortSpec:
    """A port on `bridge` with exactly one interface of the same name."""

    bridge: str
    interface: InterfaceSpec

    @property
    def name(self) -> str:
        return self.interface.name


@dataclass(frozen=True)
class BridgeSpec:
    """The Bridge columns tor-agent sets. Of `other_config` only `other_config_keys` are managed."""

    name: str
    datapath_type: str
    protocols: tuple[str, ...] = ()  # sorted
    fail_mode: str | None = None  # None: empty, i.e. OVS's default (standalone)
    other_config: Pairs = ()
    other_config_keys: frozenset[str] = frozenset()  # managed keys: absent from other_config means remove


@dataclass(frozen=True)
class ControllerSpec:
    """The Controller columns tor-agent sets. `target` is canonical (see `canonical_target`)."""

    target: str
    inactivity_probe: int | None = None  # ms; 0 disables the probe; None: OVS's default (5000)
    max_backoff: int | None = None  # ms; None: OVS's default (8000)
    connection_mode: str | None = None  # "out-of-band" | "in-band"; None: OVS's default (in-band)


@dataclass(frozen=True)
class SslSpec:
    """The switch-wide SSL row: the files ovs-vswitchd uses for every ssl: connection."""

    private_key: str
    certificate: str
    ca_cert: str


@dataclass(frozen=True)
class OvsDesired:
    """Everything tor-agent wants in OVSDB; anything it owns beyond this is removed.

    Controllers belong to `controller_bridge` and are keyed by canonical target. Removing a bridge's last
    controller clears its flow tables in OVS, so unless `allow_controller_removal` is set the reconciler
    keeps the current ones when none are wanted (and reports it) rather than leave the bridge without any.
    """

    bridges: Mapping[str, BridgeSpec]
    ports: Mapping[str, PortSpec]
    tunnels: Mapping[IPv4Address, str]  # peer VTEP -> tunnel port name (for routes and health checks)
    controller_bridge: str | None = None
    controllers: Mapping[str, ControllerSpec] = field(default_factory=dict)
    ssl: SslSpec | None = None
    allow_controller_removal: bool = False


EMPTY = OvsDesired(bridges={}, ports={}, tunnels={})


def tunnel_port_name(peer: IPv4Address) -> str:
    """`gre-` + the peer's address as 8 hex digits (12 characters, fits IFNAMSIZ), as Neutron names them."""
    return f"{TUNNEL_PREFIX}{int(peer):08x}"


_TARGET = re.compile(r"^(?P<scheme>tcp|ssl):(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")


def canonical_target(target: str) -> str:
    """The one spelling of a tcp:/ssl: controller target: `tcp:IP:PORT`, IPv6 in brackets, the port explicit.

    OVS keys its controller connections by the target *string*, so `tcp:192.0.2.1`, `tcp:192.0.2.1:6653`
    and `tcp:192.0.2.1:06653` are different connections to the same controller. Anything that does not
    parse as an IP target (`unix:`, a host name, a passive `ptcp:`) is returned unchanged.
    """
    match = _TARGET.match(target)
    if match is None:
        return target
    try:
        address = ipaddress.ip_address(match["v6"] or match["host"])
    except ValueError:
        return target
    port = int(match["port"]) if match["port"] else OPENFLOW_PORT
    if not 0 < port < 65536:
        return target
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{match['scheme']}:{host}:{port}"


def alternate_target(target: str) -> str:
    """Another spelling of the canonical `target` for the same controller: the port with a leading zero.

    Rewriting a Controller row's target from one spelling to the other makes ovs-vswitchd create a new
    connection at once (OVS 3.1 keeps a disconnected controller's reconnect backoff, up to max_backoff,
    whatever else changes in the row); the set of controllers never becomes empty, so flows are kept.
    """
    scheme_host, _, port = target.rpartition(":")
    return f"{scheme_host}:0{port}"


def desired_controllers(controllers: Controllers | None) -> dict[str, ControllerSpec]:
    """One ControllerSpec per target of the intent's `controllers` section, by canonical target."""
    if controllers is None:
        return {}
    return {
        canonical_target(str(t)): ControllerSpec(
            target=canonical_target(str(t)),
            inactivity_probe=controllers.inactivity_probe_ms,
            max_backoff=controllers.max_backoff_ms,
            connection_mode=controllers.connection_mode,
        )
        for t in controllers.targets
    }


def desired_ssl(controllers: Controllers | None) -> SslSpec | None:
    """The SSL row the intent's `controllers.ssl` asks for, or None."""
    if controllers is None or controllers.ssl is None:
        return None
    ssl = controllers.ssl
    return SslSpec(private_key=ssl.private_key, certificate=ssl.certificate, ca_cert=ssl.ca_cert)


def tunnel_peers(intent: Intent, discovered: Iterable[IPv4Address]) -> frozenset[IPv4Address]:
    """The intent's static peers plus the discovered ones, never this node's own VTEP."""
    if intent.overlay is None:
        return frozenset()
    own = intent.node.loopback.ip
    return frozenset((*intent.overlay.tunnels.peers, *discovered)) - {own}


def desired_ovs(
    intent: Intent,
    peers: frozenset[IPv4Address] = frozenset(),
    uplink_macs: Mapping[str, str] | None = None,
    allow_controller_removal: bool = False,
) -> OvsDesired:
    """The OVS rows `intent` needs.

    `peers` are the discovered VTEPs (the intent's static peers are always included; this node's own
    VTEP never is). `uplink_macs` maps an uplink's name to its physical port's MAC, read from the kernel
    by the caller; an uplink without a known MAC leaves its bridge's `hwaddr` unmanaged for this pass.
    A node without an overlay (a spine) wants nothing: everything tor-agent owns is removed.
    `allow_controller_removal`: an intent without controllers may remove the bridge's last one (which
    clears its flow tables); without it the current controllers are kept and reported.
    """
    overlay = intent.overlay
    if overlay is None:
        return EMPTY
    bridges = [_overlay_bridge(intent, overlay)]
    ports = [
        _internal_port(overlay.bridge, overlay.tunnels.tenant_mtu),
        *_access_ports(overlay),
    ]
    tunnels = {peer: tunnel_port_name(peer) for peer in sorted(tunnel_peers(intent, peers))}
    ports += _tunnel_ports(intent, overlay, tunnels)
    if overlay.datapath == "netdev":
        macs = uplink_macs or {}
        for uplink in intent.underlay.uplinks:
            bridge = _uplink_bridge(uplink, macs.get(uplink.name))
            bridges.append(bridge)
            ports += [
                _internal_port(bridge.name, uplink.mtu),
                PortSpec(bridge.name, InterfaceSpec(uplink.name)),
            ]
    return OvsDesired(
        bridges={b.name: b for b in bridges},
        ports={p.name: p for p in ports},
        tunnels=tunnels,
        controller_bridge=overlay.bridge,
        controllers=desired_controllers(intent.controllers),
        ssl=desired_ssl(intent.controllers),
        allow_controller_removal=allow_controller_removal,
    )


def _overlay_bridge(intent: Intent, overlay: Overlay) -> BridgeSpec:
    out_of_band = intent.controllers is None or intent.controllers.connection_mode == "out-of-band"
    other = {DATAPATH_ID: overlay.dpid, DP_DESC: intent.node.hostname, DP_SN: str(intent.node.loopback.ip)}
    if out_of_band:
        other[DISABLE_IN_BAND] = "true"
    return BridgeSpec(
        name=overlay.bridge,
        datapath_type=overlay.datapath,
        protocols=tuple(sorted(overlay.protocols)),
        fail_mode=overlay.fail_mode,
        other_config=pairs(other),
        other_config_keys=frozenset({DATAPATH_ID, DISABLE_IN_BAND, DP_DESC, DP_SN}),
    )


def _uplink_bridge(uplink: Uplink, mac: str | None) -> BridgeSpec:
    # No controller and no fail mode: the bridge forwards with NORMAL between the port and its interface.
    return BridgeSpec(
        name=uplink_bridge_name(uplink),
        datapath_type="netdev",
        other_config=((HWADDR, mac.lower()),) if mac else (),
        other_config_keys=frozenset({HWADDR}) if mac else frozenset(),
    )


def _internal_port(bridge: str, mtu: int) -> PortSpec:
    # Internal ports do not reliably follow their bridge's MTU (OSPF then sticks in ExStart): pin it.
    return PortSpec(bridge, InterfaceSpec(bridge, type="internal", mtu_request=mtu))


def _access_ports(overlay: Overlay) -> list[PortSpec]:
    # A controller's config names OpenFlow port numbers: keep host ports on 1..n in intent order.
    return [
        PortSpec(overlay.bridge, InterfaceSpec(name, ofport_request=i))
        for i, name in enumerate(overlay.access_ports, start=1)
    ]


def _tunnel_ports(intent: Intent, overlay: Overlay, tunnels: Mapping[IPv4Address, str]) -> list[PortSpec]:
    conf = overlay.tunnels
    # Pairs shared by every tunnel are built once: a leaf may hold a thousand tunnels in memory.
    shared = {"local_ip": str(intent.node.loopback.ip)}
    if conf.key is not None:
        shared["key"] = str(conf.key)
    common = pairs(shared)
    bfd: Pairs = ()
    if conf.bfd:
        # The tunnels detect failure on the underlay's BFD budget (OVS's multiplier is fixed at 3).
        timers = intent.underlay.ospf.bfd or Bfd()
        bfd = pairs({"enable": "true", "min_rx": str(timers.rx_ms), "min_tx": str(timers.tx_ms)})
    return [
        PortSpec(
            overlay.bridge,
            InterfaceSpec(name, type=conf.type, options=(*common, ("remote_ip", str(peer))), bfd=bfd),
        )
        for peer, name in tunnels.items()
    ]
