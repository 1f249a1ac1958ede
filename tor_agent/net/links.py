"""The kernel links driver: read, plan, apply in order, record ownership, verify."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path

from tor_agent.config.schema import Intent
from tor_agent.model.links import LinksSpec, desired_links
from tor_agent.net.actions import Action, AddAddress, RemoveAddress, SetMtu, SetNftDropPorts, SetSysctl, SetUp
from tor_agent.net.errors import LinksDidNotSettle, NoSuchInterface
from tor_agent.net.netlink import Netlink
from tor_agent.net.nft import Nft
from tor_agent.net.owned import OWNED_FILE, load_owned, locked, save_owned
from tor_agent.net.plan import missing_interfaces, plan, unowned_addresses
from tor_agent.net.state import KernelState, OwnedAddress
from tor_agent.net.sysctl import read_sysctl, write_sysctl
from tor_agent.wait import WaitTimeout, wait_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkResult:
    """What an apply did."""

    applied: tuple[Action, ...]  # in the order they were applied; empty: nothing needed doing
    unowned: tuple[tuple[str, IPv4Interface], ...]  # wanted addresses already there, not added (so never removed)

    @property
    def changed(self) -> bool:
        """True if anything was changed."""
        return bool(self.applied)


@dataclass(frozen=True)
class LinksDriver:
    """Kernel links of this process's network namespace; dependencies are injectable for tests."""

    owned_file: Path = OWNED_FILE
    nft: Nft = field(default_factory=Nft)
    settle_timeout_s: float = 2.0

    def read(self, spec: LinksSpec, nl: Netlink) -> KernelState:
        """The current state of everything `spec` is about, with the recorded ownership."""
        return KernelState(
            links=nl.links(),
            sysctls={s.path: read_sysctl(s) for s in spec.sysctls},
            nft=self.nft.read(),
            owned=load_owned(self.owned_file),
        )

    def plan(self, intent: Intent) -> tuple[Action, ...]:
        """The changes an apply would make now (a dry run; also a drift check). Raises NoSuchInterface."""
        spec = desired_links(intent)
        with Netlink() as nl:
            state = self.read(spec, nl)
        _require_interfaces(spec, state)
        return plan(spec, state)

    def apply(self, intent: Intent) -> LinkResult:
        """Bring the kernel's links to `intent`, then check they got there.

        Raises NoSuchInterface (nothing changed), NetlinkFailure / NftFailure / SysctlFailure naming what
        failed (earlier changes stay, and addresses added so far are recorded), LinksDidNotSettle.
        """
        spec = desired_links(intent)
        with locked(self.owned_file), Netlink() as nl:
            state = self.read(spec, nl)
            _require_interfaces(spec, state)
            actions = plan(spec, state)
            owned = set(state.owned_present())
            try:
                for action in actions:
                    log.info("links: %s", action)
                    self._apply(action, state, nl, owned)
            finally:
                if actions or owned != state.owned:
                    save_owned(self.owned_file, owned)
            self._verify(spec, nl)
        return LinkResult(applied=actions, unowned=unowned_addresses(spec, state))

    def _apply(self, action: Action, state: KernelState, nl: Netlink, owned: set[OwnedAddress]) -> None:
        match action:
            case SetSysctl(sysctl=sysctl):
                write_sysctl(sysctl)
            case SetNftDropPorts(ports=ports):
                self.nft.set_drop_ports(ports)
            case SetMtu(ifname=name, mtu=mtu):
                nl.set_mtu(state.links[name], mtu)
            case SetUp(ifname=name):
                nl.set_up(state.links[name])
            case RemoveAddress(ifname=name, address=address):
                link = state.links[name]
                nl.remove_address(link, address)
                owned.discard(OwnedAddress(name, link.index, address))
            case AddAddress(ifname=name, address=address):
                link = state.links[name]
                nl.add_address(link, address)
                owned.add(OwnedAddress(name, link.index, address))

    def _verify(self, spec: LinksSpec, nl: Netlink) -> None:
        remaining: tuple[Action, ...] = ()

        def settled() -> bool:
            nonlocal remaining
            remaining = plan(spec, self.read(spec, nl))
            return not remaining

        try:
            wait_until(settled, self.settle_timeout_s, what="links to match the intent")
        except WaitTimeout as e:
            raise LinksDidNotSettle(remaining) from e


def _require_interfaces(spec: LinksSpec, state: KernelState) -> None:
    missing = missing_interfaces(spec, state)
    if missing:
        raise NoSuchInterface(missing)


def apply_links(intent: Intent, owned_file: Path = OWNED_FILE) -> LinkResult:
    """Bring this namespace's links to `intent` (see LinksDriver.apply): call before applying FRR."""
    return LinksDriver(owned_file=owned_file).apply(intent)


def plan_links(intent: Intent, owned_file: Path = OWNED_FILE) -> tuple[Action, ...]:
    """The link changes `apply_links` would make now; empty when the kernel matches the intent."""
    return LinksDriver(owned_file=owned_file).plan(intent)
