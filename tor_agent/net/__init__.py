"""Kernel networking through netlink (pyroute2), sysctls and nftables: the only package importing pyroute2.

`LinksDriver` is the links driver (`read()` the kernel, a pure `plan(spec, state)`, `apply(plan)` then
verify), to run before FRR and, on a netdev leaf, after the OVS driver created the uplink bridges;
`kernel_routes()` dumps the main IPv4 table with multipath nexthops; `interface_macs()` reads MACs;
`NetlinkMonitor` reports link, address and route changes (an fd to block on).
"""

from __future__ import annotations

from tor_agent.model.routes import KernelNexthop, KernelRoute, longest_match
from tor_agent.net.actions import Action
from tor_agent.net.errors import LinksDidNotSettle, NetError, NetlinkFailure, NftFailure, NoSuchInterface, SysctlFailure
from tor_agent.net.links import LinkResult, LinksDriver
from tor_agent.net.monitor import NetlinkChanges, NetlinkMonitor
from tor_agent.net.netlink import interface_macs, interface_names, kernel_routes
from tor_agent.net.owned import OWNED_FILE
from tor_agent.net.plan import LinksPlan
from tor_agent.net.state import KernelState

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
