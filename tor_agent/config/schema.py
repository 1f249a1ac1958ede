"""The validated intent: frozen dataclasses, built only by `tor_agent.config.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Literal

from tor_agent.errors import Problem

Role = Literal["leaf", "spine"]
Datapath = Literal["system", "netdev"]
FailMode = Literal["secure", "standalone"]
ConnectionMode = Literal["out-of-band", "in-band"]


@dataclass(frozen=True)
class Node:
    hostname: str
    role: Role
    router_id: IPv4Address
    loopback: IPv4Interface  # always a /32; on a leaf also the VTEP address


@dataclass(frozen=True)
class Bfd:
    enabled: bool = True
    rx_ms: int = 300
    tx_ms: int = 300
    multiplier: int = 3


@dataclass(frozen=True)
class OspfAuth:
    key_id: int
    key_file: str
    key: str = field(repr=False)  # read from key_file at load time; never logged


@dataclass(frozen=True)
class Ospf:
    area: str  # dotted quad, as FRR prints it
    maximum_paths: int = 64
    reference_bandwidth_mbps: int = 100000
    hello_interval_s: int | None = None
    dead_interval_s: int | None = None
    bfd: Bfd | None = None
    authentication: OspfAuth | None = None
    lsa_throttle_ms: int = 5000  # FRR's defaults; 0/0 makes a cold start converge seconds sooner
    lsa_min_arrival_ms: int = 1000


@dataclass(frozen=True)
class Uplink:
    name: str
    address: IPv4Interface | None  # None when unnumbered (the loopback /32 is borrowed)
    unnumbered: bool = False
    cost: int | None = None
    mtu: int = 1500
    bridge: str | None = None  # netdev leaves only: the OVS bridge holding this port (see model)


@dataclass(frozen=True)
class Underlay:
    ospf: Ospf
    uplinks: tuple[Uplink, ...]


@dataclass(frozen=True)
class Discover:
    ospf_prefix: IPv4Network


@dataclass(frozen=True)
class Tunnels:
    type: Literal["gre"] = "gre"
    key: int | Literal["flow"] | None = None  # "flow": the tunnel ID an OpenFlow controller sets per packet
    tenant_mtu: int = 1500
    bfd: bool = False
    peers: tuple[IPv4Address, ...] = ()
    discover: Discover | None = None
    hold_down_s: int = 10  # `tor-agent run` keeps a tunnel this long after its peer's route went


@dataclass(frozen=True)
class Overlay:
    bridge: str
    datapath: Datapath
    dpid: str  # 16 lowercase hex digits, pinned so it never changes with ports (default: from the router ID)
    protocols: tuple[str, ...]
    fail_mode: FailMode
    access_ports: tuple[str, ...]
    tunnels: Tunnels


@dataclass(frozen=True)
class Target:
    """One OpenFlow controller target, e.g. tcp:203.0.113.10:6653."""

    scheme: Literal["tcp", "ssl"]
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}:{host}:{self.port}"


@dataclass(frozen=True)
class Ssl:
    private_key: str
    certificate: str
    ca_cert: str


@dataclass(frozen=True)
class Controllers:
    targets: tuple[Target, ...]
    inactivity_probe_ms: int = 5000
    max_backoff_ms: int = 8000
    connection_mode: ConnectionMode = "out-of-band"
    ssl: Ssl | None = None
    alarm_grace_s: int = 10  # the keeper's and status/verify's alarm grace time
    probe_interval_ms: int = 500  # the keeper's TCP probe of a controller the switch is not connected to
    allow_plaintext: bool = False  # tcp: targets beside ssl settings


@dataclass(frozen=True)
class Intent:
    """One switch's whole intent, as read from its intent file."""

    version: int
    node: Node
    underlay: Underlay
    overlay: Overlay | None = None
    controllers: Controllers | None = None
    source: str = "<memory>"
    warnings: tuple[Problem, ...] = field(default=(), compare=False, repr=False)  # e.g. a key file others can read
