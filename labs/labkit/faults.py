"""Failures to inject into a running lab; each is a context manager that puts things back on exit.

No `tc netem` here (DESIGN §4): a silent failure is an nftables drop inside the node, carrier loss is
`ip link set ... down`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from labs.labkit.fabric import intent, wait_healthy
from labs.labkit.nodes import INTENT, node_run, paused_agents, tor_agent
from labs.nslab.topology import Topology

NFT_TABLE = "tor_agent_failover"


@contextlib.contextmanager
def silent_failure(topo: Topology, node: str, iface: str) -> Iterator[int]:
    """Drop every frame `iface` of `node` receives or sends (carrier stays up); yields when it started
    (CLOCK_MONOTONIC ns). Removed on exit."""
    rules = (
        f"table netdev {NFT_TABLE} {{\n"
        f'  chain rx {{ type filter hook ingress device "{iface}" priority -500; policy drop; }}\n'
        f'  chain tx {{ type filter hook egress device "{iface}" priority -500; policy drop; }}\n'
        "}\n"
    )
    started = time.monotonic_ns()
    node_run(topo, node, "nft", "-f", "-", stdin=rules)
    try:
        yield started
    finally:
        node_run(topo, node, "nft", "delete", "table", "netdev", NFT_TABLE)


@contextlib.contextmanager
def carrier_loss(topo: Topology, node: str, iface: str) -> Iterator[int]:
    """`ip link set IFACE down` in `node` (the other end loses carrier); yields when; up again on exit."""
    started = time.monotonic_ns()
    node_run(topo, node, "ip", "link", "set", iface, "down")
    try:
        yield started
    finally:
        node_run(topo, node, "ip", "link", "set", iface, "up")


@contextlib.contextmanager
def bfd_disabled(topo: Topology, nodes: Sequence[str]) -> Iterator[dict[str, str]]:
    """`tor-agent apply` of each node's intent with BFD disabled (their agents paused meanwhile); yields
    node: intent file. Each node's own intent is applied again on exit, and every switch verified."""
    with tempfile.TemporaryDirectory(prefix="lab-bfd-off-") as tmp, paused_agents(topo, nodes):
        files = {}
        for node in nodes:
            data = intent(topo, node)
            data["underlay"]["ospf"]["bfd"] = {**data["underlay"]["ospf"].get("bfd", {}), "enabled": False}
            files[node] = Path(tmp, f"{node}.yaml")
            files[node].write_text(yaml.safe_dump(data))
        try:
            for node in nodes:
                tor_agent(topo, node, "apply", str(files[node]), check=True)
            configs = {node: str(f) for node, f in files.items()}
            wait_healthy(topo, configs)
            yield configs
        finally:
            for node in nodes:
                tor_agent(topo, node, "apply", INTENT, check=True)
    wait_healthy(topo)
