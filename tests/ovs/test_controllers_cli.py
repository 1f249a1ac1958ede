"""`tor-agent controllers` against a real ovs-vswitchd: run inside the switch's namespace, as on a switch."""

from __future__ import annotations

import copy
import json
import socket
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
# What tor-agent.service leaves the agent: root with CAP_NET_ADMIN only (ovs-vswitchd's fds are unreadable).
SERVICE_CAPS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_admin"]


def controllers_cli(box: OvsSandbox, intent: Path, *args: str, caps: list[str] | None = None) -> Any:
    """`tor-agent controllers --json` in ovs-vswitchd's namespace (its TCP table is the one read); `caps`:
    run it under these setpriv(1) options."""
    argv = ["ip", "netns", "exec", box.netns, *(caps or []), TOR_AGENT, "controllers", "--json", "--db", box.remote]
    argv += args
    done = subprocess.run([*argv, str(intent)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def established_from(box: OvsSandbox, local_port: int) -> bool:
    """The sandbox's namespace has an ESTABLISHED TCP connection from `local_port` (its /proc/net/tcp)."""
    rows = [line.split() for line in box.netns_exec("cat", "/proc/net/tcp").splitlines()[1:]]
    return any(r[1].endswith(f":{local_port:04X}") and r[3] == "01" for r in rows)


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
            b = out["controllers"][1]
            if b["connected"]:  # OVS's backoff happened to end just now: connected, nothing to probe
                assert out["alarms"] == [] and b["reachable"] is None
                return
            assert b["reachable"] is True  # a TCP probe gets through, OVS backs off
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


def test_a_connection_of_another_process_is_not_the_switchs(
    sandbox: OvsSandbox, conn: OvsConnection, tmp_path: Path
) -> None:
    """The switch trusts the wrong CA: OVS is refused. An operator's plain TCP connection to the same
    controller (as nc, openssl s_client or a script would make) must not make it look connected."""
    ca = ctl.make_ca(tmp_path / "pki", ["switch", "controller"])
    ctl.make_ca(tmp_path / "other", [], ca_name="other-ca")
    ssl = ctl.ssl_section(ca, tmp_path / "other" / "other-ca.pem")
    tls = f"ssl:127.0.0.1:{ctl.PORT_A}"
    doc = copy.deepcopy(LEAF)
    doc["controllers"] = {"targets": [tls, ctl.B], "max_backoff_ms": 8000, "ssl": ssl, "allow_plaintext": True}
    intent = tmp_path / "agent.yaml"
    intent.write_text(yaml.safe_dump(doc))
    with ctl.stubs(sandbox, ctl.PORT_A, tls=ctl.tls_context(ca, "controller")), ctl.stubs(sandbox, ctl.PORT_B):
        ctl.reconcile(
            conn,
            ctl.controller_intent(sandbox, targets=[tls, ctl.B], max_backoff_ms=8000, ssl=ssl, allow_plaintext=True),
        )

        def settled() -> bool:
            conn.run()
            rows = {r.canonical: r for r in conn.controllers()}
            return (
                rows[ctl.B].is_connected and not rows[tls].is_connected and bool(rows[tls].status_value("last_error"))
            )

        wait_until(settled, ctl.STATUS_BUDGET_S, 0.1, "OVSDB: B connected, the TLS session refused")
        operator = ctl.in_netns(sandbox.netns, lambda: socket.create_connection(("127.0.0.1", ctl.PORT_A)))
        try:
            mine = operator.getsockname()[1]
            assert established_from(sandbox, mine), "the operator's connection is not established"
            for caps in (None, SERVICE_CAPS):
                out = controllers_cli(sandbox, intent, "--grace", "0", "--no-probe", caps=caps)
                by_target = {c["target"]: c for c in out["controllers"]}
                assert (by_target[tls]["connected"], by_target[ctl.B]["connected"]) == (False, True), caps
                assert [(a["kind"], a["subject"]) for a in out["alarms"]] == [("down", tls)], caps
                if caps is None:  # ovs-vswitchd's sockets told apart by their inodes
                    assert out["ovsdb_only"] is None
                else:  # as the service runs: OVSDB alone, and the report says why
                    assert "Permission denied" in out["ovsdb_only"], out["ovsdb_only"]
            assert established_from(sandbox, mine)  # there all along
        finally:
            operator.close()
