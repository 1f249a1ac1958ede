#!/usr/bin/python3
"""What `tor-agent run` costs on a lab switch: start to reconciled, idle CPU, resident memory.

Usage (as root, from the repository root): python3 -m bench.agent_footprint [--runs N] [--idle-seconds S]
       [--file FABRIC] [--leaf NAME]
Run by hand, not in CI. Uses the running demo fabric, or brings it up (and down afterwards), under
the lab's machine-wide lock (it waits while a test session has the fabric).

- start: the leaf's agent is stopped (SIGTERM) and started again by `node-start agent`, as systemd would;
  the figure is node-start's, from the exec to the status file saying `ready` for the new pid (the first
  full pass done: links, FRR, OVS, peers, tunnels, OVS routes all checked). Baseline: `tor-agent diff` in the same node,
  a fresh process reading the same state (interpreter start and imports included in both).
- idle CPU: utime+stime of every switch's agent over the window (full passes included), per node.
  Baseline: the same node's ospfd over the same window (1 s hellos, BFD in bfdd).
- RSS: every agent's VmRSS at the end. Baselines: a bare python3, and ospfd.
Targets (the service issue): start <= 2 s, idle CPU <= 0.2 % of a core, RSS <= 35 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

from labs.labkit.fabric import wait_healthy
from labs.labkit.lab import FABRIC, NODE_START, running_lab
from labs.labkit.nodes import INTENT, agent_daemons, node_run, rss_mib, tor_agent_binary
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

STARTED = re.compile(r"first pass done ([\d.]+) s after its exec")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of `pid` (all threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def daemon_pid(topo: Topology, node: str, name: str) -> int:
    return int(node_run(topo, node, "cat", f"/run/frr/{name}.pid").stdout)


def restart_once(topo: Topology, leaf: str) -> float:
    """Stop the leaf's agent, start it again as the lab does (`node-start agent`), return seconds from its exec
    to its first pass done, as node-start measured them."""
    (old,) = agent_daemons(topo, leaf)
    os.kill(old, 15)
    wait_until(lambda: not Path(f"/proc/{old}").exists(), 30, 0.02, "the stopped agent to exit")
    said = node_run(topo, leaf, str(NODE_START), "agent", timeout=60).stdout
    status = json.loads(node_run(topo, leaf, "cat", "/run/tor-agent/status.json").stdout)
    if not status["last_pass"]["ok"]:
        raise RuntimeError(f"{leaf}: the restarted agent's first pass had problems (see /var/log/tor-agent.log)")
    found = STARTED.search(said)
    if found is None:
        raise RuntimeError(f"{leaf}: node-start agent said {said!r}")
    return float(found[1])


def timed_diff(topo: Topology, leaf: str, agent: str) -> float:
    start = time.monotonic()
    node_run(topo, leaf, agent, "diff", INTENT, timeout=60, check=False)
    return time.monotonic() - start


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def bench_start(topo: Topology, leaf: str, runs: int) -> None:
    agent = tor_agent_binary(topo)
    starts = [restart_once(topo, leaf) for _ in range(runs)]
    diffs = [timed_diff(topo, leaf, agent) for _ in range(runs)]
    start, diff = statistics.median(starts), statistics.median(diffs)
    print(
        f"start to reconciled ({leaf}): median {start:.2f} s (min {min(starts):.2f}, max {max(starts):.2f}; "
        f"{runs} runs); `tor-agent diff` {diff:.2f} s; ratio {start / diff:.2f}x; target 2 s: {verdict(start <= 2)}"
    )


def switches(topo: Topology) -> list[str]:
    return [n.name for n in (*topo.by_role("leaf"), *topo.by_role("spine"))]


def bench_idle(topo: Topology, seconds: float) -> None:
    agents = {n: agent_daemons(topo, n)[0] for n in switches(topo)}
    ospfd = {n: daemon_pid(topo, n, "ospfd") for n in agents}
    before = {n: (cpu_s(agents[n]), cpu_s(ospfd[n])) for n in agents}
    time.sleep(seconds)  # the measurement window
    worst = 0.0
    for n in agents:
        agent = (cpu_s(agents[n]) - before[n][0]) / seconds * 100
        base = (cpu_s(ospfd[n]) - before[n][1]) / seconds * 100
        worst = max(worst, agent)
        ratio = f"{agent / base:.1f}x" if base else "n/a"
        print(f"idle CPU {n:<7} agent {agent:5.2f} % of a core, ospfd {base:5.2f} %, ratio {ratio}")
    print(f"idle CPU worst {worst:.2f} % over {seconds:g} s; target 0.2 %: {verdict(worst <= 0.2)}")


def bench_rss(topo: Topology) -> None:
    nodes = switches(topo)
    rss = {n: rss_mib({agent_daemons(topo, n)[0]}) for n in nodes}
    bare = float(node_run(topo, nodes[0], "python3", "-c", BARE_RSS).stdout)
    for n in nodes:
        ospfd = rss_mib({daemon_pid(topo, n, "ospfd")})
        print(f"RSS {n:<7} agent {rss[n]:5.1f} MB, ospfd {ospfd:5.1f} MB, bare python3 {bare:.1f} MB")
    top = max(rss.values())
    print(f"RSS worst {top:.1f} MB = {top / bare:.1f}x a bare python3; target 35 MB: {verdict(top <= 35)}")


BARE_RSS = "print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--file", type=Path, default=FABRIC)
    parser.add_argument("--leaf", default="leaf1")
    args = parser.parse_args(argv)
    with running_lab(args.file) as topo:
        wait_healthy(topo)
        bench_start(topo, args.leaf, args.runs)
        wait_healthy(topo)
        bench_idle(topo, args.idle_seconds)
        bench_rss(topo)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
