"""The kernel links driver: `read()` the kernel, a pure `plan(spec, state)`, `apply(plan)` then verify.

Per object: an interface the intent names that does not exist is skipped and reported (`NoSuchInterface`),
and an action the kernel refuses is reported while the others still run; what was applied is recorded
(addresses tor-agent added are the only ones it ever removes).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path

from tor_agent.errors import RuntimeFailure
from tor_agent.model.links import IP_FORWARD, LinksSpec, disable_ipv6
from tor_agent.net.actions import Action, AddAddress, RemoveAddress, SetMtu, SetNftDropPorts, SetSysctl, SetUp
from tor_agent.net.errors import LinksDidNotSettle, NetError, NetlinkFailure
from tor_agent.net.netlink import Netlink
from tor_agent.net.nft import Nft
from tor_agent.net.owned import OWNED_FILE, load_owned, locked, save_owned
from tor_agent.net.plan import LinksPlan, plan, plan_links, present_only
from tor_agent.net.state import KernelState, LinkState, OwnedAddress
from tor_agent.net.sysctl import read_sysctl, write_sysctl
from tor_agent.wait import WaitTimeout, wait_until

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkResult:
    """What an apply did: the actions applied (in order), and one error per action the kernel refused."""

    applied: tuple[Action, ...] = ()
    errors: tuple[RuntimeFailure, ...] = ()
    unowned: tuple[tuple[str, IPv4Interface], ...] = ()  # wanted addresses already there, not added (never removed)

    @property
    def changed(self) -> bool:
        """True if anything was changed."""
        return bool(self.applied)

    def changes(self) -> tuple[str, ...]:
        """One line per change made."""
        return tuple(map(str, self.applied))


@dataclass(frozen=True)
class LinksDriver:
    """Kernel links of this process's network namespace; dependencies are injectable for tests."""

    owned_file: Path = OWNED_FILE
    nft: Nft = field(default_factory=Nft)
    settle_timeout_s: float = 2.0

    def read(self) -> KernelState:
        """Every interface, the sysctls tor-agent may set on them, its nftables table and its address record."""
        with Netlink() as nl:
            return self._read(nl)

    @staticmethod
    def plan(spec: LinksSpec, state: KernelState) -> LinksPlan:
        """The changes for the interfaces that exist; the missing ones listed apart. Pure."""
        return plan_links(spec, state)

    def apply(self, links_plan: LinksPlan) -> LinkResult:
        """Apply the plan's actions in order, each on its own (a refused one is reported, the rest go on), record
        the addresses added and removed, then wait until the kernel matches the spec.

        Raises NetError only when the kernel cannot be asked at all (no netlink socket)."""
        applied: list[Action] = []
        errors: list[RuntimeFailure] = []
        if not links_plan.actions and links_plan.state is not None:
            self._forget_gone(links_plan.state)  # nothing to apply: the state planned from is the kernel's
            return LinkResult(unowned=links_plan.unowned)
        with locked(self.owned_file), Netlink() as nl:
            links = nl.links()
            recorded = load_owned(self.owned_file)
            owned = set(KernelState(links, {}, None, recorded).owned_present())
            try:
                for action in links_plan.actions:
                    log.info("links: %s", action)
                    try:
                        self._apply(action, links, nl, owned)
                    except NetError as e:
                        log.warning("links: %s", e)
                        errors.append(e)
                    else:
                        applied.append(action)
            finally:
                if applied or owned != recorded:
                    save_owned(self.owned_file, owned)
            if applied and not errors:  # nothing applied: the state just read is the state to verify
                errors += self._verify(links_plan.spec, nl)
        return LinkResult(tuple(applied), tuple(errors), links_plan.unowned)

    def _forget_gone(self, state: KernelState) -> None:
        """Drop the recorded addresses that are no longer there (as `apply` does after its actions)."""
        present = state.owned_present()
        if present != state.owned:
            with locked(self.owned_file):
                if load_owned(self.owned_file) == state.owned:  # unchanged since the read
                    save_owned(self.owned_file, set(present))

    def _read(self, nl: Netlink) -> KernelState:
        links = nl.links()
        wanted = (IP_FORWARD, *(disable_ipv6(name) for name in links))
        return KernelState(
            links=links,
            sysctls={s.path: read_sysctl(s) for s in wanted},
            nft=self.nft.read(),
            owned=load_owned(self.owned_file),
        )

    def _apply(self, action: Action, links: dict[str, LinkState], nl: Netlink, owned: set[OwnedAddress]) -> None:
        match action:
            case SetSysctl(sysctl=sysctl):
                write_sysctl(sysctl)
            case SetNftDropPorts(ports=ports):
                self.nft.set_drop_ports(ports)
            case SetMtu(ifname=name, mtu=mtu):
                nl.set_mtu(_link(links, name, f"set mtu {mtu}"), mtu)
            case SetUp(ifname=name):
                nl.set_up(_link(links, name, "set it up"))
            case RemoveAddress(ifname=name, address=address):
                link = _link(links, name, f"remove {address}")
                nl.remove_address(link, address)
                owned.discard(OwnedAddress(name, link.index, address))
            case AddAddress(ifname=name, address=address):
                link = _link(links, name, f"add {address}")
                nl.add_address(link, address)
                owned.add(OwnedAddress(name, link.index, address))

    def _verify(self, spec: LinksSpec, nl: Netlink) -> list[RuntimeFailure]:
        """Wait until a fresh plan for the interfaces that exist is empty; what is left is the error."""
        remaining: tuple[Action, ...] = ()

        def settled() -> bool:
            nonlocal remaining
            state = self._read(nl)
            remaining = plan(present_only(spec, state), state)
            return not remaining

        try:
            wait_until(settled, self.settle_timeout_s, what="links to match the intent")
        except WaitTimeout:
            return [LinksDidNotSettle(remaining)]
        return []


def _link(links: dict[str, LinkState], name: str, what: str) -> LinkState:
    link = links.get(name)
    if link is None:
        raise NetlinkFailure(name, what, errno.ENODEV)  # it went between the plan and now
    return link
