"""Controllers and SSL in the desired OVS state, and their diff: pure, no OVS needed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from intents import intent_from
from ovs_rows import snapshot_of

from tor_agent.config import Intent
from tor_agent.model.overlay import (
    ControllerSpec,
    OvsDesired,
    SslSpec,
    alternate_target,
    canonical_target,
    desired_ovs,
)
from tor_agent.ovs.plan import diff_overlay
from tor_agent.ovs.state import (
    AddController,
    ControllerState,
    DeleteController,
    DeleteSsl,
    OvsSnapshot,
    SetSsl,
    SslState,
    UpdateController,
)

A, B = "tcp:203.0.113.10:6653", "tcp:203.0.113.11:6653"
LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {"ospf": {"area": "0.0.0.0"}, "uplinks": [{"name": "eth1", "unnumbered": True, "mtu": 9000}]},
    "overlay": {"bridge": "br-tor", "datapath": "system", "dpid": "00000000000000a1", "access_ports": []},
    "controllers": {"targets": [A, B], "inactivity_probe_ms": 5000, "max_backoff_ms": 2000},
}


def intent(**edits: Any) -> Intent:
    """LEAF with dotted-path edits; None deletes."""
    return intent_from(LEAF, **edits)


def snapshot(d: OvsDesired, *controllers: ControllerState, ssl: SslState | None = None) -> OvsSnapshot:
    """OVSDB holding `d`'s bridges and ports exactly, plus `controllers` (read: none is none) and `ssl`."""
    return snapshot_of(d, controllers=controllers, ssl=ssl)


def row(target: str, owned: bool = True, connected: bool = False, **spec: Any) -> ControllerState:
    """A Controller row on br-tor as the intent would write it (spec fields overridable)."""
    base = ControllerSpec(canonical_target(target), 5000, 2000, "out-of-band")
    return ControllerState("br-tor", target, owned, replace(base, **spec), is_connected=connected)


def controller_actions(plan_actions: tuple[object, ...]) -> list[object]:
    return [a for a in plan_actions if isinstance(a, AddController | UpdateController | DeleteController)]


# --- targets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("tcp:192.0.2.1", "tcp:192.0.2.1:6653"),
        ("tcp:192.0.2.1:6653", "tcp:192.0.2.1:6653"),
        ("tcp:192.0.2.1:06653", "tcp:192.0.2.1:6653"),
        ("tcp:[192.0.2.1]:6653", "tcp:192.0.2.1:6653"),
        ("ssl:[2001:0db8::1]", "ssl:[2001:db8::1]:6653"),
        ("unix:/run/ctl.sock", "unix:/run/ctl.sock"),
        ("tcp:controller.example:6653", "tcp:controller.example:6653"),
        ("ptcp:6653", "ptcp:6653"),
    ],
)
def test_canonical_target(raw: str, canonical: str) -> None:
    assert canonical_target(raw) == canonical


def test_alternate_spelling_is_the_same_controller() -> None:
    for target in (A, "ssl:[2001:db8::1]:6653"):
        other = alternate_target(target)
        assert other != target and canonical_target(other) == target


# --- desired -----------------------------------------------------------------------------------------


def test_one_controller_row_per_target_with_the_intent_settings() -> None:
    d = desired_ovs(intent())
    assert d.controller_bridge == "br-tor"
    assert d.controllers == {
        A: ControllerSpec(A, inactivity_probe=5000, max_backoff=2000, connection_mode="out-of-band"),
        B: ControllerSpec(B, inactivity_probe=5000, max_backoff=2000, connection_mode="out-of-band"),
    }
    assert d.ssl is None and not d.allow_controller_removal


def test_target_without_port_gets_the_openflow_port() -> None:
    d = desired_ovs(intent(**{"controllers.targets": ["tcp:[2001:db8::10]"]}))
    assert list(d.controllers) == ["tcp:[2001:db8::10]:6653"]


def test_ssl_row_from_the_intent(tmp_path: Path) -> None:
    files = {}
    for name, label in (("key.pem", "PRIVATE KEY"), ("cert.pem", "CERTIFICATE"), ("ca.pem", "CERTIFICATE")):
        (tmp_path / name).write_text(f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
        files[name] = str(tmp_path / name)
    ssl = {"private_key": files["key.pem"], "certificate": files["cert.pem"], "ca_cert": files["ca.pem"]}
    d = desired_ovs(intent(**{"controllers.targets": ["ssl:203.0.113.10:6653"], "controllers.ssl": ssl}))
    assert d.ssl == SslSpec(files["key.pem"], files["cert.pem"], files["ca.pem"])
    assert list(d.controllers) == ["ssl:203.0.113.10:6653"]


def test_no_controllers_section_wants_none() -> None:
    d = desired_ovs(intent(controllers=None), allow_controller_removal=True)
    assert d.controllers == {} and d.ssl is None and d.allow_controller_removal


# --- diff --------------------------------------------------------------------------------------------


def test_new_controllers_join_the_bridge() -> None:
    d = desired_ovs(intent())
    plan = diff_overlay(d, snapshot(d))
    assert controller_actions(plan.actions) == [AddController("br-tor", d.controllers[t]) for t in (A, B)]


def test_converged_controllers_are_a_no_op() -> None:
    d = desired_ovs(intent())
    plan = diff_overlay(d, snapshot(d, row(A), row(B)))
    assert plan.actions == () and plan.conflicts == ()
    assert plan.unchanged == len(d.bridges) + len(d.ports) + 2


def test_alternate_spelling_in_ovsdb_is_not_drift() -> None:
    d = desired_ovs(intent())
    assert diff_overlay(d, snapshot(d, row(alternate_target(A)), row(B))).actions == ()


def test_changed_settings_update_the_row_in_place() -> None:
    d = desired_ovs(intent())
    plan = diff_overlay(d, snapshot(d, row(A, max_backoff=8000), row(B)))
    assert plan.actions == (UpdateController("br-tor", d.controllers[A]),)


def test_replacing_the_only_controller_is_one_plan_that_never_empties_the_set() -> None:
    d = desired_ovs(intent(**{"controllers.targets": [B]}))
    plan = diff_overlay(d, snapshot(d, row(A)))
    assert set(plan.actions) == {AddController("br-tor", d.controllers[B]), DeleteController("br-tor", A)}
    assert plan.conflicts == ()


def test_last_controller_is_kept_when_the_intent_drops_them() -> None:
    d = desired_ovs(intent(controllers=None))
    plan = diff_overlay(d, snapshot(d, row(A), row(B)))
    assert plan.actions == ()
    assert [(c.table, c.name) for c in plan.conflicts] == [("Controller", "br-tor")]
    assert "clear the bridge's flow tables" in plan.conflicts[0].reason


def test_removing_the_last_controller_on_purpose() -> None:
    d = desired_ovs(intent(controllers=None), allow_controller_removal=True)
    plan = diff_overlay(d, snapshot(d, row(A), row(B)))
    assert set(plan.actions) == {DeleteController("br-tor", A), DeleteController("br-tor", B)}


def test_a_foreign_controller_keeps_the_bridge_from_being_empty() -> None:
    d = desired_ovs(intent(controllers=None))
    plan = diff_overlay(d, snapshot(d, row(A), row("tcp:192.0.2.99:6653", owned=False)))
    assert plan.actions == (DeleteController("br-tor", A),) and plan.conflicts == ()


def test_foreign_row_with_a_wanted_target_is_a_conflict() -> None:
    d = desired_ovs(intent())
    plan = diff_overlay(d, snapshot(d, row(A, owned=False), row(B)))
    assert plan.actions == ()
    assert [(c.table, c.name) for c in plan.conflicts] == [("Controller", A)]


def test_a_target_twice_keeps_the_connected_row() -> None:
    d = desired_ovs(intent())
    plan = diff_overlay(d, snapshot(d, row(A), row(alternate_target(A), connected=True), row(B)))
    assert plan.actions == (DeleteController("br-tor", A),)


def test_controllers_of_a_removed_bridge_go_with_it() -> None:
    d = desired_ovs(intent())
    spine = desired_ovs(intent(**{"node.role": "spine", "overlay": None, "controllers": None}))
    plan = diff_overlay(spine, snapshot(d, row(A), row(B)))
    assert controller_actions(plan.actions) == [] and plan.conflicts == ()


def test_snapshot_without_controllers_leaves_them_alone() -> None:
    d = desired_ovs(intent())
    snap = replace(snapshot(d), controllers=None)
    assert controller_actions(diff_overlay(d, snap).actions) == []


def test_ssl_row_set_changed_removed_or_left_alone() -> None:
    spec = SslSpec("/k", "/c", "/ca")
    d = replace(desired_ovs(intent()), ssl=spec)
    converged = (row(A), row(B))
    assert SetSsl(spec) in diff_overlay(d, snapshot(d, *converged)).actions
    assert diff_overlay(d, snapshot(d, *converged, ssl=SslState(True, spec))).actions == ()
    moved = SslState(True, replace(spec, ca_cert="/old-ca"))
    assert diff_overlay(d, snapshot(d, *converged, ssl=moved)).actions == (SetSsl(spec),)
    unwanted = replace(d, ssl=None)
    assert diff_overlay(unwanted, snapshot(d, *converged, ssl=SslState(True, spec))).actions == (DeleteSsl(),)
    assert diff_overlay(unwanted, snapshot(d, *converged, ssl=SslState(False, spec))).actions == ()
    plan = diff_overlay(d, snapshot(d, *converged, ssl=SslState(False, moved.spec)))
    assert plan.actions == () and [(c.table, c.name) for c in plan.conflicts] == [("SSL", "SSL")]
