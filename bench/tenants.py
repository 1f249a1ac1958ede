#!/usr/bin/python3
"""Tenant networks: flows per switch against networks and MACs, and the API's attach to the first frame.

Usage (from the repository root): python3 -m bench.tenants [--runs N] [--no-lab]

1. Flows per switch (the lab controller's logic, labs/containerlab/controller/l2logic.py, on simulated
   switches): leaves with one access port per network each, every MAC learned; the flow count of the
   busiest switch for 1..1000 networks and 1..16 MACs per port, the cost of one network and of one MAC
   (linear: the per-network and per-MAC costs do not change with scale), and how many networks a
   2000-entry hardware flow table would hold. Baseline: one network with one MAC.
2. On the demo fabric (as root; `--no-lab` skips it; holds the lab's machine-wide lock and brings the lab up
   unless it runs): every leaf's flow count against what the costs above predict from the controller's
   networks and learned MACs; then host4's port (leaf3 eth4) is attached to red N times while red1 sends
   a frame to broadcast every 2 ms: the time from the API call to its reply and to the first frame at
   host4, against the baseline of a GET /networks round trip measured in the same run.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from labs.containerlab.controller.l2logic import (
    COOKIE_APP_MASK,
    COOKIE_BASE,
    Fabric,
    FlowMod,
    Network,
    Port,
    PortRef,
    cookie,
)

if TYPE_CHECKING:
    from labs.labkit.frames import Sniffer
    from labs.nslab.topology import Topology

TABLE_SIZE = 2000  # a typical hardware switch's OpenFlow (TCAM) table
Key = tuple[int, int, tuple[tuple[str, int | str], ...]]


# --- the model -------------------------------------------------------------------------------------------------


class Tables:
    """Per-switch flow tables as a switch keeps them: (table, priority, match), grouped by cookie."""

    def __init__(self) -> None:
        self.flows: dict[int, dict[int, set[Key]]] = {}  # switch -> cookie -> flows
        self.owner: dict[int, dict[Key, int]] = {}  # switch -> flow -> its cookie

    def apply(self, mods: Iterable[FlowMod]) -> None:
        for m in mods:
            by_cookie, owner = self.flows.setdefault(m.dpid, {}), self.owner.setdefault(m.dpid, {})
            if m.command == "add":
                key = (m.table or 0, m.priority, m.match)  # a flow is its table, priority and match: an add replaces
                if key in owner:
                    by_cookie[owner[key]].discard(key)
                owner[key] = cookie(m.vni or 0)
                by_cookie.setdefault(owner[key], set()).add(key)
                continue
            cookies = [c for c in by_cookie if c & COOKIE_APP_MASK == COOKIE_BASE] if m.vni is None else [cookie(m.vni)]
            for c in cookies:
                flows = by_cookie.get(c, set())
                for key in [k for k in flows if self._hit(m, k)]:
                    flows.discard(key)
                    del owner[key]

    @staticmethod
    def _hit(m: FlowMod, key: Key) -> bool:
        table, priority, match = key
        if m.table is not None and table != m.table:
            return False
        if m.command == "delete_strict":
            return (priority, match) == (m.priority, m.match)
        fields = dict(match)
        return m.out_port is None and all(fields.get(k) == v for k, v in m.match)

    def busiest(self) -> int:
        return max(sum(len(f) for f in by_cookie.values()) for by_cookie in self.flows.values())


def model(networks: int, macs: int, leaves: int = 3) -> int:
    """Flows on the busiest switch: `networks` networks, each with one access port on every leaf and `macs`
    MACs learned behind each port."""
    vtep = {d: str(ipaddress.IPv4Address(0xC6120000 + d)) for d in range(1, leaves + 1)}
    fabric = Fabric(
        Network(f"n{i}", 1000 + i, frozenset(PortRef(f"leaf{d}", f"p{i}") for d in vtep)) for i in range(networks)
    )
    tables = Tables()
    for d, own in vtep.items():
        ports = [Port(i + 1, f"p{i}") for i in range(networks)]
        ports += [Port(60000 + o, f"gre-{int(ipaddress.IPv4Address(v)):08x}") for o, v in vtep.items() if o != d]
        tables.apply(fabric.switch_up(d, ports, f"leaf{d}", own))
    for i in range(networks):
        for d in vtep:
            for m in range(macs):
                tables.apply(fabric.packet_in(d, i + 1, 0, f"02:{d:02x}:{i >> 8:02x}:{i & 255:02x}:00:{m:02x}", "ff"))
    return tables.busiest()


def model_report() -> tuple[int, int, int]:
    """Print the grid; return (flows per network, per local MAC, per remote MAC) on a switch."""
    print("1. flows on the busiest switch (3 leaves; every network has one access port on each leaf)")
    baseline = model(1, 1)
    print(f"   baseline: 1 network, 1 MAC per port: {baseline} flows\n")
    print(f"   {'networks':>8} {'MACs/port':>9} {'flows/switch':>12} {'x baseline':>10} {'per network':>11}")
    for networks in (1, 10, 100, 1000):
        for macs in (1, 4, 16):
            if networks * macs > 4000:
                continue
            start = time.monotonic()
            flows = model(networks, macs)
            took = time.monotonic() - start
            print(
                f"   {networks:>8} {macs:>9} {flows:>12} {flows / baseline:>10.1f} {flows / networks:>11.1f}"
                f"   ({took:.2f} s to compute)"
            )
    per_network = model(1, 0)  # classify and flood for its port, classify and flood from the tunnels
    per_mac = model(1, 1) - per_network  # one MAC on this leaf (3 flows) and one on each other leaf (2 each)
    local, remote = 3, 2
    assert per_mac == local + remote * 2, per_mac
    assert model(7, 5) == 7 * (per_network + 5 * per_mac), "not linear"
    print(
        f"\n   linear: a network costs a switch it has a port on {per_network} flows (+2 per more port there); "
        f"a MAC costs {local} flows on its own switch and {remote} on every other switch of its network"
    )
    return per_network, local, remote


def capacity_report(per_network: int, local: int, remote: int) -> None:
    print(f"\n   a {TABLE_SIZE}-entry flow table holds (each network: one port on each of L leaves, k MACs per port):")
    print(f"   {'L leaves':>8} {'k MACs':>6} {'flows/network':>13} {'networks':>8} {'MACs':>6}")
    for leaves in (2, 3, 8):
        for macs in (1, 4, 16):
            cost = per_network + macs * (local + remote * (leaves - 1))
            fits = TABLE_SIZE // cost
            print(f"   {leaves:>8} {macs:>6} {cost:>13} {fits:>8} {fits * macs * leaves:>6}")


# --- the lab ----------------------------------------------------------------------------------------------------


def pings(topo: Topology, src: str, dst: str) -> bool:
    """One ping from node `src` to `dst` is answered."""
    from labs.labkit.nodes import node_run

    return node_run(topo, src, "ping", "-c1", "-W1", dst, check=False).returncode == 0


def arrived_after(sniffer: Sniffer, since: float) -> bool:
    """The sniffer caught a frame after `since` (wall clock)."""
    return any(x.at > since for x in sniffer.arrivals())


def later_than(moment: float) -> bool:
    return time.time() > moment


def lab_report(runs: int) -> None:
    from labs.labkit import frames
    from labs.labkit.lab import FABRIC, running_lab
    from labs.labkit.nodes import node_run
    from labs.labkit.tenants import NetworkApi
    from tor_agent.wait import wait_until

    with running_lab(FABRIC) as topo:
        api = NetworkApi(topo)
        wait_until(lambda: api.call("GET", "/networks").status == 200, 30, 0.2, "the controller's API")
        for src, dst in (("host1", "198.51.100.12"), ("host3", "198.51.100.11"), ("red1", "198.51.100.12")):
            wait_until(partial(pings, topo, src, dst), 30, 0.2, f"{src} to reach {dst}")
        print("\n2. the demo fabric: flows per leaf, on the switch and as the costs above predict")
        nets = api.networks()
        for leaf in (n.name for n in topo.by_role("leaf")):
            dump = node_run(topo, leaf, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-tor").stdout
            have = sum(f"cookie={COOKIE_BASE >> 32:#x}" in line for line in dump.splitlines())
            predicted = 0
            for net in nets.values():
                ports = [p for p in net["ports"] if p["switch"] == leaf]
                if not ports:
                    continue
                where = Counter(m["switch"] for m in net["macs"])
                predicted += 2 * len(ports) + 2 + 3 * where[leaf] + 2 * sum(c for s, c in where.items() if s != leaf)
            print(f"   {leaf}: {have} flows on the switch, {predicted} predicted")

        print(
            f"\n   attach to the first frame, {runs} runs (host4's port, leaf3 eth4, into red; red1 sends every 2 ms)"
        )
        base = [api.call("GET", "/networks") for _ in range(runs)]
        with tempfile.TemporaryDirectory() as tmp:
            token = f"bench-{uuid.uuid4().hex[:8]}"
            sniffer = frames.Sniffer(topo, "host4", token, Path(tmp) / "sniff.log").start()
            stream = frames.Stream(topo, "red1", token, (frames.BROADCAST,), Path(tmp) / "send.log", 0.002).start()
            replies, firsts = [], []
            try:
                assert api.detach("blue", "leaf3", "eth4").status == 200
                for _ in range(runs):
                    answer = api.attach("red", "leaf3", "eth4")
                    assert answer.status == 200, answer
                    wait_until(partial(arrived_after, sniffer, answer.sent), 5, 0.01, "a frame")
                    first = min(x.at for x in sniffer.arrivals() if x.at > answer.sent)
                    replies.append(answer.at - answer.sent)
                    firsts.append(first - answer.sent)
                    gone = api.detach("red", "leaf3", "eth4")
                    assert gone.status == 200
                    wait_until(partial(later_than, gone.at + 0.3), 2, 0.05, "the detach to settle")
            finally:
                stream.stop()
                sniffer.stop()
                api.detach("red", "leaf3", "eth4")
                if ["leaf3", "eth4"] not in [[p["switch"], p["port"]] for p in api.networks()["blue"]["ports"]]:
                    api.attach("blue", "leaf3", "eth4")
        get = statistics.median(b.at - b.sent for b in base)
        reply, first = statistics.median(replies), statistics.median(firsts)
        print(f"   baseline GET /networks round trip: median {get * 1000:.1f} ms")
        spread = f"min {min(replies) * 1000:.1f}, max {max(replies) * 1000:.1f}"
        print(f"   attach, call to reply (flows confirmed by a barrier): median {reply * 1000:.1f} ms "
              f"({spread}), {reply / get:.1f}x the baseline")  # fmt: skip
        print(f"   attach, call to the first frame at host4: median {first * 1000:.1f} ms "
              f"(min {min(firsts) * 1000:.1f}, max {max(firsts) * 1000:.1f}), {first / get:.1f}x the baseline; "
              "budget 1000 ms from the reply")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="attach measurements on the lab")
    ap.add_argument("--no-lab", action="store_true", help="the model only")
    args = ap.parse_args()
    per_network, local, remote = model_report()
    capacity_report(per_network, local, remote)
    if not args.no_lab:
        lab_report(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
