"""The realiser's life cycle: any file of the fabric's shape comes up converged, and `down` leaves nothing,
even after a crashed `up` or a lost state file."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from labs.labkit.lab import CONVERGE_BUDGET_S, FABRIC_3X4, LAB_CLI, lab_lock
from labs.nslab import procs, realise, state, status, topology

pytestmark = pytest.mark.lab
DOWN_BUDGET_S = 5.0


def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run labs/lab with `args`; fail the test with its output when it fails."""
    done = subprocess.run([str(LAB_CLI), *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"labs/lab {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def lab_processes(topo: topology.Topology) -> set[int]:
    """Every live process of the lab."""
    st = state.load(topo.name)
    return realise.lab_pids(realise.lab_namespaces(topo.name, list(topo.nodes), st), st)


def assert_gone(topo: topology.Topology, pids: set[int]) -> None:
    """No namespace, process or state of the lab is left."""
    names = {topo.netns(n) for n in topo.nodes} | {topo.mgmt_netns}
    assert names & set(procs.netns_list()) == set()
    assert {p for p in pids if procs.alive(p)} == set()
    assert not state.lab_dir(topo.name).exists()


def test_3x4_fabric_comes_up_converged_and_goes_away() -> None:
    topo = topology.load(FABRIC_3X4)
    with lab_lock(topo.name):
        try:
            lab("up", str(FABRIC_3X4), "--timeout", str(CONVERGE_BUDGET_S))
            result = status.collect(topo)
            assert result.healthy, status.table(result)
            for leaf in (n for n in result.nodes if n.role == "leaf"):
                others = ("leaf1", "leaf2", "leaf3", "leaf4")
                assert leaf.ecmp == {other: [3, 3] for other in others if other != leaf.name}
                assert (leaf.ospf_full, leaf.bfd_up, leaf.ovs) == (3, 3, True)
            pids = lab_processes(topo)
            assert len(pids) > len(topo.nodes)
        finally:
            start = time.monotonic()
            lab("down", str(FABRIC_3X4))
            took = time.monotonic() - start
        assert_gone(topo, pids)
        assert took <= DOWN_BUDGET_S
        lab("down", str(FABRIC_3X4))  # idempotent


def small_topology(tmp_path: Path) -> Path:
    """Two hosts and a controller-less lab: quick to build, enough to exercise the life cycle."""
    path = tmp_path / "pair.clab.yml"
    path.write_text(
        "name: tor-lab-pair\n"
        "mgmt: {network: pair, ipv4-subnet: 192.0.2.0/28}\n"
        "topology:\n"
        "  defaults: {kind: linux, labels: {tor-agent.role: host}}\n"
        "  nodes:\n"
        "    a: {exec: [ip address add 198.51.100.1/24 dev eth1]}\n"
        "    b: {exec: [ip address add 198.51.100.2/24 dev eth1]}\n"
        "  links: [{endpoints: [a:eth1, b:eth1], mtu: 1500}]\n"
    )
    return path


def test_down_cleans_up_after_a_crashed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topo = topology.load(small_topology(tmp_path))

    def crash(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the realiser dies after namespaces, links and holders exist

    monkeypatch.setattr(realise, "start_nodes", crash)
    with pytest.raises(KeyboardInterrupt):
        realise.up(topo)
    pids = lab_processes(topo)
    assert len(pids) == 2  # the holders
    assert topo.netns("a") in procs.netns_list()
    lab("down", str(topo.path))
    assert_gone(topo, pids)


def test_down_works_without_the_state_file(tmp_path: Path) -> None:
    topo = topology.load(small_topology(tmp_path))
    try:
        lab("up", str(topo.path))
        pids = lab_processes(topo)
        state.remove(topo.name)  # lost, e.g. the state directory was wiped while the lab ran
    finally:
        lab("down", str(topo.path))
    assert_gone(topo, pids)


def test_exec_runs_inside_the_node(tmp_path: Path) -> None:
    topo = topology.load(small_topology(tmp_path))
    try:
        lab("up", str(topo.path))
        out = lab("exec", str(topo.path), "a", "--", "sh", "-c", "hostname; ip -br -4 address show dev eth1").stdout
        assert out.split()[0] == "a" and "198.51.100.1/24" in out
        assert lab("exec", str(topo.path), "b", "--", "ping", "-c", "1", "-W", "2", "198.51.100.1", timeout=30)
    finally:
        lab("down", str(topo.path))


def test_realiser_refuses_a_topology_it_cannot_build(tmp_path: Path) -> None:
    path = tmp_path / "bad.clab.yml"
    path.write_text(
        "name: bad\ntopology:\n  nodes: {a: {labels: {tor-agent.role: host}}}\n"
        "  links: [{endpoints: [a:eth1, ghost:eth1]}]\n"
    )
    done = subprocess.run([str(LAB_CLI), "up", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "no node named 'ghost'" in done.stderr
    assert not any(n.startswith("clab-bad-") for n in procs.netns_list())
