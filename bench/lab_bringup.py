#!/usr/bin/python3
"""Measure the namespace lab: `labs/lab up` to a converged underlay, `labs/lab down`, and what is left.

Usage (as root, from the repository root): python3 -m bench.lab_bringup [--runs N] [FILE ...]
Default files: the demo fabric and the 3x4 fabric. Each run is the CLI as a user runs it (wall clock,
Python start included): `up` returns once every OSPF adjacency is Full, every BFD session up, every leaf
has full ECMP to every other leaf, OVS answers on every leaf and the controller listens. Targets (the lab
issue): up <= 10 s for the demo fabric, down <= 5 s, nothing left afterwards. Holds the lab's machine-wide
lock (as the e2e tests do) for each file, so it waits while a test session has that lab.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from labs.labkit.lab import FABRIC, FABRIC_3X4, LAB_CLI, REPO, lab_lock
from labs.labkit.nodes import rss_mib
from labs.nslab import procs, realise, state, topology

FILES = [FABRIC, FABRIC_3X4]
PHASES = re.compile(r"up in ([\d.]+)s \(namespaces\+links ([\d.]+)s, holders ([\d.]+)s, node start ([\d.]+)s")


def lab(*args: str, env: dict[str, str]) -> tuple[float, str]:
    """Run labs/lab; return (wall seconds, stdout); exit on failure."""
    start = time.monotonic()
    done = subprocess.run([str(LAB_CLI), *args], capture_output=True, text=True, timeout=300, env=env, check=False)
    took = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"labs/lab {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return took, done.stdout


def leftovers(topo: topology.Topology, pids: set[int]) -> list[str]:
    """Namespaces, processes or state of the lab that survived `down`."""
    names = {topo.netns(n) for n in topo.nodes} | {topo.mgmt_netns}
    left = [f"netns {n}" for n in sorted(names & set(procs.netns_list()))]
    left += [f"pid {p}" for p in sorted(pids) if procs.alive(p)]
    left += [f"state {state.lab_dir(topo.name)}"] if state.lab_dir(topo.name).exists() else []
    return left


def one_run(topo: topology.Topology, env: dict[str, str]) -> dict[str, float]:
    """up, measure, down, check; the figures of one run."""
    up_s, out = lab("up", str(topo.path), env=env)
    phases = PHASES.search(out)
    st = state.load(topo.name)
    pids = realise.lab_pids(realise.lab_namespaces(topo.name, list(topo.nodes), st), st)
    memory = rss_mib(pids)
    down_s, _ = lab("down", str(topo.path), env=env)
    left = leftovers(topo, pids)
    if left:
        sys.exit(f"left after down: {', '.join(left)}")
    node_start = float(phases.group(4)) if phases else float("nan")
    return {"up": up_s, "node_start": node_start, "down": down_s, "processes": len(pids), "rss": memory}


def report(topo: topology.Topology, runs: list[dict[str, float]]) -> None:
    """Print min / median / max of each figure."""
    roles = {r: len(topo.by_role(r)) for r in topology.ROLES}
    print(f"\n{topo.path.name}: {roles['spine']} spines, {roles['leaf']} leaves, {roles['host']} hosts, "
          f"{roles['controller']} controller; {len(runs)} runs")  # fmt: skip
    for key, label in (("up", "up to converged underlay (s)"), ("node_start", "  of which node start (s)"),
                       ("down", "down (s)"), ("processes", "lab processes"), ("rss", "lab RSS (MiB)")):  # fmt: skip
        values = [r[key] for r in runs]
        print(f"  {label:<30} min {min(values):7.2f}  median {statistics.median(values):7.2f}  max {max(values):7.2f}")
    print("  left after every down: nothing (no namespace, process or state)")


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("files", nargs="*", type=Path, default=FILES)
    args = parser.parse_args()
    env = dict(os.environ)
    if shutil.which(env.get("TOR_AGENT") or "tor-agent") is None:
        env["TOR_AGENT"] = str(REPO / ".venv" / "bin" / "tor-agent")
    print(f"machine: {os.cpu_count()} cores")
    for path in args.files:
        topo = topology.load(path)
        with lab_lock(topo.name):
            lab("down", str(topo.path), env=env)
            report(topo, [one_run(topo, env) for _ in range(args.runs)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
