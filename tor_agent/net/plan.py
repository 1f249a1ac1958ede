"""Plan the changes that bring the kernel to the intent's link state: pure, over already-read state.

Per object: an interface the intent names that does not exist is skipped (reported as missing), and every
other interface is planned as usual; nftables drop chains are kept for the OVS ports that exist only.

Order (the order they are applied in): sysctls (IPv6 off on OVS ports before they come up), the nftables
drop chains (the kernel must not answer for an OVS port once it is up), MTUs, admin up, then addresses:
removals before additions, so an address moving within a subnet never ends up a secondary that the
kernel deletes together with the old primary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface

from tor_agent.model.links import LinkSpec, LinksSpec
from tor_agent.net.actions import Action, AddAddress, RemoveAddress, SetMtu, SetNftDropPorts, SetSysctl, SetUp
from tor_agent.net.errors import NoSuchInterface
from tor_agent.net.state import KernelState


@dataclass(frozen=True)
class LinksPlan:
    """The changes for the interfaces that exist, and the ones the intent names that do not."""

    spec: LinksSpec
    actions: tuple[Action, ...] = ()
    missing: tuple[LinkSpec, ...] = ()
    unowned: tuple[tuple[str, IPv4Interface], ...] = ()  # wanted addresses already there, not tor-agent's
    state: KernelState | None = field(default=None, compare=False)  # what it was planned from

    def __bool__(self) -> bool:
        return bool(self.actions)

    def changes(self) -> tuple[str, ...]:
        """One line per change."""
        return tuple(map(str, self.actions))

    def findings(self) -> tuple[NoSuchInterface, ...]:
        """What cannot be planned: one error per missing interface."""
        return tuple(NoSuchInterface(link) for link in self.missing)

    def notes(self) -> tuple[str, ...]:
        """Addresses kept as they are because tor-agent did not add them."""
        return tuple(
            f"{name}: {address} was already there (not tor-agent's: never removed)" for name, address in self.unowned
        )


def missing_interfaces(spec: LinksSpec, state: KernelState) -> tuple[LinkSpec, ...]:
    """The interfaces the intent names that the kernel does not have."""
    return tuple(link for link in spec.links if link.name not in state.links)


def present_only(spec: LinksSpec, state: KernelState) -> LinksSpec:
    """`spec` without the interfaces the kernel does not have."""
    return LinksSpec(tuple(link for link in spec.links if link.name in state.links), spec.sysctls)


def plan_links(spec: LinksSpec, state: KernelState) -> LinksPlan:
    """Every change needed for the interfaces that exist, in apply order; the missing ones are listed apart."""
    present = present_only(spec, state)
    missing, unowned = missing_interfaces(spec, state), unowned_addresses(present, state)
    return LinksPlan(spec, plan(present, state), missing, unowned, state)


def plan(spec: LinksSpec, state: KernelState) -> tuple[Action, ...]:
    """Every change needed, in apply order; empty when the kernel already matches. Every interface of `spec`
    must exist (`plan_links` leaves the missing ones out)."""
    return (
        *_sysctls(spec, state),
        *_nft(spec, state),
        *_mtus(spec, state),
        *_ups(spec, state),
        *_removals(spec, state),
        *_additions(spec, state),
    )


def unowned_addresses(spec: LinksSpec, state: KernelState) -> tuple[tuple[str, IPv4Interface], ...]:
    """Wanted addresses that are present but were not added by tor-agent: kept, and never removed by it."""
    owned = {(o.ifname, o.address) for o in state.owned_present()}
    return tuple(
        (link.name, address)
        for link in spec.links
        if (current := state.links.get(link.name)) is not None
        for address in link.addresses
        if address in current.addresses and (link.name, address) not in owned
    )


def _sysctls(spec: LinksSpec, state: KernelState) -> list[Action]:
    actions: list[Action] = []
    for sysctl in spec.sysctls:
        current = state.sysctls.get(sysctl.path)
        if current is not None and current != sysctl.value:
            actions.append(SetSysctl(sysctl, current))
    return actions


def _nft(spec: LinksSpec, state: KernelState) -> list[Action]:
    wanted = spec.ovs_ports
    table = state.nft
    if not wanted:
        return [SetNftDropPorts(())] if table is not None else []
    if table is not None and table.exact and table.drop_ports == frozenset(wanted):
        return []
    return [SetNftDropPorts(wanted)]


def _mtus(spec: LinksSpec, state: KernelState) -> list[Action]:
    return [
        SetMtu(link.name, link.mtu, current.mtu)
        for link in spec.links
        if link.mtu is not None and (current := state.links[link.name]).mtu != link.mtu
    ]


def _ups(spec: LinksSpec, state: KernelState) -> list[Action]:
    return [SetUp(link.name) for link in spec.links if not state.links[link.name].up]


def _removals(spec: LinksSpec, state: KernelState) -> list[Action]:
    actions: list[Action] = []
    for owned in sorted(state.owned_present(), key=lambda o: (o.ifname, o.address)):
        link = spec.link(owned.ifname)
        if link is None or owned.address not in link.addresses:
            actions.append(RemoveAddress(owned.ifname, owned.address))
    return actions


def _additions(spec: LinksSpec, state: KernelState) -> list[Action]:
    return [
        AddAddress(link.name, address)
        for link in spec.links
        for address in link.addresses
        if address not in state.links[link.name].addresses
    ]
