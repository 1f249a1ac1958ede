"""`tor-agent controllers`, and the controllers in `status`/`verify`, over recorded state (no OVS, no FRR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_health_underlay import DATA, load

from tor_agent.cli import controllers as controllers_cli
from tor_agent.cli import health as health_cli
from tor_agent.cli import main
from tor_agent.config.schema import Intent
from tor_agent.health import UnderlayState
from tor_agent.health.controllers import ControllersStatus, controllers_status
from tor_agent.model.overlay import ControllerSpec
from tor_agent.ovs.errors import OvsdbUnavailable
from tor_agent.ovs.state import ControllerState

A = "tcp:203.0.113.10:6653"


def runner() -> CliRunner:
    """click 8.1 (Debian 12) mixes stderr into stdout unless told not to; 8.2 dropped the option."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return CliRunner()


@pytest.fixture
def intent_file(tmp_path: Path) -> Path:
    """leaf1 of the recorded health scenarios, with one controller."""
    path = tmp_path / "agent.yaml"
    text = (DATA / "leaf1-healthy" / "intent.yaml").read_text()
    path.write_text(text + f'controllers: {{targets: ["{A}"]}}\n')
    return path


def recorded_ovs(monkeypatch: pytest.MonkeyPatch, connected: bool | None, **status: str) -> None:
    """Make both commands read one Controller row (None: OVSDB unreachable) and leaf1's healthy underlay."""
    state, _ = load("leaf1-healthy")

    def underlay(intent: Intent) -> UnderlayState:
        return state

    def ovs(intent: Intent, *_: object, **__: object) -> ControllersStatus:
        if connected is None:
            raise OvsdbUnavailable("unix:/run/openvswitch/db.sock", "cannot connect: No such file or directory")
        spec = ControllerSpec(A, 5000, 2000, "out-of-band")
        row = ControllerState("br-tor", A, True, spec, connected, "other", tuple(sorted(status.items())))
        return controllers_status(intent, [row])

    monkeypatch.setattr(health_cli, "read_underlay", underlay)
    monkeypatch.setattr(health_cli, "read_controllers", ovs)
    monkeypatch.setattr(controllers_cli, "read_controllers", ovs)
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))  # not these tests' subject
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])  # the host's own links


def invoke(*args: str) -> tuple[int, str]:
    result = runner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def test_controllers_text(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, True, state="ACTIVE", sec_since_connect="65")
    code, out = invoke("controllers", str(intent_file))
    assert code == 0
    assert out.splitlines() == [
        "controllers of br-tor (fail_mode secure): 1/1 connected",
        f"  {A:<32} connected, role other, up 1m05s",
    ]


def test_controllers_json_with_an_alarm(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, False, state="BACKOFF", last_error="Connection refused", sec_since_disconnect="30")
    code, out = invoke("controllers", "--json", "--grace", "20", str(intent_file))
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is False and doc["connected"] == 0
    assert doc["controllers"][0]["target"] == A and doc["controllers"][0]["state"] == "BACKOFF"
    assert [a["kind"] for a in doc["alarms"]] == ["all-down"]


def test_verify_fails_when_no_controller_is_connected(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, False, state="BACKOFF", sec_since_disconnect="1")
    code, out = invoke("verify", str(intent_file))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("leaf1: underlay healthy")
    assert lines[1:3] == [
        "leaf1: controllers degraded (1):",
        "  br-tor: no controller connected: installed flows keep forwarding (fail_mode secure), nothing new is "
        f"learned. {A} not connected for 1s (OVS state BACKOFF)",
    ]


def test_verify_passes_with_a_controller_connected(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, True, state="ACTIVE")
    code, out = invoke("verify", str(intent_file))
    assert code == 0 and out.splitlines()[-1] == "leaf1: controllers healthy: 1/1 connected"
    code, out = invoke("verify", "--json", str(intent_file))
    assert code == 0 and json.loads(out) == {"ok": True, "hostname": "leaf1", "degraded": []}


def test_unreadable_ovsdb_is_a_degraded_item(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, None)
    code, out = invoke("verify", "--json", str(intent_file))
    doc = json.loads(out)
    assert code == 1 and [d["kind"] for d in doc["degraded"]] == ["read"]
    assert "No such file or directory" in doc["degraded"][0]["message"]


def test_status_has_a_controllers_section(monkeypatch: pytest.MonkeyPatch, intent_file: Path) -> None:
    recorded_ovs(monkeypatch, True, state="ACTIVE", sec_since_connect="5")
    code, out = invoke("status", str(intent_file))
    assert code == 0 and "controllers of br-tor (fail_mode secure): 1/1 connected" in out.splitlines()
    code, out = invoke("status", "--json", str(intent_file))
    doc = json.loads(out)
    assert doc["ok"] is True and doc["controllers"]["controllers"][0]["connected"] is True


def test_without_controllers_nothing_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded_ovs(monkeypatch, None)  # reading OVSDB would fail: it must not be read
    code, out = invoke("verify", str(DATA / "leaf1-healthy" / "intent.yaml"))
    assert code == 0 and "controllers" not in out


def test_help_has_an_example() -> None:
    code, out = invoke("controllers", "--help")
    assert code == 0 and "Example:\n    tor-agent controllers" in out
