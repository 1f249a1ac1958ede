"""`tor-agent status` and `tor-agent verify` over recorded FRR/kernel state: exit codes, text, JSON, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_health_underlay import DATA, load

from tor_agent.cli import health as health_cli
from tor_agent.cli import main
from tor_agent.config.schema import Intent
from tor_agent.frr.vtysh import VtyshError
from tor_agent.health import UnderlayState


def runner() -> CliRunner:
    """click 8.1 (Debian 12) mixes stderr into stdout unless told not to; 8.2 dropped the option."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def run(monkeypatch: pytest.MonkeyPatch, scenario: str, *args: str) -> tuple[int, str, str]:
    state, _ = load(scenario)

    def recorded(intent: Intent) -> UnderlayState:
        return state

    monkeypatch.setattr(health_cli, "read_underlay", recorded)
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))  # not these tests' subject
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])  # the host's own links
    result = runner().invoke(main, [*args, str(DATA / scenario / "intent.yaml")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_verify_healthy_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(monkeypatch, "leaf1-healthy", "verify") == (
        0,
        "leaf1: underlay healthy: 2/2 uplinks Full, 1 VTEP route(s), ECMP width 2\n",
        "",
    )


def test_verify_degraded_exits_1_listing_each_item(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(monkeypatch, "leaf1-eth2-down", "verify")
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        "leaf1: underlay degraded (2):",
        "  underlay.uplinks[1] eth2: no OSPF neighbour on eth2",
        "  ECMP: width reduced to 1 of 2 uplinks (eth2 down) for 1 VTEP(s): 198.18.0.12",
    ]


def test_verify_json(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(monkeypatch, "leaf1-eth2-silent", "verify", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["hostname"] == "leaf1"
    assert doc["degraded"][0] == {
        "kind": "uplink",
        "subject": "underlay.uplinks[1] eth2",
        "message": "OSPF neighbour 198.18.0.2 (198.18.1.2) is Init/-, not Full",
    }


def test_verify_cannot_read_exits_1_as_a_degraded_item(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(intent: Intent) -> UnderlayState:
        raise VtyshError("show ip ospf neighbor json", "exit 1: Exiting: failed to connect to any daemons.")

    monkeypatch.setattr(health_cli, "read_underlay", broken)
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])  # the host's own links
    result = runner().invoke(main, ["verify", "--json", str(DATA / "leaf1-healthy" / "intent.yaml")])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["degraded"][0]["kind"] == "read"
    assert "failed to connect to any daemons" in doc["degraded"][0]["message"]


def test_invalid_intent_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "leaf1-healthy" / "intent.yaml").read_text().replace("role: leaf", "role: core"))
    for command in ("verify", "status"):
        result = runner().invoke(main, [command, str(bad)])
        assert result.exit_code == 2 and "node.role" in result.stderr, result.stderr


def test_status_text_lists_uplinks_bfd_and_each_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(monkeypatch, "leaf1-eth2-down", "status")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "leaf1 (leaf): underlay degraded (2)"
    assert lines[2].split()[:5] == ["eth1", "198.18.0.1", "via", "198.18.1.0", "Full/-"]
    assert lines[3].split() == ["eth2", "no", "neighbour", "BFD", "-"]
    assert "    kernel 198.18.0.12/32: 198.18.1.0 eth1" in lines
    assert lines[-1] == "degraded: ECMP: width reduced to 1 of 2 uplinks (eth2 down) for 1 VTEP(s): 198.18.0.12"


def test_status_json_on_a_spine(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(monkeypatch, "spine1-healthy", "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["role"] == "spine"
    assert [(v["address"], v["width"]) for v in doc["vteps"]] == [
        ("198.18.0.2", 2),
        ("198.18.0.11", 1),
        ("198.18.0.12", 1),
    ]
    assert doc["ecmp"] == {"expected_interfaces": None, "configured_interfaces": None}


@pytest.mark.parametrize("command", ["status", "verify"])
def test_help_has_an_example(command: str) -> None:
    result = runner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Example:\n    tor-agent " + command in result.stdout


def test_verify_and_status_name_a_missing_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """An interface the intent names that the switch does not have: verify fails naming it, status lists it."""
    state, _ = load("leaf1-healthy")
    monkeypatch.setattr(health_cli, "read_underlay", lambda intent: state)
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))
    monkeypatch.setattr("tor_agent.health.readers.interface_names", lambda: frozenset({"lo", "eth1"}))
    intent = str(DATA / "leaf1-healthy" / "intent.yaml")
    result = runner().invoke(main, ["verify", intent])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "leaf1: parts missing (1):",
        "  underlay.uplinks[1] eth2: no such interface",
    ]
    doc = json.loads(runner().invoke(main, ["status", "--json", intent]).stdout)
    assert doc["missing"] == ["underlay.uplinks[1] eth2"] and doc["ok"] is False
