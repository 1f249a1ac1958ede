"""`tor-agent status` / `verify` end to end: real FRR 8.4 in namespaces, links applied by tor-agent itself.

Layer by layer: OSPF adjacencies, BFD, then the route to the other leaf in OSPF, zebra and the kernel FIB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from frrlab import INTENTS, Fabric, Node, problems, read_state, wait_healthy

from tor_agent.health import status
from tor_agent.wait import wait_until

TOR_AGENT = str(Path(sys.executable).parent / "tor-agent")
DETECT_BUDGET_S = 3.0  # BFD 100 ms x 3 plus polling; default OSPF timers would take 40 s


def tor_agent(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the tor-agent CLI inside `node` as on a switch: its network namespace, FRR at the default paths."""
    intent_file = node.workdir / "agent.yaml"
    intent_file.write_text(INTENTS[node.name])
    # `ip netns exec` gives the command a private mount namespace: bind the node's FRR sockets over the
    # default /var/run/frr there, so vtysh finds this node's FRR exactly as it would on a switch.
    script = 'mount --bind "$1" /var/run/frr && shift && exec "$@"'
    # These nodes run FRR only (no Open vSwitch): check the underlay layer alone.
    argv = ["ip", "netns", "exec", node.ns.name, "sh", "-c", script, "sh", str(node.workdir), TOR_AGENT, *args]
    argv += ["--only", "underlay"]
    return subprocess.run([*argv, str(intent_file)], capture_output=True, text=True, timeout=60, check=False)


def test_converged_fabric_has_full_adjacencies_and_two_way_ecmp(fabric: Fabric) -> None:
    leaf1 = fabric["leaf1"]
    st = status(read_state(leaf1), leaf1.intent)
    assert [(u.uplink.name, u.healthy, u.bfd is not None and u.bfd.up) for u in st.uplinks] == [
        ("eth1", True, True),
        ("eth2", True, True),
    ]
    (vtep,) = st.vteps
    assert str(vtep.address) == "198.18.0.12" and vtep.width == 2
    assert vtep.ospf is not None and vtep.zebra is not None and vtep.kernel is not None
    assert vtep.ospf.nexthops == vtep.zebra.nexthops == vtep.kernel.nexthops
    for node in fabric.nodes.values():
        assert problems(node) == [], node.name


def test_cli_verify_and_status_on_a_healthy_leaf(fabric: Fabric) -> None:
    leaf1 = fabric["leaf1"]
    started = time.monotonic()
    done = tor_agent(leaf1, "verify")
    elapsed = time.monotonic() - started
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert done.stdout.startswith("leaf1: underlay healthy: 2/2 uplinks Full, 1 VTEP route(s), ECMP width 2")
    assert elapsed < 3.0, f"verify took {elapsed:.2f}s (it runs every few seconds)"

    done = tor_agent(leaf1, "status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True and doc["degraded"] == []
    assert [(u["name"], u["neighbor"]["state"], u["bfd"]["status"]) for u in doc["uplinks"]] == [
        ("eth1", "Full/-", "up"),
        ("eth2", "Full/-", "up"),
    ]
    assert [(v["address"], v["width"]) for v in doc["vteps"]] == [("198.18.0.12", 2)]

    text = tor_agent(fabric["spine1"], "status").stdout
    assert text.startswith("spine1 (spine): underlay healthy\n")
    assert "198.18.0.2  ECMP width 2" in text  # the other spine, over both leaves


def test_link_down_fails_verify_naming_the_uplink_and_the_reduced_width(fabric: Fabric) -> None:
    leaf1 = fabric["leaf1"]
    leaf1.ns.ip("link", "set", "eth2", "down")
    try:
        wait_until(lambda: len(problems(leaf1)) == 2, 10, interval=0.1, what="leaf1 to report eth2 down")
        done = tor_agent(leaf1, "verify")
        assert done.returncode == 1
        assert done.stdout.splitlines() == [
            "leaf1: underlay degraded (2):",
            "  underlay.uplinks[1] eth2: no OSPF neighbour on eth2",
            "  ECMP: width reduced to 1 of 2 uplinks (eth2 down) for 1 VTEP(s): 198.18.0.12",
        ]
        doc = json.loads(tor_agent(leaf1, "verify", "--json").stdout)
        assert doc["ok"] is False and [d["kind"] for d in doc["degraded"]] == ["uplink", "ecmp"]
    finally:
        leaf1.ns.ip("link", "set", "eth2", "up")
    wait_healthy(fabric)
    assert tor_agent(leaf1, "verify").returncode == 0


def test_silent_uplink_failure_is_detected_by_bfd_within_budget(fabric: Fabric) -> None:
    leaf1, spine2 = fabric["leaf1"], fabric["spine2"]
    chain = "{ type filter hook ingress device eth1 priority 0; policy drop; }"
    spine2.ns.exec("nft", "add", "table", "netdev", "silence")
    started = time.monotonic()
    spine2.ns.exec("nft", "add", "chain", "netdev", "silence", "in", chain)  # spine2 stops hearing leaf1
    try:
        wait_until(
            lambda: any(p.kind == "uplink" for p in problems(leaf1)),
            DETECT_BUDGET_S,
            interval=0.05,
            what="verify to see the silent failure",
        )
        detected = time.monotonic() - started
        assert detected < DETECT_BUDGET_S
        assert any(p.subject == "underlay.uplinks[1] eth2" for p in problems(leaf1))
    finally:
        spine2.ns.exec("nft", "delete", "table", "netdev", "silence")
    wait_healthy(fabric)


def test_verify_without_frr_is_a_degraded_read(fabric: Fabric) -> None:
    leaf2 = fabric["leaf2"]
    leaf2.workdir.joinpath("empty").mkdir(exist_ok=True)
    workdir = leaf2.workdir
    try:
        leaf2.workdir = workdir / "empty"  # no FRR sockets there: as if FRR were not running
        done = tor_agent(leaf2, "verify", "--json")
    finally:
        leaf2.workdir = workdir
    assert done.returncode == 1
    (item,) = json.loads(done.stdout)["degraded"]
    assert item["kind"] == "read" and "vtysh" in item["message"]
