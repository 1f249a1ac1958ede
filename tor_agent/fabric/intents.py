"""The intent of every spine and leaf: derived from the plan, merged with the settings, validated (pure).

Merge order, later wins: what render derives < `switches` < `spine`/`leaf` < `nodes.<name>`; then the
`uplinks` sections (`"*"` < `<node>` < `<node>:<interface>`) are merged into the uplinks by name. A node
whose settings move its loopback keeps its router ID equal to it unless the router ID is set too.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tor_agent.config import Intent, load_text, schema, values
from tor_agent.config.declare import Invalid
from tor_agent.errors import ConfigError
from tor_agent.fabric.findings import Findings, names
from tor_agent.fabric.merge import Origin, Provenance, merge
from tor_agent.fabric.plan import Plan, SwitchPlan
from tor_agent.fabric.settings import Settings
from tor_agent.fabric.topology import Topology
from tor_agent.fabric.yamlfile import Quoted, dump, natural_key

OVERLAY_BRIDGE = "br-tor"
AREA = "0.0.0.0"
INTENT_FILE = "agent.yaml"
# Intent fields naming a file, relative to the intent file: copied from beside the settings file.
FILE_FIELDS = (
    "underlay.ospf.authentication.key_file",
    "controllers.ssl.private_key",
    "controllers.ssl.certificate",
    "controllers.ssl.ca_cert",
)
HEADER = (
    "tor-agent intent of {name}, rendered by `tor-agent fabric render` from the fabric's topology and\n"
    "settings: change those and render again rather than editing this file."
)


@dataclass
class Draft:
    """One switch's intent document while it is built, with the origin of each part."""

    name: str
    role: str
    doc: dict[str, Any]
    prov: Provenance
    loopback: str  # as derived, to see whether the settings moved it
    far: dict[str, str] = field(default_factory=dict)  # uplink name -> the switch at its other end

    def get(self, path: str) -> Any:
        value: Any = self.doc
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass(frozen=True)
class ValidIntent:
    """A switch's rendered intent file, the `Intent` it loads as, and the files it refers to."""

    name: str
    text: str
    intent: Intent
    copies: dict[str, Path]  # relative path beside agent.yaml -> the file to copy there


@dataclass
class _Seen:
    """The switches and intent paths where one settings path caused one problem."""

    nodes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def add(self, node: str, path: str) -> None:
        for items, item in ((self.nodes, node), (self.paths, path)):
            if item not in items:
                items.append(item)


def build_intents(topo: Topology, settings: Settings, plan: Plan, f: Findings) -> dict[str, ValidIntent]:
    """Every switch's intent, validated by the intent loader; problems name the node and their origin."""
    _selectors_known(topo, settings, f)
    drafts = {name: _derive(topo, settings, plan, sp) for name, sp in plan.switches.items()}
    for draft in drafts.values():
        _merge_settings(draft, settings)
        _uplink_selectors(draft, settings, f)
        _router_id_follows_loopback(draft)
    _neighbours(drafts)
    if settings.fabric.tunnel_peers == "static":
        _static_peers(drafts)
    problems: dict[tuple[str, str], _Seen] = defaultdict(_Seen)  # one line per (origin, message)
    valid = {}
    for name, draft in drafts.items():
        copies = _copies(draft, settings, f)
        text = dump(canonical(draft.doc), HEADER.format(name=name))
        try:
            intent = load_text(text, f"{name}/{INTENT_FILE}", settings.base_dir)
        except ConfigError as e:
            for p in e.problems:
                problems[(draft.prov.of(p.path).text(), p.message)].add(name, p.path or "(top level)")
            continue
        valid[name] = ValidIntent(name, text, intent, copies)
    for (origin, message), seen in problems.items():
        f.error(origin, f"{message} [{names(seen.nodes)}: {names(seen.paths, limit=4)}]", seen.nodes)
    return valid


# Key order of the written intent: the schema's own field order (the intent's keys are its field names).
_SHAPES: dict[str, type] = {
    "": schema.Intent,
    "node": schema.Node,
    "underlay": schema.Underlay,
    "underlay.ospf": schema.Ospf,
    "underlay.ospf.bfd": schema.Bfd,
    "underlay.ospf.authentication": schema.OspfAuth,
    "underlay.uplinks[]": schema.Uplink,
    "underlay.uplinks[].neighbour": schema.Neighbour,
    "overlay": schema.Overlay,
    "overlay.tunnels": schema.Tunnels,
    "overlay.tunnels.discover": schema.Discover,
    "controllers": schema.Controllers,
    "controllers.ssl": schema.Ssl,
}


def canonical(doc: Any, shape: str = "") -> Any:
    """`doc` with every mapping's keys in the schema's order (unknown keys last, as given)."""
    if isinstance(doc, list):
        return [canonical(v, f"{shape}[]") for v in doc]
    if not isinstance(doc, dict):
        return doc
    cls = _SHAPES.get(shape)
    order = {f.name: i for i, f in enumerate(dataclasses.fields(cls))} if cls else {}
    keys = sorted(doc, key=lambda k: order.get(k, len(order)))
    return {k: canonical(doc[k], f"{shape}.{k}" if shape else str(k)) for k in keys}


def _selectors_known(topo: Topology, settings: Settings, f: Findings) -> None:
    switches = {n.name for n in topo.switches}
    for name in settings.nodes:
        if name not in switches:
            f.error(f"{settings.source}: nodes.{name}", f"no spine or leaf named {name!r} in {topo.source}")
    for selector in settings.uplinks:
        node = selector.split(":", 1)[0]
        if selector != "*" and node not in switches:
            f.error(
                f"{settings.source}: uplinks.{selector}",
                f'no spine or leaf named {node!r} in {topo.source} (allowed: "*", NODE, NODE:INTERFACE)',
            )


# --- what render derives ------------------------------------------------------------------------------


def _derive(topo: Topology, settings: Settings, plan: Plan, sp: SwitchPlan) -> Draft:
    node, name = sp.node, sp.node.name
    prov = Provenance(Origin(topo.node_path(name), "", exact=False))
    pool = Origin(settings.source, f"fabric.{node.role}_loopbacks", exact=False)
    loopback = f"{sp.loopback}/32"
    doc: dict[str, Any] = {
        "version": 1,
        "node": {"hostname": node.hostname, "role": node.role, "router_id": str(sp.loopback), "loopback": loopback},
        "underlay": {"ospf": {"area": AREA}, "uplinks": []},
    }
    prov.record("node.router_id", pool)
    prov.record("node.loopback", pool)
    links = sorted(
        (lp for lp in plan.links if name in (lp.link.spine.node, lp.link.leaf.node)),
        key=lambda lp: natural_key(lp.link.end(name).iface),
    )
    fars: dict[str, str] = {}
    for i, lp in enumerate(links):
        address = lp.address(name)
        uplink: dict[str, Any] = {"name": lp.link.end(name).iface}
        uplink.update({"address": str(address)} if address is not None else {"unnumbered": True})
        uplink["mtu"] = lp.link.mtu
        far = lp.link.other(name)
        uplink["neighbour"] = {"node": far.node, "router_id": "", "port": far.iface}  # node and ID: _neighbours
        doc["underlay"]["uplinks"].append(uplink)
        fars[uplink["name"]] = far.node
        prov.record(f"underlay.uplinks[{i}]", Origin(topo.link_path(lp.link), "", exact=False))
        if address is not None and lp.link.spine_address is None:
            prov.record(f"underlay.uplinks[{i}].address", Origin(settings.source, "fabric.links", exact=False))
    if node.role == "leaf":
        _derive_leaf(topo, settings, plan, sp, doc, prov)
    return Draft(name, node.role, doc, prov, loopback, fars)


def _derive_leaf(
    topo: Topology, settings: Settings, plan: Plan, sp: SwitchPlan, doc: dict[str, Any], prov: Provenance
) -> None:
    name, fs = sp.node.name, settings.fabric
    ports = sorted((lk.leaf.iface for lk in topo.access_links if lk.leaf.node == name), key=natural_key)
    overlay: dict[str, Any] = {"bridge": OVERLAY_BRIDGE, "dpid": Quoted(sp.dpid or "")}
    if ports:
        overlay["access_ports"] = ports
    if fs.tunnel_peers == "discover":
        overlay["tunnels"] = {"discover": {"ospf_prefix": str(fs.leaf_loopbacks.prefix)}}
        prov.record("overlay.tunnels.discover", Origin(settings.source, "fabric.leaf_loopbacks", exact=False))
    else:
        overlay["tunnels"] = {"peers": []}  # filled in once every leaf's loopback is final
        prov.record("overlay.tunnels.peers", Origin(settings.source, "fabric.tunnel_peers", exact=False))
    doc["overlay"] = overlay
    prov.record("overlay.dpid", Origin(settings.source, "fabric.first_dpid", exact=False))
    if plan.controllers:
        doc["controllers"] = {"targets": list(plan.controllers)}
        for i, node in enumerate(n for n in topo.role("controller") if n.mgmt_addresses):
            prov.record(f"controllers.targets[{i}]", Origin(topo.node_path(node.name), "", exact=False))


# --- settings -----------------------------------------------------------------------------------------


def _merge_settings(draft: Draft, settings: Settings) -> None:
    sections: list[tuple[str, Mapping[str, Any]]] = [
        ("switches", settings.switches),
        (draft.role, settings.role(draft.role)),
        (f"nodes.{draft.name}", settings.nodes.get(draft.name, {})),
    ]
    for path, section in sections:
        merge(draft.doc, section, "", Origin(settings.source, path), draft.prov)


def _uplink_selectors(draft: Draft, settings: Settings, f: Findings) -> None:
    uplinks = draft.get("underlay.uplinks")
    if not isinstance(uplinks, list):
        return
    by_name = {u.get("name"): i for i, u in enumerate(uplinks) if isinstance(u, dict)}
    for selector in ("*", draft.name):
        if selector in settings.uplinks:
            for i, uplink in enumerate(uplinks):
                if isinstance(uplink, dict):
                    origin = Origin(settings.source, f"uplinks.{selector}")
                    merge(uplink, settings.uplinks[selector], f"underlay.uplinks[{i}]", origin, draft.prov)
    for selector, section in settings.uplinks.items():
        node, _, iface = selector.partition(":")
        if node != draft.name or not iface:
            continue
        if iface not in by_name:
            f.error(
                f"{settings.source}: uplinks.{selector}",
                f"{draft.name} has no uplink {iface!r} (its uplinks: {', '.join(map(str, by_name)) or 'none'})",
                [draft.name],
            )
            continue
        i = by_name[iface]
        merge(uplinks[i], section, f"underlay.uplinks[{i}]", Origin(settings.source, f"uplinks.{selector}"), draft.prov)


def _router_id_follows_loopback(draft: Draft) -> None:
    node = draft.doc.get("node")
    if not isinstance(node, dict) or not draft.prov.derived("node.router_id"):
        return
    loopback = node.get("loopback")
    if isinstance(loopback, str) and loopback != draft.loopback:
        node["router_id"] = loopback.split("/", 1)[0]
        draft.prov.record("node.router_id", draft.prov.of("node.loopback"))


def _neighbours(drafts: dict[str, Draft]) -> None:
    """Each generated uplink's expected neighbour: the far switch's hostname and router ID as finally merged
    (settings may move either), unless the settings set them."""
    for draft in drafts.values():
        uplinks = draft.get("underlay.uplinks")
        for i, uplink in enumerate(uplinks if isinstance(uplinks, list) else []):
            neighbour = uplink.get("neighbour") if isinstance(uplink, dict) else None
            far = drafts.get(draft.far.get(str(uplink.get("name")), "")) if isinstance(uplink, dict) else None
            if far is None or not isinstance(neighbour, dict):
                continue
            at = f"underlay.uplinks[{i}].neighbour"
            derived = [key for key in ("node", "router_id") if draft.prov.derived(f"{at}.{key}")]
            far_values = {"node": far.get("node.hostname"), "router_id": far.get("node.router_id")}
            neighbour.update({key: far_values[key] for key in derived})
            if not all(_valid(key, neighbour[key]) for key in derived):
                del uplink["neighbour"]  # the far switch's own intent reports its hostname or router ID


def _valid(key: str, value: Any) -> bool:
    try:
        (values.hostname if key == "node" else values.ipv4_host)(value)
    except Invalid:
        return False
    return True


def _static_peers(drafts: dict[str, Draft]) -> None:
    vteps = {name: d.get("node.loopback") for name, d in drafts.items() if d.role == "leaf"}
    for name, draft in drafts.items():
        tunnels = draft.get("overlay.tunnels")
        if draft.role == "leaf" and isinstance(tunnels, dict) and draft.prov.derived("overlay.tunnels.peers"):
            others = [v for n, v in vteps.items() if n != name and isinstance(v, str)]
            tunnels["peers"] = [v.split("/", 1)[0] for v in others]


def _copies(draft: Draft, settings: Settings, f: Findings) -> dict[str, Path]:
    """Files the intent names by a relative path: they come from beside the settings file."""
    copies: dict[str, Path] = {}
    for path in FILE_FIELDS:
        value = draft.get(path)
        if not isinstance(value, str) or PurePosixPath(value).is_absolute():
            continue
        origin = draft.prov.of(path)
        if ".." in PurePosixPath(value).parts:
            f.error(origin.text(), f"{value!r} leaves the node's directory: name a file at or below the settings file")
            continue
        copies[value] = settings.base_dir / value
    return copies
