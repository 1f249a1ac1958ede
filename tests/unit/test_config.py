"""Intent file validation: every bad input names its exact field path; all problems come at once."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tor_agent.config import load, load_text
from tor_agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {
        "ospf": {"area": "0.0.0.0", "maximum_paths": 8, "bfd": {"enabled": True}},
        "uplinks": [
            {"name": "eth1", "address": "198.18.1.1/31", "cost": 10, "mtu": 9000},
            {"name": "eth2", "address": "198.18.1.3/31", "cost": 10, "mtu": 9000},
        ],
    },
    "overlay": {
        "bridge": "br-tor",
        "datapath": "netdev",
        "dpid": "00000000000000a1",
        "protocols": ["OpenFlow13"],
        "fail_mode": "secure",
        "access_ports": ["eth3"],
        "tunnels": {"type": "gre", "key": 100, "tenant_mtu": 1500, "bfd": True, "peers": ["198.18.0.12"]},
    },
    "controllers": {"targets": ["tcp:203.0.113.10:6653"], "inactivity_probe_ms": 5000, "max_backoff_ms": 2000},
}


def problems_of(doc: Any, tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load(path)
    assert all(str(path) == e.value.source for _ in e.value.problems)
    return [(p.path, p.message) for p in e.value.problems]


def changed(edit: str, value: Any) -> dict[str, Any]:
    """A copy of LEAF with the dotted path `edit` set to `value` (or deleted if value is DELETE)."""
    doc = copy.deepcopy(LEAF)
    *parents, last = edit.replace("[", ".").replace("]", "").split(".")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return doc


DELETE = object()

# (what to change, new value, the exact path reported, a fragment of the message)
BAD = [
    ("version", 2, "version", "2 is not supported (allowed: 1)"),
    ("version", DELETE, "version", "is required"),
    ("color", "red", "color", "unknown key"),
    ("node.hostname", "-leaf", "node.hostname", "not a valid hostname"),
    ("node.role", "core", "node.role", "allowed: leaf | spine"),
    ("node.router_id", "198.18.0.300", "node.router_id", "not valid"),
    ("node.router_id", "224.0.0.5", "node.router_id", "not a unicast address"),
    ("node.loopback", "198.18.0.11/24", "node.loopback", "must be a /32"),
    ("node.loopback", 42, "node.loopback", "must be a string"),
    ("node.mtu", 1500, "node.mtu", "unknown key"),
    ("underlay.ospf.area", "1.2.3", "underlay.ospf.area", "not valid"),
    ("underlay.ospf.area", 4294967296, "underlay.ospf.area", "out of range"),
    ("underlay.ospf.maximum_paths", 0, "underlay.ospf.maximum_paths", "allowed: 1..256"),
    ("underlay.ospf.maximum_paths", 257, "underlay.ospf.maximum_paths", "allowed: 1..256"),
    ("underlay.ospf.maximum_paths", "8", "underlay.ospf.maximum_paths", "must be an integer"),
    ("underlay.ospf.maximum_paths", True, "underlay.ospf.maximum_paths", "must be an integer"),
    ("underlay.ospf.reference_bandwidth_mbps", 0, "underlay.ospf.reference_bandwidth_mbps", "1..4294967"),
    ("underlay.ospf.hello_interval_s", 0, "underlay.ospf.hello_interval_s", "1..65535"),
    ("underlay.ospf.dead_interval_s", 65536, "underlay.ospf.dead_interval_s", "1..65535"),
    ("underlay.ospf.lsa_throttle_ms", 5001, "underlay.ospf.lsa_throttle_ms", "0..5000"),
    ("underlay.ospf.lsa_min_arrival_ms", -1, "underlay.ospf.lsa_min_arrival_ms", "0..600000"),
    ("underlay.ospf.bfd.rx_ms", 5, "underlay.ospf.bfd.rx_ms", "10..60000"),
    ("underlay.ospf.bfd.tx_ms", 60001, "underlay.ospf.bfd.tx_ms", "10..60000"),
    ("underlay.ospf.bfd.multiplier", 1, "underlay.ospf.bfd.multiplier", "2..255"),
    ("underlay.ospf.bfd.enabled", "yes please", "underlay.ospf.bfd.enabled", "true or false"),
    ("underlay.ospf.bfd.interval", 100, "underlay.ospf.bfd.interval", "unknown key"),
    ("underlay.ospf.authentication", {"key_id": 0, "key_file": "k"}, "underlay.ospf.authentication.key_id", "1..255"),
    (
        "underlay.ospf.authentication",
        {"key_id": 1, "key_file": "/nonexistent/ospf.key"},
        "underlay.ospf.authentication.key_file",
        "cannot read /nonexistent/ospf.key",
    ),
    ("underlay.uplinks", [], "underlay.uplinks", "needs at least one item"),
    ("underlay.uplinks", "eth1", "underlay.uplinks", "must be a list"),
    ("underlay.uplinks[1].name", "eth1", "underlay.uplinks[1].name", "already underlay.uplinks[0]"),
    ("underlay.uplinks[1].name", "a-very-long-ifname", "underlay.uplinks[1].name", "not a valid interface name"),
    ("underlay.uplinks[1].name", "eth 1", "underlay.uplinks[1].name", "not a valid interface name"),
    ("underlay.uplinks[1].address", "198.18.1.0/31", "underlay.uplinks[1].address", "overlaps underlay.uplinks[0]"),
    ("underlay.uplinks[1].address", "198.18.1.8/30", "underlay.uplinks[1].address", "network or broadcast"),
    ("underlay.uplinks[1].address", "198.18.1.5/32", "underlay.uplinks[1].address", "use unnumbered: true"),
    ("underlay.uplinks[1].address", "198.18.0.10/24", "underlay.uplinks[1].address", "contains the loopback"),
    ("underlay.uplinks[1].unnumbered", True, "underlay.uplinks[1]", "exactly one of address"),
    ("underlay.uplinks[1].cost", 0, "underlay.uplinks[1].cost", "1..65535"),
    ("underlay.uplinks[1].mtu", 67, "underlay.uplinks[1].mtu", "68..65535"),
    ("underlay.uplinks[1].speed", 100, "underlay.uplinks[1].speed", "unknown key"),
    ("overlay.datapath", "dpdk", "overlay.datapath", "allowed: system | netdev"),
    ("overlay.dpid", 161, "overlay.dpid", "16 hex digits"),
    ("overlay.dpid", "00000000000000g1", "overlay.dpid", "16 hex digits"),
    ("overlay.dpid", "0000000000000000", "overlay.dpid", "not all zero"),
    ("overlay.protocols", ["OpenFlow13", "OpenFlow16"], "overlay.protocols[1]", "OpenFlow16' is not supported"),
    ("overlay.protocols", ["OpenFlow13", "OpenFlow13"], "overlay.protocols[1]", "listed twice"),
    ("overlay.fail_mode", "open", "overlay.fail_mode", "allowed: secure | standalone"),
    ("overlay.access_ports", ["eth3", "eth3"], "overlay.access_ports[1]", "listed twice"),
    ("overlay.access_ports", ["eth1"], "overlay.access_ports[0]", "is an uplink"),
    ("overlay.bridge", "eth2", "overlay.bridge", "is an uplink name"),
    ("overlay.tunnels.type", "vxlan", "overlay.tunnels.type", "allowed: gre"),
    ("overlay.tunnels.key", -1, "overlay.tunnels.key", "0..4294967295"),
    ("overlay.tunnels.key", 2**32, "overlay.tunnels.key", "0..4294967295"),
    ("overlay.tunnels.peers", ["198.18.0.11"], "overlay.tunnels.peers[0]", "own VTEP"),
    ("overlay.tunnels.peers", ["198.18.0.12", "198.18.0.12"], "overlay.tunnels.peers[1]", "listed twice"),
    ("overlay.tunnels.peers", ["leaf2"], "overlay.tunnels.peers[0]", "not valid"),
    ("overlay.tunnels.discover", {"ospf_prefix": "198.18.0.1/24"}, "overlay.tunnels.discover.ospf_prefix", "not valid"),
    ("overlay.tunnels.tenant_mtu", 8960, "overlay.tunnels.tenant_mtu", "does not fit underlay.uplinks[0]"),
    ("overlay.tunnels.hold_down_s", -1, "overlay.tunnels.hold_down_s", "-1 is out of range (allowed: 0..600)"),
    ("overlay.tunnels.hold_down_s", 601, "overlay.tunnels.hold_down_s", "601 is out of range (allowed: 0..600)"),
    ("overlay.tunnels.hold_down_s", "10s", "overlay.tunnels.hold_down_s", "must be an integer, got a string '10s'"),
    ("controllers.targets", [], "controllers.targets", "needs at least one item"),
    ("controllers.targets", ["tcp:203.0.113.10:0"], "controllers.targets[0]", "port '0' is out of range"),
    ("controllers.targets", ["tcp:203.0.113.10:65536"], "controllers.targets[0]", "out of range"),
    ("controllers.targets", ["udp:203.0.113.10:6653"], "controllers.targets[0]", "scheme 'udp'"),
    ("controllers.targets", ["tcp:controller:6653"], "controllers.targets[0]", "not an IP address"),
    ("controllers.targets", ["203.0.113.10"], "controllers.targets[0]", "not a controller target"),
    ("controllers.targets", ["ssl:203.0.113.10:6653"], "controllers.ssl", "required by the ssl: targets"),
    ("controllers.targets", ["tcp:203.0.113.10", "tcp:203.0.113.10:6653"], "controllers.targets[1]", "listed twice"),
    ("controllers.inactivity_probe_ms", 1000, "controllers.inactivity_probe_ms", "5000..3600000"),
    ("controllers.max_backoff_ms", 10, "controllers.max_backoff_ms", "1000..3600000"),
    ("controllers.connection_mode", "sideband", "controllers.connection_mode", "out-of-band | in-band"),
    ("controllers.alarm_grace_s", 0, "controllers.alarm_grace_s", "0 is out of range (allowed: 1..3600)"),
    ("controllers.alarm_grace_s", 3601, "controllers.alarm_grace_s", "3601 is out of range (allowed: 1..3600)"),
    ("controllers.alarm_grace_s", 2.5, "controllers.alarm_grace_s", "must be an integer, got float 2.5"),
    ("controllers.alarm_grace_s", "10s", "controllers.alarm_grace_s", "must be an integer, got a string '10s'"),
    ("controllers.alarm_grace_s", True, "controllers.alarm_grace_s", "must be an integer, got a boolean"),
    ("controllers.probe_interval_ms", 99, "controllers.probe_interval_ms", "99 is out of range (allowed: 100..10000)"),
    ("controllers.probe_interval_ms", 10001, "controllers.probe_interval_ms", "out of range (allowed: 100..10000)"),
    (
        "controllers.probe_interval_ms",
        None,
        "controllers.probe_interval_ms",
        "must be an integer, got null (allowed: 100..10000)",
    ),
    ("controllers.probe_interval_s", 1, "controllers.probe_interval_s", "unknown key"),
    (
        "controllers.ssl",
        {"private_key": "/no/sw.key", "certificate": "/no/sw.crt", "ca_cert": "/no/ca.crt"},
        "controllers.ssl.private_key",
        "cannot read /no/sw.key: no such file",
    ),
]


@pytest.mark.parametrize(("edit", "value", "path", "fragment"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_input_names_exact_path(edit: str, value: Any, path: str, fragment: str, tmp_path: Path) -> None:
    problems = problems_of(changed(edit, value), tmp_path)
    assert any(p == path and fragment in m for p, m in problems), problems


def test_good_leaf_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(LEAF))
    intent = load(path)
    assert intent.overlay is not None and intent.overlay.tunnels.key == 100
    assert str(intent.node.loopback) == "198.18.0.11/32"
    assert intent.source == str(path)


@pytest.mark.parametrize("name", ["leaf1.yaml", "spine1.yaml"])
def test_examples_are_valid(name: str) -> None:
    assert load(REPO / "examples" / name).node.hostname == name.removesuffix(".yaml")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    doc = changed("node.role", "core")
    doc["underlay"]["uplinks"][1]["cost"] = 0
    doc["overlay"]["tunnels"]["key"] = -1
    doc["controllers"]["targets"] = ["tcp:x:1"]
    paths = {p for p, _ in problems_of(doc, tmp_path)}
    assert {"node.role", "underlay.uplinks[1].cost", "overlay.tunnels.key", "controllers.targets[0]"} <= paths


def test_spine_carries_no_overlay(tmp_path: Path) -> None:
    doc = changed("node.role", "spine")
    assert {"overlay", "controllers"} <= {p for p, _ in problems_of(doc, tmp_path)}


def test_leaf_needs_overlay(tmp_path: Path) -> None:
    doc = changed("overlay", DELETE)
    del doc["controllers"]
    assert ("overlay", "is required on a leaf (the bridge and its GRE tunnels)") in problems_of(doc, tmp_path)


def test_uplink_bridge_name_too_long(tmp_path: Path) -> None:
    doc = changed("underlay.uplinks[0].name", "Ethernet1-100")
    path_msgs = problems_of(doc, tmp_path)
    assert any(p == "underlay.uplinks[0]" and "set underlay.uplinks[0].bridge" in m for p, m in path_msgs)


def test_uplink_bridge_only_for_netdev(tmp_path: Path) -> None:
    doc = changed("overlay.datapath", "system")
    doc["underlay"]["uplinks"][0]["bridge"] = "ul1"
    assert any(p == "underlay.uplinks[0].bridge" for p, _ in problems_of(doc, tmp_path))


def test_mtu_check_counts_gre_key(tmp_path: Path) -> None:
    doc = changed("underlay.uplinks[0].mtu", 1538)  # fits 1500 + 38 without a key, not + 42 with one
    doc["underlay"]["uplinks"][1]["mtu"] = 1538
    assert any(p == "overlay.tunnels.tenant_mtu" for p, _ in problems_of(doc, tmp_path))
    del doc["overlay"]["tunnels"]["key"]
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load(path).overlay is not None


def write_pem(path: Path, label: str, mode: int = 0o600) -> Path:
    """A file holding one well-formed PEM block labelled `label` (the loader checks the kind, not the key)."""
    path.write_text(f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
    path.chmod(mode)
    return path


def test_ssl_files_resolve_relative_to_intent(tmp_path: Path) -> None:
    for name, label in (("sw.key", "PRIVATE KEY"), ("sw.crt", "CERTIFICATE"), ("ca.crt", "CERTIFICATE")):
        write_pem(tmp_path / name, label)
    doc = changed("controllers.targets", ["ssl:203.0.113.11:6653", "tcp:[2001:db8::1]:6653"])
    doc["controllers"]["allow_plaintext"] = True
    doc["controllers"]["ssl"] = {"private_key": "sw.key", "certificate": "sw.crt", "ca_cert": "ca.crt"}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    controllers = load(path).controllers
    assert controllers is not None and controllers.ssl is not None
    assert controllers.ssl.ca_cert == str(tmp_path / "ca.crt")
    assert [str(t) for t in controllers.targets] == ["ssl:203.0.113.11:6653", "tcp:[2001:db8::1]:6653"]


def test_auth_key_is_read_and_hidden(tmp_path: Path) -> None:
    (tmp_path / "ospf.key").write_text("s3cret\n")
    doc = changed("underlay.ospf.authentication", {"key_id": 7, "key_file": "ospf.key"})
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    auth = load(path).underlay.ospf.authentication
    assert auth is not None and auth.key == "s3cret" and auth.key_id == 7
    assert "s3cret" not in repr(auth)


def test_auth_key_too_long(tmp_path: Path) -> None:
    (tmp_path / "ospf.key").write_text("x" * 17)
    doc = changed("underlay.ospf.authentication", {"key_id": 1, "key_file": "ospf.key"})
    assert any(p == "underlay.ospf.authentication.key_file" and "1..16" in m for p, m in problems_of(doc, tmp_path))


def test_area_as_integer_is_dotted() -> None:
    text = yaml.safe_dump(changed("underlay.ospf.area", 1))
    assert load_text(text).underlay.ospf.area == "0.0.0.1"


def test_dead_interval_must_exceed_hello() -> None:
    doc = changed("underlay.ospf.hello_interval_s", 4)
    doc["underlay"]["ospf"]["dead_interval_s"] = 4
    with pytest.raises(ConfigError) as e:
        load_text(yaml.safe_dump(doc))
    assert [p.path for p in e.value.problems] == ["underlay.ospf.dead_interval_s"]


def test_duplicate_key_names_line() -> None:
    text = "version: 1\nnode:\n  hostname: a\n  hostname: b\n"
    with pytest.raises(ConfigError) as e:
        load_text(text, "x.yaml")
    assert str(e.value) == (
        "x.yaml: line 4, column 3: duplicate key 'hostname' (first defined on line 3; each key may appear once)"
    )


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as e:
        load_text("version: 1\nnode: [a, b\n", "x.yaml")
    assert str(e.value).startswith("x.yaml: line 3, column 1: ")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    with pytest.raises(ConfigError, match="is empty"):
        load_text(text, "x.yaml")


def test_top_level_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml: \(top level\): must be a mapping, got a list"):
        load_text("- 1\n", "x.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load(path)


def test_intent_is_frozen(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(LEAF))
    intent = load(path)
    with pytest.raises(AttributeError):
        intent.node.hostname = "x"  # type: ignore[misc]
