"""The test leaf's intent and the prerequisites of the OVS tests (a module name no other test dir uses)."""

from __future__ import annotations

import os
from typing import Any

from intents import intent_from
from ovs_sandbox import missing_binaries

from tor_agent.config import Intent

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
    return intent_from(LEAF, **edits)
