"""Safe change on the demo fabric: a planned drain of a spine moves traffic away before anything goes down (no
datagram lost, underlay and overlay, drain / FRR restart / agent restart / undrain), where a silent failure of
the same link loses some; the last healthy spine is not drained; commit-confirm goes back exactly; history and
rollback restore a state exactly."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from test_overlay import overlay as overlay_fixture  # noqa: F401 (registers the fixture `overlay` here)
from test_overlay import route_link
from test_underlay import running_config

from labs.labkit.faults import silent_failure
from labs.labkit.lab import NODE_START, Lab
from labs.labkit.nodes import INTENT, agent_status, tor_agent_binary
from labs.labkit.probe import Probe, first_spine
from tor_agent.wait import wait_until

pytestmark = pytest.mark.lab

WORK = "/run/test-safe-change"  # node-private
CONVERGE_BUDGET_S = 30.0


def agent(lab: Lab, node: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`tor-agent ARGS` inside `node`."""
    return lab.exec(node, tor_agent_binary(lab.topo), *args, timeout=120, check=check)


def write_intent(lab: Lab, node: str, data: dict[str, Any], name: str) -> str:
    """`data` as an intent file in `node`'s private /run; its path inside the node."""
    return lab.write_intent(node, data, f"{WORK}/{name}")


def state(lab: Lab, node: str) -> tuple[str, str, str]:
    """What tor-agent owns on `node`: FRR's running configuration, kernel addresses and MTUs, OVS's interfaces."""
    links = lab.json(node, "ip", "-j", "address", "show")
    shown = json.dumps(sorted((i["ifname"], i["mtu"], sorted(a["local"] for a in i["addr_info"])) for i in links))
    ovs = ""
    if node in lab.role("leaf"):
        cols = "--columns=name,type,options,mtu_request,ofport_request"
        ovs = lab.exec(node, "ovs-vsctl", "--format=json", cols, "list", "Interface").stdout
    return running_config(lab, node), shown, ovs


def verified(lab: Lab, nodes: list[str]) -> bool:
    return all(agent(lab, n, "verify", INTENT).returncode == 0 for n in nodes)


@contextmanager
def cleaned(lab: Lab, *nodes: str) -> Iterator[None]:
    """Give the nodes back as they were: undrained, running their own intent file, nothing pending."""
    try:
        yield
    finally:
        for node in nodes:
            agent(lab, node, "confirm")
            agent(lab, node, "undrain")
            agent(lab, node, "apply", INTENT)
            lab.exec(node, "rm", "-rf", WORK, check=False)


# --- drain ----------------------------------------------------------------------------------------------------


def lost_during(under: Probe, over: Probe, wait_until: Any, action: Callable[[], object]) -> dict[str, int]:
    """Datagrams lost by each probe from the start of `action` until every flow delivered after it."""
    since = time.monotonic_ns()
    action()
    after = time.monotonic_ns()
    wait_until(lambda: under.arrived_since(after) and over.arrived_since(after), 10, 0.02, "every flow after it")
    for g in [*under.gaps(), *over.gaps()]:
        if g["to_ns"] > since:
            print(f"gap {g['flow']}: {g['lost']} lost {(g['from_ns'] - since) / 1e6:.0f} ms after the start")
    return {
        name: sum(w.lost for w in probe.windows(since).values()) for name, probe in (("under", under), ("over", over))
    }


def restart_frr(lab: Lab, node: str) -> None:
    lab.exec(node, "/usr/lib/frr/frrinit.sh", "restart", timeout=60)


def restart_agent(lab: Lab, node: str) -> None:
    pid = lab.exec(node, "cat", "/run/tor-agent.pid").stdout.strip()
    lab.exec(node, "kill", "-KILL", pid)
    wait_until(
        lambda: lab.exec(node, "kill", "-0", pid, check=False).returncode != 0, 10, 0.02, f"{node}'s agent to end"
    )
    lab.exec(node, str(NODE_START), "agent", timeout=60)


def underlay_across(lab: Lab, spine: str) -> Probe:
    """Flows between two leaves' loopbacks of which at least one is routed through `spine` (the kernel hashes
    ECMP on the addresses: which pair crosses which spine is the fabric's choice, not the test's)."""
    for a, b in itertools.combinations(lab.role("leaf"), 2):
        probe = Probe.between_leaves(lab.topo, a, b)
        if any(first_spine(lab.topo, f).spine == spine for f in probe.flows):
            return probe
    pytest.fail(f"no pair of leaves routes its loopback traffic through {spine}")


def test_a_planned_drain_loses_nothing_where_a_silent_failure_of_the_same_link_does(
    overlay: Lab,
    wait_until: Any,
    record: Any,
) -> None:
    lab = overlay
    leaf_a, leaf_b = "leaf1", "leaf2"
    link = route_link(lab, leaf_a, leaf_b)  # the spine host1 -> host2's tunnel rides on
    spine, spines = link.spine, lab.role("spine")
    lost: dict[str, dict[str, int]] = {}
    under, over = underlay_across(lab, spine), Probe.between_hosts(lab.topo, "host1", "host2")
    with cleaned(lab, spine), under, over:
        start = time.monotonic()
        lost["drain --wait"] = lost_during(under, over, wait_until, lambda: agent(lab, spine, "drain", "--wait"))
        drained_after = time.monotonic() - start
        assert agent_status(lab.topo, spine)["drain"]["drained"] is True
        wait_until(lambda: route_link(lab, leaf_a, leaf_b).spine != spine, 5, 0.05, "the tunnel off the spine")
        lost["FRR restart, drained"] = lost_during(under, over, wait_until, lambda: restart_frr(lab, spine))
        wait_until(lambda: verified(lab, lab.role("leaf")), CONVERGE_BUDGET_S, 0.2, "the leaves after FRR")
        lost["agent restart, drained"] = lost_during(under, over, wait_until, lambda: restart_agent(lab, spine))
        lost["undrain"] = lost_during(under, over, wait_until, lambda: agent(lab, spine, "undrain"))
        wait_until(lambda: verified(lab, [*spines, *lab.role("leaf")]), CONVERGE_BUDGET_S, 0.2, "all healthy")
        wait_until(lambda: route_link(lab, leaf_a, leaf_b) == link, 5, 0.05, "the tunnel back on its hashed path")
        with silent_failure(lab.topo, link.spine, link.spine_iface) as started:
            # the tunnel crosses the link and loses; the leaves' flows may not: they only have to arrive
            wait_until(lambda: over.recovered(started) and under.arrived_since(started), 10, 0.02, "traffic around it")
            silent = [*under.windows(started - 1).values(), *over.windows(started - 1).values()]
        wait_until(lambda: verified(lab, [*spines, *lab.role("leaf")]), CONVERGE_BUDGET_S, 0.2, "healthy again")
    worst = max(w.seconds for w in silent)
    record("safe change: datagrams lost (drain, FRR restart, agent restart, undrain)", json.dumps(lost))
    record("safe change: drain --wait returned after", f"{drained_after:.2f} s")
    record("safe change: silent failure of the same link, loss window", f"{worst * 1000:.0f} ms")
    assert all(n == 0 for probes in lost.values() for n in probes.values()), lost
    assert sum(w.lost for w in silent) > 0, "the silent failure lost nothing: was the link on the path?"


def test_the_last_healthy_spine_is_not_drained_unless_forced(converged: Lab) -> None:
    first, last = converged.role("spine")
    leaves = [f"198.18.0.1{i}" for i in (1, 2, 3)]
    with cleaned(converged, first, last):
        assert agent(converged, first, "drain").returncode == 0
        before = running_config(converged, last)
        refused = agent(converged, last, "drain")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "drain refused, 3 pair(s) would be short of paths" in refused.stderr
        assert all(f"{a} <-> {b}" in refused.stderr for a, b in ((leaves[0], leaves[1]), (leaves[1], leaves[2])))
        assert running_config(converged, last) == before and not agent_status(converged.topo, last)["drain"]["drained"]
        forced = agent(converged, last, "drain", "--force")
        assert forced.returncode == 0 and "warning: drained by --force" in forced.stderr
        assert "max-metric router-lsa administrative" in running_config(converged, last)


# --- commit-confirm -----------------------------------------------------------------------------------------


def broken_uplink(lab: Lab, leaf: str) -> dict[str, Any]:
    """The leaf's intent with its first uplink on a wrong /31: valid, but the adjacency on it goes."""
    data = lab.intent(leaf)
    data["underlay"]["uplinks"][0]["address"] = "198.18.9.1/31"
    return data


def test_apply_confirm_goes_back_exactly_when_not_confirmed(converged: Lab, wait_until: Any) -> None:
    leaf = converged.role("leaf")[0]
    with cleaned(converged, leaf):
        before = state(converged, leaf)
        bad = write_intent(converged, leaf, broken_uplink(converged, leaf), "bad.yaml")
        done = agent(converged, leaf, "apply", "--confirm", "10", bad)
        assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: the broken uplink's problems
        assert "on trial for 10 s" in done.stderr and state(converged, leaf) != before
        pending = agent_status(converged.topo, leaf)["pending_confirm"]
        assert pending is not None
        wait_until(lambda: agent_status(converged.topo, leaf)["pending_confirm"] is None, 30, 0.2, "the window")
        wait_until(lambda: state(converged, leaf) == before, 10, 0.2, "the state before the change")
        assert converged.rendered_in_sync(leaf, INTENT) == ""  # FRR's own tool agrees: nothing to change
        history = json.loads(agent(converged, leaf, "history", "--json", check=True).stdout)
        assert history["entries"][-1]["who"] == "confirm-timeout" and history["pinned"] is True


def test_rollback_on_degrade_starts_within_two_seconds_of_the_adjacency_loss(converged: Lab, wait_until: Any) -> None:
    leaf = converged.role("leaf")[0]
    with cleaned(converged, leaf):
        wait_until(lambda: verified(converged, [leaf]), CONVERGE_BUDGET_S, 0.2, f"{leaf} healthy first")
        before = state(converged, leaf)
        bad = write_intent(converged, leaf, broken_uplink(converged, leaf), "bad.yaml")
        agent(converged, leaf, "apply", "--confirm", "300", "--rollback-on-degrade", bad)
        lost_at: list[float] = []

        def adjacency_lost() -> bool:
            neighbours = converged.vtysh(leaf, "show ip ospf neighbor json")["neighbors"]
            full = [n for ns in neighbours.values() for n in ns if n["nbrState"].startswith("Full")]
            if len(full) < 2 and not lost_at:
                lost_at.append(time.time())
            return bool(lost_at)

        wait_until(adjacency_lost, 30, 0.05, "the broken uplink's adjacency to go")
        wait_until(lambda: agent_status(converged.topo, leaf)["pending_confirm"] is None, 30, 0.1, "the rollback")
        history = json.loads(agent(converged, leaf, "history", "--json", check=True).stdout)
        rollback = history["entries"][-1]
        assert rollback["who"] == "degraded"
        assert rollback["time"] - lost_at[0] <= 2.0, f"rollback {rollback['time'] - lost_at[0]:.2f} s after the loss"
        wait_until(lambda: state(converged, leaf) == before, 10, 0.2, "the state before the change")


def test_a_confirmed_change_stays(converged: Lab, wait_until: Any) -> None:
    leaf = converged.role("leaf")[0]
    data = converged.intent(leaf)
    data["underlay"]["uplinks"][0]["cost"] = 11
    with cleaned(converged, leaf):
        changed = write_intent(converged, leaf, data, "cost11.yaml")
        agent(converged, leaf, "apply", "--confirm", "3", changed, check=True)
        deadline = agent_status(converged.topo, leaf)["pending_confirm"]["deadline"]
        assert agent(converged, leaf, "confirm", check=True).stdout.startswith("confirmed: history entry")
        wait_until(lambda: time.time() > deadline + 1, 10, 0.2, "the window's end")
        assert " ip ospf cost 11\n" in running_config(converged, leaf)


# --- history --------------------------------------------------------------------------------------------------


def test_history_lists_three_applies_and_rollback_restores_the_first_exactly(converged: Lab, wait_until: Any) -> None:
    leaf = converged.role("leaf")[0]
    with cleaned(converged, leaf):
        states, ids = [], []
        for cost in (11, 12, 13):
            data = converged.intent(leaf)
            data["underlay"]["uplinks"][0]["cost"] = cost
            agent(converged, leaf, "apply", write_intent(converged, leaf, data, f"cost{cost}.yaml"), check=True)
            states.append(state(converged, leaf))
            ids.append(json.loads(agent(converged, leaf, "history", "--json", check=True).stdout)["current"])
        listed = agent(converged, leaf, "history", check=True).stdout
        assert all(f"cost{c}.yaml" in listed for c in (11, 12, 13)) and len(set(ids)) == 3
        diff = agent(converged, leaf, "diff", "--against", str(ids[0]), f"{WORK}/cost13.yaml", check=True).stdout
        assert "cost: 11" in diff and "cost: 13" in diff, diff
        agent(converged, leaf, "rollback", str(ids[0]), check=True)
        wait_until(lambda: state(converged, leaf) == states[0], 10, 0.2, "the first apply's state")
        assert agent_status(converged.topo, leaf)["history_entry"]["who"] == "rollback"
