#!/usr/bin/env python3
"""Record the FRR and kernel samples the health unit tests read (tests/unit/data/health/<scenario>/).

Run as root from the repository, with the tests' shared helpers on the path as pytest has them
(pyproject.toml): `PYTHONPATH=tests/support .venv/bin/python tests/health/record_samples.py`. It brings up
the test fabric (frrlab.py), records each scenario once its state has settled, and removes everything.
Read the diff before committing new samples: uptimes and ids change on every run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frrlab import Fabric, Node, problems, read_state, wait_healthy

from tor_agent.frr.vtysh import Vtysh
from tor_agent.health.frr_state import BFD_PEERS, OSPF_NEIGHBORS, OSPF_ROUTES, ZEBRA_ROUTES
from tor_agent.health.lsdb import ROUTER_LSAS
from tor_agent.net import KernelRoute, kernel_routes
from tor_agent.wait import wait_until

HERE = Path(__file__).resolve().parent

OUT = HERE.parent / "unit" / "data" / "health"
FILES = {
    OSPF_NEIGHBORS: "ospf-neighbors.json",
    BFD_PEERS: "bfd-peers.json",
    OSPF_ROUTES: "ospf-routes.json",
    ZEBRA_ROUTES: "zebra-routes.json",
    ROUTER_LSAS: "router-lsas.json",
}


def kernel_json(routes: tuple[KernelRoute, ...]) -> list[dict[str, Any]]:
    """The kernel FIB as the unit tests load it back (tests/unit/test_health_underlay.py)."""
    return [
        {
            "prefix": str(r.prefix),
            "protocol": r.protocol,
            "type": r.type,
            "metric": r.metric,
            "nexthops": [
                {"gateway": str(nh.gateway) if nh.gateway else None, "ifname": nh.ifname, "live": nh.live}
                for nh in r.nexthops
            ],
        }
        for r in routes
    ]


def record(node: Node, scenario: str) -> None:
    """Write `node`'s intent, FRR's five JSON answers and the kernel FIB under OUT/scenario."""
    target = OUT / scenario
    target.mkdir(parents=True, exist_ok=True)
    reader = Vtysh(options=("--vty_socket", str(node.workdir)))
    for command, name in FILES.items():
        doc = node.ns.run(reader.show_json, command)
        (target / name).write_text(json.dumps(doc, indent=1) + "\n")
    routes = node.ns.run(kernel_routes)
    (target / "kernel-routes.json").write_text(json.dumps(kernel_json(routes), indent=1) + "\n")
    (target / "intent.yaml").write_text(_intent_text(node))
    print(f"recorded {target.relative_to(HERE.parent.parent)}: {[str(p) for p in problems(node)]}")


def _intent_text(node: Node) -> str:
    from frrlab import INTENTS

    return f"# {node.name} of tests/health/frrlab.py\n" + INTENTS[node.name].lstrip()


def main() -> None:
    fabric = Fabric().up()
    try:
        wait_healthy(fabric)
        for name in ("leaf1", "leaf2", "spine1"):
            record(fabric[name], f"{name}-healthy")

        leaf1, spine2 = fabric["leaf1"], fabric["spine2"]
        leaf1.ns.ip("link", "set", "eth2", "down")
        wait_until(lambda: read_state(leaf1).neighbors and len(read_state(leaf1).neighbors) == 1, 10)
        wait_until(lambda: "nexthop" not in leaf1.ns.ip("route", "show", "198.18.0.12"), 10)
        record(leaf1, "leaf1-eth2-down")
        leaf1.ns.ip("link", "set", "eth2", "up")
        wait_healthy(fabric)

        # A silent failure: spine2 stops hearing leaf1 on its eth1; BFD notices, OSPF drops the adjacency.
        spine2.ns.exec("nft", "add", "table", "netdev", "silence")
        spine2.ns.exec(
            "nft", "add", "chain", "netdev", "silence", "in",
            "{ type filter hook ingress device eth1 priority 0; policy drop; }",
        )  # fmt: skip
        wait_until(lambda: "nexthop" not in leaf1.ns.ip("route", "show", "198.18.0.12"), 10)
        # leaf1 still hears spine2's hellos, which no longer list leaf1: the neighbour stays in Init.
        wait_until(lambda: any(n.state.startswith("Init") for n in read_state(leaf1).neighbors), 10)
        record(leaf1, "leaf1-eth2-silent")
        spine2.ns.exec("nft", "delete", "table", "netdev", "silence")
        wait_healthy(fabric)

        # A planned drain: spine2 advertises max-metric; leaf1's routes leave it, its adjacency stays Full.
        spine2.vtysh("configure terminal", "router ospf", "max-metric router-lsa administrative")
        wait_until(lambda: "nexthop" not in leaf1.ns.ip("route", "show", "198.18.0.12"), 10)
        record(leaf1, "leaf1-spine2-drained")
    finally:
        fabric.down()


if __name__ == "__main__":
    main()
