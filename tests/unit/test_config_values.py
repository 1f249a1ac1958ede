"""Values FRR or Open vSwitch would silently change or refuse later are refused up front, at their path;
the friendlier defaults (a DPID from the router ID, `key: flow`) load as documented."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config import changed, problems_of

from tor_agent.config import Intent, load
from tor_agent.model.overlay import desired_ovs, tunnel_port_name


def loaded(doc: dict[str, Any], tmp_path: Path) -> Intent:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load(path)


def with_key(key: bytes, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "ospf.key").write_bytes(key + b"\n")
    (tmp_path / "ospf.key").chmod(0o600)
    return changed("underlay.ospf.authentication", {"key_id": 1, "key_file": "ospf.key"})


# --- OSPF message-digest keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        b"ab?cd",  # vtysh binds ? to help and drops it
        "é".encode() * 16,  # 16 characters, 32 bytes
        "é".encode() * 9,  # 9 characters, 18 bytes: FRR keeps 16 bytes of it
        b"a b",
        b"tab\there",
        b"x" * 17,
        b"",
    ],
)
def test_ospf_keys_frr_would_change_are_refused(key: bytes, tmp_path: Path) -> None:
    problems = problems_of(with_key(key, tmp_path), tmp_path)
    assert [p for p, _ in problems] == ["underlay.ospf.authentication.key_file"], problems
    assert "1..16 ASCII printable characters without spaces or ?" in problems[0][1]
    assert key.decode(errors="replace") not in problems[0][1] or not key  # the key is never printed


@pytest.mark.parametrize("key", [b"x" * 16, b"s3cret!#$%&*+=~", b"A"])
def test_ospf_keys_frr_keeps_load(key: bytes, tmp_path: Path) -> None:
    auth = loaded(with_key(key, tmp_path), tmp_path).underlay.ospf.authentication
    assert auth is not None and auth.key == key.decode()


# --- OSPF timers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dead", "ok"), [(4, False), (10, False), (11, True), (40, True)])
def test_dead_interval_alone_is_checked_against_frrs_default_hello(dead: int, ok: bool, tmp_path: Path) -> None:
    doc = changed("underlay.ospf.dead_interval_s", dead)
    if ok:
        assert loaded(doc, tmp_path).underlay.ospf.dead_interval_s == dead
    else:
        problems = problems_of(doc, tmp_path)
        assert [p for p, _ in problems] == ["underlay.ospf.dead_interval_s"]
        assert "FRR's default 10 s" in problems[0][1]


# --- addresses: unicast, and not this switch's own --------------------------------------------------

NOT_UNICAST = [
    ("underlay.uplinks[1].address", "224.0.0.1/24", "underlay.uplinks[1].address", "a multicast address"),
    ("underlay.uplinks[1].address", "127.0.0.2/31", "underlay.uplinks[1].address", "a loopback address"),
    ("underlay.uplinks[1].address", "0.0.0.1/31", "underlay.uplinks[1].address", "this network"),
    ("underlay.uplinks[1].address", "240.0.0.1/31", "underlay.uplinks[1].address", "reserved"),
    ("overlay.tunnels.peers", ["240.1.2.3"], "overlay.tunnels.peers[0]", "reserved"),
    ("overlay.tunnels.peers", ["0.1.2.3"], "overlay.tunnels.peers[0]", "this network"),
    ("overlay.tunnels.peers", ["255.255.255.255"], "overlay.tunnels.peers[0]", "not a unicast address"),
    ("overlay.tunnels.peers", ["198.18.1.1"], "overlay.tunnels.peers[0]", "own address (underlay.uplinks[0].address)"),
    ("overlay.tunnels.peers", ["198.18.0.11"], "overlay.tunnels.peers[0]", "own address (node.loopback"),
    ("controllers.targets", ["tcp:224.0.0.1:6653"], "controllers.targets[0]", "a multicast address"),
    ("controllers.targets", ["tcp:0.0.0.0:6653"], "controllers.targets[0]", "not a unicast address"),
    ("controllers.targets", ["tcp:[ff02::1]:6653"], "controllers.targets[0]", "a multicast address"),
    ("controllers.targets", ["tcp:[::]:6653"], "controllers.targets[0]", "the unspecified address"),
    ("controllers.targets", ["tcp:198.18.0.11"], "controllers.targets[0]", "own address (node.loopback"),
    ("controllers.targets", ["tcp:198.18.1.3:6653"], "controllers.targets[0]", "own address (underlay.uplinks[1]"),
]


@pytest.mark.parametrize(
    ("edit", "value", "path", "fragment"), NOT_UNICAST, ids=[f"{c[0]}={c[1]}" for c in NOT_UNICAST]
)
def test_addresses_must_be_unicast_and_not_our_own(
    edit: str, value: Any, path: str, fragment: str, tmp_path: Path
) -> None:
    problems = problems_of(changed(edit, value), tmp_path)
    assert any(p == path and fragment in m for p, m in problems), problems


def test_a_controller_on_the_switch_itself_is_fine(tmp_path: Path) -> None:
    doc = changed("controllers.targets", ["tcp:127.0.0.1:6653", "tcp:[::1]:6653"])
    controllers = loaded(doc, tmp_path).controllers
    assert controllers is not None and [str(t) for t in controllers.targets] == doc["controllers"]["targets"]


# --- interface names that collide with tunnel ports -------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "value", "path"),
    [
        ("overlay.access_ports", ["eth3", tunnel_port_name(IPv4Address("198.18.0.12"))], "overlay.access_ports[1]"),
        ("overlay.access_ports", ["gre-ffffffff"], "overlay.access_ports[0]"),
        ("overlay.bridge", "gre-0a000001", "overlay.bridge"),
        ("underlay.uplinks[0].bridge", "gre-0a000001", "underlay.uplinks[0].bridge"),
        ("underlay.uplinks[0].name", "gre-0a000001", "underlay.uplinks[0].name"),
    ],
)
def test_a_name_like_a_tunnel_port_is_refused(edit: str, value: Any, path: str, tmp_path: Path) -> None:
    problems = problems_of(changed(edit, value), tmp_path)
    assert any(p == path and "is named like a tunnel port" in m for p, m in problems), problems


@pytest.mark.parametrize("name", ["gre-C6120001", "gre-c612000", "gre-c61200011", "gre-tunnel", "gre0"])
def test_names_unlike_a_tunnel_port_are_fine(name: str, tmp_path: Path) -> None:
    overlay = loaded(changed("overlay.access_ports", [name]), tmp_path).overlay
    assert overlay is not None and overlay.access_ports == (name,)


# --- overlay.dpid: optional ---------------------------------------------------------------------------


def test_dpid_defaults_to_the_router_id(tmp_path: Path) -> None:
    doc = changed("overlay.dpid", None)
    del doc["overlay"]["dpid"]
    doc["node"]["router_id"] = "198.18.0.21"
    overlay = loaded(doc, tmp_path).overlay
    assert overlay is not None and overlay.dpid == "00000000c6120015"  # 198.18.0.21 = 0xc6120015


def test_an_explicit_dpid_wins(tmp_path: Path) -> None:
    overlay = loaded(changed("overlay.dpid", "00000000000000A1"), tmp_path).overlay
    assert overlay is not None and overlay.dpid == "00000000000000a1"


# --- overlay.tunnels.key: flow ------------------------------------------------------------------------


def test_key_flow_is_set_on_every_tunnel(tmp_path: Path) -> None:
    intent = loaded(changed("overlay.tunnels.key", "flow"), tmp_path)
    assert intent.overlay is not None and intent.overlay.tunnels.key == "flow"
    ports = desired_ovs(intent).ports
    assert dict(ports["gre-c612000c"].interface.options)["key"] == "flow"


def test_key_flow_counts_the_key_in_the_mtu_check(tmp_path: Path) -> None:
    doc = changed("overlay.tunnels.key", "flow")
    for uplink in doc["underlay"]["uplinks"]:
        uplink["mtu"] = 1538  # 1500 + 38 fits without a key, not with one
    problems = problems_of(doc, tmp_path)
    assert [p for p, _ in problems] == ["overlay.tunnels.tenant_mtu"] * 2
    assert "1500 + 42 bytes" in problems[0][1]


@pytest.mark.parametrize("key", ["Flow", "100", "flows", 1.5, True, []])
def test_other_keys_are_refused(key: Any, tmp_path: Path) -> None:
    problems = problems_of(changed("overlay.tunnels.key", key), tmp_path)
    assert [p for p, _ in problems] == ["overlay.tunnels.key"], problems
    assert "(allowed: 0..4294967295, or flow" in problems[0][1] or "must be an integer" in problems[0][1]


# --- ssl with plaintext targets -----------------------------------------------------------------------


def ssl_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for key, name, label in (
        ("private_key", "sw.key", "PRIVATE KEY"),
        ("certificate", "sw.crt", "CERTIFICATE"),
        ("ca_cert", "ca.crt", "CERTIFICATE"),
    ):
        path = tmp_path / name
        path.write_text(f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
        path.chmod(0o600)
        files[key] = str(path)
    return files


@pytest.mark.parametrize(
    ("targets", "refused"),
    [
        (["tcp:203.0.113.10:6653"], [0]),  # ssl settings nothing uses: a plaintext switch that meant TLS
        (["ssl:203.0.113.10:6653", "tcp:203.0.113.11:6653"], [1]),
        (["ssl:203.0.113.10:6653"], []),
    ],
)
def test_plaintext_beside_ssl_needs_allow_plaintext(targets: list[str], refused: list[int], tmp_path: Path) -> None:
    doc = changed("controllers.targets", targets)
    doc["controllers"]["ssl"] = ssl_files(tmp_path)
    if refused:
        problems = problems_of(doc, tmp_path)
        assert [p for p, _ in problems] == [f"controllers.targets[{i}]" for i in refused]
        assert "set controllers.allow_plaintext: true" in problems[0][1]
    doc["controllers"]["allow_plaintext"] = True
    controllers = loaded(doc, tmp_path).controllers
    assert controllers is not None and controllers.allow_plaintext and len(controllers.targets) == len(targets)
