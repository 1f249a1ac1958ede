"""A fabric written the way containerlab users write topologies (tests/e2e/data/clab-style/) under `labs/lab`.

Binds inherited from groups (`configs/__clabNodeName__/agent.yaml`; lf2's intent directory bound over
/etc/tor-agent instead), uplinks on eth5/eth7, links without an MTU, management addresses left to the lab,
a leaf without a host; sp1's frr.conf bound read-write (the usual containerlab FRR pattern: the file is the
node's starting configuration), sp2's frr.conf and daemons bound read-only; a controller node with no
binds (its app comes with the image). `labs/lab up` converges, FRR starts from the bound files, tor-agent
adds its own lines and keeps the rest, the bound files keep their inode (sp2's their content too), and
`labs/lab down` leaves nothing behind.

The files are copied to a temporary directory first: the lab writes sp1's frr.conf.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labs.labkit.lab import CONVERGE_BUDGET_S, LAB_CLI, Lab, host_links, lab_lock
from labs.labkit.nodes import agent_status
from labs.nslab import procs, realise, state, topology
from tor_agent.wait import wait_until

pytestmark = pytest.mark.lab

DATA = Path(__file__).resolve().parent / "data" / "clab-style"
STATIC_ROUTE = "ip route 203.0.113.192/26 Null0"
LOG_LINE = "log file /var/log/frr/frr.log"
READ_ONLY_WARNING = "FRR's running configuration is not saved to it"
BOUND = ("sp1/frr.conf", "sp2/frr.conf", "sp2/daemons")  # under configs/
PASS_BUDGET_S = 10.0
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a Debian image's default PATH


@dataclass
class ClabStyle:
    """The running lab, and what its bound files were before `up`: path -> (inode, mode, owner, content)."""

    lab: Lab
    configs: Path
    before: dict[str, tuple[int, int, int, bytes]]
    up_output: str

    def file(self, name: str) -> tuple[int, int, int, bytes]:
        """A bound file as it is now on the host."""
        path = self.configs / name
        st = path.stat()
        return st.st_ino, st.st_mode, st.st_uid, path.read_bytes()


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`labs/lab ARGS`, as a user runs it."""
    return subprocess.run([str(LAB_CLI), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def clab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClabStyle]:
    """The clab-style fabric, brought up with `labs/lab up` (which waits for it to converge), taken down after."""
    work = tmp_path_factory.mktemp("clab-style") / "lab"
    shutil.copytree(DATA, work)
    path = work / "clab-style.clab.yml"
    topo = topology.load(path)
    with lab_lock(topo.name):
        links_before = host_links()
        configs = work / "configs"
        before = {}
        for name in BOUND:
            st = (configs / name).stat()
            before[name] = (st.st_ino, st.st_mode, st.st_uid, (configs / name).read_bytes())
        up = lab_cli("up", str(path), "--timeout", str(CONVERGE_BUDGET_S))
        try:
            assert up.returncode == 0, up.stdout + up.stderr
            yield ClabStyle(Lab(topo, links_before), configs, before, up.stdout)
        finally:
            lab_cli("down", str(path))


def running_config(lab: Lab, node: str) -> str:
    return lab.exec(node, "vtysh", "-c", "show running-config").stdout


def one_more_pass(lab: Lab, node: str) -> dict[str, Any]:
    """SIGHUP the node's agent (as `systemctl reload tor-agent`) and wait for the pass it makes; its status."""
    passes = int(agent_status(lab.topo, node)["passes"])
    lab.exec(node, "sh", "-c", "kill -HUP $(cat /run/tor-agent.pid)")

    def after() -> dict[str, Any] | None:
        status = agent_status(lab.topo, node)
        return status if int(status["passes"]) > passes else None

    return wait_until(after, PASS_BUDGET_S, 0.05, f"{node}: a pass of the agent after SIGHUP")


def test_up_converges_ospf_full_and_ecmp_over_odd_interface_numbers(clab: ClabStyle) -> None:
    lab = clab.lab
    assert f"lab {lab.topo.name} up in " in clab.up_output
    result = lab.status()
    assert result.healthy, [(n.name, n.problems) for n in result.nodes]
    for node in result.nodes:
        if node.role in ("spine", "leaf"):
            assert node.ospf_full == node.ospf_expected == 2, node
            assert node.bfd_up == 2, node
    (host,) = [n for n in result.nodes if n.role == "host"]
    assert host.addresses == ["198.51.100.31/24 eth1"]  # from its link endpoint, as containerlab sets it
    ecmp = {n.name: n.ecmp for n in result.nodes if n.role == "leaf"}
    assert ecmp == {"lf1": {"lf2": [2, 2]}, "lf2": {"lf1": [2, 2]}}
    ospf = lab.vtysh("lf1", "show ip ospf neighbor json")["neighbors"]
    assert sorted(ospf) == ["198.18.255.21", "198.18.255.22"]
    assert sorted(e["ifaceName"].split(":")[0] for entries in ospf.values() for e in entries) == ["br-eth5", "br-eth7"]


def test_a_bound_read_write_frr_conf_is_the_start_and_keeps_its_lines_through_the_agents_passes(
    clab: ClabStyle,
) -> None:
    """sp1: FRR started from the bound file; tor-agent applied its lines on top and saved the result into the
    same file (same inode, owner and mode, rewritten in place); the static route and the log line survive."""
    lab = clab.lab
    status = one_more_pass(lab, "sp1")
    assert status["ready"] and status["last_pass"]["ok"], status
    running = running_config(lab, "sp1")
    for line in (STATIC_ROUTE, LOG_LINE, "router ospf", " ip ospf bfd profile tor-agent"):
        assert f"\n{line}\n" in running, f"{line!r} not in FRR's running configuration:\n{running}"
    inode, mode, owner, content = clab.file("sp1/frr.conf")
    assert (inode, mode, owner) == clab.before["sp1/frr.conf"][:3], "the bound file was replaced or re-owned"
    saved = content.decode()
    for line in (STATIC_ROUTE, LOG_LINE, "router ospf", "ospf router-id 198.18.255.21"):
        assert f"{line}\n" in saved, f"{line!r} not saved in the bound frr.conf:\n{saved}"
    assert lab.exec("sp1", "cat", "/etc/frr/frr.conf").stdout == saved
    kernel = lab.json("sp1", "ip", "-j", "route", "show", "203.0.113.192/26")
    assert [(r["type"], r["protocol"]) for r in kernel] == [("blackhole", "static")]


def test_a_bound_read_only_frr_conf_stays_as_it_is_and_the_agent_says_so_and_runs_on(clab: ClabStyle) -> None:
    """sp2: the read-only frr.conf is FRR's start; tor-agent's lines are applied on top (so the running
    configuration diverges from the file, as documented) and the agent logs one line naming the file."""
    lab = clab.lab
    status = one_more_pass(lab, "sp2")
    assert status["ready"] and status["last_pass"]["ok"], status
    running = running_config(lab, "sp2")
    for line in (STATIC_ROUTE, LOG_LINE, "router ospf"):
        assert f"\n{line}\n" in running, f"{line!r} not in FRR's running configuration:\n{running}"
    assert clab.file("sp2/frr.conf") == clab.before["sp2/frr.conf"], "the read-only frr.conf changed"
    assert "router ospf" not in clab.file("sp2/frr.conf")[3].decode()
    log = lab.exec("sp2", "cat", "/var/log/tor-agent.log").stdout
    said = [line for line in log.splitlines() if READ_ONLY_WARNING in line]
    assert len(said) == 1 and "WARNING" in said[0], log
    assert "Traceback" not in log


def test_a_bound_daemons_file_is_used_as_it_is(clab: ClabStyle) -> None:
    lab = clab.lab
    assert clab.file("sp2/daemons") == clab.before["sp2/daemons"]
    assert lab.exec("sp2", "cat", "/etc/frr/daemons").stdout.encode() == clab.before["sp2/daemons"][3]
    shown = lab.exec("sp2", "vtysh", "-c", "show daemons").stdout.split()
    assert {"zebra", "ospfd", "staticd", "bfdd"} <= set(shown), shown
    # the lab's own daemons file (sp1) is node-start's, with its fast watchfrr restarts
    assert "--min-restart-interval 1" in lab.exec("sp1", "cat", "/etc/frr/daemons").stdout


def test_a_controller_without_binds_runs_the_app_the_image_gives_it(clab: ClabStyle) -> None:
    lab = clab.lab
    assert lab.nodes["ctrl"].binds == ()
    lab.exec("ctrl", "test", "-f", "/etc/tor-agent/controller/osken_run.py")
    assert next(n for n in lab.status().nodes if n.name == "ctrl").controller is True

    def connected() -> bool:
        out = lab.exec("lf1", "ovs-vsctl", "--bare", "--columns=is_connected", "list", "Controller").stdout
        return out.split() == ["true"]

    wait_until(connected, 15.0, 0.2, "lf1's OVS connected to the controller")


def test_every_node_has_what_the_image_gives(clab: ClabStyle) -> None:
    lab = clab.lab
    for node in lab.nodes:
        lab.exec(node, "test", "-x", "/usr/local/sbin/node-start")
        hidden = node == "lf2"  # its own /etc/tor-agent covers the image's, as a container's bind would
        assert lab.exec(node, "test", "-d", "/etc/tor-agent/controller", check=False).returncode == int(hidden)
        # on the image's PATH: the tree's tor-agent bound at /usr/local/bin, or the installed package's
        found = lab.exec(node, "env", f"PATH={IMAGE_PATH}", "tor-agent", "--version")
        assert found.stdout.startswith("tor-agent")
        assert lab.exec(node, "hostname").stdout.strip() == node


def test_down_leaves_nothing_and_the_bound_files_in_place(clab: ClabStyle) -> None:
    topo = clab.lab.topo
    st = state.load(topo.name)
    pids = realise.lab_pids(realise.lab_namespaces(topo.name, list(topo.nodes), st), st)
    assert pids
    done = lab_cli("down", str(topo.path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert [ns for ns in procs.netns_list() if ns.startswith(f"clab-{topo.name}-")] == []
    assert {p for p in pids if procs.alive(p)} == set()
    assert not state.lab_dir(topo.name).exists()
    assert host_links() == clab.lab.host_links_before
    for name in BOUND:
        assert os.stat(clab.configs / name).st_ino == clab.before[name][0], name
    assert clab.file("sp2/frr.conf") == clab.before["sp2/frr.conf"]
    assert STATIC_ROUTE in clab.file("sp1/frr.conf")[3].decode()
