"""Kernel parameters under /proc/sys, of this process's network namespace."""

from __future__ import annotations

from pathlib import Path

from tor_agent.model.links import Sysctl
from tor_agent.net.errors import SysctlFailure

PROC_SYS = Path("/proc/sys")


def read_sysctl(sysctl: Sysctl, root: Path = PROC_SYS) -> str | None:
    """The current value, or None if this kernel does not have the parameter (e.g. IPv6 disabled)."""
    try:
        return root.joinpath(*sysctl.path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if sysctl.optional:
            return None
        raise SysctlFailure(sysctl.key, "no such parameter in this kernel") from None
    except OSError as e:
        raise SysctlFailure(sysctl.key, f"cannot read: {e.strerror or e}") from e


def write_sysctl(sysctl: Sysctl, root: Path = PROC_SYS) -> None:
    """Set the parameter to the spec's value."""
    try:
        root.joinpath(*sysctl.path).write_text(sysctl.value + "\n", encoding="ascii")
    except OSError as e:
        raise SysctlFailure(sysctl.key, f"cannot set to {sysctl.value}: {e.strerror or e}") from e
