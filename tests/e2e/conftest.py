"""Fixtures over the namespace lab (labs/lab): a session-scoped fabric, `lab.exec(node, ...)`, `wait_until`.
The lab kit itself (labs.labkit) is shared with the benchmarks.

Tests marked `lab` need root, network namespaces, FRR and Open vSwitch; they are skipped with the reason
where those are missing, except under CI (CI=true), where a missing prerequisite fails the run instead:
CI always has them and must run these tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labs.labkit.lab import CONVERGE_BUDGET_S, FABRIC, Lab, host_links, lab_lock, lab_unavailable
from labs.nslab import realise, status, topology
from tor_agent.wait import wait_until as shared_wait_until

# `make test` puts .venv/bin on PATH; a bare `.venv/bin/pytest` finds tor-agent next to its python.
if shutil.which(os.environ.get("TOR_AGENT") or "tor-agent") is None:
    os.environ["TOR_AGENT"] = str(Path(sys.executable).parent / "tor-agent")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `lab` tests where the lab cannot run (never under CI)."""
    if not any("lab" in item.keywords for item in items):
        return
    reason = lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI must run the lab tests, but the {reason}")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def bring_up(path: Path) -> Iterator[Lab]:
    """Up (without waiting: the tests poll layer by layer), yield, then down.

    An exclusive lock per lab name is held for the whole time, so two test sessions on one machine
    take turns instead of bringing one lab up and down under each other.
    """
    topo = topology.load(path)
    with lab_lock(topo.name):
        before = host_links()
        realise.up(topo)
        try:
            yield Lab(topo, before)
        finally:
            realise.down(topo)


@pytest.fixture(scope="session")
def fabric() -> Iterator[Lab]:
    """The demo fabric (labs/containerlab/fabric.clab.yml), up for the whole session."""
    yield from bring_up(FABRIC)


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    """The one shared polling helper (tor_agent.wait.wait_until)."""
    return shared_wait_until


FIGURES = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture(scope="session")
def record(pytestconfig: pytest.Config) -> Callable[[str, object], None]:
    """`record(name, value)`: a measured figure, printed in the terminal summary (so it shows in CI logs)."""
    figures = pytestconfig.stash.setdefault(FIGURES, [])
    return lambda name, value: figures.append((name, str(value)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The figures recorded with `record`, one per line."""
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("recorded figures")
        for name, value in figures:
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def converged(fabric: Lab) -> Lab:
    """The demo fabric once its underlay has converged (every check of `labs/lab status` passes)."""
    status.wait_converged(fabric.topo, CONVERGE_BUDGET_S)
    return fabric
