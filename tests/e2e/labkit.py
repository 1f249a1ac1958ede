"""The namespace lab as tests see it: a running lab with `exec`, plus the checks that decide skipping."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "labs"))

from nslab import realise, status, topology  # noqa: E402

FABRIC = REPO / "labs" / "containerlab" / "fabric.clab.yml"
FABRIC_3X4 = REPO / "labs" / "containerlab" / "fabric-3x4.clab.yml"
LAB_CLI = REPO / "labs" / "lab"
CONVERGE_BUDGET_S = 30.0  # generous for a loaded CI machine; bench/lab_bringup.py measures the real figure


@contextmanager
def lab_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock of lab `name`: concurrent test sessions take turns with one lab."""
    lock_dir = Path("/run/lock")
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"tor-agent-lab-{name}.lock", "w") as lock:
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
        """Names of the nodes with `role`."""
        return [n.name for n in self.topo.by_role(role)]

    def exec(
        self, node: str, *argv: str, timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside `node` (its network, mount and UTS namespaces); fail the test if it fails and `check`."""
        full, env = realise.exec_argv(self.topo, node, list(argv))
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if check and done.returncode != 0:
            pytest.fail(
                f"{node}: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
            )
        return done

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
        import yaml

        path = self.nodes[node].intent_file()
        assert path is not None, f"{node} has no intent file"
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict)
        return data
