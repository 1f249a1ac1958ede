#!/usr/bin/python3
"""How the namespace lab and the agents scale with the fabric: 2x4, 4x8 and 4x16 (spines x leaves, one host
per leaf, one controller), generated here, rendered with `tor-agent fabric render` and brought up with
`labs/lab up`, one size after the other.

Usage (as root, from the repository root): python3 -m bench.fabric_scale [--sizes 2x4,4x8,4x16]
       [--passes N] [--idle-seconds S] [--budget S]
Per size:
- started: `labs/lab up --no-wait` as a user runs it, wall clock from the command to its return (namespaces,
  links, every node's daemons started: on switches FRR, OVS, lldpd and tor-agent's first pass);
- converged: from the same start until every leaf's kernel routes every other leaf's VTEP over one nexthop
  per spine (probed every 0.5 s, one route dump per leaf: the lab's own `up` wait probes every 50 ms,
  enough to slow a 4x16 lab on 2 cores);
- mesh: from the same start until every leaf has a GRE tunnel with an OpenFlow port to every other leaf;
- each agent: its full-pass time (SIGHUP, the pass the daemon then runs, median of --passes), CPU used from
  its start to the mesh, idle CPU over --idle-seconds, and resident memory;
- the machine's load average and a fixed piece of reference work timed beside the passes (the machine is
  shared: a loaded machine slows every pass alike, so the pass time is also given divided by it);
- then, per leaf-agent figure against the number of VTEPs: the least-squares slope, the slope of each step
  between sizes, and the last step's slope as a ratio to the first step's, measured in the same run
  (about 1: linear; well above 1: growing faster than the VTEPs).
Goal (the fabric issue): 4x16 converged with a full mesh in <= 60 s on 2 cores; per-agent cost linear in
the number of VTEPs. Holds each generated lab's machine-wide lock; takes every lab down again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labs.labkit.fabric import loopback
from labs.labkit.lab import CLAB, LAB_CLI, REPO, lab_lock
from labs.labkit.nodes import AGENT_PID, agent_status, node_run, rss_mib
from labs.nslab import topology
from tor_agent.wait import WaitTimeout, wait_until

SETTINGS = CLAB / "fabric.settings.yml"  # the lab's: fast OSPF and BFD timers, userspace OVS, GRE key
SIZES = ((2, 4), (4, 8), (4, 16))
UP = re.compile(r"up in ([\d.]+)s .*underlay converged ([\d.]+)s")
TICKS = os.sysconf("SC_CLK_TCK")
MESH_GOAL_S = 60.0
POLL_S = 0.5  # the convergence probes run in 16 leaves at once: light enough not to slow what they measure
REFERENCE_ITERATIONS = 3_000_000


def reference_work() -> float:
    """Wall seconds of a fixed piece of Python work: how fast this (shared) machine runs right now."""
    start = time.monotonic()
    total = 0
    for i in range(REFERENCE_ITERATIONS):
        total += i & 7
    return time.monotonic() - start


def generate(spines: int, leaves: int) -> dict[str, Any]:
    """A containerlab topology: every leaf's ethS to spine S, every spine's ethL to leaf L, one host per leaf
    on the leaf's eth(spines+1), a controller on the management network."""
    name = f"scale-{spines}x{leaves}"
    rendered = [f"configs/__clabNodeName__/{f}:/etc/tor-agent/{f}:ro" for f in ("agent.yaml", "fabric.yaml")]
    nodes: dict[str, Any] = {f"spine{s}": {"group": "spine"} for s in range(1, spines + 1)}
    nodes |= {f"leaf{n}": {"group": "leaf"} for n in range(1, leaves + 1)}
    nodes |= {
        f"host{n}": {"group": "host", "exec": [f"ip address add 198.51.100.{n}/24 dev eth1"]}
        for n in range(1, leaves + 1)
    }
    nodes["controller"] = {"labels": {"tor-agent.role": "controller"}, "mgmt-ipv4": "192.0.2.250"}
    links = [
        {"endpoints": [f"spine{s}:eth{n}", f"leaf{n}:eth{s}"], "mtu": 9000}
        for n in range(1, leaves + 1)
        for s in range(1, spines + 1)
    ]
    links += [{"endpoints": [f"leaf{n}:eth{spines + 1}", f"host{n}:eth1"], "mtu": 1500} for n in range(1, leaves + 1)]
    groups = {
        "spine": {"labels": {"tor-agent.role": "spine"}, "binds": rendered},
        "leaf": {"labels": {"tor-agent.role": "leaf"}, "binds": rendered},
        "host": {"labels": {"tor-agent.role": "host"}},
    }
    return {
        "name": name,
        "mgmt": {"network": f"{name}-mgmt", "ipv4-subnet": "192.0.2.0/24"},
        "topology": {"defaults": {"kind": "linux", "image": "tor-agent-lab:latest"}, "groups": groups,
                     "nodes": nodes, "links": links},
    }  # fmt: skip


@dataclass
class Agent:
    node: str
    role: str
    pid: int
    cpu_to_mesh_s: float = 0.0
    idle_pct: float = 0.0
    rss_mb: float = 0.0
    passes: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)  # stage label -> seconds, per pass

    @property
    def pass_s(self) -> float:
        return statistics.median(self.passes) if self.passes else float("nan")


@dataclass
class Size:
    spines: int
    leaves: int
    started_s: float = 0.0  # `labs/lab up --no-wait`: namespaces, links, every node's daemons started
    converged_s: float = 0.0
    mesh_s: float = 0.0
    agents: list[Agent] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before `up` and at the end
    reference_s: float = 0.0  # the reference work's wall time while this size ran (the machine's speed then)

    @property
    def label(self) -> str:
        return f"{self.spines}x{self.leaves}"

    def leaf_agents(self) -> list[Agent]:
        return [a for a in self.agents if a.role == "leaf"]


def tor_agent() -> str:
    found = os.environ.get("TOR_AGENT") or shutil.which("tor-agent") or str(REPO / ".venv" / "bin" / "tor-agent")
    return found


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def cpu_s(pid: int) -> float:
    """utime + stime of `pid` (all threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tunnels_up(topo: topology.Topology, leaf: str) -> int:
    """GRE ports of `leaf`'s OVS with an OpenFlow port number."""
    out = node_run(topo, leaf, "ovs-vsctl", "--format=json", "--columns=ofport", "find", "Interface", "type=gre")
    rows = json.loads(out.stdout)["data"]
    return sum(1 for (ofport,) in rows if isinstance(ofport, int) and ofport > 0)


def full_ecmp(topo: topology.Topology, leaf: str, vteps: dict[str, str], spines: int) -> bool:
    """`leaf`'s kernel routes every other leaf's VTEP over one nexthop per spine (a single dump per leaf)."""
    routes = json.loads(node_run(topo, leaf, "ip", "-j", "route", "show", "proto", "ospf").stdout or "[]")
    width = {r["dst"]: len(r.get("nexthops", [])) or 1 for r in routes}
    return all(width.get(vtep) == spines for other, vtep in vteps.items() if other != leaf)


def mesh_complete(topo: topology.Topology, leaves: list[str], pool: ThreadPoolExecutor) -> bool:
    return all(n == len(leaves) - 1 for n in pool.map(lambda leaf: tunnels_up(topo, leaf), leaves))


def full_pass(topo: topology.Topology, agent: Agent, budget: float) -> float:
    """SIGHUP the agent (a reload: a full pass follows at once) and return that pass's own duration."""
    before = int(agent_status(topo, agent.node)["passes"])
    os.kill(agent.pid, signal.SIGHUP)

    def done() -> dict[str, Any] | None:
        status = agent_status(topo, agent.node)
        return status if int(status["passes"]) > before and status.get("last_pass") else None

    status = wait_until(done, budget, 0.05, f"{agent.node}: the pass after SIGHUP")
    assert status is not None  # wait_until returns only a truthy value
    for stage in status["last_pass"]["stages"]:
        agent.stages.setdefault(stage["label"], []).append(float(stage["seconds"]))
    return float(status["last_pass"]["seconds"])


def measure(spines: int, leaves: int, work: Path, args: argparse.Namespace, env: dict[str, str]) -> Size:
    size = Size(spines, leaves)
    lab_dir = work / size.label
    lab_dir.mkdir()
    path = lab_dir / "fabric.clab.yml"
    path.write_text(yaml.safe_dump(generate(spines, leaves), sort_keys=False))
    run([tor_agent(), "fabric", "render", str(path), "--settings", str(SETTINGS), "--output-dir",
         str(lab_dir / "configs")], timeout=120)  # fmt: skip
    topo = topology.load(path)
    names = [n.name for n in topo.by_role("leaf")]
    with lab_lock(topo.name), ThreadPoolExecutor(max_workers=4) as pool:
        run([str(LAB_CLI), "down", str(path)], timeout=120, env=env)
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        try:
            said = run([str(LAB_CLI), "up", str(path), "--no-wait"], timeout=args.budget + 120, env=env)
            size.started_s = time.monotonic() - start
            vteps = {leaf: loopback(topo, leaf) for leaf in names}

            def converged() -> bool:
                return all(pool.map(lambda leaf: full_ecmp(topo, leaf, vteps, spines), names))

            wait_until(converged, args.budget, POLL_S, f"{size.label}: full ECMP between every pair of leaves")
            size.converged_s = time.monotonic() - start
            wait_until(lambda: mesh_complete(topo, names, pool), args.budget, POLL_S, f"{size.label}: the tunnel mesh")
            size.mesh_s = time.monotonic() - start
            for role in ("spine", "leaf"):
                for node in topo.by_role(role):
                    pid = int(node_run(topo, node.name, "cat", AGENT_PID).stdout)  # not a scan: it forks children
                    size.agents.append(Agent(node.name, role, pid, cpu_to_mesh_s=cpu_s(pid)))
            print(f"  {said.strip().splitlines()[-1]}", flush=True)
            before = {a.pid: cpu_s(a.pid) for a in size.agents}
            time.sleep(args.idle_seconds)  # the idle window measured
            for a in size.agents:
                a.idle_pct = (cpu_s(a.pid) - before[a.pid]) / args.idle_seconds * 100
                a.rss_mb = rss_mib({a.pid})
            references = []
            for _ in range(args.passes):
                references.append(reference_work())
                for a in size.agents:
                    a.passes.append(full_pass(topo, a, args.budget))
            size.reference_s = statistics.median(references)
            size.load = (load_before, os.getloadavg()[0])
        finally:
            run([str(LAB_CLI), "down", str(path)], timeout=120, env=env)
    return size


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")
    return slope, my - slope * mx


def report_size(s: Size) -> None:
    verdict = "meets" if s.mesh_s <= MESH_GOAL_S else "MISSES"
    machine = f"load average {s.load[0]:.1f} before, {s.load[1]:.1f} after; reference work {s.reference_s:.2f} s"
    fabric = f"{s.spines} spines, {s.leaves} leaves ({s.leaves} VTEPs), {s.leaves} hosts, 1 controller"
    print(f"\n{s.label}: {fabric}; {machine}")
    print(f"  nodes started {s.started_s:6.1f} s; converged underlay {s.converged_s:6.1f} s; full tunnel mesh "
          f"{s.mesh_s:6.1f} s (goal {MESH_GOAL_S:g} s: {verdict})")  # fmt: skip
    for role in ("leaf", "spine"):
        agents = [a for a in s.agents if a.role == role]
        if not agents:
            continue
        passes = [a.pass_s * 1000 for a in agents]
        cpu = statistics.median(a.cpu_to_mesh_s for a in agents)
        idle = [a.idle_pct for a in agents]
        rss = [a.rss_mb for a in agents]
        parts = [
            f"full pass median {statistics.median(passes):6.0f} ms (max {max(passes):.0f})",
            f"CPU to the mesh median {cpu:5.2f} s",
            f"idle {statistics.median(idle):4.2f} % of a core (max {max(idle):.2f})",
            f"RSS median {statistics.median(rss):5.1f} MB (max {max(rss):.1f})",
        ]
        print(f"  {role} agents ({len(agents)}): {'; '.join(parts)}")
        labels = list(dict.fromkeys(label for a in agents for label in a.stages))
        by_stage = [(label, statistics.median(x for a in agents for x in a.stages.get(label, []))) for label in labels]
        print(f"    full pass by stage (median ms): {', '.join(f'{k} {v * 1000:.0f}' for k, v in by_stage)}")


FIGURES: tuple[tuple[str, Callable[[Agent], float]], ...] = (
    ("full pass (ms)", lambda a: a.pass_s * 1000),
    ("CPU to the mesh (s)", lambda a: a.cpu_to_mesh_s),
    ("idle CPU (% of a core)", lambda a: a.idle_pct),
    ("RSS (MB)", lambda a: a.rss_mb),
)


def report_slopes(sizes: list[Size]) -> None:
    """Per leaf-agent figure against the number of VTEPs: the least-squares slope, the slope of each step
    between sizes, and the last step's slope as a ratio to the first's (1.0: linear; the baseline is this run's
    first step). The full-pass time is given raw and divided by the reference work timed beside it (the
    machine is shared: a loaded machine slows every pass alike)."""
    if len(sizes) < 2:
        return
    print("\nleaf agents against the number of VTEPs")
    xs = [float(s.leaves) for s in sizes]
    for label, figure in FIGURES:
        ys = [statistics.median(figure(a) for a in s.leaf_agents()) for s in sizes]
        _slope_line(label, xs, ys)
        if label.startswith("full pass"):
            _slope_line("  / reference work", xs, [y / s.reference_s / 1000 for y, s in zip(ys, sizes, strict=True)])
    _slope_line("full mesh (s)", xs, [s.mesh_s for s in sizes])


def _slope_line(label: str, xs: list[float], ys: list[float]) -> None:
    slope, intercept = fit(xs, ys)
    steps = [(y1 - y0) / (x1 - x0) for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False)]
    ratio = f"{steps[-1] / steps[0]:.2f}" if len(steps) > 1 and steps[0] else "n/a"
    values = " -> ".join(f"{y:.3g}" for y in ys)
    print(f"  {label:<24} {values}; slope {slope:.3g}/VTEP (intercept {intercept:.3g}); steps "
          f"{', '.join(f'{x:.3g}' for x in steps)}/VTEP; last/first step {ratio}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(f"{s}x{n}" for s, n in SIZES))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds allowed to converge and to mesh")
    args = parser.parse_args()
    env = dict(os.environ)
    env["TOR_AGENT"] = tor_agent()
    print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB")
    sizes = []
    with tempfile.TemporaryDirectory(prefix="fabric-scale-") as tmp:
        for spec in args.sizes.split(","):
            spines, leaves = (int(x) for x in spec.split("x"))
            print(f"{spec}: rendering and bringing it up ...", flush=True)
            try:
                sizes.append(measure(spines, leaves, Path(tmp), args, env))
            except (RuntimeError, subprocess.TimeoutExpired, WaitTimeout) as e:  # say so, go on with the next size
                print(f"{spec}: NOT MEASURED: {e}", flush=True)
                continue
            report_size(sizes[-1])
    report_slopes(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
