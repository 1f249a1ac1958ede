"""The lab leaf's running agent reads FRR in full only when FRR moved, yet still repairs a hand edit in FRR at
its next full pass; and it keeps OVS's tunnel routes on the kernel's ECMP as route events come. (The figures,
CPU, memory and reroute time against their peers, are bench/footprint.py's.)"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from labs.labkit.fabric import fabric_links
from labs.labkit.lab import Lab
from labs.labkit.nodes import agent_daemons
from tor_agent.ovs.routes import parse_route_show
from tor_agent.wait import wait_until

pytestmark = pytest.mark.lab

FULL_PASS_BUDGET_S = 40.0  # the agent's periodic full pass comes every 30 s
HAND_COST = 77


def status(lab: Lab, node: str) -> dict[str, Any]:
    return dict(json.loads(lab.exec(node, "cat", "/run/tor-agent/status.json").stdout))


def running_config(lab: Lab, node: str) -> str:
    return lab.exec(node, "vtysh", "-c", "show running-config").stdout


def test_a_hand_edit_in_frr_is_repaired_by_the_next_full_pass_which_alone_reads_frr_in_full(converged: Lab) -> None:
    leaf = converged.role("leaf")[0]
    (pid,) = agent_daemons(converged.topo, leaf)
    wait_until(lambda: status(converged, leaf)["reads"]["frr_unchanged"] >= 1, FULL_PASS_BUDGET_S, 0.5,
               f"{leaf}: a full pass that found FRR as the agent left it")  # fmt: skip
    full_reads = status(converged, leaf)["reads"]["frr"]
    uplink = converged.intent(leaf)["underlay"]["uplinks"][0]
    bridge = f"br-{uplink['name']}"  # the demo leaves are netdev: OSPF runs on the uplink's bridge
    try:
        converged.exec(leaf, "vtysh", "-c", "configure", "-c", f"interface {bridge}", "-c", f"ip ospf cost {HAND_COST}")
        wait_until(lambda: f"ip ospf cost {HAND_COST}" not in running_config(converged, leaf), FULL_PASS_BUDGET_S, 0.5,
                   f"{leaf}: the agent's next full pass to repair the hand edit")  # fmt: skip
    finally:
        restore = f"ip ospf cost {uplink['cost']}"
        converged.exec(leaf, "vtysh", "-c", "configure", "-c", f"interface {bridge}", "-c", restore, check=False)
    assert f"ip ospf cost {uplink['cost']}" in running_config(converged, leaf)
    after = status(converged, leaf)
    assert after["reads"]["frr"] > full_reads and after["pid"] == pid
    assert after["cpu"]["passes"]["full"]["passes"] >= 1 and after["cpu"]["process_s"] > 0
    os.kill(pid, 0)  # the same agent throughout


def test_ovs_routes_follow_a_kernel_route_change_and_the_routes_pass_reports_it(converged: Lab) -> None:
    """A synthetic VTEP inside the discovery prefix: OVS's route to it follows the kernel's route as it moves
    from both uplinks to one, from the route events (a routes pass, no dump)."""
    leaf = converged.role("leaf")[0]
    links = fabric_links(converged.topo, leaf)
    (eth_a, gw_a), (eth_b, gw_b) = ((f"br-{x.uplink}", x.spine_address) for x in links[:2])
    vtep = "198.18.0.250"
    both = ["nexthop", "via", gw_a, "dev", eth_a, "nexthop", "via", gw_b, "dev", eth_b]

    def ovs_route() -> str | None:
        shown = converged.exec(leaf, "ovs-appctl", "ovs/route/show").stdout
        return next((r.device for r in parse_route_show(shown) if r.user and str(r.prefix.network_address) == vtep),
                    None)  # fmt: skip

    converged.exec(leaf, "ip", "route", "add", f"{vtep}/32", "proto", "ospf", *both)
    try:
        wait_until(lambda: ovs_route() in (eth_a, eth_b), 10, 0.05, f"{leaf}: an OVS route to {vtep}")
        other = eth_b if ovs_route() == eth_a else eth_a
        gateway = gw_b if other == eth_b else gw_a
        routes_passes = status(converged, leaf)["cpu"]["passes"].get("routes", {}).get("passes", 0)
        converged.exec(leaf, "ip", "route", "replace", f"{vtep}/32", "proto", "ospf", "via", gateway, "dev", other)
        wait_until(lambda: ovs_route() == other, 2, 0.01, f"{leaf}: OVS's route to {vtep} to move to {other}")
        wait_until(lambda: status(converged, leaf)["cpu"]["passes"]["routes"]["passes"] > routes_passes, 5, 0.05,
                   "the routes pass in the status file")  # fmt: skip
    finally:
        converged.exec(leaf, "ip", "route", "del", f"{vtep}/32", check=False)
