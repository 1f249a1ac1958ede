"""Kernel networking through netlink (pyroute2), sysctls and nftables: the only package importing pyroute2.

Entry points: `apply_links(intent)` brings links, addresses, sysctls and the OVS-port drop chains to the
intent (call it before FRR; on a netdev leaf after the OVS driver created the uplink bridges);
`plan_links(intent)` is its dry run; `kernel_routes()` dumps the main IPv4 table with multipath nexthops;
`interface_macs()` reads MACs; `NetlinkMonitor` reports link, address and route changes (an fd to block on).
"""

from __future__ import annotations

from tor_agent.net.actions import Action
from tor_agent.net.errors import LinksDidNotSettle, NetError, NetlinkFailure, NftFailure, NoSuchInterface, SysctlFailure
from tor_agent.net.links import LinkResult, LinksDriver, apply_links, plan_links
from tor_agent.net.monitor import NetlinkChanges, NetlinkMonitor
from tor_agent.net.netlink import interface_macs, kernel_routes
from tor_agent.net.owned import OWNED_FILE
from tor_agent.net.routes import KernelNexthop, KernelRoute, longest_match

__all__ = [
    "OWNED_FILE",
    "Action",
    "KernelNexthop",
    "KernelRoute",
    "LinkResult",
    "LinksDidNotSettle",
    "LinksDriver",
    "NetError",
    "NetlinkChanges",
    "NetlinkFailure",
    "NetlinkMonitor",
    "NftFailure",
    "NoSuchInterface",
    "SysctlFailure",
    "apply_links",
    "interface_macs",
    "kernel_routes",
    "longest_match",
    "plan_links",
]
