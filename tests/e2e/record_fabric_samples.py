#!/usr/bin/env python3
"""Record the LLDP and LSDB samples the cabling and fabric unit tests read, from the miscabling lab.

Run as root from the repository root: `PYTHONPATH=.:tests/e2e .venv/bin/python tests/e2e/record_fabric_samples.py`
(with .venv/bin on PATH for the lab's tor-agent). For numbered and unnumbered links it brings up
data/miscabling/dc1.clab.yml with its rendered files, records the healthy fabric, swaps two cables
(`labs/lab update` to the swapped topology: the switches keep the intents rendered from the plan), records
again and takes the lab down. Then, numbered again, it stops lldpd on spines one by one to record lldpcli's
JSON with one neighbour and with none. Written:

  tests/unit/data/fabric-live/<numbered|unnumbered>/fabric.yaml                 the plan (spine02's view)
  tests/unit/data/fabric-live/<...>/lsdb-<healthy|swapped>.json                 show ip ospf database router json
  tests/unit/data/fabric-live/<...>/<node>/agent.yaml                           leaf01's and spine02's intents
  tests/unit/data/fabric-live/<...>/<node>/ospf-neighbors-<healthy|swapped>.json
  tests/unit/data/fabric-live/<...>/<node>/lldp-<healthy|swapped>.json          lldpcli -f json0 show neighbors
  tests/unit/data/lldp/<json|json0>/<sample>.json                               the same in both formats

Read the diff before committing: ages and MAC addresses change on every run.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from miscabling import Scenario, prepare

from labs.labkit import fabric
from labs.labkit.lab import REPO, lab_lock
from labs.labkit.nodes import node_run, tor_agent
from labs.nslab import realise, topology
from tor_agent.health.fabric_live import parse_router_links
from tor_agent.health.neighbours import parse_lldp
from tor_agent.wait import wait_until

OUT = REPO / "tests" / "unit" / "data"
NODES = ("leaf01", "spine01", "spine02")
LSDB = "show ip ospf database router json"
NEIGHBORS = "show ip ospf neighbor json"
BUDGET_S = 60.0


def underlay_healthy(topo: topology.Topology) -> bool:
    """`verify --only underlay` passes on every switch (unnumbered uplinks on a netdev leaf get no OVS route for
    their tunnels: the overlay is not what these samples are about)."""
    return all(tor_agent(topo, n, "verify", "--only", "underlay").returncode == 0 for n in fabric.switches(topo))


def write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"recorded {path.relative_to(REPO)}")


def vtysh(topo: topology.Topology, node: str, command: str) -> Any:
    return json.loads(node_run(topo, node, "vtysh", "-c", command).stdout)


def lldp(topo: topology.Topology, node: str, fmt: str = "json0") -> Any:
    return json.loads(node_run(topo, node, "lldpcli", "-f", fmt, "show", "neighbors").stdout)


def heard(topo: topology.Topology, node: str) -> dict[str, list[str]]:
    """Interface -> the systems lldpd lists there."""
    found: dict[str, list[str]] = {}
    for n in parse_lldp(lldp(topo, node)):
        found.setdefault(n.interface, []).append(n.system or "?")
    return found


def listed(topo: topology.Topology, router: str) -> list[IPv4Address]:
    """The neighbours `router`'s LSA lists, as spine02 holds the LSDB."""
    lsa = parse_router_links(vtysh(topo, "spine02", LSDB)).get(IPv4Address(router))
    return sorted(h.neighbour for h in lsa.links) if lsa is not None else []


def settle(what: str, check: Callable[[], bool]) -> None:
    wait_until(check, BUDGET_S, 0.2, what)


def record_state(topo: topology.Topology, out: Path, state: str) -> None:
    write(out / f"lsdb-{state}.json", vtysh(topo, "spine02", LSDB))
    for node in NODES:
        write(out / node / f"ospf-neighbors-{state}.json", vtysh(topo, node, NEIGHBORS))
        write(out / node / f"lldp-{state}.json", lldp(topo, node))


def scenario(work: Path, unnumbered: bool) -> None:
    variant = "unnumbered" if unnumbered else "numbered"
    out = OUT / "fabric-live" / variant
    s: Scenario = prepare(work / variant, unnumbered)
    topo = topology.load(s.planned)
    with lab_lock(topo.name):
        realise.up(topo)
        try:
            settle("every switch's underlay", lambda: underlay_healthy(topo))
            leaves = ("leaf01", "leaf02", "leaf03")
            settle("LLDP on every uplink", lambda: all(len(heard(topo, n)) >= 2 for n in leaves))
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.configs / "spine02" / "fabric.yaml", out / "fabric.yaml")
            for node in NODES:
                (out / node).mkdir(parents=True, exist_ok=True)
                shutil.copy(s.configs / node / "agent.yaml", out / node / "agent.yaml")
            record_state(topo, out, "healthy")
            if not unnumbered:
                for fmt in ("json", "json0"):
                    write(OUT / "lldp" / fmt / "leaf01-two.json", lldp(topo, "leaf01", fmt))
                    write(OUT / "lldp" / fmt / "spine01-three.json", lldp(topo, "spine01", fmt))
            swapped = topology.load(s.swapped)
            realise.update(swapped)
            settle("leaf01 to hear spine02 on eth49", lambda: "spine02" in heard(swapped, "leaf01").get("eth49", []))
            stale = heard(swapped, "leaf01").get("eth49", [])
            if not unnumbered:
                for fmt in ("json", "json0"):
                    write(OUT / "lldp" / fmt / "leaf01-recabled.json", lldp(swapped, "leaf01", fmt))
                print(f"  leaf01's eth49 lists {stale} right after the swap")
            settle("the old neighbour's TTL", lambda: heard(swapped, "leaf01").get("eth49") == ["spine02"])
            one = ("198.18.0.11", "198.18.0.13")  # a swapped cable forms no adjacency, numbered or not
            settle("leaf01 and leaf03 adjacent once", lambda: all(len(listed(swapped, r)) == 1 for r in one))
            record_state(swapped, out, "swapped")
            if not unnumbered:
                lldp_shapes(swapped)
        finally:
            realise.down(topo)


def lldp_shapes(topo: topology.Topology) -> None:
    """lldpd stopped on spine02, then on spine01: leaf02 lists one neighbour, then none."""
    for spine, left in (("spine02", 1), ("spine01", 0)):
        node_run(topo, spine, "sh", "-c", "kill $(cat /run/lldpd.pid)")
        settle(f"leaf02 to list {left} neighbour(s)", lambda left=left: len(heard(topo, "leaf02")) == left)
        name = "leaf02-one" if left else "leaf02-none"
        for fmt in ("json", "json0"):
            write(OUT / "lldp" / fmt / f"{name}.json", lldp(topo, "leaf02", fmt))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fabric-samples-") as tmp:
        for unnumbered in (False, True):
            scenario(Path(tmp), unnumbered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
