"""The intent: frozen dataclasses that are also its one declaration.

Each field carries its type (the annotation), default, range or choices, parser and doc line (`setting`).
The generic reader builds these from the YAML (`tor_agent.config.reader`), `docs/config.md`'s tables and
the JSON Schema (`tor-agent schema`) are generated from them, and code that needs a default outside the
loader takes it from here (`declare.default_of`). Rules across fields live in `validate*.py`.
Ranges are FRR 8.4's, Open vSwitch 3.1's and Linux's own unless the doc line says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Literal

from tor_agent.config import values as v
from tor_agent.config.declare import setting
from tor_agent.config.values import Target
from tor_agent.errors import Problem

__all__ = [
    "Bfd",
    "Controllers",
    "Discover",
    "Intent",
    "Neighbour",
    "Node",
    "Ospf",
    "OspfAuth",
    "Overlay",
    "Ssl",
    "Target",
    "Tunnels",
    "Underlay",
    "Uplink",
]

Role = Literal["leaf", "spine"]
Datapath = Literal["system", "netdev"]
FailMode = Literal["secure", "standalone"]
ConnectionMode = Literal["out-of-band", "in-band"]
OpenFlowVersion = Literal["OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15"]

MTU = (68, 65535)
OSPF_INTERVAL_S = (1, 65535)
BFD_INTERVAL_MS = (10, 60000)
GRE_KEY = (0, 2**32 - 1)


@dataclass(frozen=True)
class Node:
    hostname: str = setting(
        parse=v.hostname,
        doc="dot-separated labels of 1..63 letters, digits, `-` (not at either end); at most 253 characters "
        "(FRR refuses 255); rendered as FRR's `hostname`",
    )
    role: Role = setting(doc="`leaf`: a ToR with an overlay; `spine`: underlay only")
    router_id: IPv4Address = setting(parse=v.ipv4_host, doc="unicast; rendered explicitly as `ospf router-id`")
    loopback: IPv4Interface = setting(
        parse=v.loopback,
        doc="unicast `/32`, outside every uplink subnet; on a leaf also its VTEP (tunnel source)",
    )


@dataclass(frozen=True)
class Bfd:
    enabled: bool = setting(True, doc="BFD on every uplink (FRR bfdd; one profile)")
    rx_ms: int = setting(300, range=BFD_INTERVAL_MS, doc="required minimum receive interval")
    tx_ms: int = setting(300, range=BFD_INTERVAL_MS, doc="desired minimum transmit interval")
    multiplier: int = setting(3, range=(2, 255), doc="detect multiplier")


@dataclass(frozen=True)
class OspfAuth:
    key_id: int = setting(range=(1, 255), doc="the message-digest key ID")
    key_file: str = setting(
        parse=v.path,
        doc="a file holding one key of 1..16 ASCII printable characters, no spaces and no `?` (keep it mode 0600)",
    )
    key: str = setting("", yaml=False, repr=False, doc="read from key_file at load time; never logged")


@dataclass(frozen=True)
class Ospf:
    area: str = setting(
        "0.0.0.0",
        parse=v.area,
        kind="`A.B.C.D` or integer",
        doc="0..4294967295 or A.B.C.D; always rendered dotted, as FRR prints it",
    )
    maximum_paths: int = setting(
        256,
        range=(1, 256),
        default_doc="`256` (FRR's)",
        doc="ECMP width; at least the number of spines (Debian builds FRR with 256 paths)",
    )
    reference_bandwidth_mbps: int = setting(100000, range=(1, 4294967), doc="cost = reference / link speed")
    hello_interval_s: int | None = setting(None, range=OSPF_INTERVAL_S, default_doc="FRR's (10)", doc="seconds")
    dead_interval_s: int | None = setting(
        None,
        range=OSPF_INTERVAL_S,
        default_doc="FRR's (40)",
        doc="greater than `hello_interval_s` (than FRR's default 10 when `hello_interval_s` is not set)",
    )
    lsa_throttle_ms: int = setting(
        5000,
        range=(0, 5000),
        default_doc="`5000` (FRR's)",
        doc="`timers throttle lsa all`; 0 lets a cold start converge seconds sooner",
    )
    lsa_min_arrival_ms: int = setting(
        1000, range=(0, 600000), default_doc="`1000` (FRR's)", doc="`timers lsa min-arrival`"
    )
    bfd: Bfd | None = setting(None, default_doc="absent (no BFD)", doc="BFD on every uplink, one profile")
    authentication: OspfAuth | None = setting(
        None, default_doc="absent (none)", doc="OSPF MD5 message-digest on every uplink"
    )
    startup_max_metric_s: int = setting(
        120,
        range=(0, 3600),
        doc="after FRR or the switch starts, the switch advertises the maximum metric on every transit link (no "
        "traffic goes through it) until tor-agent's first pass is done and every uplink is Full, at most this "
        "many seconds; `0`: no start-up protection",
    )
    drain_min_paths: int = setting(
        1,
        range=(0, 64),
        doc="`tor-agent drain` refuses (unless `--force`) when a pair of other switches would keep fewer paths "
        "that avoid drained switches; `0`: never refuse",
    )


@dataclass(frozen=True)
class Neighbour:
    node: str = setting(
        parse=v.hostname,
        doc="the switch at the far end: its hostname, as it announces itself in LLDP (its `node.hostname`)",
    )
    router_id: IPv4Address = setting(parse=v.ipv4_host, doc="its OSPF router ID")
    port: str = setting(parse=v.ifname, doc="its interface at the far end of this link (a Linux interface name)")


@dataclass(frozen=True)
class Uplink:
    name: str = setting(parse=v.ifname, doc="Linux interface name, 1..15 of letters, digits, `_ . @ -`; unique")
    address: IPv4Interface | None = setting(
        None,
        parse=v.link_address,
        default_doc="—",
        doc="unicast `/8`..`/31` host address; subnets must not overlap each other or contain the loopback",
    )
    unnumbered: bool = setting(
        False, doc="`true` borrows the loopback /32; exactly one of `address` or `unnumbered: true`"
    )
    cost: int | None = setting(None, range=(1, 65535), default_doc="from reference bandwidth", doc="OSPF cost")
    mtu: int = setting(1500, range=MTU, doc="must carry `overlay.tunnels.tenant_mtu` plus encapsulation")
    bridge: str | None = setting(
        None,
        parse=v.ifname,
        default_doc="`br-<name>`",
        doc="only with `overlay.datapath: netdev`: the OVS bridge that holds this uplink; "
        "set it when `br-<name>` exceeds 15 characters",
    )
    neighbour: Neighbour | None = setting(
        None,
        default_doc="absent (cabling not checked)",
        doc="the switch expected at the far end (`tor-agent fabric render` writes it): `verify` fails naming "
        "expected and found when LLDP or the OSPF neighbour's router ID shows another one",
    )

    @property
    def bridge_name(self) -> str:
        """The OVS bridge that holds this uplink on a netdev leaf: `bridge` if set, else br-<name>."""
        return self.bridge or f"br-{self.name}"


@dataclass(frozen=True)
class Underlay:
    ospf: Ospf = setting(doc="OSPF area 0 (or another) on every uplink, point-to-point")
    uplinks: tuple[Uplink, ...] = setting(min_items=1, doc="the point-to-point links to spines (on a spine: to leaves)")


@dataclass(frozen=True)
class Discover:
    ospf_prefix: IPv4Network = setting(
        parse=v.prefix,
        doc="every OSPF-learned /32 inside it (except our own) is a VTEP: keep the spines' loopbacks outside it",
    )


@dataclass(frozen=True)
class Tunnels:
    type: Literal["gre"] = setting("gre", doc="the tunnel protocol")
    key: int | Literal["flow"] | None = setting(
        None,
        range=GRE_KEY,
        default_doc="absent (no key)",
        doc="the GRE key of every tunnel; `flow`: the tunnel ID an OpenFlow controller sets per packet "
        "(OVS `options:key=flow`)",
    )
    tenant_mtu: int = setting(
        1500,
        range=MTU,
        doc="`tenant_mtu + overhead ≤ mtu` of every uplink, where overhead = outer IPv4 20 + GRE 4 (+ key 4) + "
        "tenant Ethernet 14 = 38 bytes (42 with a key, `flow` included)",
    )
    bfd: bool = setting(False, doc="BFD on every tunnel port (liveness reaches the controller)")
    peers: tuple[IPv4Address, ...] = setting(
        (),
        parse=v.ipv4_host,
        unique=True,
        doc="static remote VTEPs: unicast IPv4, not one of this switch's own addresses (loopback, uplinks)",
    )
    discover: Discover | None = setting(None, default_doc="absent", doc="peers learned from OSPF routes")
    hold_down_s: int = setting(
        10,
        range=(0, 600),
        doc="`tor-agent run` keeps a tunnel this many seconds after its peer's route went, so a route flap or an "
        "FRR restart elsewhere does not delete and re-add the port (a new OpenFlow port number the controller "
        "must relearn); `0`: delete at once. A one-shot `tor-agent apply` never holds",
    )


@dataclass(frozen=True)
class Overlay:
    bridge: str = setting(parse=v.ifname, doc="interface name; the OpenFlow bridge (access ports + tunnels)")
    datapath: Datapath = setting(
        "system",
        doc="`system`: kernel OVS; `netdev`: userspace OVS (uplinks become OVS bridges, docs/design.md §8)",
    )
    dpid: str = setting(
        "",
        parse=v.dpid,
        derived=True,
        default_doc="from `node.router_id`",
        doc="16 hex digits, not all zero, **quoted** (pinned so it never changes when ports change). Absent: 8 "
        "zeros, then the router ID in 8 hex digits (198.18.0.11 → `00000000c612000b`), unique across the fabric "
        "because router IDs are",
    )
    protocols: tuple[OpenFlowVersion, ...] = setting(
        ("OpenFlow13",), min_items=1, unique=True, doc="the OpenFlow versions the bridge speaks"
    )
    fail_mode: FailMode = setting(
        "secure",
        doc="`secure`: keep installed flows, never learn; `standalone`: becomes a learning switch when controllers "
        "are lost (loop risk with several uplinks)",
    )
    access_ports: tuple[str, ...] = setting(
        (),
        parse=v.ifname,
        unique=True,
        doc="host-facing interface names; not uplinks, not the bridge; not named like a tunnel port",
    )
    tunnels: Tunnels = setting(Tunnels(), default_doc="defaults below", doc="the GRE tunnels to the other VTEPs")


@dataclass(frozen=True)
class Ssl:
    private_key: str = setting(
        parse=v.path,
        doc="a PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`), not encrypted "
        "(ovs-vswitchd cannot ask for a passphrase); readable by group or others: a warning",
    )
    certificate: str = setting(parse=v.path, doc="a PEM certificate (`CERTIFICATE`)")
    ca_cert: str = setting(parse=v.path, doc="PEM CA certificates (one or more `CERTIFICATE` blocks)")


@dataclass(frozen=True)
class Controllers:
    targets: tuple[Target, ...] = setting(
        parse=v.target,
        min_items=1,
        unique=True,
        doc="`tcp:IP[:PORT]` or `ssl:IP[:PORT]`, IPv6 in brackets, port 1..65535 (default 6653); a unicast "
        "address or 127.0.0.1/::1 (a controller on the switch), not one of this switch's own addresses",
    )
    inactivity_probe_ms: int = setting(5000, range=(5000, 3600000), also=(0,), doc="`0`: off; OVS floors probes at 5 s")
    max_backoff_ms: int = setting(8000, range=(1000, 3600000), doc="OVS's reconnection backoff ceiling")
    connection_mode: ConnectionMode = setting("out-of-band", doc="`in-band` adds hidden flows")
    ssl: Ssl | None = setting(
        None,
        default_doc="absent",
        doc="the TLS files; required when any target is `ssl:`; with it, a `tcp:` target is refused unless "
        "`allow_plaintext`",
    )
    alarm_grace_s: int = setting(
        10,
        range=(1, 3600),
        doc="how long one controller, or every controller, may be down before it is an alarm (the keeper's log "
        "and status, `tor-agent controllers`, `status`, `verify`; `controllers --grace` overrides it); for the "
        "keeper also how long the connected ones may be neither master nor equal. `verify` still fails at once "
        "when no controller is connected",
    )
    probe_interval_ms: int = setting(
        500,
        range=(100, 10000),
        doc="how often the keeper TCP-probes a controller the switch is not connected to (one connection per "
        "probe, closed at once); a controller that comes back is reconnected within about one interval",
    )
    allow_plaintext: bool = setting(
        False, doc="`true` allows `tcp:` targets beside `ssl` settings (OpenFlow in the clear to those controllers)"
    )


@dataclass(frozen=True)
class Intent:
    """One switch's whole intent, as read from its intent file."""

    version: Literal[1] = setting(doc="the intent file format")
    node: Node = setting(doc="this switch: its name, role, router ID and loopback")
    underlay: Underlay = setting(doc="OSPF and the uplinks")
    overlay: Overlay | None = setting(
        None, default_doc="required on a leaf", doc="the OVS bridge and its tunnels; forbidden on a spine"
    )
    controllers: Controllers | None = setting(
        None, default_doc="absent", doc="the OpenFlow controllers of the bridge; forbidden on a spine"
    )
    source: str = setting("<memory>", yaml=False, doc="the file it was read from")
    warnings: tuple[Problem, ...] = setting(
        (), yaml=False, repr=False, compare=False, doc="e.g. a private key others can read"
    )
