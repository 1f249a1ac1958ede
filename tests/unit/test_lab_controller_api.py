"""The lab controller's network API and state file (labs/containerlab/controller/netapi.py), pure: requests
against a Fabric with three connected leaves; what each reply says, what it saves and which flows it sends.
Every refused request must leave the networks, the saved state and the switches as they were."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labs.containerlab.controller.l2logic import Fabric, Network, Port, PortRef
from labs.containerlab.controller.netapi import Api, Invalid, Reply, parse_state, state_doc

LEAVES = {0xA1: ("leaf1", "198.18.0.11"), 0xA2: ("leaf2", "198.18.0.12"), 0xA3: ("leaf3", "198.18.0.13")}
TUNNEL_TO_LEAF2 = "gre-c612000c"


class Saved(list[dict[str, Any]]):
    """What the API saved; `fail` makes the next saves raise as a full disk would."""

    fail = False

    def __call__(self, doc: dict[str, Any]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.append(json.loads(json.dumps(doc)))


@pytest.fixture
def api() -> Api:
    fabric = Fabric([Network("blue", 1001, frozenset({PortRef("leaf1", "eth3"), PortRef("leaf2", "eth3")}))])
    for dpid, (name, vtep) in LEAVES.items():
        ports = [Port(1, "eth3"), Port(2, "eth4"), Port(0xFFFFFFFE, "br-tor")]
        ports += [Port(10 + i, f"gre-c61200{11 + i:02x}") for i, d in enumerate(LEAVES) if d != dpid]
        fabric.switch_up(dpid, ports, name, vtep)
    return Api(fabric, Saved())


def call(api: Api, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return api.handle(method, path, data)


def unchanged(api: Api, before: dict[str, Network], saves: int) -> bool:
    saved = api.save
    assert isinstance(saved, Saved)
    return api.fabric.networks == before and len(saved) == saves


def test_create_attach_list_detach_delete() -> None:
    fabric = Fabric()
    for dpid, (name, vtep) in LEAVES.items():
        fabric.switch_up(dpid, [Port(1, "eth3"), Port(2, "eth4")], name, vtep)
    saved = Saved()
    api = Api(fabric, saved)
    created = call(api, "POST", "/networks", {"name": "red", "vni": 1002})
    assert (created.status, created.body) == (201, {"name": "red", "vni": 1002, "ports": [], "macs": []})
    assert ("Location", "/networks/red") in created.headers and created.mods == ()
    attached = call(api, "PUT", "/networks/red/ports", {"switch": "leaf1", "port": "eth4"})
    assert attached.status == 200 and attached.body["ports"] == [{"switch": "leaf1", "port": "eth4"}]
    assert attached.mods and {m.dpid for m in attached.mods} == {0xA1} and {m.vni for m in attached.mods} == {1002}
    call(api, "PUT", "/networks/red/ports", {"switch": "00000000000000a2", "port": "eth4"})  # by DPID
    assert saved[-1] == state_doc(fabric.networks)
    assert saved[-1]["networks"][0]["ports"] == [
        {"switch": "leaf1", "port": "eth4"},
        {"switch": "leaf2", "port": "eth4"},
    ]
    fabric.packet_in(0xA1, 2, 0, "02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff")
    listed = call(api, "GET", "/networks")
    assert listed.status == 200
    assert listed.body["networks"][0]["macs"] == [{"mac": "02:00:00:00:00:01", "switch": "leaf1", "port": "eth4"}]
    detached = call(api, "DELETE", "/networks/red/ports/leaf1/eth4")
    assert detached.status == 200 and detached.body["ports"] == [{"switch": "leaf2", "port": "eth4"}]
    assert any(m.command == "delete" and m.dpid == 0xA1 for m in detached.mods)
    deleted = call(api, "DELETE", "/networks/red")
    assert deleted.status == 200 and deleted.body["deleted"]["name"] == "red"
    assert {(m.command, m.vni) for m in deleted.mods} == {("delete", 1002)}
    assert saved[-1] == {"version": 1, "networks": []} and fabric.networks == {}


@pytest.mark.parametrize(
    ("body", "raw", "status", "message"),
    [
        ({"name": "blue", "vni": 7}, None, 409, "network blue exists already (VNI 1001)"),
        ({"name": "red", "vni": 1001}, None, 409, "VNI 1001 is in use by network blue"),
        ({"name": "red", "vni": 0}, None, 400, "vni: 0 is out of range (allowed: 1..16777215)"),
        ({"name": "red", "vni": 16777216}, None, 400, "vni: 16777216 is out of range (allowed: 1..16777215)"),
        ({"name": "red", "vni": "1002"}, None, 400, 'vni: must be an integer, got "1002"'),
        ({"name": "red", "vni": True}, None, 400, "vni: must be an integer, got true"),
        ({"name": "red/x", "vni": 1002}, None, 400, 'name: "red/x" is not a network name'),
        ({"name": "red"}, None, 400, 'vni: missing (a body looks like {"name": ..., "vni": ...})'),
        ({"name": "red", "vni": 1, "mtu": 9000}, None, 400, "unknown field 'mtu' (allowed: name, vni)"),
        (["red", 1002], None, 400, 'must be a JSON object like {"name": ..., "vni": ...}, got a list'),
        (None, b'{"name": "red", "vni": 10', 400, "the body is not JSON: "),
        (None, b"\xff\xfe", 400, "the body is not UTF-8"),
        (None, b" " * (64 * 1024 + 1), 413, "the body is larger than 65536 bytes"),
    ],
)
def test_bad_create_is_refused_with_a_message_and_changes_nothing(
    api: Api, body: Any, raw: bytes | None, status: int, message: str
) -> None:
    before = dict(api.fabric.networks)
    reply = call(api, "POST", "/networks", body, raw)
    assert reply.status == status and reply.body["error"].startswith(message), reply.body
    assert reply.mods == () and unchanged(api, before, 0)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/networks/red/ports", {"switch": "leaf1", "port": "eth4"}, 404, "no network 'red' (networks: blue)"),
        ("/networks/blue/ports", {"switch": "leaf9", "port": "eth4"}, 400,
         "switch: 'leaf9' is not connected to this controller (connected: leaf1, leaf2, leaf3)"),
        ("/networks/blue/ports", {"switch": "leaf1", "port": "eth9"}, 400,
         "port: leaf1 has no port 'eth9' (its access ports: eth3, eth4)"),
        ("/networks/blue/ports", {"switch": "leaf1", "port": "br-tor"}, 400, "port: leaf1 has no port 'br-tor'"),
        ("/networks/blue/ports", {"switch": "leaf1", "port": TUNNEL_TO_LEAF2}, 400,
         f"port: {TUNNEL_TO_LEAF2} of leaf1 is a tunnel: only access ports join networks"),
        ("/networks/blue/ports", {"switch": "leaf1"}, 400, "port: missing"),
        ("/networks/blue/ports", {"switch": "leaf1", "port": 3}, 400, "port: 3 is not a port name"),
        ("/networks/blue/ports", "leaf1 eth4", 400, "must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_attach_is_refused_with_a_message_and_changes_nothing(
    api: Api, path: str, body: Any, status: int, message: str
) -> None:
    before = dict(api.fabric.networks)
    reply = call(api, "PUT", path, body)
    assert reply.status == status and reply.body["error"].startswith(message), reply.body
    assert reply.mods == () and unchanged(api, before, 0)


def test_a_port_is_in_one_network_at_most(api: Api) -> None:
    assert call(api, "POST", "/networks", {"name": "red", "vni": 1002}).status == 201
    before = dict(api.fabric.networks)
    reply = call(api, "PUT", "/networks/red/ports", {"switch": "leaf1", "port": "eth3"})
    assert reply.status == 409 and reply.mods == () and unchanged(api, before, 1)
    assert reply.body["error"] == (
        "leaf1 eth3 is in network blue: detach it first (DELETE /networks/blue/ports/leaf1/eth3)"
    )
    again = call(api, "PUT", "/networks/blue/ports", {"switch": "leaf1", "port": "eth3"})
    assert again.status == 200 and again.mods == () and unchanged(api, before, 1)  # already there: nothing to do


def test_unknown_resources_and_methods(api: Api) -> None:
    before = dict(api.fabric.networks)
    assert call(api, "DELETE", "/networks/red").status == 404
    missing = call(api, "DELETE", "/networks/blue/ports/leaf3/eth3")
    assert (missing.status, missing.body["error"]) == (404, "leaf3 eth3 is not in network blue")
    assert call(api, "GET", "/switches").status == 404
    assert call(api, "GET", "/networks/blue/ports/leaf1").status == 404
    wrong = call(api, "PATCH", "/networks/blue")
    assert wrong.status == 405 and ("Allow", "GET, DELETE") in wrong.headers
    assert call(api, "GET", "/networks/blue?verbose=1").body["name"] == "blue"
    assert unchanged(api, before, 0)


def test_a_state_that_cannot_be_saved_changes_nothing(api: Api) -> None:
    saved = api.save
    assert isinstance(saved, Saved)
    saved.fail = True
    before = dict(api.fabric.networks)
    for method, path, body in (
        ("POST", "/networks", {"name": "red", "vni": 1002}),
        ("PUT", "/networks/blue/ports", {"switch": "leaf3", "port": "eth3"}),
        ("DELETE", "/networks/blue/ports/leaf1/eth3", None),
        ("DELETE", "/networks/blue", None),
    ):
        reply = call(api, method, path, body)
        assert reply.status == 500 and "No space left on device" in reply.body["error"] and reply.mods == ()
        assert unchanged(api, before, 0)


def test_state_round_trip_and_errors_naming_the_field() -> None:
    nets = [Network("blue", 1001, frozenset({PortRef("leaf1", "eth3")})), Network("red", 1002)]
    doc = state_doc({n.name: n for n in nets})
    assert parse_state(json.loads(json.dumps(doc))) == nets
    bad = {
        "version": 1,
        "networks": [
            {"name": "blue", "vni": 1001, "ports": [{"switch": "leaf1", "port": "eth3"}]},
            {"name": "red", "vni": 1002, "ports": [{"switch": "leaf1", "port": "eth3"}]},
        ],
    }
    for broken, message in (
        (bad, "networks[1]: leaf1 eth3 is in network blue too"),
        ({"version": 2, "networks": []}, "version: 2 is not 1"),
        ({"version": 1, "networks": [{"name": "x", "vni": -1}]}, "networks[0]: vni: -1 is out of range"),
        (
            {"version": 1, "networks": [{"name": "x", "vni": 1, "ports": [{"switch": "a"}]}]},
            "networks[0]: ports[0]: port",
        ),
        ({"version": 1, "networks": [{"name": "x", "vni": 1}, {"name": "x", "vni": 2}]}, "networks[1]: network x"),
        ([], 'must be an object {"version": 1, "networks": [...]}'),
    ):
        with pytest.raises(Invalid) as e:
            parse_state(broken)
        assert str(e.value).startswith(message), e.value
