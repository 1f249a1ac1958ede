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
from ovs_testlib import LEAF

from tor_agent.ovs.connection import OvsConnection
from tor_agent.ovs.sandbox import OvsSandbox

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
