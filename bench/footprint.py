"""What tor-agent costs a switch, every row of the footprint table side by side with its peer, in one run.

Usage (as root, from the repository root): python3 -m bench.footprint [--file FABRIC] [--leaf NAME] [--runs N]
       [--idle-seconds S] [--uplinks N] [--vteps N] [--tunnels N] [--loss-runs N] [--quota PERCENT] [--rows ROW,...]
Run by hand, not in CI. Holds the lab's machine-wide lock throughout (it waits while a test session
has the fabric); takes the fabric down and up again for the bring-up row, and leaves it as it found it.
Rows (`--rows`, default all): bringup, cli, apply, idle, rss, reroute, loss. Each prints its figures as
it goes; the table comes last. Every peer is measured in the same run, in the same node, interleaved:
- bringup: `labs/lab up` of the fabric until it reports the underlay converged (goal 5 s);
- cli: wall time of `tor-agent --version`, `check`, `verify`, `status` (and `--help`) run in the leaf, as an
  operator does, against `vtysh -c 'show ip ospf neighbor'` and `ovs-vsctl show` there; plus what the
  interpreter's start and the imports (`python -X importtime`) take of it;
- apply: the `tor-agent apply` command for a one-line FRR change on a spine with N uplinks against
  `frr-reload.py --reload` of the same file (bench/frr_apply.py's node);
- idle: CPU time (user + system, the agent's processes included) of every switch's agent over a window that
  holds its periodic full passes, against the same node's ospfd;
- rss: every agent's resident memory against a bare python3 and ospfd, with the per-library breakdown, and
  the leaf's agent after it made T tunnels (static peers over a covering route, tunnel BFD off);
- reroute: V VTEPs discovered in the leaf (synthetic /32s in the discovery prefix, as ospfd installs them)
  whose kernel routes all move to one uplink at once, as zebra moves them when BFD declares the other one
  down: time from the kernel's change to OVS's route table holding the new routes, against starting V
  `ovs-appctl` processes (what a process per route costs);
- loss: a silent uplink failure (nftables drop at the spine's end; BFD detects it) with the lab kit's UDP
  probes (labs.labkit.probe) through the overlay (between two hosts of one tenant network on two leaves)
  and the underlay (between those leaves' loopbacks) at once: the overlay's loss window minus the
  underlay's, for the flows that cross the link.
`--quota P` confines every measured tor-agent process (the switches' agents, the CLI, the apply) to one core
and P % of it (bench/cpulimit.py; 10 roughly models a Pronto 3290-class 825 MHz core), the peers too where
they are commands the bench starts (vtysh, ovs-vsctl, frr-reload.py); FRR's and OVS's daemons are not.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import ipaddress
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import frr_apply
from bench.cpulimit import CpuLimit
from labs.labkit.fabric import FabricLink, fabric_links, intent, loopback, switches, tenant_address, wait_healthy
from labs.labkit.faults import silent_failure
from labs.labkit.lab import FABRIC, LAB_CLI, lab_lock
from labs.labkit.nodes import INTENT, agent_daemons, agent_status, node_run, rss_mib, tor_agent, tor_agent_binary
from labs.labkit.probe import PROBE_INTERVAL_S, Flow, Probe, Window, crossing
from labs.labkit.tenants import TENANT_LABEL
from labs.nslab import realise, state, topology
from labs.nslab.topology import Topology
from tor_agent.ovs.routes import parse_route_show
from tor_agent.wait import wait_until

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
ROWS = ("bringup", "cli", "apply", "idle", "rss", "reroute", "loss")
OSPF_QUERY = "show ip ospf neighbor"


@dataclass
class Row:
    """One line of the table: the figure, its peer's, the goal and whether it is met; `note`: the measured
    cause of a gap, or what the figure is made of."""

    what: str
    agent: str
    peer: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Bench:
    topo: Topology
    leaf: str
    args: argparse.Namespace
    rows: list[Row] = field(default_factory=list)
    limits: list[CpuLimit] = field(default_factory=list)

    def limit(self, name: str) -> CpuLimit | None:
        """A new CPU quota group (None without --quota)."""
        if self.args.quota is None:
            return None
        made = CpuLimit(f"tor-agent-bench-{os.getpid()}-{name}", self.args.quota)
        self.limits.append(made)
        return made

    def add(self, row: Row) -> None:
        if self.args.quota is not None and row.met is not None:
            row.goal, row.met = f"({row.goal} unconfined)", None  # the goals are for one of our cores
        self.rows.append(row)
        verdict = {True: "meets the goal", False: "MISSES the goal", None: ""}[row.met]
        peer = f" | {row.peer}" if row.peer else ""
        print(f"  => {row.what}: {row.agent}{peer} | goal {row.goal}: {verdict}", flush=True)
        if row.note:
            print(f"     {row.note}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# --- timing commands inside a node ----------------------------------------------------------------------------

GATE = "import os, sys; sys.stdin.readline(); os.execvp(sys.argv[1], sys.argv[1:])"


def run_in_node(
    topo: Topology, node: str, argv: list[str], limit: CpuLimit | None, tree: Path | None = None,
    timeout: float = 600.0,
) -> str:  # fmt: skip
    """`argv` in `node`, confined by `limit` from its start on (a gate holds it until then), with the source
    tree `tree` first on its PYTHONPATH (the tor_agent it and its children import); its stdout."""
    full, env = realise.exec_argv(topo, node, ["/usr/bin/python3", "-c", GATE, *argv])
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        if limit is not None:
            limit.add(proc.pid)
        out, _ = proc.communicate("go\n", timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{node}: {' '.join(argv[:2])} ... exited {proc.returncode}")
    return out


TIMER = """
import json, subprocess, sys, time
runs, commands = int(sys.argv[1]), json.loads(sys.argv[2])
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():  # interleaved: every command sees the same machine
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times[name].append(time.perf_counter() - start)
print(json.dumps(times))
"""


def time_in_node(
    topo: Topology, node: str, commands: dict[str, list[str]], runs: int, limit: CpuLimit | None, tree: Path
) -> dict[str, list[float]]:
    """Wall seconds of each command, run `runs` times interleaved inside `node` (confined by `limit`), with the
    source tree `tree` on their PYTHONPATH."""
    argv = ["/usr/bin/python3", "-c", TIMER, str(runs), json.dumps(commands)]
    times: dict[str, list[float]] = json.loads(run_in_node(topo, node, argv, limit, tree))
    return times


IMPORTS = r"""
import json, re, subprocess, sys
tree, python, runs, argv = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
code = "\n".join([
    "import sys; sys.stderr.write('MARK' + chr(10))",
    "from tor_agent.cli import main",
    "try:",
    "    main(sys.argv[1:], prog_name='tor-agent')",
    "except SystemExit:",
    "    pass",
])
line_re = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")
GROUPS = ("tor_agent", "pyroute2", "ovs", "yaml", "click", "jinja2")
totals, count, by_group = [], 0, {}
for _ in range(runs):
    # run in the tree: a `-c` program's first import path is its working directory
    done = subprocess.run([python, "-X", "importtime", "-c", code, *argv], capture_output=True, text=True, cwd=tree)
    lines = done.stderr.split("MARK" + chr(10), 1)[-1].splitlines()
    found = [m for line in lines if (m := line_re.match(line))]
    totals.append(sum(int(m.group(2)) for m in found if not m.group(3)))  # the fastest run: least disturbed
    count = len(found)
    for m in found:
        group = m.group(4).split(".")[0] if m.group(4).split(".")[0] in GROUPS else "stdlib"
        by_group.setdefault(group, []).append(int(m.group(1)) / runs)
print(json.dumps([count, min(totals), {g: sum(v) for g, v in by_group.items()}]))
"""


def import_cost(
    topo: Topology, node: str, tree: Path, args: Sequence[str], limit: CpuLimit | None, runs: int = 5
) -> tuple[int, float, str]:
    """(modules `tor-agent ARGS` (from source `tree`, by /usr/bin/python3) imports after the interpreter's start,
    seconds importing them, and by whom: the fastest of `runs` runs of `python -X importtime`) in `node`."""
    argv = ["/usr/bin/python3", "-c", IMPORTS, str(tree), "/usr/bin/python3", str(runs), *args]
    count, micros, groups = json.loads(run_in_node(topo, node, argv, limit))
    shares = ", ".join(f"{g} {us / 1000:.0f}" for g, us in sorted(groups.items(), key=lambda x: -x[1]))
    return int(count), float(micros) / 1e6, shares


# tor-agent as the Debian package installs it (/usr/bin/python3, no virtualenv); the package comes from the
# source tree its PYTHONPATH names (run_in_node's `tree`).
INSTALLED = """#!/usr/bin/python3
import sys
from tor_agent.cli import main
sys.exit(main())
"""


@contextlib.contextmanager
def installed_launcher() -> Iterator[str]:
    """A `tor-agent` started as on a switch: Debian's python3 and the package on its path, no virtualenv
    (whose site start-up alone costs ~10 ms more)."""
    with tempfile.TemporaryDirectory(prefix="footprint-", dir="/tmp") as tmp:
        path = Path(tmp, "tor-agent")
        path.write_text(INSTALLED)
        path.chmod(0o755)
        os.chmod(tmp, 0o755)
        yield str(path)


def interpreter_of(binary: str) -> str:
    """The python a console script runs with (its shebang)."""
    first = Path(binary).read_text().splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


# --- rows -----------------------------------------------------------------------------------------------------


def bringup(b: Bench) -> None:
    print("\n[bringup] labs/lab down, then up until the underlay converged", flush=True)
    env = dict(os.environ)
    subprocess.run([str(LAB_CLI), "down", str(b.topo.path)], capture_output=True, env=env, timeout=300, check=False)
    start = time.monotonic()
    done = subprocess.run([str(LAB_CLI), "up", str(b.topo.path)], capture_output=True, text=True, env=env, timeout=300)
    took = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"labs/lab up failed:\n{done.stdout}{done.stderr}")
    phases = re.search(r"up in .*", done.stdout)
    note = "; ".join(x for x in (phases.group(0) if phases else "", slowest_switch_start(b.topo)) if x)
    b.add(Row("demo lab cold `up` to converged", f"{took:.2f} s", goal="<= 5 s", met=took <= 5.0, note=note))


def slowest_switch_start(topo: Topology) -> str:
    """The slowest switch's node-start line: how long its start took and each step of it."""
    lines = []
    for node in switches(topo):
        log = state.node_dir(topo.name, node) / "node-start.log"
        said = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
        found = re.search(r"started in ([0-9.]+) s.*", said[-1]) if said else None
        if found:
            lines.append((float(found[1]), f"{node} {found[0]}"))
    return f"slowest switch: {max(lines)[1]}" if lines else ""


def cli(b: Bench) -> None:
    print("\n[cli] commands in the leaf, interleaved, wall time", flush=True)
    with installed_launcher() as agent:
        commands = {
            "vtysh": ["vtysh", "-c", OSPF_QUERY],
            "ovs-vsctl": ["ovs-vsctl", "show"],
            "python3": ["/usr/bin/python3", "-c", "pass"],
            "--version": [agent, "--version"],
            "--help": [agent, "--help"],
            "check": [agent, "check"],
            "verify": [agent, "verify"],
            "status": [agent, "status"],
            "venv --version": [tor_agent_binary(b.topo), "--version"],
        }
        limit = b.limit("cli")
        times = time_in_node(b.topo, b.leaf, commands, b.args.runs, limit, b.args.tree)
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            print(f"  {name:<15} median {ms(med[name]):>7}  min {ms(min(t)):>7}  max {ms(max(t)):>7}  ({len(t)} runs)")
        start = med["python3"]
        for name, peer, goal in (("--version", "vtysh", 0.050), ("check", "ovs-vsctl", 0.120),
                                 ("verify", "ovs-vsctl", 0.200), ("status", "ovs-vsctl", 0.200)):  # fmt: skip
            modules, imports, shares = import_cost(b.topo, b.leaf, b.args.tree, [name], limit)
            rest = max(0.0, med[name] - start - imports)
            shown = f"vtysh -c '{OSPF_QUERY}'" if peer == "vtysh" else "ovs-vsctl show"
            ratio = med[name] / med[peer]
            b.add(Row(f"`tor-agent {name}`", ms(med[name]), f"{shown} {ms(med[peer])} ({ratio:.1f}x)",
                      f"<= {ms(goal)}", med[name] <= goal,
                      f"python3's own start {ms(start)}, then {modules} modules imported in {ms(imports)} "
                      f"(python -X importtime; ms by package: {shares}), the rest {ms(rest)}"))  # fmt: skip
    print(
        f"  (`tor-agent --help` {ms(med['--help'])}: it imports every command's module; from the virtualenv "
        f"`--version` takes {ms(med['venv --version'])})"
    )


def apply(b: Bench) -> None:
    print(f"\n[apply] one-line FRR change on a spine with {b.args.uplinks} uplinks (bench/frr_apply.py)", flush=True)
    limit = b.limit("apply")
    times = frr_apply.outside(b.args.uplinks, b.args.apply_rounds, limit.add if limit else None,
                              tor_agent_binary(b.topo))  # fmt: skip
    cmd, reload_, noop, parse = (statistics.median(times[k]) for k in ("cli", "fr", "cli_noop", "parse"))
    inproc = statistics.median(times["ta"])
    pure, libyaml = yaml_load_times(frr_apply.intent_text(b.args.uplinks, 10))
    b.add(Row(f"`tor-agent apply` command, one-line FRR change, {b.args.uplinks} uplinks", ms(cmd),
              f"frr-reload.py --reload {ms(reload_)} ({cmd / reload_:.2f}x)", "<= frr-reload.py", cmd <= reload_,
              f"of which the fixed cost of a command that changes nothing {ms(noop)} (FRR's parser on the rendering, "
              f"which every apply runs before anything changes: {ms(parse)}); the change itself in-process "
              f"{ms(inproc)} ({inproc / reload_:.2f}x frr-reload.py); reading the {b.args.uplinks}-uplink intent "
              f"file with PyYAML's Python loader (the intent loader's) {ms(pure)}, with its C loader "
              f"{ms(libyaml)}"))  # fmt: skip


def yaml_load_times(text: str, runs: int = 5) -> tuple[float, float]:
    """Seconds PyYAML takes to load `text`: its Python SafeLoader, its C (libyaml) CSafeLoader; the fastest of
    `runs` each."""
    import yaml

    def fastest(loader: Any) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            yaml.load(text, Loader=loader)
            times.append(time.perf_counter() - start)
        return min(times)

    return fastest(yaml.SafeLoader), fastest(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def cpu_s(pid: int, children: bool = True) -> float:
    """utime + stime of `pid` (all threads), and of its ended children (vtysh, nft...) too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    kids = int(fields[13]) + int(fields[14]) if children else 0
    return (own + kids) / TICKS


def daemon_pid(topo: Topology, node: str, name: str) -> int:
    return int(node_run(topo, node, "cat", f"/run/frr/{name}.pid").stdout)


def idle(b: Bench) -> None:
    seconds = b.args.idle_seconds
    print(f"\n[idle] CPU of every switch's agent over {seconds:g} s (its passes and processes included)", flush=True)
    wait_healthy(b.topo)
    agents = {n: agent_daemons(b.topo, n)[0] for n in switches(b.topo)}
    ospfd = {n: daemon_pid(b.topo, n, "ospfd") for n in agents}
    for node, pid in agents.items():
        limit = b.limit(f"agent-{node}")
        if limit is not None:
            limit.add(pid)
    before = {n: (cpu_s(agents[n]), cpu_s(ospfd[n], children=False), agent_status(b.topo, n)) for n in agents}
    time.sleep(seconds)  # the measurement window: nothing else happens in the lab meanwhile
    worst, worst_node, passes, base_worst = 0.0, "", "", 0.0
    for n in agents:
        agent = (cpu_s(agents[n]) - before[n][0]) / seconds * 100
        base = (cpu_s(ospfd[n], children=False) - before[n][1]) / seconds * 100
        now = agent_status(b.topo, n)
        full = now.get("cpu", {}).get("passes", {}).get("full", {})  # (an agent older than the CPU report: none)
        ran = full.get("passes", 0) - before[n][2].get("cpu", {}).get("passes", {}).get("full", {}).get("passes", 0)
        last = full.get("last_cpu_s", 0) * 1000
        print(f"  {n:<7} agent {agent:5.3f} % of a core ({ran} full passes, last {last:.1f} ms of CPU), "
              f"ospfd {base:5.3f} %")  # fmt: skip
        if n in [x.name for x in b.topo.by_role("leaf")] and agent >= worst:
            worst, worst_node = agent, n
            passes = f"{ran} full passes in the window, the last one {full.get('last_cpu_s', 0) * 1000:.1f} ms of CPU"
            base_worst = base
    reads = agent_status(b.topo, worst_node).get("reads", {})
    b.add(Row(f"idle CPU per leaf agent, {seconds:g} s window", f"{worst:.3f} % of a core ({worst_node})",
              f"ospfd {base_worst:.3f} % ({worst / base_worst:.1f}x)" if base_worst else "ospfd 0",
              "<= 0.2 %", worst <= 0.2, f"{passes}; since start: {reads}"))  # fmt: skip


BREAKDOWN = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
stdlib = "logging,json,socket,subprocess,dataclasses,ipaddress,select,struct,threading,typing,pathlib,enum,re"
steps = [("interpreter", None), ("the standard library it uses", stdlib), ("click, the CLI", "tor_agent.cli.run"),
         ("PyYAML, the intent loader", "tor_agent.config"), ("the ovs library", "tor_agent.ovs.library"),
         ("tor-agent's daemon, engine, drivers", "tor_agent.daemon.service"),
         ("OVSDB driver", "tor_agent.ovs.connection"), ("pyroute2 (from the agent's first link change on)",
         "tor_agent.net.iproute")]
out = []
for name, modules in steps:
    for module in (modules or "").split(","):
        if module:
            __import__(module)
    out.append((name, rss()))
print(json.dumps([out, sorted(m for m in sys.modules if m.split(".")[0] in ("jinja2", "ssl", "asyncio", "unittest"))]))
"""


def rss(b: Bench) -> None:
    print("\n[rss] resident memory of every switch's agent", flush=True)
    wait_healthy(b.topo)
    python = interpreter_of(tor_agent_binary(b.topo))
    bare = float(node_run(b.topo, b.leaf, "python3", "-c", BARE).stdout)
    worst, worst_node = 0.0, ""
    for n in switches(b.topo):
        agent = rss_mib({agent_daemons(b.topo, n)[0]})
        ospfd = rss_mib({daemon_pid(b.topo, n, "ospfd")})
        print(f"  {n:<7} agent {agent:5.1f} MB, ospfd {ospfd:4.1f} MB, bare python3 {bare:.1f} MB")
        if n in [x.name for x in b.topo.by_role("leaf")] and agent >= worst:
            worst, worst_node = agent, n
    steps, heavy = json.loads(node_run(b.topo, b.leaf, python, "-c", BREAKDOWN, timeout=60).stdout)
    parts, last = [], 0.0
    for name, value in steps:
        parts.append(f"{name} {value - last:+.1f}" if last else f"{name} {value:.1f}")
        last = value
    parts.append(f"runtime (threads, OVSDB replica, state) {worst - last:+.1f}")
    note = "MB: " + ", ".join(parts) + (f"; heavy modules: {heavy}" if heavy else "")
    b.add(Row("RSS per leaf agent, idle", f"{worst:.1f} MB ({worst_node})", f"bare python3 {bare:.1f} MB",
              "<= 35 MB", worst <= 35.0, note))  # fmt: skip
    if b.args.tunnels:
        at_scale(b)


BARE = "print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024)"


def leaf_uplinks(b: Bench) -> list[tuple[str, str]]:
    """(the device the leaf routes over, the spine's address on it) of every uplink of the leaf."""
    return [(routed_device(b.topo, link), link.spine_address) for link in fabric_links(b.topo, b.leaf)]


def ecmp(b: Bench) -> list[str]:
    hops: list[str] = []
    for bridge, gateway in leaf_uplinks(b):
        hops += ["nexthop", "via", gateway, "dev", bridge]
    return hops


def ovs_user_routes(topo: Topology, leaf: str) -> dict[str, str]:
    """OVS's own routes in `leaf` (those the agent adds on a netdev leaf): device by destination."""
    shown = node_run(topo, leaf, "ovs-appctl", "ovs/route/show").stdout
    return {str(r.prefix.network_address): r.device for r in parse_route_show(shown) if r.user}


def port_count(b: Bench) -> int:
    """Ports on the leaf's overlay bridge."""
    bridge = intent(b.topo, b.leaf)["overlay"]["bridge"]
    return len(node_run(b.topo, b.leaf, "ovs-vsctl", "list-ports", bridge).stdout.split())


@contextlib.contextmanager
def applied_intent(b: Bench, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """`tor-agent apply` of the leaf's intent changed by `edit` (through its running agent); its own intent
    applied again on exit."""
    import yaml

    doc = intent(b.topo, b.leaf)
    edit(doc)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="footprint-", dir="/tmp") as f:
        f.write(yaml.safe_dump(doc))
        f.flush()
        os.chmod(f.name, 0o644)
        try:
            tor_agent(b.topo, b.leaf, "apply", f.name, check=True)
            yield
        finally:
            tor_agent(b.topo, b.leaf, "apply", INTENT, check=True)


def at_scale(b: Bench) -> None:
    n = b.args.tunnels
    print(f"  the leaf's agent with {n} tunnels (static peers over a covering route)...", flush=True)
    net = ipaddress.IPv4Network("198.19.0.0/20")
    peers = [str(net.network_address + 1 + i) for i in range(n)]
    before_ports = port_count(b)
    pid = agent_daemons(b.topo, b.leaf)[0]
    idle_rss = rss_mib({pid})

    def many(doc: dict[str, Any]) -> None:
        doc["overlay"]["tunnels"] |= {"peers": peers, "bfd": False}

    def routed() -> bool:
        return not netdev(b.topo, b.leaf) or len(ovs_user_routes(b.topo, b.leaf)) >= n

    node_run(b.topo, b.leaf, "ip", "route", "add", str(net), "proto", "static", *ecmp(b))
    try:
        with applied_intent(b, many):
            wait_until(lambda: port_count(b) >= before_ports + n and routed(), 120, 0.5,
                       f"{n} tunnels (and on a netdev leaf their OVS routes)")  # fmt: skip
            wait_until(Quiet(b), 60, 0.2, "the agent to be done with the passes that made them")
            scaled = rss_mib({pid})
            status = agent_status(b.topo, b.leaf)
    finally:
        node_run(b.topo, b.leaf, "ip", "route", "del", str(net), check=False)
    full = status.get("cpu", {}).get("passes", {}).get("full", {})
    b.add(Row(f"RSS per leaf agent, {n} tunnels", f"{scaled:.1f} MB", f"idle {idle_rss:.1f} MB", "<= 35 MB",
              scaled <= 35.0, f"{scaled - idle_rss:+.1f} MB for {n} tunnels (IDL replica, snapshot, model); the full "
              f"pass that made them took {full.get('last_cpu_s', 0) * 1000:.0f} ms of CPU"))  # fmt: skip
    wait_until(lambda: port_count(b) <= before_ports, 60, 0.5, "the extra tunnels to go (after their hold-down)")


REROUTE = """
import json, subprocess, sys, time
from tor_agent.ovs.unixctl import UnixctlClient
batch, want_device, vteps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = UnixctlClient("ovs-vswitchd", 5.0)
wanted = {f"User: {v}/32 dev {want_device} " for v in vteps}
def moved():  # cheap: the probe shares the CPUs with the agent it measures
    users = (line for line in client.call("ovs/route/show").splitlines() if line.startswith("User: "))
    return wanted <= {line[: line.find(" GW")] + " " for line in users}
start = time.monotonic()
subprocess.run(["ip", "-batch", batch], check=True)
kernel_done = time.monotonic()
while not moved():
    time.sleep(0.001)
end = time.monotonic()
print(json.dumps({"from_first": end - start, "from_last": end - kernel_done, "kernel": kernel_done - start}))
"""


def reroute(b: Bench) -> None:
    v = b.args.vteps
    print(f"\n[reroute] {v} VTEPs whose kernel routes move to one uplink at once, in {b.leaf}", flush=True)
    what = f"overlay reroute, {v} VTEP routes moving at once (synthetic, in {b.leaf})"
    prefix = intent(b.topo, b.leaf).get("overlay", {}).get("tunnels", {}).get("discover", {}).get("ospf_prefix")
    if not netdev(b.topo, b.leaf) or prefix is None or len(leaf_uplinks(b)) < 2:
        why = "a netdev datapath (only there the agent keeps OVS's tunnel routes), tunnel discovery, two uplinks"
        b.add(Row(what, f"not measured: {b.leaf} lacks one of {why}"))
        return
    wait_healthy(b.topo)
    vteps = synthetic_vteps(b.topo, ipaddress.IPv4Network(prefix), v)
    (bridge_a, _), (bridge_b, gw_b) = leaf_uplinks(b)[:2]
    with tempfile.TemporaryDirectory(prefix="footprint-", dir="/tmp") as tmp:
        add, to_b, back = (Path(tmp, name) for name in ("add", "to_b", "back"))
        both = " ".join(ecmp(b))
        add.write_text("".join(f"route add {x}/32 proto ospf {both}\n" for x in vteps))
        to_b.write_text("".join(f"route replace {x}/32 proto ospf via {gw_b} dev {bridge_b}\n" for x in vteps))
        back.write_text("".join(f"route replace {x}/32 proto ospf {both}\n" for x in vteps))
        os.chmod(tmp, 0o755)
        node_run(b.topo, b.leaf, "ip", "-batch", str(add))
        try:
            wait_until(lambda: set(vteps) <= set(ovs_user_routes(b.topo, b.leaf)), 60, 0.2, f"OVS routes to {v} VTEPs")
            wait_until(lambda: settled(b), 60, 0.5, "the agent to have nothing left to do")
            limit = b.limit("reroute")
            if limit is not None:
                limit.add(agent_daemons(b.topo, b.leaf)[0])
            figures = [one_move(b, to_b, back, (bridge_a, bridge_b), vteps) for _ in range(b.args.runs)]
            processes = appctl_processes(b, v)
        finally:
            node_run(b.topo, b.leaf, "ip", "-batch", "-", stdin="".join(f"route del {x}/32\n" for x in vteps),
                     check=False)  # fmt: skip
    last = statistics.median(f["from_last"] for _, f in figures)
    first = statistics.median(f["from_first"] for _, f in figures)
    kernel = statistics.median(f["kernel"] for _, f in figures)
    moved = statistics.median(m for m, _ in figures)
    b.add(Row(what, f"{ms(last)} after the kernel's last change", f"{v} ovs-appctl processes {ms(processes)}",
              "<= 30 ms", last <= 0.030,
              f"median of {len(figures)} runs, ~{moved:.0f} routes moved each; {ms(first)} from the kernel's first "
              f"change ({v} route replaces took the kernel {ms(kernel)})"))  # fmt: skip


def synthetic_vteps(topo: Topology, prefix: ipaddress.IPv4Network, count: int) -> list[str]:
    """`count` addresses in the discovery prefix that no switch of the lab has, from its top down."""
    taken = {loopback(topo, n) for n in switches(topo)}
    free = [str(a) for a in reversed(list(prefix.hosts())) if str(a) not in taken][:count]
    if len(free) < count:
        raise SystemExit(f"--vteps {count}: the discovery prefix {prefix} has only {len(free)} free addresses")
    return free


def one_move(
    b: Bench, to_b: Path, back: Path, bridges: tuple[str, str], vteps: list[str]
) -> tuple[int, dict[str, float]]:
    """Move every VTEP's kernel route to the second uplink (`to_b`), timed; then spread them again (`back`).
    (routes that moved, figures)."""
    bridge_a, bridge_b = bridges
    wait_until(lambda: settled(b), 60, 0.2, "the agent to be done with the previous move")
    routes = ovs_user_routes(b.topo, b.leaf)
    moving = sum(1 for x in vteps if routes.get(x) != bridge_b)
    figures = one_reroute(b, to_b, bridge_b, vteps)
    node_run(b.topo, b.leaf, "ip", "-batch", str(back))
    wait_until(lambda: {ovs_user_routes(b.topo, b.leaf).get(x) for x in vteps} == {bridge_a, bridge_b}, 30, 0.1,
               "the VTEPs spread over both uplinks again")  # fmt: skip
    return moving, figures


@dataclass
class Quiet:
    """A predicate for wait_until: the leaf's agent ran no pass for `seconds` (its pass count stood still)."""

    b: Bench
    seconds: float = 1.0
    passes: int = -1
    since: float = 0.0

    def __call__(self) -> bool:
        passes, now = int(agent_status(self.b.topo, self.b.leaf)["passes"]), time.monotonic()
        if passes != self.passes:
            self.passes, self.since = passes, now
        return now - self.since >= self.seconds


def settled(b: Bench) -> bool:
    """The leaf's agent changed nothing in its last pass, a second ago or more."""
    status = agent_status(b.topo, b.leaf)
    last = status.get("last_pass") or {}
    return not last.get("changed", True) and time.time() - float(status.get("time", 0)) >= 1.0


def one_reroute(b: Bench, batch: Path, device: str, vteps: list[str]) -> dict[str, float]:
    argv = ["/usr/bin/python3", "-c", REROUTE, str(batch), device, json.dumps(vteps)]
    figures: dict[str, float] = json.loads(run_in_node(b.topo, b.leaf, argv, None, REPO, timeout=60))
    print(f"  moved in {ms(figures['from_last'])} after the kernel's last change ({ms(figures['from_first'])} after "
          f"its first)", flush=True)  # fmt: skip
    return figures


def appctl_processes(b: Bench, count: int) -> float:
    """Seconds `count` `ovs-appctl` processes take in the leaf (a read, so nothing changes)."""
    script = (
        "import subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        f"for _ in range({count}):\n"
        "    subprocess.run(['ovs-appctl', 'ovs/route/show'], stdout=subprocess.DEVNULL, check=True)\n"
        "print(time.perf_counter() - start)\n"
    )
    return float(node_run(b.topo, b.leaf, "/usr/bin/python3", "-c", script, timeout=120).stdout)


# --- loss: overlay and underlay in the same failure -------------------------------------------------------------


@dataclass(frozen=True)
class FailurePlan:
    """A leaf-spine link to fail; two hosts of one tenant network on two leaves (the overlay probe), those two
    leaves (the underlay probe, loopback to loopback), and the flows of each probe that cross the link."""

    link: FabricLink
    hosts: tuple[str, str]
    leaves: tuple[str, str]
    overlay: list[Flow]
    underlay: list[Flow]


def tenant_pairs(topo: Topology) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((host A, its leaf), (host B, its leaf)) for every two hosts with a tenant address, in the same tenant
    network (label tor-agent.tenant), on two different leaves."""
    leaves = {x.name for x in topo.by_role("leaf")}
    hosts = []
    for node in topo.by_role("host"):
        leaf = next((end.node for _, end, _ in topo.links_of(node.name) if end.node in leaves), None)
        if leaf is not None and node.labels.get(TENANT_LABEL) and has_tenant_address(topo, node.name):
            hosts.append((node.name, leaf, node.labels[TENANT_LABEL]))
    return [((ha, la), (hb, lb)) for ha, la, ta in hosts for hb, lb, tb in hosts if ta == tb and la != lb]


def has_tenant_address(topo: Topology, host: str) -> bool:
    try:
        tenant_address(topo, host)
    except RuntimeError:
        return False
    return True


def failure_plan(b: Bench) -> FailurePlan | None:
    """The link one leaf's tunnel to another leaf's VTEP leaves by, for a pair of leaves with hosts of one
    tenant network whose underlay probe has flows crossing it too (the kernel hashes each flow onto one path)."""
    for (host_a, leaf_a), (host_b, leaf_b) in tenant_pairs(b.topo):
        link = tunnel_link(b.topo, leaf_a, loopback(b.topo, leaf_b))  # host_a -> host_b's tunnel takes this link
        underlay = crossing(b.topo, Probe.between_leaves(b.topo, leaf_a, leaf_b).flows, link)
        if not underlay:
            continue
        to_b, to_a = Probe.between_hosts(b.topo, host_a, host_b).flows
        overlay = [to_b]
        if tunnel_link(b.topo, leaf_b, loopback(b.topo, leaf_a)).spine == link.spine:
            overlay.append(to_a)  # host_b -> host_a reaches leaf_a over the link from the same spine
        return FailurePlan(link, (host_a, host_b), (leaf_a, leaf_b), overlay, underlay)
    return None


def one_failure(topo: Topology, plan: FailurePlan) -> tuple[float, float]:
    """Fail the plan's link silently with both probes running until both recover: the longest loss window of
    the overlay's and of the underlay's flows that cross it (seconds)."""
    link = plan.link
    with Probe.between_hosts(topo, *plan.hosts) as overlay, Probe.between_leaves(topo, *plan.leaves) as underlay:
        with silent_failure(topo, link.spine, link.spine_iface) as started:

            def recovered() -> bool:
                return overlay.recovered(started, plan.overlay) and underlay.recovered(started, plan.underlay)

            wait_until(recovered, 10, 0.02, f"both probes to recover around {link}")
            until = time.monotonic_ns()
        over = worst(overlay.windows(started - 1, until), plan.overlay)
        under = worst(underlay.windows(started - 1, until), plan.underlay)
    return over, under


def worst(windows: dict[str, Window], flows: Sequence[Flow]) -> float:
    """The longest loss window among `flows`."""
    return max(windows[f.key].seconds for f in flows)


def loss(b: Bench) -> None:
    print("\n[loss] silent uplink failure: overlay (host to host) and underlay (loopbacks) probes at once", flush=True)
    wait_healthy(b.topo)
    plan = failure_plan(b)
    if plan is None:
        why = "not measured: no two hosts of one tenant network on two leaves whose tunnel and underlay share a link"
        b.add(Row("overlay loss, silent uplink failure", why))
        return
    link = plan.link
    print(
        f"  failing {link}: {len(plan.overlay)} overlay ({' - '.join(plan.hosts)}), {len(plan.underlay)} underlay "
        f"({' - '.join(plan.leaves)}) flows cross it",
        flush=True,
    )
    results = []
    for _ in range(b.args.loss_runs):
        over, under = one_failure(b.topo, plan)
        results.append((over, under))
        print(f"  overlay {ms(over)}, underlay {ms(under)}: the agent adds {ms(over - under)}", flush=True)
        wait_healthy(b.topo)
    over, under = (statistics.median(x) for x in zip(*results, strict=True))
    added = statistics.median(o - u for o, u in results)
    b.add(Row(f"overlay loss, silent uplink failure ({link.leaf}:{link.uplink} - {link.spine})",
              f"{ms(over)}, the agent adds {ms(added)}", f"underlay {ms(under)}", "adds <= 20 ms", added <= 0.020,
              f"median of {len(results)} failures, each the longest gap of the flows crossing the link (a "
              f"datagram every {PROBE_INTERVAL_S * 1000:g} ms): {len(plan.overlay)} overlay, {len(plan.underlay)} "
              "underlay flows; BFD as the intents set it"))  # fmt: skip


def netdev(topo: Topology, leaf: str) -> bool:
    """The leaf runs userspace OVS (`overlay.datapath: netdev`): OVS routes its tunnels by its own route table."""
    return bool(intent(topo, leaf).get("overlay", {}).get("datapath") == "netdev")


def routed_device(topo: Topology, link: FabricLink) -> str:
    """The device the leaf routes over `link`: on a netdev leaf the uplink's OVS bridge, else the uplink."""
    if not netdev(topo, link.leaf):
        return link.uplink
    uplink = next(u for u in intent(topo, link.leaf)["underlay"]["uplinks"] if u["name"] == link.uplink)
    return str(uplink.get("bridge") or f"br-{link.uplink}")


def tunnel_link(topo: Topology, leaf: str, vtep: str) -> FabricLink:
    """The leaf-spine link `leaf`'s tunnel to `vtep` leaves by: by OVS's route to it on a netdev leaf, by the
    kernel's (from the leaf's loopback) on a system one."""
    links = fabric_links(topo, leaf)
    if netdev(topo, leaf):
        device = ovs_user_routes(topo, leaf).get(vtep)
        found = [link for link in links if routed_device(topo, link) == device]
        via = f"OVS's route: {device}"
    else:
        done = node_run(topo, leaf, "ip", "-j", "route", "get", vtep, "from", loopback(topo, leaf))
        gateway = json.loads(done.stdout)[0].get("gateway")
        found = [link for link in links if link.spine_address == gateway]
        via = f"the kernel's route: via {gateway}"
    if not found:
        raise RuntimeError(f"{leaf}: its tunnel to {vtep} leaves by no leaf-spine link ({via})")
    return found[0]


# --- the run -----------------------------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> None:
    print("\n| what | tor-agent | peer in the same run | goal | |")
    print("|---|---|---|---|---|")
    for r in rows:
        verdict = {True: "met", False: "**missed**", None: ""}[r.met]
        print(f"| {r.what} | {r.agent} | {r.peer} | {r.goal} | {verdict} |")
    print()
    for r in rows:
        if r.note:
            print(f"- {r.what}: {r.note}")


def whole(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `low`."""

    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= {low}")
        return int(text)

    return parse


def fraction(high: float) -> Callable[[str], float]:
    """An argparse type: a number > 0 and <= `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number > 0 and <= {high:g}")
        return value

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench.footprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=FABRIC, help="the lab's topology (default: the demo fabric)")
    parser.add_argument("--leaf", default="leaf1", help="the leaf of the CLI, RSS-at-scale and reroute rows")
    parser.add_argument("--runs", type=whole(1), default=9, help="runs of each CLI command and of the reroute")
    parser.add_argument("--idle-seconds", type=fraction(86400), default=120.0, help="the idle row's window")
    parser.add_argument("--uplinks", type=whole(1), default=200, help="the apply row's spine uplinks")
    parser.add_argument("--apply-rounds", type=whole(1), default=3)
    parser.add_argument("--vteps", type=whole(1), default=100, help="the reroute row's synthetic VTEPs")
    parser.add_argument("--tunnels", type=whole(0), default=1000, help="0: no RSS-at-scale row")
    parser.add_argument("--loss-runs", type=whole(1), default=5, help="silent failures of the loss row")
    parser.add_argument("--quota", type=fraction(100), default=None, metavar="PERCENT",
                        help="confine the measured tor-agent processes to one core and PERCENT %% of it")  # fmt: skip
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="the source tree of the tor-agent the CLI rows start (another: a baseline)")  # fmt: skip
    args = parser.parse_args(argv)
    args.wanted = [r for r in args.rows.split(",") if r]
    unknown = set(args.wanted) - set(ROWS)
    if unknown:
        parser.error(f"--rows: unknown rows {', '.join(sorted(unknown))} (rows: {', '.join(ROWS)})")
    if not (args.tree / "tor_agent" / "__init__.py").is_file():
        parser.error(f"--tree {args.tree}: no tor_agent package there (give a tor-agent source tree)")
    args.tree = args.tree.resolve()
    try:
        args.topo = topology.load(args.file)
    except topology.TopologyError as e:
        parser.error(f"--file: {e}")
    if args.leaf not in (leaves := [n.name for n in args.topo.by_role("leaf")]):
        parser.error(f"--leaf {args.leaf}: not a leaf of {args.file} (its leaves: {', '.join(leaves) or 'none'})")
    return args


def main(argv: Sequence[str]) -> int:
    """The bench: every row asked for, then the table."""
    args = parse_args(argv)
    topo, wanted = args.topo, args.wanted
    try:
        env = realise.tools_env(topo)
    except realise.LabError as e:
        raise SystemExit(f"cannot run: {e}") from e
    os.environ.setdefault("TOR_AGENT", env["TOR_AGENT"])
    # the measured tree's bytecode, as the Debian package's install (py3compile) leaves it on a switch
    compileall.compile_dir(args.tree / "tor_agent", quiet=1)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; tor-agent {env['TOR_AGENT']}")
    with lab_lock(topo.name):
        was_up = realise.is_up(topo)
        b = Bench(topo, args.leaf, args)
        if args.quota is not None:
            probe = CpuLimit(f"tor-agent-bench-{os.getpid()}-probe", args.quota)
            print(f"CPU: {probe.describe()}")
            probe.close()
        try:
            if "bringup" in wanted:
                bringup(b)
            elif not realise.is_up(topo):
                realise.up(topo)
                wait_healthy(topo, timeout=60)
            steps: dict[str, Callable[[Bench], None]] = {
                "cli": cli, "apply": apply, "idle": idle, "rss": rss, "reroute": reroute, "loss": loss,
            }  # fmt: skip
            for name in wanted:
                if name != "bringup":
                    steps[name](b)
        finally:
            for limit in b.limits:
                limit.close()
            if not was_up:
                realise.down(topo)
        table(b.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
