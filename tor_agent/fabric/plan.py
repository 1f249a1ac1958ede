"""What render derives per switch and per link from the topology and the `fabric:` settings (pure).

Numbering follows the topology file's order: the Nth leaf (spine) listed gets the Nth leaf (spine)
loopback and, for leaves, the Nth DPID; the Nth leaf-spine link listed gets the Nth free /31 of the link
prefix (the spine the even address, the leaf the odd one), skipping the loopback prefixes and the
addresses the topology gives links itself. Appending switches and links to a topology therefore never
renumbers the ones already there.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from tor_agent.fabric.findings import Finding, Findings
from tor_agent.fabric.settings import DPID_DIGITS, Pool, Settings
from tor_agent.fabric.topology import FabricLink, Node, Topology


@dataclass(frozen=True)
class SwitchPlan:
    node: Node
    loopback: ipaddress.IPv4Address
    dpid: str | None  # leaves only: 16 hex digits


@dataclass(frozen=True)
class LinkPlan:
    link: FabricLink
    spine_address: ipaddress.IPv4Interface | None  # None on both ends: unnumbered
    leaf_address: ipaddress.IPv4Interface | None

    def address(self, node: str) -> ipaddress.IPv4Interface | None:
        return self.spine_address if node == self.link.spine.node else self.leaf_address


@dataclass(frozen=True)
class Plan:
    switches: dict[str, SwitchPlan]  # in file order
    links: tuple[LinkPlan, ...]  # in file order
    controllers: tuple[str, ...]  # OpenFlow targets of the controller nodes, in file order


def derive(topo: Topology, settings: Settings) -> tuple[Plan | None, list[Finding]]:
    """Loopbacks, DPIDs, link addresses and controller targets for `topo`; every problem at once."""
    f = Findings()
    fs = settings.fabric
    switches: dict[str, SwitchPlan] = {}
    for role, pool in (("spine", fs.spine_loopbacks), ("leaf", fs.leaf_loopbacks)):
        nodes = topo.role(role)  # type: ignore[arg-type]
        if len(nodes) > pool.capacity:
            f.error(
                f"{settings.source}: fabric.{role}_loopbacks",
                f"{pool.prefix} from host {pool.first_host} has room for {pool.capacity} loopbacks; "
                f"the topology has {len(nodes)} {'leaves' if role == 'leaf' else 'spines'} (use a larger prefix)",
            )
            continue
        for i, node in enumerate(nodes):
            switches[node.name] = SwitchPlan(node, _host(pool, i), _dpid(fs.first_dpid, i) if role == "leaf" else None)
    _dpids_fit(topo, settings, f)
    links = _links(topo, settings, f)
    controllers = _controllers(topo, settings, f)
    if f.errors:
        return None, f.items
    ordered = {n.name: switches[n.name] for n in topo.switches}
    return Plan(ordered, links, controllers), f.items


def _host(pool: Pool, ordinal: int) -> ipaddress.IPv4Address:
    address = pool.address(ordinal)
    assert address is not None  # capacity checked by the caller
    return address


def _dpid(first: int, ordinal: int) -> str:
    return f"{first + ordinal:0{DPID_DIGITS}x}"


def _dpids_fit(topo: Topology, settings: Settings, f: Findings) -> None:
    leaves = len(topo.role("leaf"))
    if leaves and settings.fabric.first_dpid + leaves - 1 >= 1 << (4 * DPID_DIGITS):
        f.error(
            f"{settings.source}: fabric.first_dpid",
            f"{leaves} leaves from {settings.fabric.first_dpid:016x} need DPIDs past ffffffffffffffff",
        )


def _links(topo: Topology, settings: Settings, f: Findings) -> tuple[LinkPlan, ...]:
    fs = settings.fabric
    given = [lk for lk in topo.fabric_links if lk.spine_address or lk.leaf_address]
    for lk in given:
        if lk.spine_address is None or lk.leaf_address is None:
            f.error(
                topo.link_path(lk),
                f"{lk}: ipv4 is given for one end only (give both ends, or neither to have one derived)",
                [lk.spine.node, lk.leaf.node],
            )
    taken = [fs.leaf_loopbacks.prefix, fs.spine_loopbacks.prefix]
    taken += [a.network for lk in given for a in (lk.spine_address, lk.leaf_address) if a is not None]
    free = _free_31s(fs.links, taken)
    plans: list[LinkPlan] = []
    for lk in topo.fabric_links:
        if lk.spine_address or lk.leaf_address:
            plans.append(LinkPlan(lk, lk.spine_address, lk.leaf_address))
        elif fs.unnumbered:
            plans.append(LinkPlan(lk, None, None))
        else:
            net = next(free, None)
            if net is None:
                wanted = sum(1 for x in topo.fabric_links if not (x.spine_address or x.leaf_address))
                f.error(
                    f"{settings.source}: fabric.links.prefix",
                    f"{fs.links} runs out of /31s at link {lk} ({wanted} links need one; "
                    "the loopback prefixes are skipped): use a larger prefix",
                )
                break
            plans.append(LinkPlan(lk, ipaddress.IPv4Interface((net[0], 31)), ipaddress.IPv4Interface((net[1], 31))))
    return tuple(plans)


def _free_31s(prefix: ipaddress.IPv4Network, taken: list[ipaddress.IPv4Network]) -> Iterator[ipaddress.IPv4Network]:
    """The /31s of `prefix` in address order, skipping every one that overlaps `taken`."""
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    starts = [s for s, _ in spans]
    ends_max: list[int] = []
    for _, end in spans:  # the furthest end among the spans starting at or before each one
        ends_max.append(max(end, ends_max[-1]) if ends_max else end)
    base = int(prefix.network_address)
    for offset in range(0, prefix.num_addresses - 1, 2):
        lo = base + offset
        i = bisect.bisect_right(starts, lo + 1) - 1
        if i >= 0 and ends_max[i] >= lo:
            continue
        yield ipaddress.IPv4Network((lo, 31))


def _controllers(topo: Topology, settings: Settings, f: Findings) -> tuple[str, ...]:
    fs = settings.fabric
    targets = []
    for node in topo.role("controller"):
        address = node.mgmt_ipv4 or node.mgmt_ipv6
        if address is None:
            if topo.role("leaf"):
                f.error(
                    topo.node_path(node.name),
                    "a controller needs a mgmt-ipv4 (or mgmt-ipv6) for the leaves to connect to",
                    [node.name],
                )
            continue
        host = f"[{address}]" if address.version == 6 else str(address)
        targets.append(f"{fs.controller_scheme}:{host}:{fs.controller_port}")
    return tuple(targets)
