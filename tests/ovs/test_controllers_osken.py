"""The lab's controller app (os-ken, labs/containerlab/controller) against a real ovs-vswitchd, TCP and TLS.

One switch, two host namespaces on its access ports: the app learns and forwards (ping), over TCP and over
ssl: with a CA made by the test; a switch trusting another CA is not served. os-ken runs from its own venv
(`make controller-venv`) inside the sandbox's namespace, started and stopped by process id.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import test_controllers as ctl
from ovs_sandbox import OvsSandbox, run
from prerequisites import skip_or_fail

from labs.containerlab.controller.lab_ca import LabCa, make_ca
from tor_agent.ovs.connection import OvsConnection
from tor_agent.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.ovs

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "labs" / "containerlab" / "controller"
OSKEN_PYTHON = Path(os.environ.get("OSKEN_PYTHON") or REPO / ".venv-controller" / "bin" / "python3")
HOSTS = {"eth3": "192.0.2.1/24", "eth4": "192.0.2.2/24"}
COOKIE = "0x7a6c0001"


@pytest.fixture
def osken_python() -> Path:
    if not OSKEN_PYTHON.exists():
        skip_or_fail(f"needs os-ken in its own venv: {OSKEN_PYTHON} missing (make controller-venv)", "os-ken tests")
    return OSKEN_PYTHON


@contextmanager
def osken(box: OvsSandbox, python: Path, log: Path, *tls: str) -> Iterator[subprocess.Popen[bytes]]:
    """The lab app listening on 127.0.0.1:6653 inside the sandbox's namespace; stopped on exit."""
    argv = ["ip", "netns", "exec", box.netns, str(python), str(APP_DIR / "osken_run.py")]
    argv += ["--listen", "127.0.0.1:6653", *tls, str(APP_DIR / "lab_app.py")]
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


def test_app_learns_and_forwards_over_tcp(
    sandbox: OvsSandbox, conn: OvsConnection, osken_python: Path, tmp_path: Path
) -> None:
    with hosts(sandbox) as ns, osken(sandbox, osken_python, tmp_path / "osken.log"):
        ctl.reconcile(conn, ctl.controller_intent(sandbox, access_ports=list(HOSTS), targets=[ctl.A]))
        wait_until(lambda: len(app_flows(sandbox)) >= 4, 10, 0.1, "the app's base flows")
        wait_until(lambda: ping(ns["eth3"], "192.0.2.2"), 10, 0.1, "h1 to reach h2 through the app")

        def learned() -> list[str]:  # each host's source (table 0) and destination (tables 1 and 2)
            found = [f for f in app_flows(sandbox) if "dl_dst=" in f or "dl_src=" in f]
            return found if len(found) >= 6 else []

        # The first frames are flooded while the controller learns: the learned flows may come a bit later.
        wait_until(learned, 5, 0.05, "learned flows for both hosts")
        assert "switch connected: dpid=00000000000000a1" in (tmp_path / "osken.log").read_text()


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
    with osken(sandbox, osken_python, log, *tls):
        ctl.reconcile(conn, ctl.controller_intent(sandbox, targets=[target], ssl=ctl.ssl_section(pki, wrong)))
        with pytest.raises(WaitTimeout):
            wait_until(lambda: app_flows(sandbox), 3, 0.1, "flows from a controller the switch must not trust")
        ctl.reconcile(conn, ctl.controller_intent(sandbox, targets=[target], ssl=ctl.ssl_section(pki, pki.cert)))
        wait_until(lambda: len(app_flows(sandbox)) >= 2, 10, 0.1, "the app's flows over TLS")
        assert "switch connected: dpid=00000000000000a1" in log.read_text()
