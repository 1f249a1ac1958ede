"""Traffic loss when a leaf-spine link fails: silent failure with BFD, without BFD, and carrier loss.

Usage (as root, from the repository root): python3 -m bench.underlay_failover [--runs N] [--file FABRIC]
       [--leaves A B]
Run by hand, not in CI. Uses the running demo fabric, or brings it up (and down afterwards); the lab's
machine-wide lock is held throughout, so it waits while a test session has the fabric.

The probe (labs.labkit.probe): UDP between the loopbacks of two leaves, in both directions, several flows
(one per source port) each sending a numbered datagram every 2 ms. The receiver reports every gap in a
flow's sequence numbers; its loss window is the sender's time between the last datagram before the gap and
the first one after it (an upper bound, within one interval). The failed link is the one the first flow
from leaf A takes (`ip route get` with its ports); the figure of a run is the worst window among the flows
that cross that link, in either direction. Modes (labs.labkit.faults):
- silent: an nftables drop of everything (BFD and OSPF too) on the spine's end, carrier stays up;
  with BFD as rendered from the intents (100 ms x 3), then with BFD disabled on both ends of the link
  by `tor-agent apply` of a modified intent (OSPF hello 1 s / dead 4 s), restored afterwards;
- carrier: `ip link set <spine end> down`.

The probe and the faults are the lab kit's, which tests/e2e/test_underlay.py uses too.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.labkit.fabric import intent, wait_healthy
from labs.labkit.faults import bfd_disabled, carrier_loss, silent_failure
from labs.labkit.lab import FABRIC, running_lab
from labs.labkit.probe import FLOWING_BUDGET_S, Probe, crossing, first_spine
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

# --- the bench ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One failure: the worst loss window among the flows crossing the link, and the one after repair."""

    outage_s: float
    restore_s: float
    lost: int


Fault = Callable[[Topology, str, str], contextlib.AbstractContextManager[int]]


def one_failure(
    topo: Topology, a: str, b: str, fault: Fault, budget_s: float, configs: Mapping[str, str] | None = None
) -> Run:
    """Fail the link of the first flow from `a` to `b` with `fault`, measure, repair, and wait until `verify`
    passes again in `configs` (node: intent file; default every switch with its own) and traffic flows."""
    with Probe.between_leaves(topo, a, b) as probe:
        link = first_spine(topo, probe.flows[0])
        affected = crossing(topo, probe.flows, link)
        with fault(topo, link.spine, link.spine_iface) as started:
            wait_until(lambda: probe.recovered(started, affected), budget_s, 0.02, f"traffic around {link}")
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


def summary(name: str, runs: Sequence[Run]) -> str:
    """One line: median, min and max of the loss window, and the worst loss after the repair."""
    out = [r.outage_s * 1000 for r in runs]
    return (
        f"{name:<40} loss window median {statistics.median(out):6.0f} ms  (min {min(out):.0f}, max {max(out):.0f}; "
        f"{len(runs)} runs)   after repair max {max(r.restore_s for r in runs) * 1000:.0f} ms"
    )


def main(argv: Sequence[str]) -> int:
    """The bench."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--file", type=Path, default=FABRIC)
    parser.add_argument("--leaves", nargs=2, default=["leaf1", "leaf2"], metavar=("A", "B"))
    args = parser.parse_args(argv)
    a, b = args.leaves
    with running_lab(args.file) as topo:
        wait_healthy(topo)
        link = first_spine(topo, Probe.between_leaves(topo, a, b).flows[0])
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
