"""Build a lab from a topology out of Linux namespaces, and tear it down again.

Each node: a network namespace `clab-<lab>-<node>` and a holder process owning the node's mount and UTS
namespaces (see hold.py); links are veth pairs created directly inside the namespaces; the management
network is a bridge in the lab-owned namespace `clab-<lab>-_mgmt`. Nothing is created in the host's own
network namespace. The state file is written before anything is created, so `down` always finds it all.
`update` brings a running lab to another file of the same lab (a node added or removed) without touching
what stays.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from labs.nslab import procs, state, topology
from labs.nslab.state import LABS, State
from labs.nslab.topology import SWITCH_ROLES, Bind, Link, Node, Topology

REPO = LABS.parent
NODE_START = LABS / "containerlab" / "node-start"
LAB_CLI = LABS / "lab"
PYTHON = "/usr/bin/python3"
CONTROLLER_VENV = REPO / ".venv-controller"
# What the lab image (containerlab/Dockerfile) gives every node besides Debian's packages, and where labs/lab
# takes it from, so that one topology file behaves the same under containerlab and labs/lab (a controller
# node needs no binds for its app, an `exec` line may call node-start or tor-agent). tor-agent itself (the
# image installs it from the tree, with its templates) is the one TOR_AGENT names, and os-ken's venv is
# `make controller-venv`'s: both are added by image_binds().
IMAGE_FILES = {
    "/usr/local/sbin/node-start": NODE_START,
    "/etc/tor-agent/controller": LABS / "containerlab" / "controller",
}
IMAGE_TOR_AGENT = "/usr/local/bin/tor-agent"  # where the image's `pip install` puts the command
IMAGE_OSKEN_VENV = "/opt/os-ken"
HOLDER_TIMEOUT_S = 10.0
NODE_START_TIMEOUT_S = 60.0
STOP_GRACE_S = 1.5
REQUIRED_COMMANDS = ("ip", "unshare", "nsenter", "ethtool", "nft", "vtysh", "ovsdb-server", "ovs-vswitchd")
REQUIRED_FILES = ("/usr/lib/frr/frrinit.sh", "/usr/lib/frr/zebra", "/usr/lib/frr/ospfd", "/usr/lib/frr/bfdd")


class LabError(Exception):
    """The lab could not be brought up or taken down; the message says where and why."""


@dataclass
class Timings:
    """Seconds spent in each phase of `up`; holders and node start are the sums over the waves of nodes
    (the switches, then the others: `waves`), `wave_nodes` the node start of each."""

    links: float = 0.0
    holders: float = 0.0
    nodes: float = 0.0
    execs: float = 0.0
    converged: float = 0.0
    total: float = 0.0
    wave_nodes: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        waves = ", then ".join(f"{s:.2f}s" for s in self.wave_nodes) if len(self.wave_nodes) > 1 else ""
        return (
            f"{self.total:.2f}s (namespaces+links {self.links:.2f}s, holders {self.holders:.2f}s, "
            f"node start {self.nodes:.2f}s{f' (switches {waves} the others)' if waves else ''}, "
            f"exec {self.execs:.2f}s, underlay converged {self.converged:.2f}s)"
        )


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a lab (root, commands, FRR, OVS); empty when all is there."""
    missing = [] if os.geteuid() == 0 else ["root (namespaces and mounts need it)"]
    missing += [f"command {c}" for c in REQUIRED_COMMANDS if shutil.which(c) is None]
    missing += [f"file {f}" for f in REQUIRED_FILES if not Path(f).exists()]
    return missing


def tools_env(topo: Topology, strict: bool = True) -> dict[str, str]:
    """Environment every node gets: where tor-agent, os-ken's python and tor_agent.wait are.
    Not `strict` (for exec): leave out what is not found instead of failing."""
    env: dict[str, str] = {}
    found = None
    if topo.by_role("spine") or topo.by_role("leaf"):
        wanted = os.environ.get("TOR_AGENT") or "tor-agent"
        found = shutil.which(wanted)
        if found is None and strict:
            raise LabError(f"{wanted} not found: put .venv/bin on PATH (`make venv`) or set TOR_AGENT")
        if found is not None:
            env["TOR_AGENT"] = os.path.abspath(found)
    if found is None or not installed(found):
        # node-start imports tor_agent.wait: from the source tree, unless the installed package runs the nodes
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    if topo.by_role("controller"):
        python = os.environ.get("OSKEN_PYTHON") or str(CONTROLLER_VENV / "bin" / "python3")
        if not Path(python).exists() and strict:
            raise LabError(f"{python} not found: run `make controller-venv` (os-ken in its own venv)")
        env["OSKEN_PYTHON"] = python
    return env


def byte_compile(tools: dict[str, str]) -> None:
    """Byte-compile the source tree's tor_agent when the nodes run it, as the Debian package's install does
    (py3compile): otherwise, where bytecode is not written (PYTHONDONTWRITEBYTECODE), every tor-agent process in
    the lab compiles its modules from source at each start. Up-to-date files are skipped."""
    if "PYTHONPATH" in tools:  # the nodes import the tree, not the installed package
        compileall.compile_dir(REPO / "tor_agent", quiet=1)


def installed(tor_agent: str) -> bool:
    """True for the Debian package's tor-agent: then the nodes run the installed package, not the tree."""
    return os.path.realpath(tor_agent) == "/usr/bin/tor-agent"


def image_binds(node: Node, tools: dict[str, str]) -> list[Bind]:
    """What the image gives `node`, as read-only binds; the node's own binds of the same targets replace them."""
    files = dict(IMAGE_FILES)
    tor_agent = tools.get("TOR_AGENT")
    if tor_agent is not None and not installed(tor_agent):  # the installed package is on PATH already
        files[IMAGE_TOR_AGENT] = Path(tor_agent)
    venv = Path(tools.get("OSKEN_PYTHON", "/nonexistent")).parent.parent
    if (venv / "pyvenv.cfg").is_file():
        files[IMAGE_OSKEN_VENV] = venv
    own = {b.target for b in node.binds}
    return [Bind(source, target, read_only=True) for target, source in files.items() if target not in own]


def env_key(label: str) -> str:
    """A label as containerlab exposes it in the environment: CLAB_LABEL_<UPPER_SNAKE>."""
    return "CLAB_LABEL_" + "".join(c if c.isalnum() else "_" for c in label.upper())


def node_env(topo: Topology, node: Node, tools: dict[str, str]) -> dict[str, str]:
    """The environment of processes in `node`, as containerlab would set it for the container."""
    labels = {
        "containerlab": topo.name,
        "clab-node-name": node.name,
        "clab-node-kind": node.kind,
        "clab-node-group": node.group,
        "clab-node-lab-dir": str(state.node_dir(topo.name, node.name)),
        "clab-topo-file": str(topo.path),
        **node.labels,
    }
    env = dict(os.environ)
    env.update({env_key(k): v for k, v in labels.items()})
    env["CLAB_INTFS"] = str(len(topo.links_of(node.name)))
    env.update(node.env)
    env.update(tools)
    return env


# --- up ------------------------------------------------------------------------------------------------


def is_up(topo: Topology) -> bool:
    """True when every node of the lab has a live holder."""
    st = state.load(topo.name)
    return st is not None and set(st.holders) == set(topo.nodes) and all(procs.alive(p) for p in st.holders.values())


def up(topo: Topology, wait: Callable[[Topology, State], None] | None = None) -> Timings | None:
    """Create the lab (after cleaning any remains); None when it is already up. `wait` awaits convergence."""
    if is_up(topo):
        return None
    missing = missing_prerequisites()
    if missing:
        raise LabError("this machine lacks: " + ", ".join(missing))
    tools = tools_env(topo)
    byte_compile(tools)
    down(topo)
    t = Timings()
    start = time.monotonic()
    st = State(topo.name, str(topo.path), netns=[topo.mgmt_netns, *(topo.netns(n) for n in topo.nodes)])
    st.save()
    create_namespaces(topo)
    create_links(topo)
    t.links = time.monotonic() - start
    for wave in waves(topo):
        mark = time.monotonic()
        start_holders(topo, st, tools, only=wave)
        t.holders += time.monotonic() - mark
        mark = time.monotonic()
        start_nodes(topo, st, tools, only=wave)
        t.wave_nodes.append(time.monotonic() - mark)
    t.nodes = sum(t.wave_nodes)
    mark = time.monotonic()
    run_execs(topo, st, tools)
    t.execs = time.monotonic() - mark
    if wait is not None:
        wait(topo, st)
    t.total = time.monotonic() - start
    t.converged = t.total - t.links - t.holders - t.nodes - t.execs if wait else 0.0
    return t


def waves(topo: Topology) -> list[list[str]]:
    """The nodes in the order `up` starts them: the switches first, then (once they run) every other node.

    The switches are the underlay's critical path (their start, then OSPF and BFD's slow start) and a cold
    start keeps every core busy, so the controller's and the hosts' starts, which nothing in the underlay
    waits for, run while the switches' adjacencies come up instead of taking CPU from their start. The
    controller still listens long before BFD is up; a leaf that found it not yet listening connects on its
    next try (within the controllers' `max_backoff_ms`). Containerlab gives no order either: both are valid.
    """
    switches = [n.name for n in topo.nodes.values() if n.role in SWITCH_ROLES]
    others = [n.name for n in topo.nodes.values() if n.role not in SWITCH_ROLES]
    return [wave for wave in (switches, others) if wave]


def create_namespaces(topo: Topology) -> None:
    """One network namespace per node plus the management one, each with lo up."""
    for ns in [topo.mgmt_netns, *(topo.netns(n) for n in topo.nodes)]:
        procs.run(["ip", "netns", "add", ns], timeout=10)
        procs.ip_batch(ns, ["link set lo up"])


def _veth(name: str, mac: str | None, mtu: int) -> str:
    return f"{name} mtu {mtu}" + (f" address {mac}" if mac else "")


def create_links(topo: Topology) -> None:
    """veth pairs made inside the namespaces (never in the host's), then everything set up."""
    procs.ip_batch(topo.mgmt_netns, [f"link add br0 mtu {topo.mgmt_mtu} type bridge", "link set br0 up"])
    add_links(topo, list(topo.nodes), topo.links)


def add_links(topo: Topology, nodes: list[str], links: tuple[Link, ...], first_mgmt: int = 0) -> None:
    """The management veth of each of `nodes` (mgN, N from `first_mgmt`) and the data `links`, all set up."""
    mgmt, mtu = topo.mgmt_netns, topo.mgmt_mtu
    lines = []
    for i, name in enumerate(nodes, start=first_mgmt):
        lines += [
            f"link add mg{i} mtu {mtu} type veth peer name eth0 netns {topo.netns(name)} mtu {mtu}",
            f"link set mg{i} master br0",
            f"link set mg{i} up",
        ]
    procs.ip_batch(mgmt, lines)
    adds: dict[str, list[str]] = {}
    for link in links:
        a, b = link.a, link.b
        adds.setdefault(topo.netns(a.node), []).append(
            f"link add {_veth(a.iface, a.mac, link.mtu)} type veth peer name {_veth(b.iface, b.mac, link.mtu)}"
            f" netns {topo.netns(b.node)}"
        )
    for ns, ns_lines in adds.items():
        procs.ip_batch(ns, ns_lines)
    prefix = topo.mgmt_subnet.prefixlen
    ups: dict[str, list[str]] = {
        name: [f"address add {topo.nodes[name].mgmt_ipv4}/{prefix} dev eth0", "link set eth0 up"] for name in nodes
    }
    for link in links:
        for end in (link.a, link.b):
            ups.setdefault(end.node, []).extend(f"address add {a} dev {end.iface}" for a in end.addresses)
            ups.setdefault(end.node, []).append(f"link set {end.iface} up")
    for name, node_lines in ups.items():
        procs.ip_batch(topo.netns(name), node_lines)


def start_holders(topo: Topology, st: State, tools: dict[str, str], only: list[str] | None = None) -> None:
    """Start every node's holder (or those of `only`) and wait until each has its private tree and hostname."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    for node in _nodes(topo, only):
        ndir = state.node_dir(topo.name, node.name)
        ndir.mkdir(parents=True, exist_ok=True)
        own = sorted(node.binds, key=lambda b: len(PurePosixPath(b.target).parts))  # a directory before its files
        binds = [
            x
            for b in (*image_binds(node, tools), *own)
            for x in (str(b.source), b.target, "ro" if b.read_only else "rw")
        ]
        unshare = ["unshare", "--mount", "--uts", "--propagation", "private", "--"]
        holder = [PYTHON, str(LAB_CLI), "_hold", str(ndir), node.name, *binds]
        argv = ["ip", "netns", "exec", topo.netns(node.name), *unshare, *holder]
        with open(ndir / "holder.log", "wb") as log:
            started[node.name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                env=node_env(topo, node, tools), start_new_session=True,
            )  # fmt: skip
        st.holders[node.name] = started[node.name].pid
    st.save()
    deadline = time.monotonic() + HOLDER_TIMEOUT_S
    for name, proc in started.items():
        line = _read_line(proc, deadline)
        assert proc.stdout is not None
        proc.stdout.close()
        if line != "ready":
            raise LabError(f"node {name}: holder failed: {line or 'no answer'}")


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """One line from the holder's stdout, or '' at the deadline or EOF."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    return proc.stdout.readline().decode().strip() if ready else ""


def start_nodes(topo: Topology, st: State, tools: dict[str, str], only: list[str] | None = None) -> None:
    """Run node-start in every node (or those of `only`) at once; fail naming each node whose start failed."""
    running: dict[str, subprocess.Popen[bytes]] = {}
    for node in _nodes(topo, only):
        log_path = state.node_dir(topo.name, node.name) / "node-start.log"
        with open(log_path, "wb") as log:
            running[node.name] = subprocess.Popen(
                [*procs.enter(st.holders[node.name]), PYTHON, str(NODE_START), "start"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=node_env(topo, node, tools), start_new_session=True,
            )  # fmt: skip
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    failed = []
    for name, proc in running.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.returncode != 0:
            said = (state.node_dir(topo.name, name) / "node-start.log").read_text().strip().splitlines()
            failed.append(f"node {name}: node-start exited {proc.returncode}: {' | '.join(said[-3:])}")
    if failed:
        raise LabError("\n".join(failed))


def run_execs(topo: Topology, st: State, tools: dict[str, str], only: list[str] | None = None) -> None:
    """The topology's `exec` lines, in each node (or those of `only`), after its links and daemons are up."""
    for node in _nodes(topo, only):
        for line in node.exec:
            argv = procs.enter(st.holders[node.name]) + shlex.split(line)
            try:
                procs.run(argv, env=node_env(topo, node, tools))
            except procs.CommandError as e:
                raise LabError(f"node {node.name}: exec {line!r} failed: {e.output.strip()}") from e


def _nodes(topo: Topology, only: list[str] | None) -> list[Node]:
    return [n for n in topo.nodes.values() if only is None or n.name in only]


# --- update ----------------------------------------------------------------------------------------------


@dataclass
class Update:
    """What `update` changed."""

    added: list[str]
    removed: list[str]
    rebound: list[str]  # kept nodes whose bound files changed (their daemons re-read them when told)
    links_added: int
    links_removed: int
    seconds: float = 0.0

    def __str__(self) -> str:
        parts = [f"+{n}" for n in self.added] + [f"-{n}" for n in self.removed]
        parts += [f"{n}: binds changed" for n in self.rebound]
        parts.append(f"links +{self.links_added} -{self.links_removed}")
        return f"{', '.join(parts)} in {self.seconds:.2f}s"


def _link_key(link: Link) -> frozenset[tuple[str, str]]:
    return frozenset({(link.a.node, link.a.iface), (link.b.node, link.b.iface)})


def update(topo: Topology, wait: Callable[[Topology, State], None] | None = None) -> Update:
    """Bring the running lab `topo.name` to `topo`: nodes and links only in `topo` are created and started,
    nodes and links no longer in it are removed, kept nodes whose binds changed are re-bound. Nothing else is
    touched: kept nodes keep running. `wait` awaits convergence."""
    start = time.monotonic()
    st = state.load(topo.name)
    if st is None or not all(procs.alive(p) for p in st.holders.values()):
        raise LabError(f"lab {topo.name} is not up: `labs/lab up {topo.path}` first")
    old = load_topology(Path(st.topology))
    if missing_prerequisites():
        raise LabError("this machine lacks: " + ", ".join(missing_prerequisites()))
    tools = tools_env(topo)
    added = [n for n in topo.nodes if n not in st.holders]
    removed = [n for n in st.holders if n not in topo.nodes]
    wanted = {_link_key(link) for link in topo.links}
    gone_links = [link for link in old.links if _link_key(link) not in wanted]
    have = {_link_key(link) for link in old.links}
    new_links = tuple(link for link in topo.links if _link_key(link) not in have)
    for name in removed:
        remove_node(topo.name, st, name, f"clab-{topo.name}-{name}")
    _remove_links(topo, [link for link in gone_links if not {link.a.node, link.b.node} & set(removed)])
    st.netns += [topo.netns(n) for n in added if topo.netns(n) not in st.netns]
    st.topology = str(topo.path)
    st.save()
    for name in added:
        procs.run(["ip", "netns", "add", topo.netns(name)], timeout=10)
        procs.ip_batch(topo.netns(name), ["link set lo up"])
    add_links(topo, added, new_links, first_mgmt=_free_mgmt_index(topo))
    start_holders(topo, st, tools, only=added)
    rebound = rebind(topo, old, st)
    kept = sorted({end.node for link in new_links for end in (link.a, link.b)} - set(added))
    for name in kept:
        procs.run(
            [*procs.enter(st.holders[name]), PYTHON, str(NODE_START), "links"],
            env=node_env(topo, topo.nodes[name], tools),
        )
    start_nodes(topo, st, tools, only=added)
    run_execs(topo, st, tools, only=added)
    st.save()
    if wait is not None:
        wait(topo, st)
    return Update(added, removed, rebound, len(new_links), len(gone_links), time.monotonic() - start)


def load_topology(path: Path) -> Topology:
    """The topology file the lab was built (or last updated) from."""
    try:
        return topology.load(path)
    except topology.TopologyError as e:
        raise LabError(f"the lab's current topology {path} no longer loads: {e}") from e


def remove_node(lab: str, st: State, name: str, netns: str) -> None:
    """Stop every process of node `name` (SIGTERM, then SIGKILL) and delete its namespace; forget it."""
    from tor_agent.wait import WaitTimeout, wait_until

    holder = st.holders.pop(name, 0)
    namespaces = [netns] if netns in procs.netns_list() else []
    inside = lab_pids(namespaces, None) | ({holder} if procs.alive(holder) else set())
    procs.signal_all(inside, procs.TERM)
    try:
        wait_until(lambda: not {p for p in inside if procs.alive(p)}, STOP_GRACE_S, 0.02, f"{name} to stop")
    except WaitTimeout:
        procs.signal_all({p for p in inside if procs.alive(p)}, procs.KILL)
    for ns in namespaces:
        procs.run(["ip", "netns", "delete", ns], timeout=10)
    st.netns = [ns for ns in st.netns if ns != netns]
    st.save()
    shutil.rmtree(state.node_dir(lab, name), ignore_errors=True)


def _remove_links(topo: Topology, links: list[Link]) -> None:
    for link in links:
        procs.run(["ip", "-n", topo.netns(link.a.node), "link", "delete", link.a.iface], timeout=10, check=False)


def _free_mgmt_index(topo: Topology) -> int:
    """The first N after every mgN veth already in the management namespace."""
    out = procs.run(["ip", "-n", topo.mgmt_netns, "-o", "link", "show"], timeout=10)
    names = (line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
    used = [int(n[2:]) for n in names if n.startswith("mg") and n[2:].isdigit()]
    return max(used, default=-1) + 1


def rebind(topo: Topology, old: Topology, st: State) -> list[str]:
    """Kept nodes whose binds changed get the new sources bound over the targets, inside their mount namespace."""
    changed = []
    for name, node in topo.nodes.items():
        if name not in old.nodes or name not in st.holders:
            continue
        before = {b.target: b for b in old.nodes[name].binds}
        fresh = [b for b in node.binds if before.get(b.target) != b]
        for bind in fresh:
            enter = procs.enter(st.holders[name])
            if bind.target in before:
                procs.run([*enter, "umount", "--lazy", bind.target], timeout=10)
            procs.run([*enter, "mount", "--bind", str(bind.source), bind.target], timeout=10)
            if bind.read_only:
                procs.run([*enter, "mount", "-o", "remount,bind,ro", bind.target], timeout=10)
        if fresh:
            changed.append(name)
    return changed


# --- exec ----------------------------------------------------------------------------------------------


def exec_argv(topo: Topology, node: str, command: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment running `command` inside `node` of a running lab."""
    st = state.load(topo.name)
    if node not in topo.nodes:
        raise LabError(f"no node {node!r} in {topo.path.name} (nodes: {', '.join(topo.nodes)})")
    if st is None or not procs.alive(st.holders.get(node, 0)):
        raise LabError(f"lab {topo.name} is not up (labs/lab up {topo.path})")
    env = node_env(topo, topo.nodes[node], tools_env(topo, strict=False))
    return procs.enter(st.holders[node]) + (command or ["/bin/bash", "-i"]), env


# --- down ----------------------------------------------------------------------------------------------


def lab_namespaces(lab: str, nodes: list[str], st: State | None) -> list[str]:
    """The lab's existing namespaces: recorded in the state file, or named after the topology's nodes."""
    names = set(st.netns if st else []) | {f"clab-{lab}-{n}" for n in [*nodes, "_mgmt"]}
    existing = set(procs.netns_list())
    return sorted(names & existing)


def lab_pids(namespaces: list[str], st: State | None) -> set[int]:
    """Every live process of the lab: its holders, and anything inside its network namespaces."""
    inodes = set()
    for ns in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
    pids = set(st.holders.values()) if st else set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino in inodes:
                    pids.add(int(entry.name))
            except OSError:
                pass
    return {p for p in pids if procs.alive(p)}


def down(topo: Topology | str) -> int:
    """Stop every process of the lab (SIGTERM, then SIGKILL), delete its namespaces and state.
    Accepts the topology, or just the lab name when the file no longer parses; returns processes stopped."""
    from tor_agent.wait import WaitTimeout, wait_until

    lab, nodes = (topo, []) if isinstance(topo, str) else (topo.name, list(topo.nodes))
    st = state.load(lab)
    namespaces = lab_namespaces(lab, nodes, st)
    pids = lab_pids(namespaces, st)
    procs.signal_all(pids, procs.TERM)
    try:
        wait_until(lambda: not lab_pids(namespaces, st), STOP_GRACE_S, 0.02, "lab processes to exit")
    except WaitTimeout:

        def killed() -> bool:
            left = lab_pids(namespaces, st)
            procs.signal_all(left, procs.KILL)
            return not left

        wait_until(killed, 5.0, 0.02, "lab processes to die after SIGKILL")
    for ns in namespaces:
        procs.run(["ip", "netns", "delete", ns], timeout=10)
    if not os.environ.get("LAB_KEEP_STATE"):
        state.remove(lab)
    return len(pids)
