"""`controllers.alarm_grace_s` and `controllers.probe_interval_ms`: validated with their exact path, carried into
the keeper's settings, and the grace time the one-shot commands (`controllers`, `status`, `verify`) judge by."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from intents import intent_from
from test_config import LEAF
from test_controller_cli import invoke
from test_health_underlay import DATA, load

from tor_agent.cli import controllers as controllers_cli
from tor_agent.cli import health as health_cli
from tor_agent.config import load_text
from tor_agent.config.schema import Intent
from tor_agent.errors import ConfigError
from tor_agent.health import UnderlayState
from tor_agent.health.controllers import DEFAULT_GRACE_S, ControllersStatus, controllers_status
from tor_agent.model.overlay import ControllerSpec
from tor_agent.ovs.state import ControllerState
from tor_agent.reconcile.controllers import KeepaliveSettings

A, B = "tcp:203.0.113.10:6653", "tcp:203.0.113.11:6653"


def leaf(**controllers: Any) -> Intent:
    return intent_from(LEAF, **{f"controllers.{k}": v for k, v in controllers.items()})


def settings_of(intent: Intent, grace_s: float | None = None) -> KeepaliveSettings:
    settings = KeepaliveSettings.from_intent(intent, grace_s=grace_s)
    assert settings is not None
    return settings


# --- the intent --------------------------------------------------------------------------------------


def test_defaults_are_10_s_and_500_ms() -> None:
    controllers = leaf().controllers
    assert controllers is not None
    assert (controllers.alarm_grace_s, controllers.probe_interval_ms) == (10, 500)
    settings = settings_of(leaf())
    assert (settings.grace_s, settings.probe_interval_s) == (10.0, 0.5) == (DEFAULT_GRACE_S, 0.5)


@pytest.mark.parametrize(("grace", "interval"), [(1, 100), (30, 200), (3600, 10000)])
def test_values_reach_the_keepers_settings(grace: int, interval: int) -> None:
    intent = leaf(alarm_grace_s=grace, probe_interval_ms=interval)
    assert intent.controllers is not None
    assert (intent.controllers.alarm_grace_s, intent.controllers.probe_interval_ms) == (grace, interval)
    settings = settings_of(intent)
    assert (settings.grace_s, settings.probe_interval_s) == (float(grace), interval / 1000)


def test_an_explicit_grace_overrides_the_intents() -> None:
    settings = settings_of(leaf(alarm_grace_s=30, probe_interval_ms=200), grace_s=2.0)
    assert (settings.grace_s, settings.probe_interval_s) == (2.0, 0.2)  # the probe interval stays the intent's


def test_bad_values_are_reported_at_once_with_their_paths() -> None:
    doc = copy.deepcopy(LEAF)
    doc["controllers"] |= {"alarm_grace_s": 0, "probe_interval_ms": 50, "max_backoff_ms": 10}
    with pytest.raises(ConfigError) as e:
        load_text(yaml.safe_dump(doc), "agent.yaml")
    assert str(e.value).splitlines() == [
        "agent.yaml: controllers.max_backoff_ms: 10 is out of range (allowed: 1000..3600000)",
        "agent.yaml: controllers.alarm_grace_s: 0 is out of range (allowed: 1..3600)",
        "agent.yaml: controllers.probe_interval_ms: 50 is out of range (allowed: 100..10000)",
    ]


def test_a_fraction_of_a_second_is_not_a_grace_time() -> None:
    with pytest.raises(ConfigError) as e:
        leaf(alarm_grace_s=0.5)
    assert str(e.value) == ("<text>: controllers.alarm_grace_s: must be an integer, got float 0.5 (allowed: 1..3600)")


# --- the commands that judge alarms ------------------------------------------------------------------


@pytest.fixture
def two_controllers(tmp_path: Path) -> Path:
    """leaf1 of the recorded health scenarios with controllers A and B (no alarm_grace_s: the default)."""
    path = tmp_path / "agent.yaml"
    path.write_text((DATA / "leaf1-healthy" / "intent.yaml").read_text() + f"controllers: {{targets: [{A}, {B}]}}\n")
    return path


def with_grace(path: Path, **keys: int) -> Path:
    doc = yaml.safe_load(path.read_text())
    doc["controllers"] |= keys
    path.write_text(yaml.safe_dump(doc))
    return path


def b_down_for_30_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command reads A connected and B down for 30 s (OVS's sec_since_disconnect), leaf1's underlay healthy."""
    state, _ = load("leaf1-healthy")

    def underlay(intent: Intent) -> UnderlayState:
        return state

    def ovs(intent: Intent, *_: object, **__: object) -> ControllersStatus:
        down = (("sec_since_disconnect", "30"), ("state", "BACKOFF"))
        rows = [
            ControllerState("br-tor", A, True, ControllerSpec(A), True, "other", (("state", "ACTIVE"),)),
            ControllerState("br-tor", B, True, ControllerSpec(B), False, None, down),
        ]
        return controllers_status(intent, rows)

    monkeypatch.setattr(health_cli, "read_underlay", underlay)
    monkeypatch.setattr(health_cli, "read_controllers", ovs)
    monkeypatch.setattr(controllers_cli, "read_controllers", ovs)
    monkeypatch.setattr(health_cli, "check_overlay", lambda intent, read: (None, []))
    monkeypatch.setattr(health_cli, "check_parts", lambda intent, only=None: [])  # the host's own links


def alarms_of(*args: str) -> tuple[int, list[tuple[str, str]]]:
    """Exit code and (kind, subject) of the alarms `tor-agent ARGS --json` reports."""
    code, out = invoke(*args[:1], "--json", *args[1:])
    doc = json.loads(out)
    items = doc["alarms"] if args[0] == "controllers" else doc["degraded"]
    return code, [(a["kind"], a["subject"]) for a in items]


@pytest.mark.parametrize("command", ["controllers", "status", "verify"])
def test_the_intents_grace_decides_the_alarm(
    command: str, monkeypatch: pytest.MonkeyPatch, two_controllers: Path
) -> None:
    b_down_for_30_s(monkeypatch)
    failed = 1 if command == "verify" else 0
    assert alarms_of(command, str(two_controllers)) == (failed, [("down", B)])  # default: 10 s
    assert alarms_of(command, str(with_grace(two_controllers, alarm_grace_s=60))) == (0, [])
    assert alarms_of(command, str(with_grace(two_controllers, alarm_grace_s=30))) == (failed, [("down", B)])


def test_the_grace_option_overrides_the_intent(monkeypatch: pytest.MonkeyPatch, two_controllers: Path) -> None:
    b_down_for_30_s(monkeypatch)
    config = str(with_grace(two_controllers, alarm_grace_s=60))
    assert alarms_of("controllers", "--grace", "20", config) == (0, [("down", B)])
    assert alarms_of("controllers", "--grace", "3600", str(with_grace(two_controllers, alarm_grace_s=1))) == (0, [])


def test_keep_runs_the_keeper_with_the_intents_values_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, two_controllers: Path
) -> None:
    kept: list[KeepaliveSettings | None] = []

    def keep(intent: Intent, remote: str, grace: float | None, status_file: Path | None) -> None:
        kept.append(KeepaliveSettings.from_intent(intent, grace_s=grace))  # what the real keep() runs with

    monkeypatch.setattr(controllers_cli, "keep", keep)
    config = str(with_grace(two_controllers, alarm_grace_s=45, probe_interval_ms=250))
    assert invoke("controllers", "--keep", config)[0] == 0
    assert invoke("controllers", "--keep", "--grace", "5", config)[0] == 0
    assert [(s.grace_s, s.probe_interval_s) for s in kept if s is not None] == [(45.0, 0.25), (5.0, 0.25)]


def test_help_says_where_the_grace_comes_from() -> None:
    code, out = invoke("controllers", "--help")
    assert code == 0 and "controllers.alarm_grace_s in CONFIG, else 10" in " ".join(out.split())
    code, out = invoke("verify", "--help")
    assert code == 0 and "controllers.alarm_grace_s (10 s by default)" in " ".join(out.split())
