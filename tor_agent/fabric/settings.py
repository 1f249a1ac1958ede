"""The fabric's settings file: how addresses are derived, and intent sections merged into the rendered intents.

```yaml
fabric:                 # how render derives what differs per switch (every key optional)
  leaf_loopbacks: {prefix: 198.18.0.0/24, first_host: 11}    # leaf loopbacks = VTEPs; the VTEP prefix
  spine_loopbacks: {prefix: 198.18.255.0/24, first_host: 1}
  links: {prefix: 198.18.0.0/16, unnumbered: false}           # a /31 per leaf-spine link
  first_dpid: "00000000000000a1"
  tunnel_peers: discover                                      # discover | static
  controllers: {scheme: tcp, port: 6653}
switches: {...}         # intent sections merged into every spine and leaf
spine: {...}            # ... into every spine
leaf: {...}             # ... into every leaf
nodes: {leaf1: {...}}   # ... into one switch
uplinks: {"*": {...}, leaf1: {...}, "leaf1:eth1": {...}}      # uplink fields merged into generated uplinks
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tor_agent.fabric.findings import Finding, Findings
from tor_agent.fabric.yamlfile import read_yaml

TunnelPeers = Literal["discover", "static"]
INTENT_SECTIONS = ("switches", "spine", "leaf")
TOP_KEYS = ("fabric", *INTENT_SECTIONS, "nodes", "uplinks")
FABRIC_KEYS = ("leaf_loopbacks", "spine_loopbacks", "links", "first_dpid", "tunnel_peers", "controllers")
DPID_DIGITS = 16


@dataclass(frozen=True)
class Pool:
    """Loopbacks of one role: the Nth switch of the role (in file order) gets host `first_host + N - 1`."""

    prefix: ipaddress.IPv4Network
    first_host: int

    def address(self, ordinal: int) -> ipaddress.IPv4Address | None:
        """The address of the `ordinal`-th switch (0-based), None when the prefix has run out."""
        host = self.first_host + ordinal
        return self.prefix[host] if host < self.prefix.num_addresses else None

    @property
    def capacity(self) -> int:
        return max(0, self.prefix.num_addresses - self.first_host)


# The defaults are the lab's address plan (labs/containerlab/): leaves .11 and up, spines .1 and up, links
# from 198.18.1.0 (the /31s of 198.18.0.0/16 after the leaf prefix, skipping the spine prefix).
LEAF_LOOPBACKS = Pool(ipaddress.IPv4Network("198.18.0.0/24"), 11)
SPINE_LOOPBACKS = Pool(ipaddress.IPv4Network("198.18.255.0/24"), 1)
LINKS = ipaddress.IPv4Network("198.18.0.0/16")


@dataclass(frozen=True)
class FabricSettings:
    """The `fabric:` section."""

    leaf_loopbacks: Pool = LEAF_LOOPBACKS
    spine_loopbacks: Pool = SPINE_LOOPBACKS
    links: ipaddress.IPv4Network = LINKS
    unnumbered: bool = False
    first_dpid: int = 0xA1
    tunnel_peers: TunnelPeers = "discover"
    controller_scheme: Literal["tcp", "ssl"] = "tcp"
    controller_port: int = 6653


@dataclass(frozen=True)
class Settings:
    """A settings file, read and checked (the intent sections are checked once merged, by the intent loader)."""

    source: str  # the file, or "(defaults)" when render runs without one
    base_dir: Path  # relative file paths in the intent sections are relative to this directory
    fabric: FabricSettings = field(default_factory=FabricSettings)
    switches: Mapping[str, Any] = field(default_factory=dict)
    spine: Mapping[str, Any] = field(default_factory=dict)
    leaf: Mapping[str, Any] = field(default_factory=dict)
    nodes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    uplinks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def role(self, role: str) -> Mapping[str, Any]:
        return self.spine if role == "spine" else self.leaf


DEFAULTS_SOURCE = "(default settings)"


def read_settings(path: Path | None) -> tuple[Settings | None, list[Finding]]:
    """The settings in `path`, or the defaults when `path` is None."""
    if path is None:
        return Settings(DEFAULTS_SOURCE, Path.cwd()), []
    doc, problems = read_yaml(path, "settings file")
    if problems:
        return None, problems
    return parse_settings(doc, str(path), path.resolve().parent)


def parse_settings(doc: Any, source: str, base_dir: Path) -> tuple[Settings | None, list[Finding]]:
    """The settings in the parsed document `doc` (None: an empty file, all defaults)."""
    f = Findings()
    r = _Reader(source, f)
    top = r.mapping(doc if doc is not None else {}, "", TOP_KEYS)
    if top is None:
        return None, f.items
    fabric = _fabric(top.get("fabric"), r)
    sections = {key: r.mapping(top.get(key, {}), key, None) or {} for key in INTENT_SECTIONS}
    nodes = _named_sections(top.get("nodes", {}), "nodes", r)
    uplinks = _named_sections(top.get("uplinks", {}), "uplinks", r)
    if f.errors or fabric is None:
        return None, f.items
    settings = Settings(
        source, base_dir, fabric, sections["switches"], sections["spine"], sections["leaf"], nodes, uplinks
    )
    return settings, f.items


class _Reader:
    def __init__(self, source: str, f: Findings) -> None:
        self.source, self.f = source, f

    def error(self, path: str, message: str) -> None:
        self.f.error(f"{self.source}: {path}" if path else self.source, message)

    def mapping(self, value: Any, path: str, keys: tuple[str, ...] | None) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path or "(top level)", f"must be a mapping, got {type(value).__name__}")
            return None
        if keys is not None:
            for key in value:
                if key not in keys:
                    self.error(_join(path, str(key)), f"unknown key (allowed here: {', '.join(keys)})")
        for key in value:
            if not isinstance(key, str):
                self.error(_join(path, str(key)), "keys must be strings")
        return {k: v for k, v in value.items() if isinstance(k, str) and (keys is None or k in keys)}

    def prefix(self, value: Any, path: str) -> ipaddress.IPv4Network | None:
        try:
            return ipaddress.IPv4Network(str(value), strict=True) if isinstance(value, str) else None
        except ValueError:
            pass
        self.error(path, f"{value!r} is not an IPv4 prefix such as 198.18.0.0/24 (host bits zero)")
        return None

    def integer(self, value: Any, path: str, lo: int, hi: int) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
        self.error(path, f"must be an integer {lo}..{hi}, got {value!r}")
        return None

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> Any:
        if value in choices:
            return value
        self.error(path, f"{value!r} is not supported (allowed: {' | '.join(choices)})")
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fabric(raw: Any, r: _Reader) -> FabricSettings | None:
    m = r.mapping(raw, "fabric", FABRIC_KEYS)
    if m is None:
        return None
    d = FabricSettings()
    n = r.f.count()
    leaf = _pool(m.get("leaf_loopbacks"), "fabric.leaf_loopbacks", d.leaf_loopbacks, r)
    spine = _pool(m.get("spine_loopbacks"), "fabric.spine_loopbacks", d.spine_loopbacks, r)
    links, unnumbered = _links(m.get("links"), d, r)
    dpid = _dpid(m["first_dpid"], r) if "first_dpid" in m else d.first_dpid
    peers = r.choice(m.get("tunnel_peers", d.tunnel_peers), "fabric.tunnel_peers", ("discover", "static"))
    scheme, port = _controllers(m.get("controllers"), d, r)
    if leaf and spine and leaf.prefix.overlaps(spine.prefix):
        r.error(
            "fabric.spine_loopbacks.prefix",
            f"{spine.prefix} overlaps the leaf loopbacks' {leaf.prefix} (the VTEP prefix must hold no spine loopback)",
        )
    if r.f.count() > n or None in (leaf, spine, links, unnumbered, dpid, peers, scheme, port):
        return None
    return FabricSettings(leaf, spine, links, unnumbered, dpid, peers, scheme, port)  # type: ignore[arg-type]


def _pool(raw: Any, path: str, default: Pool, r: _Reader) -> Pool | None:
    m = r.mapping(raw, path, ("prefix", "first_host"))
    if m is None:
        return None
    prefix = r.prefix(m["prefix"], _join(path, "prefix")) if "prefix" in m else default.prefix
    if prefix is None:
        return None
    first = m.get("first_host", default.first_host)
    last = prefix.num_addresses - 1
    checked = r.integer(first, _join(path, "first_host"), 0, last)
    return Pool(prefix, checked) if checked is not None else None


def _links(raw: Any, d: FabricSettings, r: _Reader) -> tuple[ipaddress.IPv4Network | None, bool | None]:
    m = r.mapping(raw, "fabric.links", ("prefix", "unnumbered"))
    if m is None:
        return None, None
    prefix = r.prefix(m["prefix"], "fabric.links.prefix") if "prefix" in m else d.links
    if prefix is not None and prefix.prefixlen > 31:
        r.error("fabric.links.prefix", f"{prefix} holds no /31 (use a /31 or shorter)")
        prefix = None
    unnumbered = m.get("unnumbered", d.unnumbered)
    if not isinstance(unnumbered, bool):
        r.error("fabric.links.unnumbered", f"must be true or false, got {unnumbered!r}")
        return prefix, None
    return prefix, unnumbered


def _dpid(value: Any, r: _Reader) -> int | None:
    ok = isinstance(value, str) and 0 < len(value) <= DPID_DIGITS and all(c in "0123456789abcdefABCDEF" for c in value)
    if ok and int(value, 16) > 0:
        return int(value, 16)
    r.error(
        "fabric.first_dpid",
        f'{value!r} is not a datapath ID (1..16 hex digits, not all zero, quoted, e.g. "00000000000000a1")',
    )
    return None


def _controllers(raw: Any, d: FabricSettings, r: _Reader) -> tuple[Any, int | None]:
    m = r.mapping(raw, "fabric.controllers", ("scheme", "port"))
    if m is None:
        return None, None
    scheme = r.choice(m.get("scheme", d.controller_scheme), "fabric.controllers.scheme", ("tcp", "ssl"))
    port = r.integer(m.get("port", d.controller_port), "fabric.controllers.port", 1, 65535)
    return scheme, port


def _named_sections(raw: Any, path: str, r: _Reader) -> dict[str, Mapping[str, Any]]:
    m = r.mapping(raw, path, None)
    found: dict[str, Mapping[str, Any]] = {}
    for name, value in (m or {}).items():
        section = r.mapping(value, _join(path, name), None)
        if section is not None:
            found[name] = section
    return found
