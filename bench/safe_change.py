"""Planned maintenance against an unplanned failure of the same link: datagrams lost while a spine is drained
(`tor-agent drain --wait`) and undrained, beside the loss of a silent failure of one of that spine's links, in
the same run; and how long `drain --wait` takes until traffic has left the spine.

Usage (as root, from the repository root): python3 -m bench.safe_change [--runs N] [--file FABRIC]
Run by hand, not in CI. Uses the running demo fabric, or brings it up (and down afterwards), holding the lab's
machine-wide lock. The probe (labs.labkit.probe): UDP every 2 ms between the loopbacks of leaf1 and leaf2,
several flows spread over both spines by ECMP; the drained spine is the one the first flow crosses.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from labs.labkit.fabric import wait_healthy
from labs.labkit.faults import silent_failure
from labs.labkit.lab import FABRIC, running_lab
from labs.labkit.nodes import tor_agent
from labs.labkit.probe import Probe, crossing, first_spine
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

SETTLE_BUDGET_S = 10.0


def lost(probe: Probe, since: int) -> int:
    """Datagrams lost since `since` (CLOCK_MONOTONIC ns), every flow."""
    return sum(w.lost for w in probe.windows(since).values())


def one_round(topo: Topology, a: str, b: str) -> tuple[int, int, float, int, float]:
    """(lost while draining, lost while undraining, seconds `drain --wait` took, lost to a silent failure, its
    worst loss window in seconds)."""
    with Probe.between_leaves(topo, a, b) as probe:
        link = first_spine(topo, probe.flows[0])
        assert crossing(topo, probe.flows, link)
        since, start = time.monotonic_ns(), time.monotonic()
        tor_agent(topo, link.spine, "drain", "--wait", check=True)
        took = time.monotonic() - start
        after = time.monotonic_ns()
        wait_until(lambda: probe.arrived_since(after), SETTLE_BUDGET_S, 0.02, "every flow after the drain")
        drained = lost(probe, since)
        since = time.monotonic_ns()
        tor_agent(topo, link.spine, "undrain", check=True)
        after = time.monotonic_ns()
        wait_until(lambda: probe.arrived_since(after), SETTLE_BUDGET_S, 0.02, "every flow after the undrain")
        undrained = lost(probe, since)
        wait_healthy(topo)
        with silent_failure(topo, link.spine, link.spine_iface) as started:
            wait_until(lambda: probe.recovered(started), SETTLE_BUDGET_S, 0.02, "traffic around the failure")
            windows = probe.windows(started - 1)
        wait_healthy(topo)
        probe.stop()
    return drained, undrained, took, sum(w.lost for w in windows.values()), max(w.seconds for w in windows.values())


def main(argv: Sequence[str]) -> int:
    """The bench."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", type=Path, default=FABRIC)
    args = parser.parse_args(argv)
    with running_lab(args.file) as topo:
        wait_healthy(topo)
        rounds = [one_round(topo, "leaf1", "leaf2") for _ in range(args.runs)]
    drained = [r[0] for r in rounds]
    undrained = [r[1] for r in rounds]
    took = [r[2] for r in rounds]
    failed, windows = [r[3] for r in rounds], [r[4] for r in rounds]
    print(f"{'runs':<46} {args.runs}")
    print(f"{'datagrams lost, drain --wait (planned)':<46} {drained}")
    print(f"{'datagrams lost, undrain':<46} {undrained}")
    print(f"{'datagrams lost, silent failure (unplanned)':<46} {failed}")
    print(f"{'loss window, silent failure (median)':<46} {statistics.median(windows) * 1000:.0f} ms")
    print(f"{'drain --wait until traffic had left (median)':<46} {statistics.median(took):.2f} s")
    print(f"planned vs unplanned: {sum(drained)} vs {sum(failed)} datagrams lost (goal: 0 vs ~250 ms of traffic)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
