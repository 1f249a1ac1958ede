"""Kernel networking through netlink (pyroute2), sysctls and nftables: the only package importing pyroute2.

`LinksDriver` is the links driver (`read()` the kernel, a pure `plan(spec, state)`, `apply(plan)` then
verify), to run before FRR and, on a netdev leaf, after the OVS driver created the uplink bridges;
`kernel_routes()` dumps the main IPv4 table with multipath nexthops; `interface_macs()` reads MACs;
`NetlinkMonitor` reports link, address and route changes (an fd to block on).

The names below are imported when first used: the modules that need no pyroute2 (`monitor`, `sockets`,
`tcp_probe`) must not pay for it (10 MB and most of a CLI start on Debian 12).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tor_agent.model.routes import KernelNexthop, KernelRoute, longest_match
    from tor_agent.net.actions import Action
    from tor_agent.net.errors import (
        LinksDidNotSettle,
        NetError,
        NetlinkFailure,
        NftFailure,
        NoSuchInterface,
        SysctlFailure,
    )
    from tor_agent.net.links import LinkResult, LinksDriver
    from tor_agent.net.monitor import NetlinkChanges, NetlinkMonitor
    from tor_agent.net.netlink import interface_macs, interface_names, kernel_routes
    from tor_agent.net.owned import OWNED_FILE
    from tor_agent.net.plan import LinksPlan
    from tor_agent.net.state import KernelState

_WHERE = {
    "KernelNexthop": "tor_agent.model.routes",
    "KernelRoute": "tor_agent.model.routes",
    "longest_match": "tor_agent.model.routes",
    "Action": "tor_agent.net.actions",
    "LinksDidNotSettle": "tor_agent.net.errors",
    "NetError": "tor_agent.net.errors",
    "NetlinkFailure": "tor_agent.net.errors",
    "NftFailure": "tor_agent.net.errors",
    "NoSuchInterface": "tor_agent.net.errors",
    "SysctlFailure": "tor_agent.net.errors",
    "LinkResult": "tor_agent.net.links",
    "LinksDriver": "tor_agent.net.links",
    "NetlinkChanges": "tor_agent.net.monitor",
    "NetlinkMonitor": "tor_agent.net.monitor",
    "interface_macs": "tor_agent.net.netlink",
    "interface_names": "tor_agent.net.netlink",
    "kernel_routes": "tor_agent.net.netlink",
    "OWNED_FILE": "tor_agent.net.owned",
    "LinksPlan": "tor_agent.net.plan",
    "KernelState": "tor_agent.net.state",
}

__all__ = [
    "OWNED_FILE",
    "Action",
    "KernelNexthop",
    "KernelRoute",
    "KernelState",
    "LinkResult",
    "LinksDidNotSettle",
    "LinksDriver",
    "LinksPlan",
    "NetError",
    "NetlinkChanges",
    "NetlinkFailure",
    "NetlinkMonitor",
    "NftFailure",
    "NoSuchInterface",
    "SysctlFailure",
    "interface_macs",
    "interface_names",
    "kernel_routes",
    "longest_match",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
