#!/usr/bin/python3
"""Traffic loss when a leaf-spine link fails: silent failure with BFD, without BFD, and carrier loss.

Usage: bench/underlay_failover.py [--runs N] [--file FABRIC] [--leaves A B]
Run by hand (root), not in CI. Uses the running demo fabric, or brings it up (and down afterwards); the
lab's machine-wide lock is held throughout, so it waits while a test session has the fabric.

The probe: UDP between the loopbacks of two leaves, in both directions, several flows (one per source
port) each sending a numbered datagram every 2 ms. The receiver reports every gap in a flow's sequence
numbers; its loss window is the sender's time between the last datagram before the gap and the first
one after it (an upper bound, within one interval). The failed link is the one the first flow from leaf
A takes (`ip route get` with its ports); the figure of a run is the worst window among the flows that
cross that link, in either direction. Modes:
- silent: an nftables drop of everything (BFD and OSPF too) on the spine's end, carrier stays up;
  with BFD as rendered from the intents (100 ms x 3), then with BFD disabled on both ends of the link
  by `tor-agent apply` of a modified intent (OSPF hello 1 s / dead 4 s), restored afterwards;
- carrier: `ip link set <spine end> down`.

The probe and the fault helpers are also what tests/e2e/test_underlay.py uses. The probe itself runs
inside the nodes: `underlay_failover.py probe-recv ADDR PORT` and
`underlay_failover.py probe-send SRC DST PORT INTERVAL_S SPORT...`, both until their stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (str(REPO / "labs"), str(REPO)):
    if _path not in sys.path:
        sys.path.append(_path)

from nslab import realise, state, topology  # noqa: E402

from tor_agent.wait import wait_until  # noqa: E402

FABRIC = REPO / "labs" / "containerlab" / "fabric.clab.yml"
INTENT = "/etc/tor-agent/agent.yaml"
PROBE_PORT = 47000
PROBE_SPORTS = (47001, 47002, 47003, 47004)
PROBE_INTERVAL_S = 0.002
DATAGRAM = struct.Struct("!QQ")  # sequence number, send time (CLOCK_MONOTONIC ns: one clock for every namespace)
NFT_TABLE = "tor_agent_failover"
ENGINE_LOCK = "/run/tor-agent/engine.lock"  # tor_agent.reconcile.lock.LOCK_FILE, inside a node
CONTROL_SOCKET = "/run/tor-agent/control.sock"  # tor_agent.daemon.paths.CONTROL_SOCKET, inside a node
HEALTHY_BUDGET_S = 30.0  # BFD's slow start plus an OSPF adjacency coming back
FLOWING_BUDGET_S = 10.0
PROGRESS_S = 0.1


# --- the probe, inside the nodes (stdlib only) ------------------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def probe_send(src: str, dst: str, port: int, interval_s: float, sports: Sequence[int]) -> None:
    """One UDP flow per source port from `src` to `dst`:`port`, a numbered datagram each `interval_s`.

    Never bursts to catch up after a stall (a stall would otherwise look like loss then reordering).
    Stops when stdin closes; prints what it sent.
    """
    socks = []
    for sport in sports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, sport))
        s.connect((dst, port))
        s.setblocking(False)
        socks.append(s)
    seq, errors = 0, 0
    due = time.monotonic()
    while not select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))[0]:
        for s in socks:
            try:
                s.send(DATAGRAM.pack(seq, time.monotonic_ns()))
            except OSError:  # no route for a moment, a full queue: the receiver sees the gap
                errors += 1
        seq += 1
        due = max(due + interval_s, time.monotonic())
    _emit({"event": "sent", "datagrams": seq, "errors": errors})


@dataclass
class _FlowState:
    received: int = 0
    last_seq: int = -1
    last_ns: int = 0
    reordered: int = 0


def probe_recv(addr: str, port: int) -> None:
    """Receive every flow sent to `addr`:`port`; print an event for each flow's first datagram, for every gap
    in a flow's sequence numbers as soon as it closes, and every 0.1 s the send time of each flow's latest
    datagram; stop when stdin closes and print the totals."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((addr, port))
    sock.setblocking(False)
    flows: dict[str, _FlowState] = {}
    _emit({"event": "ready"})
    stopping, progress_due = False, time.monotonic()
    while not stopping:
        ready = select.select([sock, sys.stdin], [], [], PROGRESS_S)[0]
        stopping = sys.stdin in ready
        while True:
            try:
                data, (host, sport) = sock.recvfrom(64)
            except BlockingIOError:
                break
            _received(flows, f"{host}:{sport}", *DATAGRAM.unpack(data[: DATAGRAM.size]))
        if time.monotonic() >= progress_due:
            _emit({"event": "progress", "last_ns": {k: f.last_ns for k, f in flows.items()}})
            progress_due = time.monotonic() + PROGRESS_S
    _emit({"event": "totals", "flows": {k: vars(f) for k, f in flows.items()}})


def _received(flows: dict[str, _FlowState], key: str, seq: int, sent_ns: int) -> None:
    flow = flows.get(key)
    if flow is None:
        flow = flows[key] = _FlowState()
        _emit({"event": "first", "flow": key, "seq": seq})
    elif seq <= flow.last_seq:
        flow.reordered += 1
        return
    elif seq > flow.last_seq + 1:
        _emit({"event": "gap", "flow": key, "lost": seq - flow.last_seq - 1, "from_ns": flow.last_ns, "to_ns": sent_ns})
    flow.received += 1
    flow.last_seq, flow.last_ns = seq, sent_ns


# --- running things inside lab nodes ------------------------------------------------------------------------


def node_run(
    topo: topology.Topology, node: str, *argv: str, stdin: str | None = None, timeout: float = 30.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run argv inside `node` of the running lab; raise RuntimeError naming the node when it fails and `check`."""
    full, env = realise.exec_argv(topo, node, list(argv))
    done = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{node}: {' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done


def tor_agent(topo: topology.Topology, node: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`tor-agent ARGS` inside `node`, as on a switch (the lab's tor-agent binary)."""
    binary = realise.tools_env(topo, strict=False).get("TOR_AGENT")
    if binary is None:
        raise RuntimeError("tor-agent not found: put .venv/bin on PATH (`make venv`) or set TOR_AGENT")
    return node_run(topo, node, binary, *args, timeout=60, check=check)


def intent(topo: topology.Topology, node: str) -> dict[str, Any]:
    """The node's intent file as plain data."""
    import yaml

    path = topo.nodes[node].intent_file()
    if path is None:
        raise RuntimeError(f"{node} has no intent file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise RuntimeError(f"{path}: not a mapping")
    return data


def loopback(topo: topology.Topology, node: str) -> str:
    """The node's loopback address (a leaf's VTEP)."""
    return str(ipaddress.IPv4Interface(intent(topo, node)["node"]["loopback"]).ip)


def node_pids(topo: topology.Topology, node: str) -> list[int]:
    """Every process in `node`'s network namespace."""
    st = state.load(topo.name)
    if st is None or node not in st.holders:
        raise RuntimeError(f"lab {topo.name} is not up")
    netns = os.stat(f"/proc/{st.holders[node]}/ns/net").st_ino
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino == netns:
                    pids.append(int(entry.name))
    return pids


def agent_daemons(topo: topology.Topology, node: str) -> list[int]:
    """The `tor-agent run` daemons inside `node` (none before the switches run the agent)."""
    found = []
    for pid in node_pids(topo, node):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(Path(a).name == "tor-agent" for a in args[:2]) and "run" in args[1:]:
                found.append(pid)
    return found


@contextlib.contextmanager
def paused_agents(topo: topology.Topology, nodes: Sequence[str]) -> Iterator[list[int]]:
    """Hold the tor-agent daemons of `nodes` stopped (SIGSTOP), so that a hand edit or a temporary intent
    is not repaired behind the caller's back; resume them (SIGCONT) afterwards.

    Each is stopped while this process holds the node's engine lock (the one `tor-agent apply` and the
    daemon take for a pass), so it is never stopped half way through a pass, holding the lock. Its control
    socket is moved aside meanwhile, so that the node's `tor-agent apply` finds no daemon and applies itself,
    as on a switch where the service is stopped."""
    stopped: list[int] = []
    hidden: list[Path] = []
    try:
        for node in nodes:
            pids = agent_daemons(topo, node)
            if not pids:
                continue
            with engine_lock(topo, node):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        stopped.append(pid)
            socket = node_path(topo, node, CONTROL_SOCKET)
            with contextlib.suppress(FileNotFoundError):
                socket.rename(socket.with_name(socket.name + ".paused"))
                hidden.append(socket)
        yield stopped
    finally:
        for socket in hidden:
            socket.with_name(socket.name + ".paused").rename(socket)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def node_path(topo: topology.Topology, node: str, path: str) -> Path:
    """`path` inside `node`'s private tree, as the host sees it (through the node holder's root)."""
    st = state.load(topo.name)
    if st is None or node not in st.holders:
        raise RuntimeError(f"lab {topo.name} is not up")
    return Path(f"/proc/{st.holders[node]}/root") / path.lstrip("/")


@contextlib.contextmanager
def engine_lock(topo: topology.Topology, node: str) -> Iterator[None]:
    """Hold `node`'s engine lock (tor_agent.reconcile.engine's flock on the node's /run/tor-agent/engine.lock),
    through the node holder's view of its private /run."""
    path = node_path(topo, node, ENGINE_LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- which link a flow takes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A leaf-spine link: the leaf's uplink and the spine's end of it."""

    leaf: str
    uplink: str  # the leaf's uplink (the physical port; OSPF may run on its bridge)
    spine: str
    spine_iface: str
    spine_address: str  # the spine's address on the link (the leaf's nexthop over it)


def fabric_links(topo: topology.Topology, leaf: str) -> list[Link]:
    """Every uplink of `leaf`, from the topology and the intents."""
    links = []
    uplinks = {u["name"]: u for u in intent(topo, leaf)["underlay"]["uplinks"]}
    for local, remote, _ in topo.links_of(leaf):
        if local.iface not in uplinks:
            continue
        spine_end = {u["name"]: u for u in intent(topo, remote.node)["underlay"]["uplinks"]}[remote.iface]
        address = str(ipaddress.IPv4Interface(spine_end["address"]).ip)
        links.append(Link(leaf, local.iface, remote.node, remote.iface, address))
    return links


@dataclass(frozen=True)
class Flow:
    """One probe flow: UDP from `src` (a leaf) to `dst` (another leaf), loopback to loopback."""

    src: str
    dst: str
    src_address: str
    dst_address: str
    sport: int
    dport: int = PROBE_PORT

    @property
    def key(self) -> str:
        """How the receiver names the flow."""
        return f"{self.src_address}:{self.sport}"

    def gateway(self, topo: topology.Topology) -> str:
        """The nexthop the sender's kernel picks for this flow now (ECMP hashes on its addresses and ports)."""
        done = node_run(
            topo, self.src, "ip", "-j", "route", "get", self.dst_address, "from", self.src_address,
            "ipproto", "udp", "sport", str(self.sport), "dport", str(self.dport),
        )  # fmt: skip
        (route,) = json.loads(done.stdout)
        return str(route.get("gateway", ""))


def first_spine(topo: topology.Topology, flow: Flow) -> Link:
    """The leaf-spine link `flow` leaves its sender by (to the spine it hands the flow to)."""
    gateway = flow.gateway(topo)
    for link in fabric_links(topo, flow.src):
        if link.spine_address == gateway:
            return link
    raise RuntimeError(f"{flow.src}: the flow {flow.key} -> {flow.dst_address} goes via {gateway}, not a spine")


def crossing(topo: topology.Topology, flows: Sequence[Flow], link: Link) -> list[Flow]:
    """The flows whose path crosses `link` now: those between `link.leaf` and another leaf that the sender
    hands to `link.spine` (one hop from spine to leaf: the spine has a direct link to every leaf)."""
    return [f for f in flows if link.leaf in (f.src, f.dst) and first_spine(topo, f).spine == link.spine]


# --- the probe, from outside ----------------------------------------------------------------------------------


class _Process:
    """One probe process inside a node; its JSON events collected by a thread."""

    def __init__(self, topo: topology.Topology, node: str, argv: list[str]) -> None:
        full, env = realise.exec_argv(topo, node, argv)
        self.node = node
        self.proc = subprocess.Popen(
            full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._lock:
                    self.events.append(event)

    def seen(self, kind: str) -> list[dict[str, Any]]:
        """The events of `kind` so far."""
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]

    def alive(self) -> bool:
        """Still running; raises with its stderr when it died."""
        if self.proc.poll() is None:
            return True
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise RuntimeError(f"{self.node}: probe exited {self.proc.returncode}: {err.strip()}")

    def finish(self, timeout: float = 10.0) -> None:
        """Close stdin (the probe's signal to stop) and wait for it."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        finally:
            self.kill()
        self._reader.join(timeout)

    def kill(self) -> None:
        """Kill it if it still runs (our own child: by its pid)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@dataclass(frozen=True)
class Window:
    """The longest loss window of one flow in a time span, and the datagrams lost in that span."""

    flow: str
    seconds: float
    lost: int


@dataclass
class Probe:
    """UDP flows between the loopbacks of leaves `a` and `b`, both ways; use as a context manager."""

    topo: topology.Topology
    a: str
    b: str
    sports: Sequence[int] = PROBE_SPORTS
    interval_s: float = PROBE_INTERVAL_S
    flows: list[Flow] = field(default_factory=list)
    _receivers: list[_Process] = field(default_factory=list)
    _senders: list[_Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        addr = {n: loopback(self.topo, n) for n in (self.a, self.b)}
        self.flows = [
            Flow(src, dst, addr[src], addr[dst], sport) for src, dst in ((self.a, self.b), (self.b, self.a))
            for sport in self.sports
        ]  # fmt: skip

    def __enter__(self) -> Probe:
        script = str(Path(__file__).resolve())
        try:
            for node in (self.a, self.b):
                argv = [sys.executable, script, "probe-recv", loopback(self.topo, node), str(PROBE_PORT)]
                self._receivers.append(_Process(self.topo, node, argv))
            wait_until(self._ready, FLOWING_BUDGET_S, 0.02, "the probe receivers to listen")
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                argv = [sys.executable, script, "probe-send", loopback(self.topo, src), loopback(self.topo, dst)]
                argv += [str(PROBE_PORT), str(self.interval_s), *map(str, self.sports)]
                self._senders.append(_Process(self.topo, src, argv))
            wait_until(self._flowing, FLOWING_BUDGET_S, 0.02, "every probe flow to arrive")
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill()

    def _ready(self) -> bool:
        return all(r.alive() and r.seen("ready") for r in self._receivers)

    def _flowing(self) -> bool:
        firsts = {e["flow"] for r in self._receivers for e in r.seen("first")}
        return all(s.alive() for s in self._senders) and firsts >= {f.key for f in self.flows}

    def _kill(self) -> None:
        for p in self._senders + self._receivers:
            p.kill()

    def gaps(self) -> list[dict[str, Any]]:
        """Every gap reported so far."""
        return [e for r in self._receivers for e in r.seen("gap")]

    def recovered(self, flows: Sequence[Flow], since_ns: int) -> bool:
        """True once each of `flows` has lost datagrams sent after `since_ns` and then received again."""
        closed = {g["flow"] for g in self.gaps() if g["to_ns"] > since_ns}
        return all(s.alive() for s in self._senders) and closed >= {f.key for f in flows}

    def arrived_since(self, since_ns: int) -> bool:
        """True once every flow has delivered a datagram sent after `since_ns`."""
        latest: dict[str, int] = {}
        for r in self._receivers:
            for e in r.seen("progress")[-1:]:
                latest.update(e["last_ns"])
        return all(latest.get(f.key, 0) > since_ns for f in self.flows)

    def stop(self) -> dict[str, Any]:
        """Stop the senders, then the receivers; every flow's totals."""
        for s in self._senders:
            s.finish()
        totals: dict[str, Any] = {}
        for r in self._receivers:
            r.finish()
            for e in r.seen("totals"):
                totals.update(e["flows"])
        return totals

    def windows(self, since_ns: int, until_ns: int | None = None) -> dict[str, Window]:
        """Per flow, the longest loss window closed in (`since_ns`, `until_ns`] and the datagrams lost then."""
        found = {f.key: Window(f.key, 0.0, 0) for f in self.flows}
        for g in self.gaps():
            if g["to_ns"] <= since_ns or (until_ns is not None and g["to_ns"] > until_ns):
                continue
            before = found[g["flow"]]
            seconds = max(before.seconds, (g["to_ns"] - g["from_ns"]) / 1e9)
            found[g["flow"]] = Window(g["flow"], seconds, before.lost + int(g["lost"]))
        return found


# --- faults -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def silent_failure(topo: topology.Topology, node: str, iface: str) -> Iterator[int]:
    """Drop every frame `iface` of `node` receives or sends (carrier stays up); yields when it started
    (CLOCK_MONOTONIC ns). Removed on exit."""
    rules = (
        f"table netdev {NFT_TABLE} {{\n"
        f'  chain rx {{ type filter hook ingress device "{iface}" priority -500; policy drop; }}\n'
        f'  chain tx {{ type filter hook egress device "{iface}" priority -500; policy drop; }}\n'
        "}\n"
    )
    started = time.monotonic_ns()
    node_run(topo, node, "nft", "-f", "-", stdin=rules)
    try:
        yield started
    finally:
        node_run(topo, node, "nft", "delete", "table", "netdev", NFT_TABLE)


@contextlib.contextmanager
def carrier_loss(topo: topology.Topology, node: str, iface: str) -> Iterator[int]:
    """`ip link set IFACE down` in `node` (the other end loses carrier); yields when; up again on exit."""
    started = time.monotonic_ns()
    node_run(topo, node, "ip", "link", "set", iface, "down")
    try:
        yield started
    finally:
        node_run(topo, node, "ip", "link", "set", iface, "up")


def switches(topo: topology.Topology) -> list[str]:
    """Spines and leaves."""
    return [n.name for n in topo.by_role("spine")] + [n.name for n in topo.by_role("leaf")]


def every_switch(topo: topology.Topology) -> dict[str, str]:
    """Every switch with its own intent file (what `verify` checks by default)."""
    return dict.fromkeys(switches(topo), INTENT)


def unhealthy(topo: topology.Topology, configs: Mapping[str, str]) -> list[str]:
    """`tor-agent verify CONFIG` in each node of `configs`: the failing ones with what they say."""
    bad = []
    for node, config in configs.items():
        done = tor_agent(topo, node, "verify", config)
        if done.returncode != 0:
            bad.append(f"{node}: {done.stdout.strip() or done.stderr.strip()}")
    return bad


def wait_healthy(
    topo: topology.Topology, configs: Mapping[str, str] | None = None, timeout: float = HEALTHY_BUDGET_S
) -> None:
    """Poll until `tor-agent verify` passes in every node of `configs` (default: every switch, own intent)."""
    configs = configs if configs is not None else every_switch(topo)
    wait_until(lambda: not unhealthy(topo, configs), timeout, 0.2, f"tor-agent verify to pass on {', '.join(configs)}")


# --- the bench ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One failure: the worst loss window among the flows crossing the link, and the one after repair."""

    outage_s: float
    restore_s: float
    lost: int


Fault = Callable[[topology.Topology, str, str], contextlib.AbstractContextManager[int]]


def one_failure(
    topo: topology.Topology, a: str, b: str, fault: Fault, budget_s: float, configs: Mapping[str, str] | None = None
) -> Run:
    """Fail the link of the first flow from `a` to `b` with `fault`, measure, repair, and wait until `verify`
    passes again in `configs` (node: intent file; default every switch with its own) and traffic flows."""
    with Probe(topo, a, b) as probe:
        link = first_spine(topo, probe.flows[0])
        affected = crossing(topo, probe.flows, link)
        with fault(topo, link.spine, link.spine_iface) as started:
            wait_until(lambda: probe.recovered(affected, started), budget_s, 0.02, f"traffic around {link}")
        repaired = time.monotonic_ns()
        wait_healthy(topo, configs)
        healthy = time.monotonic_ns()
        wait_until(lambda: probe.arrived_since(healthy), FLOWING_BUDGET_S, 0.05, "every flow after the repair")
        probe.stop()
        outage = probe.windows(started - 1, repaired)
        restore = probe.windows(repaired)
    keys = {f.key for f in affected}
    return Run(
        outage_s=max(outage[k].seconds for k in keys),
        restore_s=max(w.seconds for w in restore.values()),
        lost=sum(outage[k].lost for k in keys),
    )


@contextlib.contextmanager
def bfd_disabled(topo: topology.Topology, nodes: Sequence[str]) -> Iterator[dict[str, str]]:
    """`tor-agent apply` of each node's intent with BFD disabled (their agents paused meanwhile); yields
    node: intent file. Each node's own intent is applied again on exit, and every switch verified."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="underlay-failover-") as tmp, paused_agents(topo, nodes):
        files = {}
        for node in nodes:
            data = intent(topo, node)
            data["underlay"]["ospf"]["bfd"] = {**data["underlay"]["ospf"].get("bfd", {}), "enabled": False}
            files[node] = Path(tmp, f"{node}.yaml")
            files[node].write_text(yaml.safe_dump(data))
        try:
            for node in nodes:
                tor_agent(topo, node, "apply", str(files[node]), check=True)
            configs = {node: str(f) for node, f in files.items()}
            wait_healthy(topo, configs)
            yield configs
        finally:
            for node in nodes:
                tor_agent(topo, node, "apply", INTENT, check=True)
    wait_healthy(topo)


@contextlib.contextmanager
def lab_lock(name: str) -> Iterator[None]:
    """The lab's machine-wide lock (as tests/e2e/labkit.py takes it): test sessions and this bench take turns."""
    path = Path("/run/lock") / f"tor-agent-lab-{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (a test session has the lab)", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def running_lab(path: Path) -> Iterator[topology.Topology]:
    """The lab of `path`, under its lock: the running one, or one brought up now and taken down afterwards."""
    topo = topology.load(path)
    with lab_lock(topo.name):
        if realise.is_up(topo):
            yield topo
            return
        print(f"bringing up {path.name} ...", file=sys.stderr, flush=True)
        realise.up(topo)
        try:
            wait_healthy(topo, timeout=60)
            yield topo
        finally:
            realise.down(topo)


def summary(name: str, runs: Sequence[Run]) -> str:
    """One line: median, min and max of the loss window, and the worst loss after the repair."""
    out = [r.outage_s * 1000 for r in runs]
    return (
        f"{name:<40} loss window median {statistics.median(out):6.0f} ms  (min {min(out):.0f}, max {max(out):.0f}; "
        f"{len(runs)} runs)   after repair max {max(r.restore_s for r in runs) * 1000:.0f} ms"
    )


def main(argv: Sequence[str]) -> int:
    """The bench, or the probe's two halves inside a node."""
    if argv[:1] == ["probe-recv"]:
        probe_recv(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["probe-send"]:
        probe_send(argv[1], argv[2], int(argv[3]), float(argv[4]), [int(p) for p in argv[5:]])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--file", type=Path, default=FABRIC)
    parser.add_argument("--leaves", nargs=2, default=["leaf1", "leaf2"], metavar=("A", "B"))
    args = parser.parse_args(argv)
    a, b = args.leaves
    with running_lab(args.file) as topo:
        wait_healthy(topo)
        link = first_spine(topo, Probe(topo, a, b).flows[0])
        ospf = intent(topo, link.leaf)["underlay"]["ospf"]
        bfd = f"BFD {ospf['bfd']['tx_ms']}x{ospf['bfd']['multiplier']}"
        timers = f"hello {ospf['hello_interval_s']}/dead {ospf['dead_interval_s']}"
        with_bfd = [one_failure(topo, a, b, silent_failure, 10.0) for _ in range(args.runs)]
        print(summary(f"silent failure, {bfd}", with_bfd), flush=True)
        carrier = [one_failure(topo, a, b, carrier_loss, 10.0) for _ in range(args.runs)]
        print(summary("carrier loss (spine end down)", carrier), flush=True)
        with bfd_disabled(topo, [link.leaf, link.spine]) as configs:
            without = [one_failure(topo, a, b, silent_failure, 30.0, configs) for _ in range(args.runs)]
        print(summary(f"silent failure, no BFD ({timers})", without), flush=True)
    ratio = statistics.median(r.outage_s for r in without) / statistics.median(r.outage_s for r in with_bfd)
    print(f"silent failure: no BFD / {bfd} = {ratio:.1f}x (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
