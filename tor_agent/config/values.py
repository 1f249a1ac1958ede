"""Parsers of the intent's textual values (addresses, names, targets): raw YAML value in, typed value out,
or `Invalid` saying what is wrong and what is allowed. Each field's declaration names its parser."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address
from typing import Any, Literal, TypeVar

from tor_agent.config.declare import Invalid
from tor_agent.config.quote import got, shown, type_name

T = TypeVar("T")

IFNAME_MAX = 15  # Linux IFNAMSIZ - 1
HOSTNAME_MAX = 253  # a DNS name; FRR refuses 255 and more
OPENFLOW_PORT = 6653
TCP_PORT = (1, 65535)
OSPF_AREA = (0, 4294967295)

_IFNAME = re.compile(r"[A-Za-z0-9_.@-]+", re.ASCII)
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*", re.ASCII)
_DPID = re.compile(r"[0-9a-f]{16}", re.ASCII)
_TARGET = re.compile(r"(?P<scheme>[a-z]+):(?P<host>\[[^\]]+\]|[^:\[\]]+)(:(?P<port>[^:]*))?")
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_NOT_UNICAST_V4 = (
    (IPv4Network("0.0.0.0/8"), "in 0.0.0.0/8, this network"),
    (IPv4Network("127.0.0.0/8"), "a loopback address"),
    (IPv4Network("224.0.0.0/4"), "a multicast address"),
    (IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4, with the broadcast address)"),
)


@dataclass(frozen=True)
class Target:
    """One OpenFlow controller target, e.g. tcp:203.0.113.10:6653."""

    scheme: Literal["tcp", "ssl"]
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}:{host}:{self.port}"


def unicast_problem(addr: IPv4Address | IPv6Address, loopback_ok: bool = False) -> str | None:
    """Why `addr` cannot be the address of a host (an interface, a VTEP, a controller), or None.

    `loopback_ok`: 127.0.0.0/8 and ::1 are fine (a controller may run on the switch itself)."""
    if addr.is_loopback:
        return None if loopback_ok else "a loopback address"
    if addr.version == 4:
        return next((why for net, why in _NOT_UNICAST_V4 if addr in net), None)
    if addr.is_unspecified:
        return "the unspecified address"
    return "a multicast address" if addr.is_multicast else None


def parsed(value: Any, parse: Callable[[str], T], what: str) -> T:
    """`parse(value)` for a string `value`; `what` is the allowed form, for the message."""
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {type_name(value)} ({what})")
    try:
        return parse(value)
    except ValueError:
        raise Invalid(f"{shown(value)} is not valid ({what})") from None


def ipv4_host(value: Any) -> IPv4Address:
    """A unicast IPv4 address such as 198.18.0.11."""
    addr = parsed(value, IPv4Address, "an IPv4 address such as 198.18.0.11")
    why = unicast_problem(addr)
    if why is not None:
        raise Invalid(f"{addr} is not a unicast address ({why}; allowed: a unicast IPv4 address)")
    return addr


def loopback(value: Any) -> IPv4Interface:
    """A unicast IPv4 /32 such as 198.18.0.11/32."""
    lo = parsed(value, IPv4Interface, "an IPv4 /32 such as 198.18.0.11/32")
    if lo.network.prefixlen != 32:
        raise Invalid(f"{lo} must be a /32 (it is the VTEP address)")
    ipv4_host(str(lo.ip))
    return lo


def link_address(value: Any) -> IPv4Interface:
    """A unicast host address with a /8../31 link prefix, e.g. 198.18.1.1/31."""
    address = parsed(value, IPv4Interface, "an IPv4 address with prefix, e.g. 198.18.1.1/31")
    net = address.network
    why = unicast_problem(address.ip)
    if why is not None:
        raise Invalid(f"{address.ip} is not a unicast address ({why}; allowed: a host address)")
    if not 8 <= net.prefixlen <= 31:
        raise Invalid(f"{address} must be a /8../31 link prefix (use unnumbered: true for /32)")
    if net.prefixlen < 31 and address.ip in (net.network_address, net.broadcast_address):
        raise Invalid(f"{address.ip} is the network or broadcast address of {net} (allowed: a host address)")
    return address


def prefix(value: Any) -> IPv4Network:
    """An IPv4 prefix with no host bits, e.g. 198.18.0.0/24."""
    return parsed(value, lambda s: IPv4Network(s, strict=True), "a prefix such as 198.18.0.0/24")


def ifname(value: Any) -> str:
    """A Linux interface name: 1..15 characters of letters, digits and _ . @ -."""
    if not isinstance(value, str):
        raise Invalid(f"must be an interface name string, got {shown(value)}")
    if not (len(value) <= IFNAME_MAX and _IFNAME.fullmatch(value) and value not in (".", "..")):
        raise Invalid(
            f"{shown(value)} is not a valid interface name "
            f"(allowed: 1..{IFNAME_MAX} characters of letters, digits, _ . @ -)"
        )
    return value


def hostname(value: Any) -> str:
    """Dot-separated labels of 1..63 letters, digits and -, at most 253 characters."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a non-empty string, got {got(value)}")
    if len(value) > HOSTNAME_MAX or not _HOSTNAME.fullmatch(value):
        raise Invalid(
            f"{shown(value)} is not a valid hostname (allowed: letters, digits and - in dot-separated labels "
            f"of 1..63, at most {HOSTNAME_MAX} characters)"
        )
    return value


def dpid(value: Any) -> str:
    """16 hex digits, not all zero; lower-cased."""
    if not (isinstance(value, str) and _DPID.fullmatch(value.lower()) and int(value, 16) != 0):
        raise Invalid(
            f"{shown(value)} is not a datapath ID (allowed: 16 hex digits, not all zero, quoted, "
            'e.g. "00000000000000a1"; leave it out to derive it from node.router_id)'
        )
    return value.lower()


def area(value: Any) -> str:
    """An OSPF area ID, A.B.C.D or 0..4294967295; always dotted, as FRR prints it."""
    if isinstance(value, int) and not isinstance(value, bool):
        lo, hi = OSPF_AREA
        if not lo <= value <= hi:
            raise Invalid(f"{value} is out of range (allowed: {lo}..{hi} or A.B.C.D)")
        return str(IPv4Address(value))
    return str(parsed(value, IPv4Address, "an area ID: A.B.C.D or 0..4294967295"))


def target(value: Any) -> Target:
    """tcp:IP[:PORT] or ssl:IP[:PORT], IPv6 in brackets, a unicast address or loopback."""
    form = "tcp:IP:PORT or ssl:IP:PORT, IPv6 in brackets, port 1..65535"
    match = _TARGET.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise Invalid(f"{shown(value)} is not a controller target ({form})")
    scheme, host, port = match["scheme"], match["host"].strip("[]"), match["port"]
    if scheme not in ("tcp", "ssl"):
        raise Invalid(f"{shown(value)}: scheme {shown(scheme)} is not supported ({form})")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise Invalid(f"{shown(value)}: {shown(host)} is not an IP address ({form})") from None
    why = unicast_problem(address, loopback_ok=True)
    if why is not None:
        raise Invalid(f"{shown(value)}: {address} is not a unicast address ({why})")
    if port is None:
        return Target(scheme, host, OPENFLOW_PORT)  # type: ignore[arg-type]
    if not (_PORT.fullmatch(port) and TCP_PORT[0] <= int(port) <= TCP_PORT[1]):
        raise Invalid(f"{shown(value)}: port {shown(port)} is out of range ({form})")
    return Target(scheme, host, int(port))  # type: ignore[arg-type]


def path(value: Any) -> str:
    """A file path: a non-empty string (relative to the intent file's directory)."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a non-empty string, got {got(value)}")
    return value


@dataclass(frozen=True)
class Form:
    """How the docs and the JSON Schema describe a parsed value."""

    kind: str  # the docs' type column
    json: dict[str, Any]  # its JSON Schema (editors check the form; `tor-agent check` checks the rest)


_DOTTED = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
FORMS: dict[Callable[[Any], Any], Form] = {
    ipv4_host: Form("IPv4 address", {"type": "string", "format": "ipv4"}),
    loopback: Form("IPv4 /32", {"type": "string", "pattern": f"^{_DOTTED}/32$"}),
    link_address: Form("IPv4 interface", {"type": "string", "pattern": f"^{_DOTTED}/([89]|[12][0-9]|3[01])$"}),
    prefix: Form("IPv4 prefix", {"type": "string", "pattern": f"^{_DOTTED}/([0-9]|[12][0-9]|3[0-2])$"}),
    ifname: Form("string", {"type": "string", "pattern": f"^[A-Za-z0-9_.@-]{{1,{IFNAME_MAX}}}$"}),
    hostname: Form("string", {"type": "string", "maxLength": HOSTNAME_MAX, "pattern": f"^{_LABEL}(\\.{_LABEL})*$"}),
    dpid: Form("string", {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}),
    area: Form(
        "`A.B.C.D` or integer",
        {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "integer", "minimum": 0, "maximum": OSPF_AREA[1]}]},
    ),
    target: Form("string", {"type": "string", "pattern": r"^(tcp|ssl):([0-9.]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"}),
    path: Form("path", {"type": "string", "minLength": 1}),
}
