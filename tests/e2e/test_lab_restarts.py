"""Restarts around the agent on a lab leaf: tor-agent itself killed with SIGKILL and started again, zebra and
ospfd killed (watchfrr starts them again). Afterwards the switch is as it was: FRR's running configuration,
the kernel's addresses, routes and nftables, OVS's interfaces (same rows, same OpenFlow ports) and its
tunnel routes, nothing duplicated or lost. The agent's own restart flaps nothing: the OSPF adjacencies and
BFD sessions keep running, the tunnels' BFD never flaps, its first pass changes nothing.

(ovs-vswitchd and ovsdb-server restarts are in test_overlay.py.)
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from test_underlay import running_config, unhealthy

from labs.labkit.lab import NODE_START, Lab
from tor_agent.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.lab

RESTART_BUDGET_S = 60.0  # watchfrr notices within 1-2 s (the lab's watchfrr_options); OSPF and BFD come back


def switch_state(lab: Lab, node: str) -> dict[str, Any]:
    """What must be the same before and after a restart, with repeats kept (a duplicate shows)."""
    columns = "--columns=_uuid,name,ofport,options"
    interfaces = lab.json(node, "ovs-vsctl", "--format=json", columns, "list", "Interface")
    routes = lab.json(node, "ip", "-j", "-4", "route", "show", "table", "main")
    return {
        "frr": running_config(lab, node).splitlines(),
        "addresses": sorted(
            (a["ifname"], i["local"], i["prefixlen"])
            for a in lab.json(node, "ip", "-j", "-4", "address", "show")
            for i in a.get("addr_info", [])
        ),
        "routes": sorted(json.dumps(_route(r), sort_keys=True) for r in routes),
        "nftables": lab.exec(node, "nft", "list", "ruleset").stdout.splitlines(),
        "ovs_interfaces": sorted(json.dumps(row) for row in interfaces["data"]),
        "ovs_routes": sorted(line for line in lab.exec(node, "ovs-appctl", "ovs/route/show").stdout.splitlines()),
    }


def _route(r: dict[str, Any]) -> dict[str, Any]:
    """A kernel route without what varies on its own (nexthop order)."""
    hops = sorted(json.dumps(h, sort_keys=True) for h in r.get("nexthops", []))
    return {**{k: v for k, v in r.items() if k != "nexthops"}, "nexthops": hops}


def sessions(lab: Lab, node: str) -> dict[str, tuple[str, float]]:
    """Every OSPF adjacency and BFD session: (identity, uptime in seconds). A flap resets the uptime or
    changes the identity (BFD's local discriminator)."""
    found: dict[str, tuple[str, float]] = {}
    for router_id, entries in lab.vtysh(node, "show ip ospf neighbor json")["neighbors"].items():
        for n in entries:
            found[f"ospf {router_id} {n['ifaceName']}"] = (n["converged"], n["upTimeInMsec"] / 1000)
    for peer in lab.vtysh(node, "show bfd peers json"):
        found[f"bfd {peer['peer']}"] = (f"{peer['status']} {peer['id']}", float(peer["uptime"]))
    return found


def tunnel_bfd(lab: Lab, node: str) -> dict[str, tuple[str, str]]:
    """Each tunnel port's BFD (state, flap count), as ovs-vswitchd reports it."""
    rows = lab.json(node, "ovs-vsctl", "--format=json", "--columns=name,bfd_status", "list", "Interface")["data"]
    found = {}
    for name, status in rows:
        if name.startswith("gre-"):
            bfd = dict(status[1])
            found[name] = (bfd.get("state", "-"), bfd.get("flap_count", "-"))
    return found


def agent_pid(lab: Lab, node: str) -> int:
    return int(lab.exec(node, "cat", "/run/tor-agent.pid").stdout)


def alive(lab: Lab, node: str, pid: int) -> bool:
    return lab.exec(node, "kill", "-0", str(pid), check=False).returncode == 0


def test_agent_killed_and_restarted_changes_nothing_and_flaps_nothing(converged: Lab) -> None:
    leaf = converged.role("leaf")[0]
    # a fresh lab's tunnel BFD may still be coming up (its first transition counts as a flap)
    wait_until(lambda: {s for s, _ in tunnel_bfd(converged, leaf).values()} == {"up"}, 30, 0.2, "tunnel BFD up")
    before, up_before = switch_state(converged, leaf), sessions(converged, leaf)
    bfd = tunnel_bfd(converged, leaf)
    old = agent_pid(converged, leaf)
    converged.exec(leaf, "kill", "-9", str(old))
    wait_until(lambda: not alive(converged, leaf, old), 10, 0.05, "the killed agent to be gone")
    converged.exec(leaf, str(NODE_START), "agent", timeout=60)  # returns after the new agent's first pass
    status = converged.json(leaf, "cat", "/run/tor-agent/status.json")
    assert status["pid"] == agent_pid(converged, leaf) != old and status["ready"]
    assert status["last_pass"]["changed"] is False, status["last_pass"]
    assert switch_state(converged, leaf) == before
    up_after = sessions(converged, leaf)
    assert up_after.keys() == up_before.keys()
    for name, (identity, uptime) in up_before.items():
        assert up_after[name][0] == identity and up_after[name][1] >= uptime, (name, up_before, up_after)
    assert tunnel_bfd(converged, leaf) == bfd
    assert unhealthy(converged) == []


@pytest.mark.parametrize("daemon", ["zebra", "ospfd"])
def test_frr_daemon_killed_everything_comes_back_with_no_tunnel_renumbered(converged: Lab, daemon: str) -> None:
    """A leaf's zebra or ospfd dies; watchfrr starts it again and every switch verifies. The leaf's own tunnels
    stay (no OSPF route at all: left as they are), the other leaves hold theirs to it (hold_down_s)."""
    leaves = converged.role("leaf")
    leaf = leaves[0]
    before = {n: switch_state(converged, n) for n in leaves}
    old = int(converged.exec(leaf, "cat", f"/run/frr/{daemon}.pid").stdout)
    converged.exec(leaf, "kill", "-9", str(old))

    def restarted() -> bool:
        pid = converged.exec(leaf, "cat", f"/run/frr/{daemon}.pid", check=False).stdout.strip()
        return pid.isdigit() and int(pid) != old and alive(converged, leaf, int(pid))

    wait_until(restarted, RESTART_BUDGET_S, 0.2, f"watchfrr to start {daemon} again")
    wait_until(lambda: unhealthy(converged) == [], RESTART_BUDGET_S, 0.5, "every switch to verify")
    with contextlib.suppress(WaitTimeout):  # the assert below shows what differs
        wait_until(lambda: {n: switch_state(converged, n) for n in leaves} == before, RESTART_BUDGET_S, 0.5, "")
    assert {n: switch_state(converged, n) for n in leaves} == before
