"""One missing part never darkens a switch: leaf3's intent names an access port (eth9) the topology does not
give it. Everything else is applied (OSPF Full on every uplink, a full tunnel mesh), `verify` fails naming the
port, and once the link is added (`labs/lab update`) the port is in the bridge within a second, with no restart
and no command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_underlay import agent

from labs.labkit.lab import Lab
from labs.labkit.nodes import INTENT
from labs.nslab import realise, topology

pytestmark = pytest.mark.lab

DATA = Path(__file__).resolve().parent / "data"
LEAF = "leaf3"
PART = "overlay.access_ports[2] eth9"


def ofport(lab: Lab, node: str, name: str) -> int:
    """The OpenFlow port number ovs-vswitchd gave `name` (-1: it could not open it; 0: none yet)."""
    done = lab.exec(node, "ovs-vsctl", "--if-exists", "get", "Interface", name, "ofport", check=False)
    text = done.stdout.strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def dropped_at_ingress(lab: Lab, node: str, name: str) -> bool:
    """Whether tor-agent's nftables table has the ingress drop chain of `name`."""
    return f"chain drop-{name} " in lab.exec(node, "nft", "list", "table", "netdev", "tor_agent", check=False).stdout


def test_a_missing_access_port_darkens_nothing_and_is_bridged_within_a_second_once_cabled(
    converged: Lab, wait_until: Any, record: Any
) -> None:
    missing = topology.load(DATA / "fabric-leaf3-eth9.clab.yml")
    cabled = topology.load(DATA / "fabric-leaf3-eth9-cabled.clab.yml")
    try:
        realise.update(missing)  # leaf3's bound intent now names eth9
        done = agent(converged, LEAF, "apply", INTENT)  # through leaf3's running agent
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{PART}: no such interface" in done.stderr and "by the running agent" in done.stderr
        spines = len(converged.role("spine"))
        leaves = len(converged.role("leaf"))

        def all_but_the_port_healthy() -> bool:
            out = agent(converged, LEAF, "verify", INTENT).stdout
            return (
                f"underlay healthy: {spines}/{spines} uplinks Full" in out
                and f"overlay healthy: {leaves - 1} tunnel(s) up" in out
            )

        wait_until(all_but_the_port_healthy, 30, 0.2, "leaf3's underlay and tunnel mesh, eth9 missing")
        verify = agent(converged, LEAF, "verify", INTENT)
        assert verify.returncode == 1
        assert verify.stdout.splitlines()[:2] == [f"{LEAF}: parts missing (1):", f"  {PART}: no such interface"]
        status = converged.json(LEAF, "cat", "/run/tor-agent/status.json")
        assert status["last_pass"]["missing"] == [PART] and f"1 missing: {PART}" in status["status"]
        assert ofport(converged, LEAF, "eth9") == -1 and not dropped_at_ingress(converged, LEAF, "eth9")

        start = time.monotonic()
        realise.update(cabled)  # host9 and the leaf3:eth9 link appear
        cabled_at = time.monotonic()
        wait_until(lambda: ofport(converged, LEAF, "eth9") > 0, 1.0, 0.02, "eth9 in leaf3's bridge within 1 s")
        record("parts: eth9 in the bridge after labs/lab update returned", f"{time.monotonic() - cabled_at:.2f} s")
        record("parts: eth9 in the bridge after labs/lab update started", f"{time.monotonic() - start:.2f} s")
        wait_until(lambda: dropped_at_ingress(converged, LEAF, "eth9"), 1.0, 0.02, "eth9's ingress drop chain")
        wait_until(lambda: agent(converged, LEAF, "verify", INTENT).returncode == 0, 10, 0.2, "leaf3 to verify")
    finally:
        realise.update(converged.topo)
        agent(converged, LEAF, "apply", INTENT)
    wait_until(lambda: agent(converged, LEAF, "verify", INTENT).returncode == 0, 30, 0.2, "leaf3 healthy")
    assert ofport(converged, LEAF, "eth9") == 0  # the port left with the intent
