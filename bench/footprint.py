#!/usr/bin/python3
"""What tor-agent costs a switch, every row of the footprint table side by side with its peer, in one run.

Usage: bench/footprint.py [--file FABRIC] [--leaf NAME] [--runs N] [--idle-seconds S] [--uplinks N]
                          [--vteps N] [--tunnels N] [--loss-runs N] [--quota PERCENT] [--rows ROW,...]
Run by hand (root), not in CI. Holds the lab's machine-wide lock throughout (it waits while a test session
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
- loss: a silent uplink failure (nftables drop at the spine's end; BFD detects it) with UDP probes through
  the overlay (host to host) and the underlay (leaf loopback to loopback) at once: the overlay's loss
  window minus the underlay's, for the flows that cross the link.
`--quota P` confines every measured tor-agent process (the switches' agents, the CLI, the apply) to one core
and P % of it (bench/cpulimit.py; 10 roughly models a Pronto 3290-class 825 MHz core), the peers too where
they are commands the bench starts (vtysh, ovs-vsctl, frr-reload.py); FRR's and OVS's daemons are not.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frr_apply
import underlay_failover as lab
from cpulimit import CpuLimit

from tor_agent.ovs.routes import parse_route_show

REPO = Path(__file__).resolve().parents[1]
LAB_CLI = REPO / "labs" / "lab"
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
    topo: lab.topology.Topology
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


def tor_agent_binary(topo: lab.topology.Topology) -> str:
    return lab.realise.tools_env(topo)["TOR_AGENT"]


# --- timing commands inside a node ----------------------------------------------------------------------------

TIMER = """
import json, subprocess, sys, time
runs, commands = int(sys.argv[1]), json.loads(sys.argv[2])
sys.stdin.readline()  # placed (e.g. in a CPU quota group): go
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():  # interleaved: every command sees the same machine
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times[name].append(time.perf_counter() - start)
print(json.dumps(times))
"""


def time_in_node(
    topo: lab.topology.Topology, node: str, commands: dict[str, list[str]], runs: int, limit: CpuLimit | None
) -> dict[str, list[float]]:
    """Wall seconds of each command, run `runs` times interleaved inside `node` (confined by `limit`)."""
    full, env = lab.realise.exec_argv(topo, node, ["/usr/bin/python3", "-c", TIMER, str(runs), json.dumps(commands)])
    proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if limit is not None:
        limit.add(proc.pid)
    out, _ = proc.communicate("go\n", timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{node}: timing failed ({proc.returncode})")
    times: dict[str, list[float]] = json.loads(out)
    return times


IMPORTS = r"""
import json, os, re, statistics, subprocess, sys
repo, python, runs, argv = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
code = "\n".join([
    "import sys; sys.stderr.write('MARK' + chr(10)); sys.path.insert(0, %r)" % repo,
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
    done = subprocess.run([python, "-X", "importtime", "-c", code, *argv], capture_output=True, text=True)
    lines = done.stderr.split("MARK" + chr(10), 1)[-1].splitlines()
    found = [m for line in lines if (m := line_re.match(line))]
    totals.append(sum(int(m.group(2)) for m in found if not m.group(3)))  # the fastest run: least disturbed
    count = len(found)
    for m in found:
        group = m.group(4).split(".")[0] if m.group(4).split(".")[0] in GROUPS else "stdlib"
        by_group.setdefault(group, []).append(int(m.group(1)) / runs)
print(json.dumps([count, min(totals), {g: sum(v) for g, v in by_group.items()}]))
"""


def run_confined(topo: lab.topology.Topology, node: str, argv: list[str], limit: CpuLimit | None) -> str:
    """`argv` in `node`, confined by `limit` from its start on (it waits for a line on stdin); its stdout."""
    full, env = lab.realise.exec_argv(topo, node, ["/usr/bin/python3", "-c", GATE, *argv])
    proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if limit is not None:
        limit.add(proc.pid)
    out, _ = proc.communicate("go\n", timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{node}: {argv[0]} exited {proc.returncode}")
    return out


GATE = "import os, sys; sys.stdin.readline(); os.execvp(sys.argv[1], sys.argv[1:])"


def import_cost(
    topo: lab.topology.Topology, node: str, tree: Path, args: Sequence[str], limit: CpuLimit | None, runs: int = 5
) -> tuple[int, float, str]:
    """(modules `tor-agent ARGS` (from source `tree`, by /usr/bin/python3) imports after the interpreter's start,
    seconds importing them, and by whom: the fastest of `runs` runs of `python -X importtime`) in `node`."""
    argv = ["/usr/bin/python3", "-c", IMPORTS, str(tree), "/usr/bin/python3", str(runs), *args]
    count, micros, groups = json.loads(run_confined(topo, node, argv, limit))
    shares = ", ".join(f"{g} {us / 1000:.0f}" for g, us in sorted(groups.items(), key=lambda x: -x[1]))
    return int(count), float(micros) / 1e6, shares


INSTALLED = """#!/usr/bin/python3
# tor-agent as the Debian package installs it (/usr/bin/python3, no virtualenv), from this source tree.
import sys
sys.path.insert(0, {repo!r})
from tor_agent.cli import main
sys.exit(main())
"""


@contextlib.contextmanager
def installed_launcher(tree: Path) -> Iterator[str]:
    """A `tor-agent` started as on a switch: Debian's python3 and the package on its path, no virtualenv
    (whose site start-up alone costs ~10 ms more)."""
    with tempfile.TemporaryDirectory(prefix="footprint-", dir="/tmp") as tmp:
        path = Path(tmp, "tor-agent")
        path.write_text(INSTALLED.format(repo=str(tree)))
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
    b.add(Row("demo lab cold `up` to converged", f"{took:.2f} s", goal="<= 5 s", met=took <= 5.0,
              note=phases.group(0) if phases else ""))  # fmt: skip


def cli(b: Bench) -> None:
    print("\n[cli] commands in the leaf, interleaved, wall time", flush=True)
    with installed_launcher(b.args.tree) as agent:
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
        times = time_in_node(b.topo, b.leaf, commands, b.args.runs, limit)
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


def switches(topo: lab.topology.Topology) -> list[str]:
    return [n.name for n in (*topo.by_role("leaf"), *topo.by_role("spine"))]


def daemon_pid(topo: lab.topology.Topology, node: str, name: str) -> int:
    return int(lab.node_run(topo, node, "cat", f"/run/frr/{name}.pid").stdout)


def agent_status(topo: lab.topology.Topology, node: str) -> dict[str, Any]:
    return dict(json.loads(lab.node_run(topo, node, "cat", "/run/tor-agent/status.json").stdout))


def idle(b: Bench) -> None:
    seconds = b.args.idle_seconds
    print(f"\n[idle] CPU of every switch's agent over {seconds:g} s (its passes and processes included)", flush=True)
    lab.wait_healthy(b.topo)
    agents = {n: lab.agent_daemons(b.topo, n)[0] for n in switches(b.topo)}
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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss(b: Bench) -> None:
    print("\n[rss] resident memory of every switch's agent", flush=True)
    lab.wait_healthy(b.topo)
    python = interpreter_of(tor_agent_binary(b.topo))
    bare = float(lab.node_run(b.topo, b.leaf, "python3", "-c", BARE).stdout)
    worst, worst_node = 0.0, ""
    for n in switches(b.topo):
        agent = rss_mib(lab.agent_daemons(b.topo, n)[0])
        ospfd = rss_mib(daemon_pid(b.topo, n, "ospfd"))
        print(f"  {n:<7} agent {agent:5.1f} MB, ospfd {ospfd:4.1f} MB, bare python3 {bare:.1f} MB")
        if n in [x.name for x in b.topo.by_role("leaf")] and agent >= worst:
            worst, worst_node = agent, n
    steps, heavy = json.loads(lab.node_run(b.topo, b.leaf, python, "-c", BREAKDOWN, timeout=60).stdout)
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
    """(uplink bridge, the spine's address on it) of every uplink of the leaf."""
    return [(f"br-{link.uplink}", link.spine_address) for link in lab.fabric_links(b.topo, b.leaf)]


def ecmp(b: Bench) -> list[str]:
    hops: list[str] = []
    for bridge, gateway in leaf_uplinks(b):
        hops += ["nexthop", "via", gateway, "dev", bridge]
    return hops


def ovs_user_routes(b: Bench) -> dict[str, str]:
    shown = lab.node_run(b.topo, b.leaf, "ovs-appctl", "ovs/route/show").stdout
    return {str(r.prefix.network_address): r.device for r in parse_route_show(shown) if r.user}


def port_count(b: Bench) -> int:
    return len(lab.node_run(b.topo, b.leaf, "ovs-vsctl", "list-ports", "br-tor").stdout.split())


@contextlib.contextmanager
def applied_intent(b: Bench, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """`tor-agent apply` of the leaf's intent changed by `edit` (through its running agent); its own intent
    applied again on exit."""
    import yaml

    doc = lab.intent(b.topo, b.leaf)
    edit(doc)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="footprint-", dir="/tmp") as f:
        f.write(yaml.safe_dump(doc))
        f.flush()
        os.chmod(f.name, 0o644)
        try:
            lab.tor_agent(b.topo, b.leaf, "apply", f.name, check=True)
            yield
        finally:
            lab.tor_agent(b.topo, b.leaf, "apply", lab.INTENT, check=True)


def at_scale(b: Bench) -> None:
    n = b.args.tunnels
    print(f"  the leaf's agent with {n} tunnels (static peers over a covering route)...", flush=True)
    net = ipaddress.IPv4Network("198.19.0.0/20")
    peers = [str(net.network_address + 1 + i) for i in range(n)]
    before_ports = port_count(b)
    pid = lab.agent_daemons(b.topo, b.leaf)[0]
    idle_rss = rss_mib(pid)

    def many(doc: dict[str, Any]) -> None:
        doc["overlay"]["tunnels"] |= {"peers": peers, "bfd": False}

    lab.node_run(b.topo, b.leaf, "ip", "route", "add", str(net), "proto", "static", *ecmp(b))
    try:
        with applied_intent(b, many):
            lab.wait_until(lambda: port_count(b) >= before_ports + n and len(ovs_user_routes(b)) >= n, 120, 0.5,
                           f"{n} tunnels and their OVS routes")  # fmt: skip
            time.sleep(2 * 1.0)  # a settled agent: the passes that followed the change are over
            scaled = rss_mib(pid)
            status = agent_status(b.topo, b.leaf)
    finally:
        lab.node_run(b.topo, b.leaf, "ip", "route", "del", str(net), check=False)
    full = status.get("cpu", {}).get("passes", {}).get("full", {})
    b.add(Row(f"RSS per leaf agent, {n} tunnels", f"{scaled:.1f} MB", f"idle {idle_rss:.1f} MB", "<= 35 MB",
              scaled <= 35.0, f"{scaled - idle_rss:+.1f} MB for {n} tunnels (IDL replica, snapshot, model); the full "
              f"pass that made them took {full.get('last_cpu_s', 0) * 1000:.0f} ms of CPU"))  # fmt: skip
    lab.wait_until(lambda: port_count(b) <= before_ports, 60, 0.5, "the extra tunnels to go (after their hold-down)")


REROUTE = """
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from tor_agent.ovs.unixctl import UnixctlClient
batch, want_device, vteps = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = UnixctlClient("ovs-vswitchd", 5.0)
wanted = {f"User: {v}/32 dev {want_device} " for v in vteps}
def moved():  # cheap: the probe shares the CPUs with the agent it measures
    users = (line for line in client.call("ovs/route/show").splitlines() if line.startswith("User: "))
    return wanted <= {line[: line.find(" GW")] + " " for line in users}
sys.stdin.readline()
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
    lab.wait_healthy(b.topo)
    prefix = ipaddress.IPv4Network(lab.intent(b.topo, b.leaf)["overlay"]["tunnels"]["discover"]["ospf_prefix"])
    vteps = [str(prefix.network_address + 100 + i) for i in range(v)]
    (bridge_a, _), (bridge_b, gw_b) = leaf_uplinks(b)[:2]
    with tempfile.TemporaryDirectory(prefix="footprint-", dir="/tmp") as tmp:
        add, to_b, back = (Path(tmp, name) for name in ("add", "to_b", "back"))
        both = " ".join(ecmp(b))
        add.write_text("".join(f"route add {x}/32 proto ospf {both}\n" for x in vteps))
        to_b.write_text("".join(f"route replace {x}/32 proto ospf via {gw_b} dev {bridge_b}\n" for x in vteps))
        back.write_text("".join(f"route replace {x}/32 proto ospf {both}\n" for x in vteps))
        os.chmod(tmp, 0o755)
        lab.node_run(b.topo, b.leaf, "ip", "-batch", str(add))
        try:
            lab.wait_until(lambda: set(vteps) <= set(ovs_user_routes(b)), 60, 0.2, f"OVS routes to the {v} VTEPs")
            lab.wait_until(lambda: settled(b), 60, 0.5, "the agent to have nothing left to do")
            limit = b.limit("reroute")
            if limit is not None:
                limit.add(lab.agent_daemons(b.topo, b.leaf)[0])
            figures = []
            for _ in range(b.args.runs):
                lab.wait_until(lambda: settled(b), 60, 0.2, "the agent to be done with the previous move")
                routes = ovs_user_routes(b)
                moving = sum(1 for x in vteps if routes.get(x) != bridge_b)
                figures.append((moving, one_reroute(b, to_b, bridge_b, vteps)))
                lab.node_run(b.topo, b.leaf, "ip", "-batch", str(back))
                lab.wait_until(lambda: {ovs_user_routes(b).get(x) for x in vteps} == {bridge_a, bridge_b}, 30, 0.1,
                               "the VTEPs spread over both uplinks again")  # fmt: skip
            processes = appctl_processes(b, v)
        finally:
            lab.node_run(b.topo, b.leaf, "ip", "-batch", "-", stdin="".join(f"route del {x}/32\n" for x in vteps),
                         check=False)  # fmt: skip
    last = statistics.median(f["from_last"] for _, f in figures)
    first = statistics.median(f["from_first"] for _, f in figures)
    kernel = statistics.median(f["kernel"] for _, f in figures)
    moved = statistics.median(m for m, _ in figures)
    b.add(Row(f"overlay reroute, {v} VTEP routes moving at once (synthetic, in {b.leaf})",
              f"{ms(last)} after the kernel's last change", f"{v} ovs-appctl processes {ms(processes)}",
              "<= 30 ms", last <= 0.030,
              f"median of {len(figures)} runs, ~{moved:.0f} routes moved each; {ms(first)} from the kernel's first "
              f"change ({v} route replaces took the kernel {ms(kernel)})"))  # fmt: skip


def settled(b: Bench) -> bool:
    """The leaf's agent changed nothing in its last pass, a second ago or more."""
    status = agent_status(b.topo, b.leaf)
    last = status.get("last_pass") or {}
    return not last.get("changed", True) and time.time() - float(status.get("time", 0)) >= 1.0


def one_reroute(b: Bench, batch: Path, device: str, vteps: list[str]) -> dict[str, float]:
    full, env = lab.realise.exec_argv(b.topo, b.leaf, ["/usr/bin/python3", "-c", REROUTE, str(REPO), str(batch),
                                                       device, json.dumps(vteps)])  # fmt: skip
    proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    out, _ = proc.communicate("go\n", timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("the reroute probe failed")
    figures: dict[str, float] = json.loads(out)
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
    return float(lab.node_run(b.topo, b.leaf, "/usr/bin/python3", "-c", script, timeout=120).stdout)


# --- loss: overlay and underlay in the same failure -------------------------------------------------------------


@dataclass(frozen=True)
class OneWay:
    """One probe flow: UDP from `src` (node, address) to `dst`, from source port `sport`."""

    src: tuple[str, str]
    dst: tuple[str, str]
    sport: int

    @property
    def key(self) -> str:
        """How the receiver names the flow."""
        return f"{self.src[1]}:{self.sport}"


@dataclass
class Flows:
    """Probe flows (underlay_failover.py's probe-send and probe-recv inside the nodes), one receiver per address."""

    topo: lab.topology.Topology
    flows: list[OneWay]
    procs: list[Any] = field(default_factory=list)
    receivers: list[Any] = field(default_factory=list)

    def __enter__(self) -> Flows:
        script = str(REPO / "bench" / "underlay_failover.py")
        try:
            for node, address in sorted({f.dst for f in self.flows}):
                argv = [sys.executable, script, "probe-recv", address, str(lab.PROBE_PORT)]
                self.receivers.append(lab._Process(self.topo, node, argv))
            self.procs += self.receivers
            lab.wait_until(lambda: all(r.alive() and r.seen("ready") for r in self.receivers), 10, 0.02, "receivers")
            for (src, dst), sports in self._senders().items():
                argv = [sys.executable, script, "probe-send", src[1], dst[1], str(lab.PROBE_PORT),
                        str(lab.PROBE_INTERVAL_S), *map(str, sports)]  # fmt: skip
                self.procs.append(lab._Process(self.topo, src[0], argv))
            want = {f.key for f in self.flows}
            lab.wait_until(lambda: want <= self.firsts(), 10, 0.02, "every probe flow")
        except BaseException:
            self.kill()
            raise
        return self

    def _senders(self) -> dict[tuple[tuple[str, str], tuple[str, str]], list[int]]:
        senders: dict[tuple[tuple[str, str], tuple[str, str]], list[int]] = {}
        for f in self.flows:
            senders.setdefault((f.src, f.dst), []).append(f.sport)
        return senders

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        for p in self.procs:
            p.kill()

    def firsts(self) -> set[str]:
        return {e["flow"] for r in self.receivers for e in r.seen("first")}

    def gaps(self) -> list[dict[str, Any]]:
        return [e for r in self.receivers for e in r.seen("gap")]

    def window(self, flows: Sequence[OneWay], since_ns: int) -> float:
        """The longest gap closed after `since_ns` among `flows`."""
        keys = {f.key for f in flows}
        gaps = [g for g in self.gaps() if g["flow"] in keys and g["to_ns"] > since_ns]
        return max((g["to_ns"] - g["from_ns"]) / 1e9 for g in gaps)

    def closed(self, flows: Sequence[OneWay], since_ns: int) -> bool:
        """Every one of `flows` lost datagrams sent after `since_ns` and receives again."""
        return {f.key for f in flows} <= {g["flow"] for g in self.gaps() if g["to_ns"] > since_ns}


def tenant_hosts(topo: lab.topology.Topology) -> list[tuple[str, str, str]]:
    """(host, its tenant address, its leaf) of every host with a tenant address, one per leaf."""
    leaves = {x.name for x in topo.by_role("leaf")}
    found: dict[str, tuple[str, str, str]] = {}
    for host in sorted(h.name for h in topo.by_role("host")):
        lines = [e for e in topo.nodes[host].exec if e.startswith("ip address add")]
        leaf = topo.links_of(host)[0][1].node
        if lines and leaf in leaves and leaf not in found:
            found[leaf] = (host, str(ipaddress.IPv4Interface(lines[0].split()[3]).ip), leaf)
    return list(found.values())


def failure_plan(b: Bench) -> tuple[lab.Link, list[OneWay], list[OneWay]] | None:
    """A leaf-spine link to fail, with the overlay flows (host to host) and underlay flows (loopback to loopback)
    that cross it: the link one leaf's OVS route to another leaf's VTEP takes, for a pair of leaves whose kernel
    path between their loopbacks crosses it too (the kernel hashes on addresses: each pair has one path)."""
    hosts = tenant_hosts(b.topo)
    for (host_a, addr_a, leaf_a), (host_b, addr_b, leaf_b) in ((x, y) for x in hosts for y in hosts if x != y):
        vtep_a, vtep_b = lab.loopback(b.topo, leaf_a), lab.loopback(b.topo, leaf_b)
        link = link_of_ovs_route(b, leaf_a, vtep_b)  # host_a -> host_b's tunnel leaves leaf_a over this link
        both = [lab.Flow(leaf_a, leaf_b, vtep_a, vtep_b, lab.PROBE_SPORTS[0]),
                lab.Flow(leaf_b, leaf_a, vtep_b, vtep_a, lab.PROBE_SPORTS[0])]  # fmt: skip
        crossing = lab.crossing(b.topo, both, link)
        underlay = [OneWay((f.src, f.src_address), (f.dst, f.dst_address), f.sport) for f in crossing]
        if not underlay:
            continue
        overlay = [OneWay((host_a, addr_a), (host_b, addr_b), lab.PROBE_SPORTS[0])]
        if link_of_ovs_route(b, leaf_b, vtep_a).spine == link.spine:
            overlay.append(OneWay((host_b, addr_b), (host_a, addr_a), lab.PROBE_SPORTS[0]))
        return link, overlay, underlay
    return None


def loss(b: Bench) -> None:
    print("\n[loss] silent uplink failure: overlay (host to host) and underlay (loopbacks) probes at once", flush=True)
    lab.wait_healthy(b.topo)
    plan = failure_plan(b)
    if plan is None:
        why = "not measured: no pair of leaves whose tunnel and underlay path share a link"
        b.add(Row("overlay loss, silent uplink failure", why))
        return
    link, overlay, underlay = plan
    print(
        f"  failing {link.leaf}:{link.uplink} - {link.spine}:{link.spine_iface}: {len(overlay)} overlay, "
        f"{len(underlay)} underlay flows cross it",
        flush=True,
    )
    results = []
    for _ in range(b.args.loss_runs):
        with Flows(b.topo, overlay + underlay) as flows:
            with lab.silent_failure(b.topo, link.spine, link.spine_iface) as started:
                lab.wait_until(lambda: flows.closed(overlay + underlay, started), 10, 0.02, "both to recover")
            over, under = flows.window(overlay, started - 1), flows.window(underlay, started - 1)
        results.append((over, under))
        print(f"  overlay {ms(over)}, underlay {ms(under)}: the agent adds {ms(over - under)}", flush=True)
        lab.wait_healthy(b.topo)
    over, under = (statistics.median(x) for x in zip(*results, strict=True))
    added = statistics.median(o - u for o, u in results)
    b.add(Row(f"overlay loss, silent uplink failure ({link.leaf}:{link.uplink} - {link.spine})",
              f"{ms(over)}, the agent adds {ms(added)}", f"underlay {ms(under)}", "adds <= 20 ms", added <= 0.020,
              f"median of {len(results)} failures, each the longest gap of the flows crossing the link (a "
              f"datagram every 2 ms): {len(overlay)} overlay, {len(underlay)} underlay flows; BFD as the intents "
              "set it"))  # fmt: skip


def link_of_ovs_route(b: Bench, leaf: str, vtep: str) -> lab.Link:
    shown = lab.node_run(b.topo, leaf, "ovs-appctl", "ovs/route/show").stdout
    device = {str(r.prefix.network_address): r.device for r in parse_route_show(shown) if r.user}[vtep]
    return next(link for link in lab.fabric_links(b.topo, leaf) if f"br-{link.uplink}" == device)


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


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=lab.FABRIC)
    parser.add_argument("--leaf", default="leaf1")
    parser.add_argument("--runs", type=int, default=9, help="runs of each CLI command and of the reroute")
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--uplinks", type=int, default=200)
    parser.add_argument("--apply-rounds", type=int, default=3)
    parser.add_argument("--vteps", type=int, default=100)
    parser.add_argument("--tunnels", type=int, default=1000, help="0: no RSS-at-scale row")
    parser.add_argument("--loss-runs", type=int, default=5)
    parser.add_argument("--quota", type=float, default=None, metavar="PERCENT",
                        help="confine the measured tor-agent processes to one core and PERCENT %% of it")  # fmt: skip
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="the source tree of the tor-agent the CLI rows start (another: a baseline)")  # fmt: skip
    args = parser.parse_args(argv)
    wanted = [r for r in args.rows.split(",") if r]
    unknown = set(wanted) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    env = lab.realise.tools_env(lab.topology.load(args.file))
    os.environ.setdefault("TOR_AGENT", env["TOR_AGENT"])
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; tor-agent {env['TOR_AGENT']}")
    topo = lab.topology.load(args.file)
    with lab.lab_lock(topo.name):
        was_up = lab.realise.is_up(topo)
        b = Bench(topo, args.leaf, args)
        if args.quota is not None:
            probe = CpuLimit(f"tor-agent-bench-{os.getpid()}-probe", args.quota)
            print(f"CPU: {probe.describe()}")
            probe.close()
        try:
            if "bringup" in wanted:
                bringup(b)
            elif not lab.realise.is_up(topo):
                lab.realise.up(topo)
            for name in wanted:
                if name != "bringup":
                    globals()[name](b)
        finally:
            for limit in b.limits:
                limit.close()
            if not was_up:
                lab.realise.down(topo)
        table(b.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
