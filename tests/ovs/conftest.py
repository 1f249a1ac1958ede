"""Fixtures for the OVS driver tests: a private ovsdb-server + ovs-vswitchd per test, in a temp dir.

ovs-vswitchd runs in a namespace the sandbox creates (userspace `netdev` datapath only). Tests are skipped
with the reason where OVS or root is missing, except under CI (CI=true), which always has them: there a
missing prerequisite fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ovs_sandbox import OvsSandbox
from ovs_testlib import skip_reason
from prerequisites import skip_or_fail

from tor_agent.ovs.connection import OvsConnection


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ovs: needs ovsdb-server and ovs-vswitchd (a private pair is started)")


@pytest.fixture
def sandbox() -> Iterator[OvsSandbox]:
    """A running ovsdb-server + ovs-vswitchd of our own; stopped and removed after the test."""
    skip_or_fail(skip_reason(), "OVS tests")
    with OvsSandbox() as box:
        yield box


@pytest.fixture
def conn(sandbox: OvsSandbox) -> Iterator[OvsConnection]:
    """tor-agent's driver connected to the sandbox."""
    with OvsConnection.open(sandbox.remote, timeout=10, vswitchd_timeout=10) as c:
        yield c
