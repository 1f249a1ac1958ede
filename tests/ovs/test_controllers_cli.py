"""`tor-agent controllers` against a real ovs-vswitchd: run inside the switch's namespace, as on a switch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_controllers as ctl
import yaml
from ovs_sandbox import OvsSandbox
from ovs_testlib import LEAF

from tor_agent.ovs.connection import OvsConnection
from tor_agent.wait import wait_until

pytestmark = pytest.mark.ovs

TOR_AGENT = str(Path(sys.executable).parent / "tor-agent")


def controllers_cli(box: OvsSandbox, intent: Path, *args: str) -> Any:
    """`tor-agent controllers --json` in ovs-vswitchd's namespace (its TCP table is the one read)."""
    argv = ["ip", "netns", "exec", box.netns, TOR_AGENT, "controllers", "--json", "--db", box.remote, *args]
    done = subprocess.run([*argv, str(intent)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_reports_connected_down_and_reachability(sandbox: OvsSandbox, conn: OvsConnection, tmp_path: Path) -> None:
    doc = copy.deepcopy(LEAF)
    doc["controllers"] = {"targets": [ctl.A, ctl.B], "max_backoff_ms": 8000}
    intent = tmp_path / "agent.yaml"
    intent.write_text(yaml.safe_dump(doc))
    with ctl.stubs(sandbox, ctl.PORT_A) as (stub,):
        ctl.reconcile(conn, ctl.controller_intent(sandbox, targets=[ctl.A, ctl.B], max_backoff_ms=8000))
        stub.wait_hello(1)
        # At once: OVSDB may not say so for up to 5 s, the kernel's TCP table already does.
        out = controllers_cli(sandbox, intent, "--grace", "0")
        a, b = out["controllers"]
        assert (a["target"], a["connected"], a["owned"]) == (ctl.A, True, True)
        assert (b["target"], b["connected"], b["reachable"]) == (ctl.B, False, False)
        assert out["connected"] == 1 and [(x["kind"], x["subject"]) for x in out["alarms"]] in (
            [("down", ctl.B)],
            [("missing", ctl.B)],
        )
        with ctl.stubs(sandbox, ctl.PORT_B):
            out = controllers_cli(sandbox, intent, "--grace", "3600")
            assert out["controllers"][1]["reachable"] is True  # a TCP probe gets through, OVS backs off
            (alarm,) = out["alarms"]  # never connected: how long is unknown to a one-shot read
            assert alarm["subject"] == ctl.B and "reachable (TCP) but the switch is not connected" in alarm["message"]


def test_keep_runs_the_keeper_until_sigterm(sandbox: OvsSandbox, conn: OvsConnection, tmp_path: Path) -> None:
    doc = copy.deepcopy(LEAF)
    doc["controllers"] = {"targets": [ctl.A], "max_backoff_ms": 8000}
    intent, status = tmp_path / "agent.yaml", tmp_path / "controllers.json"
    intent.write_text(yaml.safe_dump(doc))
    ctl.reconcile(conn, ctl.controller_intent(sandbox, targets=[ctl.A], max_backoff_ms=8000))
    argv = ["ip", "netns", "exec", sandbox.netns, TOR_AGENT, "controllers", "--keep", "--db", sandbox.remote]
    argv += ["--grace", "1", "--status-file", str(status), str(intent)]
    log = (tmp_path / "keep.log").open("wb")
    keeper = subprocess.Popen(argv, stdout=log, stderr=log)
    try:

        def view() -> dict[str, Any]:
            data: dict[str, Any] = json.loads(status.read_text())
            return data

        wait_until(lambda: view()["alarms"], 10, 0.05, "the all-down alarm (no controller yet)")
        with ctl.stubs(sandbox, ctl.PORT_A) as (stub,):
            # The keeper's probe gets through and it rewrites the target: OVS does not wait out its backoff.
            stub.wait_hello(1, timeout=3)
            wait_until(lambda: view()["controllers"][0]["connected"], 3, 0.05, "the keeper to see A")
            assert view()["alarms"] == [] and view()["controllers"][0]["reconnects_forced"] >= 1
        wait_until(lambda: view()["controllers"][0]["flaps"] == 1, 3, 0.05, "the loss of A counted")
    finally:
        keeper.terminate()
        code = keeper.wait(10)
        log.close()
    assert code == 0, (tmp_path / "keep.log").read_text()
    assert "controller tcp:127.0.0.1:6653 reconnect" in (tmp_path / "keep.log").read_text()
