"""`tor-agent run` on a lab leaf, as systemd runs it: sd_notify READY/WATCHDOG/STATUS over $NOTIFY_SOCKET, SIGHUP
with a bad intent refused (nothing changes) and a good one applied, SIGTERM exits 0 leaving the switch as it
is, exit 2 on a bad intent at start. (What the agent costs, start time, idle CPU and memory, is measured by
bench/agent_footprint.py.)

The lab's agent on the leaf is paused (SIGSTOP, between passes) while a second agent with a copy of the intent
in the node's private /run is driven by a small script inside the node, which plays systemd's part.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from labs.labkit.lab import Lab
from labs.labkit.nodes import INTENT, paused_agents
from labs.nslab import realise

pytestmark = pytest.mark.lab

WORK = "/run/test-daemon"  # node-private

SYSTEMD = r"""
import json, os, signal, socket, subprocess, sys, time
agent, work = sys.argv[1], sys.argv[2]
config, status, sock_path = f"{work}/agent.yaml", f"{work}/status.json", f"{work}/notify"
good = open(config).read()
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
sock.settimeout(0.2)
env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"}
log = open(f"{work}/agent.log", "wb")
argv = [agent, "run", "--config", config, "--status-file", status, "--control-socket", f"{work}/control.sock"]
proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
got, start, out = [], time.monotonic(), {}

def collect(until, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until():
        try:
            got.append((round(time.monotonic() - start, 3), sock.recv(4096).decode()))
        except socket.timeout:
            pass

def state():
    try:
        return json.load(open(status))
    except (OSError, ValueError):
        return {}

collect(lambda: any(m.startswith("READY=1") for _, m in got), 30)
out["ready_s"] = next((t for t, m in got if m.startswith("READY=1")), None)
collect(lambda: False, 2.5)
passes = state().get("passes", 0)
open(config, "w").write(good + "bogus_key: 1\n")
proc.send_signal(signal.SIGHUP)
collect(lambda: state().get("reload_error"), 10)
out["refused"] = state()
open(config, "w").write(good)
proc.send_signal(signal.SIGHUP)
collect(lambda: not state().get("reload_error") and state().get("passes", 0) > passes, 10)
out["reloaded"] = state()
proc.send_signal(signal.SIGTERM)
out["returncode"] = proc.wait(30)
out["messages"] = got
print(json.dumps(out))
"""


def agent_binary(lab: Lab) -> str:
    return realise.tools_env(lab.topo)["TOR_AGENT"]


def frr_and_ovs(lab: Lab, leaf: str) -> tuple[str, str]:
    """What must not change when a bad intent is refused: FRR's running configuration, OVS's ports."""
    running = lab.exec(leaf, "vtysh", "-c", "show running-config").stdout
    ports = lab.exec(leaf, "ovs-vsctl", "--bare", "--columns=name,options", "list", "Interface").stdout
    return running, ports


def test_run_under_a_systemd_stand_in_ready_watchdog_reload_and_clean_exit(converged: Lab) -> None:
    leaf = converged.role("leaf")[0]
    converged.exec(leaf, "mkdir", "-p", WORK)
    converged.exec(leaf, "cp", INTENT, f"{WORK}/agent.yaml")
    try:
        with paused_agents(converged.topo, [leaf]):
            before = frr_and_ovs(converged, leaf)
            done = converged.exec(leaf, "python3", "-c", SYSTEMD, agent_binary(converged), WORK, timeout=120)
            after = frr_and_ovs(converged, leaf)
        out: dict[str, Any] = json.loads(done.stdout)
        log = converged.exec(leaf, "cat", f"{WORK}/agent.log").stdout
    finally:
        converged.exec(leaf, "rm", "-rf", WORK)
    messages = [m for _, m in out["messages"]]
    assert out["ready_s"] is not None, log
    watchdogs = [t for t, m in out["messages"] if m == "WATCHDOG=1" and t > out["ready_s"]]
    assert len(watchdogs) >= 2, messages  # WATCHDOG_USEC 2 s: every second
    assert any(m.startswith(f"STATUS={leaf}: ready; full pass") for m in messages), messages
    refused = out["refused"]
    assert "bogus_key" in refused["reload_error"] and refused["ready"] is True
    assert "reload refused: " in log and "bogus_key" in log
    assert out["reloaded"]["reload_error"] is None
    assert out["returncode"] == 0 and "the switch is left as it is" in log
    assert after == before  # neither the refused reload nor the exit changed FRR or OVS


def test_invalid_intent_at_start_exits_2_and_changes_nothing(converged: Lab) -> None:
    leaf = converged.role("leaf")[0]
    converged.exec(leaf, "mkdir", "-p", WORK)
    converged.exec(leaf, "sh", "-c", f"cat {INTENT} > {WORK}/bad.yaml && echo 'bogus_key: 1' >> {WORK}/bad.yaml")
    try:
        before = frr_and_ovs(converged, leaf)
        argv = [agent_binary(converged), "run", "--config", f"{WORK}/bad.yaml", "--status-file", f"{WORK}/s.json"]
        done = converged.exec(leaf, *argv, timeout=60, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "bogus_key" in done.stdout and "not started" in done.stdout
        assert frr_and_ovs(converged, leaf) == before
    finally:
        converged.exec(leaf, "rm", "-rf", WORK)
