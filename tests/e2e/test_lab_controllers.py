"""Controllers in the lab: redundancy, keepalive, L2 on demand, VM migration and TLS, on the demo fabric.

The leaves run `tor-agent run` with their intent. For these tests each leaf's intent is replaced (a bind
mount over /etc/tor-agent/agent.yaml inside the leaf, then SIGHUP, as an operator would edit it) by the same
intent with two controllers: two instances of the lab app on the controller node (ports 6654 and 6655,
started and stopped by the tests, with the demo's networks), max_backoff 8 s (OVS's default). leaf1 and
leaf2 run the controller keeper (`tor-agent controllers --keep`); leaf3 does not: its reconnection is plain
OVS backoff, in the same run.
The leaves' own agents host the same keeper: while the reconnection is timed they are paused (SIGSTOP
between passes), so that the keepers under test are the only ones acting and leaf3 has none.
Forwarding is the lab app's alone (learning, split horizon). Everything is put back afterwards.
"""

from __future__ import annotations

import copy
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from labs.containerlab.controller.lab_ca import LabCa, make_ca
from labs.labkit.fabric import tenant_address
from labs.labkit.frames import mac
from labs.labkit.hosts import move_back, move_vm, pings, reply_times
from labs.labkit.lab import Lab
from labs.labkit.nodes import Background, background, paused_agents
from labs.nslab import realise
from tor_agent.model.overlay import alternate_target
from tor_agent.wait import wait_until

pytestmark = pytest.mark.lab

Record = Callable[[str, object], None]
INTENT = "/etc/tor-agent/agent.yaml"
APP_DIR = "/etc/tor-agent/controller"  # the controller node's view of labs/containerlab/controller
SEED = "/etc/tor-agent/networks.json"  # the demo's networks (blue, red), as the node's own app starts with
CONTROLLER = "controller"
PORT_A, PORT_B, PORT_TLS = 6654, 6655, 6656
KEEPERS = ("leaf1", "leaf2")  # leaf3: plain OVS backoff, for comparison
GRACE_S = 2.0
STATE = "/run/test-controllers"  # node-private
CONNECT_BUDGET_S = 15.0  # SIGHUP, the daemon's pass, OVS connecting; OVSDB status lags up to 5 s
RECONNECT_BUDGET_S = 2.0  # the issue: tor-agent reconnects within 2 s of the controller's return
MIGRATION_BUDGET_S = 1.0  # the issue: traffic resumes within 1 s of the host's re-attachment
OSKEN_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*switch connected: dpid=([0-9a-f]{16})")


# --- processes in nodes ------------------------------------------------------------------------------------


def start(lab: Lab, node: str, argv: list[str], log: Path) -> Background:
    return background(lab.topo, node, argv, log)


def agent(lab: Lab, node: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, realise.tools_env(lab.topo)["TOR_AGENT"], *args, timeout=60, check=check)


# --- the lab app instances ---------------------------------------------------------------------------------


@dataclass
class Instance:
    """One instance of the lab app on the controller node, listening on `port` (optionally TLS)."""

    lab: Lab
    port: int
    log: Path
    tls: list[str] = field(default_factory=list)
    running: Background | None = None
    listening_at: float = 0.0  # wall clock, no later than the port opened; comparable with os-ken's log

    @property
    def address(self) -> str:
        return str(self.lab.nodes[CONTROLLER].mgmt_ipv4)

    def start(self) -> Instance:
        python = realise.tools_env(self.lab.topo)["OSKEN_PYTHON"]
        argv = [
            python,
            f"{APP_DIR}/osken_run.py",
            "--listen",
            f"0.0.0.0:{self.port}",
            *self.tls,
            "--seed",
            SEED,
            f"{APP_DIR}/lab_app.py",
        ]
        self.listening_at = time.time()
        self.running = start(self.lab, CONTROLLER, argv, self.log)
        wait_for(self.opened, 20, f"the lab app on port {self.port}")
        return self

    def opened(self) -> bool:
        """Poll the port; while it is closed, move `listening_at` to this poll's start.

        A keeper can connect its switch within the poll that first finds the port open, so the end of that
        poll is too late a mark: the start of the last poll that found it closed is never after the port
        opened, and any connection to this instance comes after it.
        """
        began = time.time()
        if self.listening():
            return True
        self.listening_at = began
        return False

    def listening(self) -> bool:
        assert self.running is not None
        if self.running.proc.poll() is not None:
            raise AssertionError(f"os-ken on port {self.port} exited: {self.running.text()[-2000:]}")
        table = self.lab.exec(CONTROLLER, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        return any(f":{self.port:04X} " in line and " 0A " in line for line in table.splitlines())

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop(signal.SIGKILL)  # a crash: no goodbye to the switches
            self.running = None

    def served(self, dpid: int) -> bool:
        """True once switch `dpid` has connected to this instance."""
        return dpid in self.connections()

    def connections(self) -> dict[int, float]:
        """dpid -> wall clock of the latest 'switch connected' in this instance's log."""
        found: dict[int, float] = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if m := OSKEN_LINE.match(line):
                found[int(m[2], 16)] = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """wait_until, polling every 50 ms."""
    return wait_until(predicate, timeout, 0.05, what)


# --- leaves ------------------------------------------------------------------------------------------------


def dpid(lab: Lab, leaf: str) -> int:
    return int(lab.intent(leaf)["overlay"]["dpid"], 16)


MOUNTED: set[str] = set()  # leaves whose intent these tests replaced


def use_intent(lab: Lab, leaf: str, doc: dict[str, Any], tmp: Path) -> None:
    """Make `doc` the leaf's intent (bind mount over the bound file) and have its daemon reload it."""
    path = tmp / f"{leaf}.yaml"
    path.write_text(yaml.safe_dump(doc))
    if leaf not in MOUNTED:
        lab.exec(leaf, "mount", "--bind", str(path), INTENT)
        MOUNTED.add(leaf)
    reload(lab, leaf)


def restore_intent(lab: Lab, leaf: str) -> None:
    """The leaf's own intent again (reloaded)."""
    if leaf in MOUNTED:
        lab.exec(leaf, "umount", INTENT)
        MOUNTED.discard(leaf)
        reload(lab, leaf)


def reload(lab: Lab, leaf: str) -> None:
    pid = lab.exec(leaf, "cat", "/run/tor-agent.pid").stdout.strip()
    lab.exec(leaf, "kill", "-HUP", pid)


def controllers(lab: Lab, leaf: str) -> dict[str, dict[str, Any]]:
    """`tor-agent controllers --json` inside the leaf: its controllers by target."""
    done = agent(lab, leaf, "controllers", "--json", "--no-probe", INTENT)
    assert done.returncode == 0, done.stderr
    return {c["target"]: c for c in json.loads(done.stdout)["controllers"]}


def connected(lab: Lab, leaf: str, *targets: str) -> bool:
    found = controllers(lab, leaf)
    return all(t in found and found[t]["connected"] for t in targets)


def keeper_view(lab: Lab, leaf: str, name: str = "keeper.json") -> dict[str, Any]:
    """What `tor-agent controllers --keep` wrote in its status file inside the leaf."""
    return dict(json.loads(lab.exec(leaf, "cat", f"{STATE}/{name}").stdout))


def keeper_ready(lab: Lab, leaf: str, name: str = "keeper.json") -> bool:
    return lab.exec(leaf, "test", "-s", f"{STATE}/{name}", check=False).returncode == 0


def keeper_connected(lab: Lab, leaf: str) -> bool:
    return bool(keeper_view(lab, leaf)["controllers"][0]["connected"])


def alarmed(lab: Lab, leaf: str, kind: str, subject: str, name: str = "keeper.json") -> bool:
    """The leaf's keeper raises alarm `kind` about `subject`."""
    return [kind, subject] in [[a["kind"], a["subject"]] for a in keeper_view(lab, leaf, name)["alarms"]]


# --- hosts -------------------------------------------------------------------------------------------------


# --- fixtures ----------------------------------------------------------------------------------------------


@dataclass
class Setup:
    lab: Lab
    a: Instance
    b: Instance
    tmp: Path
    keepers: dict[str, Background]

    @property
    def targets(self) -> tuple[str, str]:
        return f"tcp:{self.a.address}:{PORT_A}", f"tcp:{self.b.address}:{PORT_B}"


def leaf_intent(lab: Lab, leaf: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    doc = copy.deepcopy(lab.intent(leaf))
    doc["controllers"] = {"targets": targets, "inactivity_probe_ms": 5000, "max_backoff_ms": 8000, **extra}
    return doc


@pytest.fixture(scope="module")
def two(converged: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Two lab app instances, every leaf pointed at both, keepers on leaf1 and leaf2."""
    lab, tmp = converged, tmp_path_factory.mktemp("controllers")
    a = Instance(lab, PORT_A, tmp / "ctl-a.log").start()
    b = Instance(lab, PORT_B, tmp / "ctl-b.log").start()
    setup = Setup(lab, a, b, tmp, {})
    try:
        for leaf in lab.role("leaf"):
            use_intent(lab, leaf, leaf_intent(lab, leaf, list(setup.targets)), tmp)
        for leaf in lab.role("leaf"):
            wait_for(partial(connected, lab, leaf, *setup.targets), CONNECT_BUDGET_S, f"{leaf} on both")
        for leaf in KEEPERS:
            lab.exec(leaf, "mkdir", "-p", STATE)
            argv = [realise.tools_env(lab.topo)["TOR_AGENT"], "controllers", "--keep", "--grace", str(GRACE_S)]
            argv += ["--status-file", f"{STATE}/keeper.json", INTENT]
            setup.keepers[leaf] = start(lab, leaf, argv, tmp / f"keeper-{leaf}.log")
        for leaf in KEEPERS:
            wait_for(partial(keeper_ready, lab, leaf), 10, f"{leaf}'s keeper")
        yield setup
    finally:
        for keeper in setup.keepers.values():
            keeper.stop()
        for leaf in lab.role("leaf"):
            restore_intent(lab, leaf)
            lab.exec(leaf, "rm", "-rf", STATE, check=False)
        a.stop()
        b.stop()


# --- tests -------------------------------------------------------------------------------------------------


def test_two_controllers_connected_at_once(two: Setup) -> None:
    lab = two.lab
    for leaf in lab.role("leaf"):
        found = controllers(lab, leaf)
        assert all(found[t]["connected"] and found[t]["owned"] for t in two.targets), found
    dpids = {dpid(lab, leaf) for leaf in lab.role("leaf")}
    wait_for(lambda: dpids <= set(two.a.connections()) and dpids <= set(two.b.connections()), 10, "both apps' logs")
    for leaf in KEEPERS:
        view = keeper_view(lab, leaf)
        assert [c["connected"] for c in view["controllers"]] == [True, True] and view["alarms"] == []


def test_a_host_newly_attached_reaches_the_others_without_configuration(two: Setup) -> None:
    lab = two.lab
    wait_for(lambda: pings(lab.topo, "host1", tenant_address(lab.topo, "host2")), 10, "host1 to reach host2")
    address = "198.51.100.14"
    lab.exec("host4", "ip", "address", "add", f"{address}/24", "dev", "eth1")
    try:
        for other in ("host1", "host2", "host3"):
            wait_for(partial(pings, lab.topo, "host4", tenant_address(lab.topo, other)), 5, f"host4 to reach {other}")
            assert pings(lab.topo, other, address, count=3)
    finally:
        lab.exec("host4", "ip", "address", "del", f"{address}/24", "dev", "eth1")


def test_one_controller_stops_the_other_keeps_the_switch(two: Setup, record: Record) -> None:
    lab = two.lab
    target_a, target_b = two.targets
    two.a.stop()
    lost = time.monotonic()
    wait_for(lambda: not controllers(lab, "leaf1")[target_a]["connected"], 5, "leaf1 to report A lost")
    record("controllers: a lost controller reported by tor-agent controllers after", f"{time.monotonic() - lost:.2f} s")
    for leaf in lab.role("leaf"):
        assert controllers(lab, leaf)[target_b]["connected"], f"{leaf} lost B too"
    for leaf in KEEPERS:
        wait_for(
            partial(alarmed, lab, leaf, "down", target_a),
            GRACE_S + 5,
            f"{leaf}'s alarm for A",
        )
    assert pings(lab.topo, "host1", tenant_address(lab.topo, "host3"), count=5)


def test_both_stopped_traffic_that_flows_keeps_flowing(two: Setup) -> None:
    lab = two.lab
    assert pings(lab.topo, "host1", tenant_address(lab.topo, "host2"), count=3)  # learned while the controllers were up
    two.b.stop()
    for leaf in KEEPERS:
        wait_for(
            partial(alarmed, lab, leaf, "all-down", "br-tor"),
            GRACE_S + 5,
            f"{leaf}'s all-down alarm",
        )
    assert pings(lab.topo, "host1", tenant_address(lab.topo, "host2"), count=20, interval=0.05)
    assert pings(lab.topo, "host2", tenant_address(lab.topo, "host1"), count=20, interval=0.05)
    done = agent(lab, "leaf1", "verify", INTENT)
    assert done.returncode == 1 and "no controller connected" in done.stdout, done.stdout


def two_seconds_into_backoff(lab: Lab, leaf: str, target: str) -> None:
    """Start `leaf`'s OVS backoff for the (stopped) controller `target` afresh at a known time and return 2 s
    into its first 8 s wait: the row gets the other spelling of the target (a new connection: 1 + 2 + 4 s of
    failures, then waits of 8 s; a keeper may have left either spelling), and the wait starts when OVS logs
    its backoff for it once more."""
    rows = lab.json(leaf, "ovs-vsctl", "--format=json", "--columns=_uuid,target", "list", "Controller")["data"]
    uuid, now = next((u[1], t) for u, t in rows if t in (target, alternate_target(target)))
    spelled = target if now != target else alternate_target(target)
    mark = f"{spelled}: continuing to retry connections in the background"
    log = "/var/log/openvswitch/ovs-vswitchd.log"
    marks = lambda: lab.exec(leaf, "cat", log).stdout.count(mark)  # noqa: E731
    before = marks()
    lab.exec(leaf, "ovs-vsctl", "set", "Controller", uuid, f'target="{spelled}"')
    wait_for(lambda: marks() > before, 20, f"{leaf}'s OVS to back off to 8 s")
    entered = time.monotonic()  # the return is placed at a known point of that wait
    wait_for(lambda: time.monotonic() - entered >= 2.0, 3, "2 s into the backoff")


def all_on(instance: Instance, dpids: dict[str, int]) -> bool:
    """True once every leaf in `dpids` has connected to `instance` since it listened; else names the others."""
    connected_at = instance.connections()
    missing = [leaf for leaf, d in dpids.items() if connected_at.get(d, 0) < instance.listening_at]
    assert not missing, f"not yet connected since port {instance.port} opened: {missing}"
    return True


def test_controller_back_reconnected_within_2s_vs_plain_ovs_backoff(two: Setup, record: Record) -> None:
    lab = two.lab
    target_a = two.targets[0]
    with paused_agents(lab.topo, lab.role("leaf")):  # their keepers would act too
        # leaf3 has no keeper: bring A back 2 s into its OVS's first 8 s wait
        two_seconds_into_backoff(lab, "leaf3", target_a)
        two.a.start()
        dpids = {leaf: dpid(lab, leaf) for leaf in lab.role("leaf")}
        wait_for(partial(all_on, two.a, dpids), 12, "every leaf on A")
        delays = {leaf: two.a.connections()[d] - two.a.listening_at for leaf, d in dpids.items()}
        for leaf, seconds in delays.items():
            how = "tor-agent keeper" if leaf in KEEPERS else "plain OVS backoff"
            record(f"controllers: {leaf} reconnected after the controller's return ({how})", f"{seconds:.2f} s")
        assert all(delays[leaf] < RECONNECT_BUDGET_S for leaf in KEEPERS), delays
        assert delays["leaf3"] > RECONNECT_BUDGET_S, delays  # what the keeper saves
        for leaf in KEEPERS:
            wait_for(partial(keeper_connected, lab, leaf), 5, f"{leaf}'s keeper")
            assert keeper_view(lab, leaf)["controllers"][0]["reconnects_forced"] >= 1


def test_the_agents_own_keeper_reconnects_within_2s(two: Setup, record: Record) -> None:
    """The same return, now with nothing paused: leaf3 runs no `controllers --keep`, only its `tor-agent run`,
    whose keeper (a sidecar of the OVSDB loop) must reconnect it as fast."""
    lab = two.lab
    target_a = two.targets[0]
    two.a.stop()
    two_seconds_into_backoff(lab, "leaf3", target_a)
    two.a.start()
    leaf3 = dpid(lab, "leaf3")
    wait_for(lambda: two.a.connections().get(leaf3, 0) >= two.a.listening_at, 12, "leaf3 on A")
    delay = two.a.connections()[leaf3] - two.a.listening_at
    record("controllers: leaf3 reconnected after the controller's return (tor-agent run's keeper)", f"{delay:.2f} s")
    assert delay < RECONNECT_BUDGET_S


def ospf_state(lab: Lab) -> dict[str, Any]:
    """Every switch's OSPF neighbours (router, state) and LSA sequence numbers: what an OSPF change moves."""
    state: dict[str, Any] = {}
    for node in lab.role("spine") + lab.role("leaf"):
        neighbours = lab.vtysh(node, "show ip ospf neighbor json")["neighbors"]
        db = lab.vtysh(node, "show ip ospf database json")
        seqs = sorted(
            (kind, lsa.get("lsId"), lsa.get("advertisedRouter"), lsa.get("sequenceNumber"))
            for area in db.get("areas", {}).values()
            for kind, lsas in area.items()
            if isinstance(lsas, list)
            for lsa in lsas
        )
        state[node] = ({rid: [n["nbrState"] for n in ns] for rid, ns in neighbours.items()}, seqs)
    return state


def test_vm_migration_traffic_resumes_within_1s_and_the_underlay_is_untouched(two: Setup, record: Record) -> None:
    lab = two.lab
    if two.b.running is None:
        two.b.start()
    vm, vm_mac, peer = tenant_address(lab.topo, "host1"), mac(lab.topo, "host1"), "host2"
    spare_mac = mac(lab.topo, "host4")
    wait_for(lambda: pings(lab.topo, peer, vm, count=3), 10, "host2 to reach the VM on leaf1")
    before = ospf_state(lab)
    probe = start(lab, peer, ["ping", "-D", "-i", "0.01", "-W", "0.2", vm], two.tmp / "migration-ping.log")
    try:
        wait_for(lambda: probe.text().count("bytes from") >= 20, 5, "the probe running")
        move_vm(lab.topo, "host1", "host4", vm, vm_mac)  # from leaf1 to leaf3
        attached = time.time()
        wait_for(lambda: [t for t in reply_times(probe.text()) if t > attached], 5, "replies from the VM on leaf3")
        outage = min(t for t in reply_times(probe.text()) if t > attached) - attached
    finally:
        probe.stop(signal.SIGINT)
        move_back(lab.topo, "host1", "host4", spare_mac)
    wait_for(
        lambda: pings(lab.topo, "host1", tenant_address(lab.topo, peer)), 10, "the VM back on leaf1 (learned again)"
    )
    record("controllers: VM moved leaf1 -> leaf3, traffic back after re-attachment in", f"{outage * 1000:.0f} ms")
    assert outage < MIGRATION_BUDGET_S
    assert ospf_state(lab) == before, "the move changed OSPF"
    assert pings(lab.topo, peer, vm, count=3)


def refused(lab: Lab, leaf: str, target: str) -> dict[str, Any] | None:
    """The leaf's view of `target` once OVS has recorded an error for it, else None."""
    found = controllers(lab, leaf)[target]
    return found if found["last_error"] and not found["connected"] else None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, converged: Lab) -> tuple[LabCa, Path]:
    """A lab CA (its files in the host's /tmp, which the nodes see) and an unrelated CA."""
    tmp = tmp_path_factory.mktemp("pki")
    make_ca(tmp / "other", [], ca_name="other-ca")
    return make_ca(tmp / "lab", [*converged.role("leaf"), "controller"]), tmp / "other" / "other-ca.pem"


def test_ssl_controllers_connect_and_a_wrong_ca_does_not(two: Setup, pki: tuple[LabCa, Path], record: Record) -> None:
    lab, (ca, wrong) = two.lab, pki
    me = ca.identities["controller"]
    tls = ["--ssl-key", str(me.key), "--ssl-cert", str(me.cert), "--ca-cert", str(ca.cert)]
    instance = Instance(lab, PORT_TLS, two.tmp / "ctl-tls.log", tls).start()
    target = f"ssl:{instance.address}:{PORT_TLS}"
    try:
        for leaf in lab.role("leaf"):
            trust = wrong if leaf == "leaf3" else ca.cert
            own = ca.identities[leaf]
            ssl = {"private_key": str(own.key), "certificate": str(own.cert), "ca_cert": str(trust)}
            use_intent(lab, leaf, leaf_intent(lab, leaf, [target], ssl=ssl), two.tmp)
        for leaf in ("leaf1", "leaf2"):
            wait_for(partial(instance.served, dpid(lab, leaf)), CONNECT_BUDGET_S, f"{leaf} over TLS")
            wait_for(partial(connected, lab, leaf, target), CONNECT_BUDGET_S, f"{leaf} reports TLS")
        # OVSDB has the refusal within one stats period (5 s).
        leaf3 = wait_for(lambda: refused(lab, "leaf3", target), 15, "leaf3 to report the refused TLS session")
        assert dpid(lab, "leaf3") not in instance.connections() and not leaf3["connected"]
        record("controllers: leaf3 with a wrong CA", f"not connected (OVS: {leaf3['state']}, {leaf3['last_error']})")
        assert pings(lab.topo, "host1", tenant_address(lab.topo, "host2"), count=3)
    finally:
        for leaf in lab.role("leaf"):
            use_intent(lab, leaf, leaf_intent(lab, leaf, list(two.targets)), two.tmp)
        instance.stop()


# An operator's connection to the controller (as nc, openssl s_client or a script would hold one).
FOREIGN = (
    "import signal, socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])));"
    " print(s.getsockname()[1], flush=True); signal.pause()"
)


def established_from(lab: Lab, node: str, local_port: int) -> bool:
    """`node` has an ESTABLISHED TCP connection from `local_port` (read from /proc, not by tor-agent)."""
    rows = [line.split() for line in lab.exec(node, "cat", "/proc/net/tcp").stdout.splitlines()[1:]]
    return any(r[1].endswith(f":{local_port:04X}") and r[3] == "01" for r in rows)


def test_a_foreign_connection_to_a_controller_that_refuses_the_switch_does_not_count(
    two: Setup, pki: tuple[LabCa, Path]
) -> None:
    """leaf3 trusts the wrong CA, so its OVS is refused; a process on leaf3 holds a TCP connection to that
    controller all along. Neither `verify`, `tor-agent controllers` nor a keeper may count it."""
    lab, (ca, wrong) = two.lab, pki
    me = ca.identities["controller"]
    tls = ["--ssl-key", str(me.key), "--ssl-cert", str(me.cert), "--ca-cert", str(ca.cert)]
    instance = Instance(lab, PORT_TLS, two.tmp / "ctl-tls-foreign.log", tls).start()
    target = f"ssl:{instance.address}:{PORT_TLS}"
    own = ca.identities["leaf3"]
    ssl = {"private_key": str(own.key), "certificate": str(own.cert), "ca_cert": str(wrong)}
    running: list[Background] = []
    try:
        use_intent(lab, "leaf3", leaf_intent(lab, "leaf3", [target], ssl=ssl), two.tmp)
        wait_for(lambda: refused(lab, "leaf3", target), 15, "leaf3 to report the refused TLS session")
        foreign = start(lab, "leaf3", ["python3", "-c", FOREIGN, instance.address, str(PORT_TLS)], two.tmp / "fg.log")
        running.append(foreign)
        port = int(wait_for(lambda: foreign.text().strip(), 10, "the foreign connection"))
        assert established_from(lab, "leaf3", port)
        lab.exec("leaf3", "mkdir", "-p", STATE)
        argv = [realise.tools_env(lab.topo)["TOR_AGENT"], "controllers", "--keep", "--grace", str(GRACE_S)]
        argv += ["--status-file", f"{STATE}/keeper-tls.json", INTENT]
        running.append(start(lab, "leaf3", argv, two.tmp / "keeper-leaf3-tls.log"))
        wait_for(partial(keeper_ready, lab, "leaf3", "keeper-tls.json"), 10, "leaf3's keeper")
        alarm = partial(alarmed, lab, "leaf3", "all-down", "br-tor", "keeper-tls.json")
        wait_for(alarm, GRACE_S + 5, "leaf3's keeper to raise all-down")

        done = agent(lab, "leaf3", "verify", INTENT)
        assert done.returncode == 1 and "no controller connected" in done.stdout, done.stdout
        found = controllers(lab, "leaf3")[target]
        assert not found["connected"], found
        view = keeper_view(lab, "leaf3", "keeper-tls.json")
        assert not view["controllers"][0]["connected"] and view["ovsdb_only"] is None  # ovs-vswitchd's sockets read
        assert established_from(lab, "leaf3", port)  # the foreign connection was there all along
        assert dpid(lab, "leaf3") not in instance.connections()
    finally:
        for process in reversed(running):
            process.stop()
        use_intent(lab, "leaf3", leaf_intent(lab, "leaf3", list(two.targets)), two.tmp)
        lab.exec("leaf3", "rm", "-f", f"{STATE}/keeper-tls.json", check=False)
        instance.stop()
