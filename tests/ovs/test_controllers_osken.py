"""The lab's controller app (os-ken, labs/containerlab/controller) against a real ovs-vswitchd, TCP and TLS.

One switch (tor-agent's rows: it tells the app its name and VTEP), two host namespaces on its access ports:
the app learns and forwards (ping) in the network its seed puts them in, over TCP and over ssl: with a CA
made by the test; a switch trusting another CA is not served. Networks on demand: the app's HTTP API
attaches and detaches the ports, keeps them in its state file across a restart (the switch keeps
forwarding meanwhile) and resynchronises the switch's flows when it comes back. os-ken runs from its own
venv (`make controller-venv`) inside the sandbox's namespace, started and stopped by process id.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import test_controllers as ctl
from ovs_sandbox import OvsSandbox, run
from prerequisites import skip_or_fail

from labs.containerlab.controller.lab_ca import LabCa, make_ca
from labs.labkit.tenants import CLIENT
from tor_agent.ovs.connection import OvsConnection
from tor_agent.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.ovs

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "labs" / "containerlab" / "controller"
OSKEN_PYTHON = Path(os.environ.get("OSKEN_PYTHON") or REPO / ".venv-controller" / "bin" / "python3")
HOSTS = {"eth3": "192.0.2.1/24", "eth4": "192.0.2.2/24"}
COOKIE = "0x7a6c0001"  # the app's flows: this in the cookie's upper 32 bits, the network's VNI below
API = "127.0.0.1:8080"
SEED = {
    "version": 1,
    "networks": [{"name": "blue", "vni": 1001, "ports": [{"switch": "leaf1", "port": p} for p in HOSTS]}],
}


@pytest.fixture
def osken_python() -> Path:
    if not OSKEN_PYTHON.exists():
        skip_or_fail(f"needs os-ken in its own venv: {OSKEN_PYTHON} missing (make controller-venv)", "os-ken tests")
    return OSKEN_PYTHON


@contextmanager
def osken(box: OvsSandbox, python: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """The lab app listening on 127.0.0.1:6653 inside the sandbox's namespace (`args`: TLS, API, state,
    seed); stopped on exit."""
    argv = ["ip", "netns", "exec", box.netns, str(python), str(APP_DIR / "osken_run.py")]
    argv += ["--listen", "127.0.0.1:6653", *args, str(APP_DIR / "lab_app.py")]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_until(lambda: proc.poll() is None and "instantiating app" in log.read_text(), 20, 0.05, "os-ken up")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def hosts(box: OvsSandbox) -> Iterator[dict[str, str]]:
    """A namespace per access port, its eth0 the peer of the port; names by port. Deleted on exit."""
    made: dict[str, str] = {}
    try:
        for port, address in HOSTS.items():
            ns = f"ta-h-{port}-{os.getpid()}"
            run(["ip", "netns", "add", ns])
            made[port] = ns
            box.netns_exec("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            box.netns_exec("ip", "link", "set", port, "up")
            for argv in (["ip", "link", "set", "lo", "up"], ["ip", "address", "add", address, "dev", "eth0"],
                         ["ip", "link", "set", "eth0", "up"], ["ethtool", "-K", "eth0", "tx", "off"]):  # fmt: skip
                run(["ip", "netns", "exec", ns, *argv])
        yield made
    finally:
        for ns in made.values():
            run(["ip", "netns", "del", ns])


def ping(ns: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


def app_flows(box: OvsSandbox) -> list[str]:
    return [f for f in ctl.flows(box) if f"cookie={COOKIE}" in f]


def seed(tmp_path: Path) -> list[str]:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    return ["--seed", str(path)]


def test_app_learns_and_forwards_over_tcp(
    sandbox: OvsSandbox, conn: OvsConnection, osken_python: Path, tmp_path: Path
) -> None:
    with hosts(sandbox) as ns, osken(sandbox, osken_python, tmp_path / "osken.log", *seed(tmp_path)):
        ctl.reconcile(conn, ctl.controller_intent(sandbox, access_ports=list(HOSTS), targets=[ctl.A]))
        wait_until(lambda: len(app_flows(sandbox)) >= 4, 10, 0.1, "the app's base flows")
        wait_until(lambda: ping(ns["eth3"], "192.0.2.2"), 10, 0.1, "h1 to reach h2 through the app")

        def learned() -> list[str]:  # each host's source (table 0) and destination (tables 1 and 2)
            found = [f for f in app_flows(sandbox) if "dl_dst=" in f or "dl_src=" in f]
            return found if len(found) >= 6 else []

        # The first frames are flooded while the controller learns: the learned flows may come a bit later.
        wait_until(learned, 5, 0.05, "learned flows for both hosts")
        log = (tmp_path / "osken.log").read_text()
        assert "switch connected: dpid=00000000000000a1" in log
        assert "dpid=00000000000000a1 is leaf1 (VTEP 198.18.0.11)" in log  # dp-desc and dp-sn, from tor-agent
        assert all(f"cookie={COOKIE}000003e9," in f for f in app_flows(sandbox))  # blue's VNI 1001


@pytest.fixture
def pki(tmp_path: Path) -> LabCa:
    make_ca(tmp_path / "other", [], ca_name="other-ca")
    return make_ca(tmp_path / "pki", ["switch", "controller"])


def test_app_over_ssl_and_a_switch_with_a_wrong_ca(
    sandbox: OvsSandbox, conn: OvsConnection, osken_python: Path, pki: LabCa, tmp_path: Path
) -> None:
    target = "ssl:127.0.0.1:6653"
    tls = ["--ssl-key", str(pki.identities["controller"].key), "--ssl-cert", str(pki.identities["controller"].cert)]
    tls += ["--ca-cert", str(pki.cert)]
    log = tmp_path / "osken.log"
    wrong = tmp_path / "other" / "other-ca.pem"
    ports = list(HOSTS)
    with hosts(sandbox), osken(sandbox, osken_python, log, *tls, *seed(tmp_path)):
        untrusted = ctl.ssl_section(pki, wrong)
        ctl.reconcile(conn, ctl.controller_intent(sandbox, access_ports=ports, targets=[target], ssl=untrusted))
        with pytest.raises(WaitTimeout):
            wait_until(lambda: app_flows(sandbox), 3, 0.1, "flows from a controller the switch must not trust")
        trusted = ctl.ssl_section(pki, pki.cert)
        ctl.reconcile(conn, ctl.controller_intent(sandbox, access_ports=ports, targets=[target], ssl=trusted))
        wait_until(lambda: len(app_flows(sandbox)) >= 2, 10, 0.1, "the app's flows over TLS")
        assert "switch connected: dpid=00000000000000a1" in log.read_text()


# --- networks on demand ---------------------------------------------------------------------------------


def api(box: OvsSandbox, method: str, path: str, body: Any = None, raw: str | None = None) -> tuple[int, Any]:
    """One request to the app's API, from inside the sandbox's namespace."""
    argv = ["ip", "netns", "exec", box.netns, "python3", "-c", CLIENT, method, f"http://{API}{path}"]
    argv += [raw if raw is not None else json.dumps(body)] if body is not None or raw is not None else []
    doc = json.loads(run(argv))
    return int(doc["status"]), doc["body"]


def test_networks_on_demand_follow_the_api_and_survive_a_restart(
    sandbox: OvsSandbox, conn: OvsConnection, osken_python: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    args = ["--api", API, "--state", str(state)]
    with hosts(sandbox) as ns:
        ctl.reconcile(conn, ctl.controller_intent(sandbox, access_ports=list(HOSTS), targets=[ctl.A]))
        with osken(sandbox, osken_python, tmp_path / "osken.log", *args):
            wait_until(lambda: "is leaf1" in (tmp_path / "osken.log").read_text(), 10, 0.05, "the switch known")
            assert not ping(ns["eth3"], "192.0.2.2") and app_flows(sandbox) == []  # no network: no traffic
            assert api(sandbox, "POST", "/networks", {"name": "blue", "vni": 1001})[0] == 201
            for port in HOSTS:
                assert api(sandbox, "PUT", "/networks/blue/ports", {"switch": "leaf1", "port": port})[0] == 200
            attached = time.monotonic()
            wait_until(lambda: ping(ns["eth3"], "192.0.2.2"), 5, 0.05, "h1 to reach h2 once both are attached")
            assert time.monotonic() - attached < 1.0
            wait_until(lambda: len(api(sandbox, "GET", "/networks/blue")[1]["macs"]) == 2, 5, 0.05, "two MACs")
            bad = api(sandbox, "PUT", "/networks/blue/ports", {"switch": "leaf1", "port": "eth9"})
            assert bad == (400, {"error": "port: leaf1 has no port 'eth9' (its access ports: eth3, eth4)"})
            assert api(sandbox, "POST", "/networks", raw="{nope")[0] == 400
            assert json.loads(state.read_text())["networks"][0]["ports"] == SEED["networks"][0]["ports"]
            # the controller goes away: the switch keeps forwarding with what it has (fail_mode secure)
        assert ping(ns["eth3"], "192.0.2.2") and ping(ns["eth4"], "192.0.2.1")
        doc = json.loads(state.read_text())
        doc["networks"][0]["ports"] = [{"switch": "leaf1", "port": "eth3"}]  # eth4 left blue while it was away
        state.write_text(json.dumps(doc))
        with osken(sandbox, osken_python, tmp_path / "osken-2.log", *args):
            log = tmp_path / "osken-2.log"
            wait_until(lambda: "resynchronised" in log.read_text(), 10, 0.05, "the switch resynchronised")
            assert api(sandbox, "GET", "/networks/blue")[1]["ports"] == [{"switch": "leaf1", "port": "eth3"}]
            wait_until(lambda: not ping(ns["eth3"], "192.0.2.2"), 5, 0.1, "eth4's flows gone")
            assert all("in_port=eth4" not in f and "in_port=2" not in f for f in app_flows(sandbox))
            assert api(sandbox, "DELETE", "/networks/blue")[0] == 200
            assert app_flows(sandbox) == []
