"""The underlay in the lab, through `tor-agent` inside the switches: apply and verify on every switch, a silent
leaf-spine link failure measured with a UDP probe between leaf loopbacks, hand edits in FRR, bad intent.

Each test puts back what it changes (try/finally), so later tests see a healthy fabric. The probe and the
fault helpers are the lab kit's (labs.labkit), shared with bench/underlay_failover.py, which measures the
same failure without BFD too.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from labs.labkit import fabric
from labs.labkit.faults import silent_failure
from labs.labkit.lab import Lab
from labs.labkit.nodes import INTENT, paused_agents, tor_agent
from labs.labkit.probe import Probe, crossing, first_spine

pytestmark = pytest.mark.lab

LOSS_WINDOW_BUDGET_S = 0.5  # the target for a silent failure with BFD; measured 0.22-0.32 s
DETECT_BUDGET_S = 10.0  # until traffic flows around the failure and verify names it (BFD: 0.3 s)
HEALTHY_BUDGET_S = 30.0  # BFD's slow start and an OSPF adjacency coming back after the repair
HAND_COST = 77
HAND_ROUTE = "ip route 192.0.2.128/25 Null0"
FRR_FILES = ("/etc/frr/frr.conf", "/etc/frr/frr.conf.sav")  # what `tor-agent apply` saves
STASH = "/run/test-underlay"  # node-private (each node has its own /run)


def agent(lab: Lab, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`tor-agent ARGS` inside `node`, as on a switch; never fails the test by itself."""
    return tor_agent(lab.topo, node, *args)


def switches(lab: Lab) -> list[str]:
    """Spines and leaves."""
    return fabric.switches(lab.topo)


def running_config(lab: Lab, node: str) -> str:
    """FRR's running configuration, as `show running-config` prints it."""
    return lab.exec(node, "vtysh", "-c", "show running-config").stdout


def vtysh_conf(lab: Lab, node: str, *lines: str) -> None:
    """Configure FRR by hand, as an operator in vtysh would."""
    argv = ["vtysh", "-c", "configure terminal"]
    for line in lines:
        argv += ["-c", line]
    lab.exec(node, *argv)


def ospf_interfaces(lab: Lab, node: str) -> dict[str, str]:
    """Uplink name -> the interface OSPF runs on (the uplink, or its bridge on a netdev leaf), from `status`."""
    done = agent(lab, node, "status", "--json", INTENT)
    assert done.returncode == 0, done.stderr
    return {u["name"]: u["interface"] for u in json.loads(done.stdout)["uplinks"]}


def unhealthy(lab: Lab) -> list[str]:
    """`tor-agent verify` on every switch: the failing ones, with what they say."""
    return fabric.unhealthy(lab.topo)


def bfd_downs(lab: Lab) -> dict[tuple[str, str], int]:
    """(switch, interface) -> how often its BFD session went down, from bfdd's counters."""
    return {
        (node, str(p["interface"])): int(p["session-down"])
        for node in switches(lab)
        for p in lab.vtysh(node, "show bfd peers counters json")
    }


@contextmanager
def files_kept(lab: Lab, node: str, *paths: str) -> Iterator[None]:
    """Put the content of `paths` inside `node` back afterwards (`tor-agent apply` saves frr.conf: a hand
    edit must not stay in it); files that were not there are removed."""
    lab.exec(node, "mkdir", "-p", STASH)
    kept = {p: f"{STASH}/{i}" for i, p in enumerate(paths)}
    had = {p: lab.exec(node, "cp", "-p", p, copy, check=False).returncode == 0 for p, copy in kept.items()}
    try:
        yield
    finally:
        for path, copy in kept.items():
            if had[path]:
                lab.exec(node, "cp", copy, path)
            else:
                lab.exec(node, "rm", "-f", path)
        lab.exec(node, "rm", "-rf", STASH)


# --- (1) apply and verify everywhere -------------------------------------------------------------------------


def test_every_switch_applies_its_intent_and_a_second_apply_changes_nothing(converged: Lab) -> None:
    for node in switches(converged):
        first = agent(converged, node, "apply", INTENT)
        assert first.returncode == 0, f"{node}: {first.stdout}{first.stderr}"
        second = agent(converged, node, "apply", "--json", INTENT)
        assert second.returncode == 0, f"{node}: {second.stdout}{second.stderr}"
        assert json.loads(second.stdout)["changed"] is False, f"{node}: second apply changed {second.stdout}"
        diff = agent(converged, node, "diff", "--exit-code", INTENT)
        assert diff.returncode == 0, f"{node}: {diff.stdout}{diff.stderr}"


def test_verify_passes_on_every_switch(converged: Lab, wait_until: Any) -> None:
    wait_until(lambda: not unhealthy(converged), HEALTHY_BUDGET_S, 0.2, "tor-agent verify to pass on every switch")
    for node in switches(converged):
        done = agent(converged, node, "verify", INTENT)
        assert (done.returncode, done.stderr) == (0, ""), done.stdout
        uplinks = len(converged.intent(node)["underlay"]["uplinks"])
        assert done.stdout.startswith(f"{node}: underlay healthy: {uplinks}/{uplinks} uplinks Full"), done.stdout
    for leaf in converged.role("leaf"):
        spines = len(converged.role("spine"))
        assert f"ECMP width {spines}\n" in agent(converged, leaf, "verify", INTENT).stdout


def test_bfd_runs_on_every_uplink_with_the_intent_timers(converged: Lab, wait_until: Any) -> None:
    """One single-hop session per uplink, up, with the intent's intervals and multiplier on both ends."""

    def sessions(node: str) -> dict[str, dict[str, Any]]:
        return {str(p["interface"]): p for p in converged.vtysh(node, "show bfd peers json") if not p["multihop"]}

    for node in switches(converged):
        bfd = converged.intent(node)["underlay"]["ospf"]["bfd"]
        interfaces = sorted(ospf_interfaces(converged, node).values())
        wait_until(
            lambda node=node, interfaces=interfaces: (
                sorted(sessions(node)) == interfaces and all(p["status"] == "up" for p in sessions(node).values())
            ),
            HEALTHY_BUDGET_S,
            0.2,
            f"{node}: a BFD session up on each of {interfaces}",
        )
        for iface, p in sessions(node).items():
            timers = [p[k] for k in ("receive-interval", "transmit-interval", "detect-multiplier")]
            remote = [p[f"remote-{k}"] for k in ("receive-interval", "transmit-interval", "detect-multiplier")]
            assert timers == remote == [bfd["rx_ms"], bfd["tx_ms"], bfd["multiplier"]], f"{node} {iface}: {p}"


# --- (2) a silent link failure ---------------------------------------------------------------------------------


def degraded(lab: Lab, node: str) -> list[dict[str, str]] | None:
    """What `verify --json` on `node` lists when it exits 1 (degraded); None when it exits otherwise."""
    done = agent(lab, node, "verify", "--json", INTENT)
    return json.loads(done.stdout)["degraded"] if done.returncode == 1 else None


def names_uplink(items: list[dict[str, str]] | None, uplink: str) -> bool:
    """An uplink (or its BFD session) is listed by name."""
    return any(d["kind"] in ("uplink", "bfd") and uplink in d["subject"].split() for d in items or ())


def says(items: list[dict[str, str]] | None, text: str) -> bool:
    """Some degraded item says `text`."""
    return any(text in d["message"] for d in items or ())


def test_silent_link_failure_loss_window_and_verify(
    converged: Lab, wait_until: Any, record: Callable[[str, object], None]
) -> None:
    """Everything on one leaf-spine link dropped at the spine (BFD and OSPF too), carrier up: traffic between
    two leaves' loopbacks, over that link in both directions, is lost for <= 0.5 s; `verify` on both ends
    names the link, the leaf's verify the reduced ECMP width; after the repair verify passes everywhere."""
    topo = converged.topo
    a, b = converged.role("leaf")[:2]
    downs = bfd_downs(converged)
    with Probe.between_leaves(topo, a, b) as probe:
        link = first_spine(topo, probe.flows[0])
        affected = crossing(topo, probe.flows, link)
        interface = ospf_interfaces(converged, link.leaf)[link.uplink]
        uplinks = len(converged.intent(link.leaf)["underlay"]["uplinks"])
        with silent_failure(topo, link.spine, link.spine_iface) as started:
            wait_until(
                lambda: probe.recovered(started, affected), DETECT_BUDGET_S, 0.02, f"traffic to flow around {link}"
            )
            outage = probe.windows(started - 1)
            width = f"width reduced to {uplinks - 1} of {uplinks} uplinks ({interface} down)"

            def leaf_says() -> bool:
                items = degraded(converged, link.leaf)
                return names_uplink(items, link.uplink) and says(items, width)

            wait_until(leaf_says, DETECT_BUDGET_S, 0.1, f"{link.leaf}: verify to name {link.uplink} and say {width}")
            wait_until(
                lambda: names_uplink(degraded(converged, link.spine), link.spine_iface),
                DETECT_BUDGET_S,
                0.1,
                f"{link.spine}: verify to name {link.spine_iface}",
            )
            status = json.loads(agent(converged, link.leaf, "status", "--json", INTENT).stdout)
            assert [u["healthy"] for u in status["uplinks"] if u["name"] == link.uplink] == [False]
            assert {v["width"] for v in status["vteps"]} == {uplinks - 1}, status["vteps"]
            repaired = time.monotonic_ns()
        wait_until(lambda: not unhealthy(converged), HEALTHY_BUDGET_S, 0.2, "verify to pass everywhere after repair")
        healthy = time.monotonic_ns()
        wait_until(lambda: probe.arrived_since(healthy), DETECT_BUDGET_S, 0.05, "every probe flow after the repair")
        probe.stop()
        restore = probe.windows(repaired)

    worst = max(outage[f.key].seconds for f in affected)
    directions = sorted({f"{f.src}->{f.dst}" for f in affected})
    record(
        "underlay: silent leaf-spine failure, loss window with BFD",
        f"{worst * 1000:.0f} ms ({link.leaf}:{link.uplink} - {link.spine}:{link.spine_iface}, worst of "
        f"{len(affected)} flows {', '.join(directions)}; budget {LOSS_WINDOW_BUDGET_S * 1000:.0f} ms)",
    )
    record("underlay: loss after the link came back", f"{max(w.seconds for w in restore.values()) * 1000:.0f} ms")
    assert any(f.src == link.leaf for f in affected)
    assert all(outage[f.key].lost > 0 for f in affected), f"a flow over the failed link lost nothing: {outage}"
    assert worst <= LOSS_WINDOW_BUDGET_S, f"loss window {worst:.3f}s over {link}: {outage}"
    failed = {(link.leaf, interface), (link.spine, link.spine_iface)}
    flapped = {k: v for k, v in bfd_downs(converged).items() if k not in failed and v != downs.get(k)}
    assert flapped == {}, f"BFD sessions away from the failed link went down: {flapped}"


# --- (3) hand edits in FRR ------------------------------------------------------------------------------------


def test_hand_edit_is_shown_by_diff_and_repaired_by_apply_keeping_a_hand_made_route(
    converged: Lab, wait_until: Any
) -> None:
    """An uplink cost changed in vtysh: `diff` shows it (exit 3), `apply` puts it back, FRR is then in sync;
    a static route added by hand meanwhile is neither in the diff nor removed. The leaf's agent daemon (if
    it runs one) is paused meanwhile, so the CLI and not the daemon is what repairs the edit."""
    leaf = converged.role("leaf")[0]
    uplink = converged.intent(leaf)["underlay"]["uplinks"][0]
    interface = ospf_interfaces(converged, leaf)[uplink["name"]]
    cost = f"ip ospf cost {uplink['cost']}"
    with paused_agents(converged.topo, [leaf]), files_kept(converged, leaf, *FRR_FILES):
        try:
            vtysh_conf(converged, leaf, f"interface {interface}", f"ip ospf cost {HAND_COST}", "exit", HAND_ROUTE)

            diff = agent(converged, leaf, "diff", "--exit-code", INTENT)
            assert diff.returncode == 3, diff.stdout + diff.stderr
            assert f"interface {interface}\n- ip ospf cost {HAND_COST}\n+ {cost}\n" in diff.stdout
            changes = json.loads(agent(converged, leaf, "diff", "--json", INTENT).stdout)["changes"]
            edit = {
                "context": [f"interface {interface}"],
                "op": "replace",
                "line": cost,
                "old": f"ip ospf cost {HAND_COST}",
            }
            assert edit in changes
            assert "192.0.2.128" not in json.dumps(changes), "the hand-made route is not tor-agent's to change"

            done = agent(converged, leaf, "apply", INTENT)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"+ {cost}" in done.stdout

            running = running_config(converged, leaf)
            assert f"\ninterface {interface}\n" in running and f"\n {cost}\n" in running, running
            assert f" ip ospf cost {HAND_COST}\n" not in running
            assert f"\n{HAND_ROUTE}\n" in running, "apply removed the hand-made static route"
            kernel = converged.json(leaf, "ip", "-j", "route", "show", "192.0.2.128/25")
            assert [(r["type"], r["protocol"]) for r in kernel] == [("blackhole", "static")]
            assert json.loads(agent(converged, leaf, "diff", "--json", INTENT).stdout)["changes"] == []
        finally:
            vtysh_conf(converged, leaf, f"interface {interface}", cost, "exit", f"no {HAND_ROUTE}")
    assert HAND_ROUTE not in running_config(converged, leaf)
    assert converged.json(leaf, "ip", "-j", "route", "show", "192.0.2.128/25") == []
    # FRR is in sync at once; what follows from the ECMP width coming back (OVS's tunnel routes on a netdev
    # leaf) is the running agent's to follow
    wait_until(
        lambda: agent(converged, leaf, "diff", "--exit-code", INTENT).returncode == 0,
        HEALTHY_BUDGET_S,
        0.2,
        f"{leaf}: `tor-agent diff` to be clean",
    )


# --- (4) bad intent --------------------------------------------------------------------------------------------


def broken_cost(data: dict[str, Any]) -> str:
    data["underlay"]["uplinks"][0]["cost"] = 0
    return "underlay.uplinks[0].cost"


def unknown_key(data: dict[str, Any]) -> str:
    data["underlay"]["ospf"]["hello_intervall_s"] = 1
    return "underlay.ospf.hello_intervall_s"


@pytest.mark.parametrize("breakage", [broken_cost, unknown_key], ids=["invalid-cost", "unknown-key"])
def test_apply_of_a_bad_intent_changes_nothing_in_frr(
    converged: Lab, tmp_path: Path, breakage: Callable[[dict[str, Any]], str]
) -> None:
    """An invalid copy of a switch's intent: `apply` exits 2 naming the field; FRR's running configuration and
    frr.conf stay byte for byte as they were."""
    for node in (converged.role("leaf")[0], converged.role("spine")[0]):
        data = converged.intent(node)
        field = breakage(data)
        bad = tmp_path / f"{node}.yaml"  # the host's /tmp: visible inside the node
        bad.write_text(yaml.safe_dump(data))
        with paused_agents(converged.topo, [node]):
            before = (running_config(converged, node), converged.exec(node, "cat", FRR_FILES[0]).stdout)
            done = agent(converged, node, "apply", str(bad))
            after = (running_config(converged, node), converged.exec(node, "cat", FRR_FILES[0]).stdout)
        assert done.returncode == 2, done.stdout + done.stderr
        assert field in done.stderr and done.stdout == ""
        assert after == before, f"{node}: FRR changed after a refused apply"
