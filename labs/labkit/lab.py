"""A running lab as tests and benchmarks see it, where the lab's files are, and the lock that makes users of
one lab take turns.

Several test sessions and benchmarks may run on one machine: whoever brings a lab up or uses it holds that
lab's machine-wide lock (`lab_lock`), so they take turns instead of bringing one lab up and down under each
other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labs.labkit import fabric
from labs.labkit.nodes import node_path, node_run, tor_agent_binary
from labs.nslab import realise, status, topology

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "labs" / "containerlab"
FABRIC = CLAB / "fabric.clab.yml"
FABRIC_3X4 = CLAB / "fabric-3x4.clab.yml"
FABRIC_LEAF4 = CLAB / "fabric-leaf4.clab.yml"
LAB_CLI = REPO / "labs" / "lab"
NODE_START = realise.NODE_START
CONVERGE_BUDGET_S = 30.0  # generous for a loaded CI machine; bench/lab_bringup.py measures the real figure
LOCK_DIR = Path("/run/lock")


@contextlib.contextmanager
def lab_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock of lab `name` (saying so on stderr when someone else has it first)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    path = LOCK_DIR / f"tor-agent-lab-{name}.lock"
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (someone else has lab {name})", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def lab_unavailable() -> str | None:
    """Why the namespace lab cannot run here, or None."""
    missing = realise.missing_prerequisites()
    if not missing:
        probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, timeout=10, check=False)
        if probe.returncode != 0:
            missing.append(f"namespaces ({probe.stderr.decode().strip()})")
    return f"namespace lab unavailable: needs {', '.join(missing)}" if missing else None


def host_links() -> set[str]:
    """Interface names in the host's own network namespace."""
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, timeout=10, check=True)
    return {link["ifname"] for link in json.loads(out.stdout)}


@contextlib.contextmanager
def running_lab(path: Path, announce: bool = True) -> Iterator[topology.Topology]:
    """The lab of `path`, under its lock: the running one, or one brought up now (every switch verifying) and
    taken down afterwards."""
    topo = topology.load(path)
    with lab_lock(topo.name):
        if realise.is_up(topo):
            yield topo
            return
        if announce:
            print(f"bringing up {path.name} ...", file=sys.stderr, flush=True)
        realise.up(topo)
        try:
            fabric.wait_healthy(topo, timeout=60)
            yield topo
        finally:
            realise.down(topo)


@dataclass
class Lab:
    """A running lab, as tests see it."""

    topo: topology.Topology
    host_links_before: set[str] = field(default_factory=set)

    @property
    def nodes(self) -> dict[str, topology.Node]:
        """Nodes by name."""
        return self.topo.nodes

    def role(self, role: str) -> list[str]:
        """Names of the nodes with `role`, in file order."""
        return [n.name for n in self.topo.by_role(role)]

    def exec(
        self, node: str, *argv: str, timeout: float = 30.0, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside `node` (its network, mount and UTS namespaces); raise NodeCommandError naming the node,
        the command and its output when it fails and `check`."""
        return node_run(self.topo, node, *argv, stdin=stdin, timeout=timeout, check=check)

    def json(self, node: str, *argv: str) -> Any:
        """Run a command printing JSON inside `node` and parse it."""
        return json.loads(self.exec(node, *argv).stdout or "null")

    def vtysh(self, node: str, command: str) -> Any:
        """`vtysh -c COMMAND` (a `... json` command) inside `node`, parsed."""
        return self.json(node, "vtysh", "-c", command)

    def status(self) -> status.LabStatus:
        """The lab's status, as `labs/lab status` computes it."""
        return status.collect(self.topo)

    def intent(self, node: str) -> dict[str, Any]:
        """The node's intent file, as plain data."""
        return fabric.intent(self.topo, node)

    def frr_reload_test(self, node: str, frr_conf: str) -> str:
        """`frr-reload.py --test FRR_CONF` inside `node`: what FRR's own tool would change to make the running
        configuration that file (empty: nothing). An outside referee for tor-agent's own comparison."""
        return self.exec(node, "/usr/lib/frr/frr-reload.py", "--test", frr_conf, timeout=60).stdout

    def rendered_in_sync(self, node: str, intent: str, workdir: str = "/run/tor-agent-referee") -> str:
        """frr-reload.py --test of `intent`'s rendering (tor-agent render, inside `node`): empty when FRR runs
        exactly that."""
        path = f"{workdir}/frr.conf"
        self.exec(node, "mkdir", "-p", workdir)
        self.exec(node, tor_agent_binary(self.topo), "render", intent, "--output", path)
        return self.frr_reload_test(node, path)

    def write_intent(self, node: str, data: dict[str, Any], path: str) -> str:
        """`data` as an intent file at `path` inside `node` (a node-private directory such as /run/...);
        returns `path`."""
        host = node_path(self.topo, node, path)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(yaml.safe_dump(data))
        return path
