"""The lab controller's network API and its state file, pure: requests in, replies and flow mods out.

    GET    /networks                        every network with its ports and learned MACs       200
    GET    /networks/NAME                   one network                                          200, 404
    POST   /networks   {"name": "red", "vni": 1001}                                             201, 400, 409
    PUT    /networks/NAME/ports   {"switch": "leaf1", "port": "eth3"}                           200, 400, 404, 409
    DELETE /networks/NAME/ports/SWITCH/PORT                                                      200, 404
    DELETE /networks/NAME                                                                        200, 404

Bodies are JSON objects; every error is `{"error": MESSAGE}` with a 4xx status (a 500 when the state file
cannot be written) and changes nothing. A switch is named by its hostname (or its DPID in hex); a port by
its name; only access ports of a switch connected now can join, and a port is in at most one network.
`Api.handle` validates, then has the new state saved (`save`, the shell's file write), and only then changes
the `Fabric`, whose flow mods come back in the reply for the shell to send.

The state file (and a seed file, same format) is `{"version": 1, "networks": [{"name": ..., "vni": ...,
"ports": [{"switch": ..., "port": ...}]}]}`: what the API was told. Learned MACs are not in it: after a
restart they are read back from the switches' flows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING or __package__:  # imported from the repository (tests, benchmarks)
    from .l2logic import VNI_MAX, Fabric, FlowMod, Network, PortRef, dpid_name
else:  # next to lab_app.py, which os-ken loads by path
    from l2logic import VNI_MAX, Fabric, FlowMod, Network, PortRef, dpid_name

STATE_VERSION = 1
MAX_BODY = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"^[^/\s]{1,255}$")  # a switch or port name: it is a segment of the DELETE path

Doc = dict[str, Any]


class Invalid(Exception):
    """A request or a state file that cannot be taken; `status` is the HTTP status it gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Reply:
    status: int
    body: Doc
    mods: tuple[FlowMod, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


# --- the state file ------------------------------------------------------------------------------------------


def state_doc(networks: dict[str, Network]) -> Doc:
    """The state file's content for `networks`."""
    return {"version": STATE_VERSION, "networks": [_config_doc(n) for _, n in sorted(networks.items())]}


def parse_state(doc: Any) -> list[Network]:
    """The networks of a state (or seed) file's parsed JSON; Invalid names the field and what is wrong."""
    if not isinstance(doc, dict) or set(doc) - {"version", "networks"}:
        raise Invalid('must be an object {"version": 1, "networks": [...]}')
    if doc.get("version") != STATE_VERSION:
        raise Invalid(f"version: {doc.get('version')!r} is not {STATE_VERSION}")
    items = doc.get("networks", [])
    if not isinstance(items, list):
        raise Invalid("networks: must be a list")
    networks: dict[str, Network] = {}
    for i, item in enumerate(items):
        try:
            net = _network(item)
            _free(networks, net.name, net.vni)
            for ref in net.ports:
                if (other := _holder(networks, ref)) is not None:
                    raise Invalid(f"{ref.switch} {ref.port} is in network {other.name} too")
        except Invalid as e:
            raise Invalid(f"networks[{i}]: {e}") from e
        networks[net.name] = net
    return list(networks.values())


def _network(item: Any) -> Network:
    body = _object(item, ("name", "vni"), ("ports",))
    ports = body.get("ports", [])
    if not isinstance(ports, list):
        raise Invalid("ports: must be a list")
    refs = set()
    for i, port in enumerate(ports):
        try:
            refs.add(_port_ref(port))
        except Invalid as e:
            raise Invalid(f"ports[{i}]: {e}") from e
    return Network(_name(body["name"]), _vni(body["vni"]), frozenset(refs))


def _config_doc(net: Network) -> Doc:
    ports = [{"switch": r.switch, "port": r.port} for r in sorted(net.ports, key=lambda r: (r.switch, r.port))]
    return {"name": net.name, "vni": net.vni, "ports": ports}


# --- values --------------------------------------------------------------------------------------------------


def _object(value: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Doc:
    shape = ", ".join(f'"{k}": ...' for k in required)
    if not isinstance(value, dict):
        raise Invalid(f"must be a JSON object like {{{shape}}}, got {_kind(value)}")
    allowed = (*required, *optional)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
    missing = [k for k in required if k not in value]
    if missing:
        raise Invalid(f"{missing[0]}: missing (a body looks like {{{shape}}})")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise Invalid(
            f"name: {json.dumps(value)} is not a network name (1..64 letters, digits, '_', '.', '-'; "
            "starting with a letter or digit)"
        )
    return value


def _vni(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"vni: must be an integer, got {json.dumps(value)}")
    if not 1 <= value <= VNI_MAX:
        raise Invalid(f"vni: {value} is out of range (allowed: 1..{VNI_MAX})")
    return value


def _port_ref(value: Any) -> PortRef:
    body = _object(value, ("switch", "port"))
    for key in ("switch", "port"):
        if not isinstance(body[key], str) or not _REF.fullmatch(body[key]):
            raise Invalid(f"{key}: {json.dumps(body[key])} is not a {key} name (1..255 characters, no '/' or spaces)")
    return PortRef(body["switch"], body["port"])


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _free(networks: dict[str, Network], name: str, vni: int) -> None:
    if name in networks:
        raise Invalid(f"network {name} exists already (VNI {networks[name].vni})", 409)
    user = next((n for n in networks.values() if n.vni == vni), None)
    if user is not None:
        raise Invalid(f"VNI {vni} is in use by network {user.name}", 409)


def _holder(networks: dict[str, Network], ref: PortRef) -> Network | None:
    return next((n for n in networks.values() if ref in n.ports), None)


# --- the API -------------------------------------------------------------------------------------------------


class Api:
    """The HTTP API over a Fabric; `save` writes the state document (raising OSError when it cannot)."""

    def __init__(self, fabric: Fabric, save: Callable[[Doc], None]) -> None:
        self.fabric = fabric
        self.save = save

    def handle(self, method: str, target: str, body: bytes = b"") -> Reply:
        """One request: method, request target (path), body. Never raises for bad input."""
        try:
            return self._route(method.upper(), [unquote(p) for p in urlsplit(target).path.strip("/").split("/")], body)
        except Invalid as e:
            return Reply(e.status, {"error": str(e)})

    def _route(self, method: str, parts: list[str], body: bytes) -> Reply:
        routes: dict[int, dict[str, Callable[[], Reply]]] = {
            1: {"GET": self._list, "POST": lambda: self._create(_json(body))},
            2: {"GET": lambda: self._show(parts[1]), "DELETE": lambda: self._delete(parts[1])},
            3: {"PUT": lambda: self._attach(parts[1], _json(body))},
            5: {"DELETE": lambda: self._detach(parts[1], PortRef(parts[3], parts[4]))},
        }
        shapes = {1: ["networks"], 2: ["networks", "*"], 3: ["networks", "*", "ports"], 5: ["networks", "*", "ports"]}
        shape = shapes.get(len(parts))
        if shape is None or any(s != "*" and s != p for s, p in zip(shape, parts, strict=False)) or "" in parts:
            raise Invalid(f"no such resource /{'/'.join(parts)} (see GET /networks)", 404)
        handler = routes[len(parts)].get(method)
        if handler is None:
            allowed = ", ".join(routes[len(parts)])
            return Reply(
                405, {"error": f"{method} is not allowed here (allowed: {allowed})"}, (), (("Allow", allowed),)
            )
        return handler()

    # --- resources ---

    def _network(self, name: str) -> Network:
        net = self.fabric.networks.get(name)
        if net is None:
            known = ", ".join(sorted(self.fabric.networks)) or "none"
            raise Invalid(f"no network {name!r} (networks: {known})", 404)
        return net

    def _list(self) -> Reply:
        return Reply(200, {"networks": [self.network_doc(n) for _, n in sorted(self.fabric.networks.items())]})

    def _show(self, name: str) -> Reply:
        return Reply(200, self.network_doc(self._network(name)))

    def _create(self, body: Any) -> Reply:
        fields = _object(body, ("name", "vni"))
        name, vni = _name(fields["name"]), _vni(fields["vni"])
        _free(self.fabric.networks, name, vni)
        self._save({**self.fabric.networks, name: Network(name, vni)})
        mods = self.fabric.add_network(name, vni)
        return Reply(
            201, self.network_doc(self.fabric.networks[name]), tuple(mods), (("Location", f"/networks/{name}"),)
        )

    def _delete(self, name: str) -> Reply:
        net = self._network(name)
        self._save({k: v for k, v in self.fabric.networks.items() if k != name})
        mods = self.fabric.delete_network(name)
        return Reply(200, {"deleted": self._doc_of(net)}, tuple(mods))

    def _attach(self, name: str, body: Any) -> Reply:
        net = self._network(name)
        ref = self._access_port(_port_ref(body))
        other = self.fabric.network_of(ref)
        if other is not None and other.name != name:
            raise Invalid(
                f"{ref.switch} {ref.port} is in network {other.name}: detach it first "
                f"(DELETE /networks/{other.name}/ports/{ref.switch}/{ref.port})",
                409,
            )
        if other is None:
            self._save({**self.fabric.networks, name: Network(name, net.vni, net.ports | {ref})})
            mods = tuple(self.fabric.attach(name, ref))
        else:
            mods = ()
        return Reply(200, self.network_doc(self.fabric.networks[name]), mods)

    def _detach(self, name: str, given: PortRef) -> Reply:
        net = self._network(name)
        switch = self.fabric.switch_named(given.switch)
        ref = PortRef(switch.name, given.port) if switch is not None else given
        if ref not in net.ports:
            raise Invalid(f"{given.switch} {given.port} is not in network {name}", 404)
        self._save({**self.fabric.networks, name: Network(name, net.vni, net.ports - {ref})})
        mods = self.fabric.detach(name, ref)
        return Reply(200, self.network_doc(self.fabric.networks[name]), tuple(mods))

    def _access_port(self, ref: PortRef) -> PortRef:
        """`ref` with the switch's own name, once it is an access port of a switch connected now."""
        switch = self.fabric.switch_named(ref.switch)
        if switch is None:
            known = ", ".join(sorted(s.name for s in self.fabric.switches.values())) or "none"
            raise Invalid(f"switch: {ref.switch!r} is not connected to this controller (connected: {known})")
        port = switch.named(ref.port)
        if port is not None and port.kind == "tunnel":
            raise Invalid(f"port: {ref.port} of {switch.name} is a tunnel: only access ports join networks")
        if port is None:
            access = ", ".join(sorted(p.name for p in switch.ports.values() if p.kind == "access")) or "none"
            raise Invalid(f"port: {switch.name} has no port {ref.port!r} (its access ports: {access})")
        return PortRef(switch.name, port.name)

    def _save(self, networks: dict[str, Network]) -> None:
        try:
            self.save(state_doc(networks))
        except OSError as e:
            raise Invalid(f"cannot save the networks ({e}): nothing changed", 500) from e

    # --- documents ---

    def network_doc(self, net: Network) -> Doc:
        """A network with its ports and the MACs learned in it (where each was last seen)."""
        macs = []
        for (name, mac), loc in sorted(self.fabric.hosts.items()):
            if name != net.name:
                continue
            switch = self.fabric.switches.get(loc.dpid)
            port = switch.ports.get(loc.port) if switch is not None else None
            where = switch.name if switch is not None else dpid_name(loc.dpid)
            macs.append({"mac": mac, "switch": where, "port": port.name if port is not None else loc.port})
        return {**self._doc_of(net), "macs": macs}

    def _doc_of(self, net: Network) -> Doc:
        return _config_doc(net)


def _json(body: bytes) -> Any:
    if len(body) > MAX_BODY:
        raise Invalid(f"the body is larger than {MAX_BODY} bytes", 413)
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise Invalid(f"the body is not UTF-8: {e}") from e
    except ValueError as e:
        raise Invalid(f"the body is not JSON: {e}") from e
