"""Reconcile the underlay of an intent: today the FRR configuration (OSPF, BFD).

The netlink driver (interfaces up, MTU, addresses) will join here; the engine orders the drivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tor_agent.config.schema import Intent
from tor_agent.frr.apply import FrrApplyResult, FrrDriver
from tor_agent.frr.delta import Delta
from tor_agent.frr.ledger import DEFAULT_STATE_DIR, InterfaceLedger
from tor_agent.frr.vtysh import Vtysh
from tor_agent.render import render_frr
from tor_agent.render.frr import BFD_PROFILE


@dataclass(frozen=True)
class UnderlayDrivers:
    """The drivers the underlay needs; tests pass their own (e.g. vtysh inside a namespace)."""

    frr: FrrDriver

    @classmethod
    def default(cls, state_dir: Path = DEFAULT_STATE_DIR, vtysh: Vtysh | None = None) -> UnderlayDrivers:
        """The drivers of the switch tor-agent runs on."""
        return cls(FrrDriver(vtysh or Vtysh(), InterfaceLedger.in_dir(state_dir), BFD_PROFILE))


@dataclass(frozen=True)
class UnderlayResult:
    """What `apply_underlay` changed."""

    frr: FrrApplyResult

    @property
    def changed(self) -> bool:
        """Whether anything was changed."""
        return self.frr.changed


def diff_underlay(intent: Intent, drivers: UnderlayDrivers, template_dir: Path | None = None) -> Delta:
    """What `apply_underlay` would change in FRR now. Changes nothing."""
    return drivers.frr.diff(render_frr(intent, template_dir))


def apply_underlay(intent: Intent, drivers: UnderlayDrivers, template_dir: Path | None = None) -> UnderlayResult:
    """Make the switch's underlay match `intent` (FRR: check, delta, apply, verify, persist; rollback on failure)."""
    return UnderlayResult(frr=drivers.frr.apply(render_frr(intent, template_dir)))
