"""Fixtures for the OVS driver tests: a private ovsdb-server + ovs-vswitchd per test, in a temp dir.

ovs-vswitchd runs in a namespace the sandbox creates (userspace `netdev` datapath only). Tests are skipped
with the reason where OVS or root is missing, except under CI (CI=true), which always has them: there a
missing prerequisite fails the run.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tor_agent.config import Intent, load_text
from tor_agent.ovs.connection import OvsConnection
from tor_agent.ovs.sandbox import OvsSandbox, missing_binaries

LEAF: dict[str, Any] = {
    "version": 1,
    "node": {"hostname": "leaf1", "role": "leaf", "router_id": "198.18.0.11", "loopback": "198.18.0.11/32"},
    "underlay": {"ospf": {"area": "0.0.0.0"}, "uplinks": [{"name": "eth1", "unnumbered": True, "mtu": 9000}]},
    "overlay": {
        "bridge": "br-tor",
        "datapath": "netdev",
        "dpid": "00000000000000a1",
        "protocols": ["OpenFlow13"],
        "fail_mode": "secure",
        "access_ports": [],
        "tunnels": {"key": 100, "peers": ["198.18.0.12", "198.18.0.13"]},
    },
}


def skip_reason() -> str | None:
    """Why the OVS tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (ovs-vswitchd in a network namespace)"
    missing = missing_binaries()
    if missing:
        return f"needs Open vSwitch (apt install openvswitch-switch): missing {', '.join(missing)}"
    return None


def make_intent(**edits: Any) -> Intent:
    """LEAF with top-level-dotted edits, e.g. make_intent(**{"overlay.tunnels": {...}}); None deletes."""
    doc = copy.deepcopy(LEAF)
    for path, value in edits.items():
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return load_text(yaml.safe_dump(doc))


@pytest.fixture
def sandbox() -> Iterator[OvsSandbox]:
    """A running ovsdb-server + ovs-vswitchd of our own; stopped and removed after the test."""
    reason = skip_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the OVS tests, but this machine {reason}")
        pytest.skip(reason)
    box = OvsSandbox()
    try:
        box.start()
        yield box
    finally:
        box.stop()


@pytest.fixture
def conn(sandbox: OvsSandbox) -> Iterator[OvsConnection]:
    """tor-agent's driver connected to the sandbox."""
    with OvsConnection.open(sandbox.remote, timeout=10, vswitchd_timeout=10) as c:
        yield c
