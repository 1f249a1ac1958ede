"""Controller health from OVSDB rows and the kernel's TCP table: join, alarms, text. Pure, no OVS needed."""

from __future__ import annotations

import ipaddress
from typing import Any

from intents import intent_from

from tor_agent.config import Intent
from tor_agent.health.controllers import (
    Endpoint,
    controllers_status,
    judge,
    status_lines,
    switch_connected,
    verify,
)
from tor_agent.model.overlay import ControllerSpec, SslSpec, alternate_target
from tor_agent.ovs.state import ControllerState, SslState

A, B, C = "tcp:203.0.113.10:6653", "tcp:203.0.113.11:6653", "tcp:192.0.2.99:6653"
LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {"ospf": {"area": "0.0.0.0"}, "uplinks": [{"name": "eth1", "unnumbered": True, "mtu": 9000}]},
    "overlay": {"bridge": "br-tor", "dpid": "00000000000000a1", "access_ports": []},
    "controllers": {"targets": [A, B]},
}


def intent(**top: Any) -> Intent:
    return intent_from(LEAF, **top)


def row(target: str, connected: bool, role: str | None = "other", owned: bool = True, **status: str) -> ControllerState:
    spec = ControllerSpec(target.replace(":06653", ":6653"), 5000, 8000, "out-of-band")
    return ControllerState("br-tor", target, owned, spec, connected, role, tuple(sorted(status.items())))


def test_join_prefers_configured_order_and_lists_foreign_rows_last() -> None:
    rows = [
        row(C, True, owned=False),
        row(B, False, state="BACKOFF", last_error="Connection refused", sec_since_disconnect="42"),
        row(alternate_target(A), True, sec_since_connect="75"),
        ControllerState("other-br", A, True, ControllerSpec(A), True),
    ]
    st = controllers_status(intent(), rows)
    assert [(c.target, c.configured, c.connected) for c in st.controllers] == [
        (A, True, True),
        (B, True, False),
        (C, False, True),
    ]
    a, b, _ = st.controllers
    assert (a.written_as, a.sec_since_connect) == ("tcp:203.0.113.10:06653", 75)
    assert (b.state, b.last_error, b.sec_since_disconnect) == ("BACKOFF", "Connection refused", 42)
    assert len(st.connected) == 1 and st.bridge == "br-tor" and st.fail_mode == "secure"


EP_A: Endpoint = (ipaddress.ip_address("203.0.113.10"), 6653)
EP_B: Endpoint = (ipaddress.ip_address("203.0.113.11"), 6653)
S = "ssl:203.0.113.12:6653"
EP_S: Endpoint = (ipaddress.ip_address("203.0.113.12"), 6653)


def test_ovs_vswitchds_tcp_connection_decides_before_ovsdb_catches_up() -> None:
    """`established` holds only ovs-vswitchd's own connections: a just-made one counts, a lost one is gone,
    whatever OVSDB (up to 5 s behind) still says."""
    st = controllers_status(intent(), [row(A, True), row(B, False)], established=frozenset({EP_B}))
    assert [c.connected for c in st.controllers] == [False, True] and st.ovsdb_only is None


def test_the_rule_for_connected() -> None:
    for target, reported, established, expected in [
        (A, False, frozenset({EP_A}), True),  # tcp: ovs-vswitchd's connection, at once
        (A, True, frozenset(), False),  # tcp: gone, OVSDB not caught up yet
        (S, False, frozenset({EP_S}), False),  # ssl: a TLS handshake, maybe one to be refused
        (S, True, frozenset({EP_S}), True),
        (S, True, frozenset(), False),  # ssl: gone at once
        (A, True, None, True),  # ovs-vswitchd's sockets cannot be told: OVSDB alone
        (S, False, None, False),
        ("unix:/run/ctl.sock", True, frozenset(), True),  # no TCP endpoint: OVSDB alone
    ]:
        assert switch_connected(target, reported, established) is expected, (target, reported, established)


def test_when_ovsdb_alone_decides_the_report_says_why() -> None:
    why = "cannot read /proc/812/fd (Permission denied) and it runs in the root cgroup"
    st = controllers_status(intent(), [row(A, True), row(B, False)], established=None, ovsdb_only=why)
    assert [c.connected for c in st.controllers] == [True, False]
    assert st.as_json()["ovsdb_only"] == why
    assert status_lines(st, [])[-1] == f"  connected as OVSDB says (refreshed every 5 s): {why}"


def test_healthy_has_no_alarm() -> None:
    assert verify(controllers_status(intent(), [row(A, True), row(B, True)])) == []


def test_one_down_past_grace_is_an_alarm_naming_it() -> None:
    rows = [row(A, True), row(B, False, state="BACKOFF", last_error="Connection refused", sec_since_disconnect="9")]
    assert judge(controllers_status(intent(), rows), grace_s=10) == []
    (alarm,) = judge(controllers_status(intent(), rows), grace_s=5)
    assert (alarm.kind, alarm.subject) == ("down", B)
    assert alarm.message == "not connected for 9s (OVS state BACKOFF, last error: Connection refused)"


def test_all_down_one_alarm_but_verify_fails_at_once() -> None:
    rows = [row(A, False, sec_since_disconnect="3"), row(B, False, sec_since_disconnect="3")]
    st = controllers_status(intent(), rows)
    assert judge(st, grace_s=10) == []
    (alarm,) = verify(st, grace_s=10)
    assert alarm.kind == "all-down" and alarm.message.startswith(
        "no controller connected: installed flows keep forwarding (fail_mode secure)"
    )
    assert [a.kind for a in judge(st, grace_s=2)] == ["all-down"]


def test_never_connected_and_missing_rows() -> None:
    st = controllers_status(intent(), [row(A, False, state="BACKOFF")])
    (alarm,) = judge(st)
    assert (alarm.kind, alarm.subject) == ("all-down", "br-tor")
    assert "since it was configured (never connected)" in alarm.message and f"{B} no Controller row" in alarm.message
    st = controllers_status(intent(), [row(A, True)])
    assert [(a.kind, a.subject) for a in judge(st)] == [("missing", B)]


def test_no_master_or_equal() -> None:
    st = controllers_status(intent(), [row(A, True, role="slave"), row(B, True, role="slave")])
    (alarm,) = judge(st)
    assert alarm.kind == "no-master" and "tcp:203.0.113.10:6653 slave" in alarm.message


def test_no_controllers_configured_is_not_checked() -> None:
    st = controllers_status(intent(controllers=None), [])
    assert st.controllers == () and verify(st) == []
    assert status_lines(st, []) == ["controllers of br-tor: none configured"]


def test_status_text() -> None:
    rows = [
        row(alternate_target(A), True, sec_since_connect="312"),
        row(B, False, state="BACKOFF", last_error="Connection refused", sec_since_disconnect="12"),
    ]
    ssl = SslState(True, SslSpec("/ssl/leaf1.key", "/ssl/leaf1.pem", "/ssl/ca.pem"))
    st = controllers_status(intent(), rows, ssl)
    lines = status_lines(st, judge(st))
    assert lines[0] == "controllers of br-tor (fail_mode secure): 1/2 connected"
    assert lines[1].split() == [A, "(written", "tcp:203.0.113.10:06653)", "connected,", "role", "other,", "up", "5m12s"]
    assert lines[2].startswith(f"  {B}") and "NOT connected: not connected for 12s (OVS state BACKOFF" in lines[2]
    assert lines[3] == "  SSL: key /ssl/leaf1.key, certificate /ssl/leaf1.pem, CA /ssl/ca.pem"
    assert lines[4].startswith(f"alarm: {B}: not connected for 12s")
    doc = st.as_json()
    assert doc["connected"] == 1 and doc["ssl"]["ca_cert"] == "/ssl/ca.pem"
    assert doc["controllers"][1]["last_error"] == "Connection refused"


def test_role_not_known_yet_is_not_a_no_master_alarm() -> None:
    established = frozenset({(ipaddress.ip_address("203.0.113.10"), 6653)})
    rows = [row(A, False, role=None), row(B, False, role=None, sec_since_disconnect="1")]
    st = controllers_status(intent(), rows, established=established)
    assert [c.connected for c in st.controllers] == [True, False] and judge(st, grace_s=3600) == []
