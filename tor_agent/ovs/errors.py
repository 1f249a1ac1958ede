"""Typed errors of the OVS driver; each names the daemon, row or interface it concerns."""

from __future__ import annotations

from collections.abc import Sequence

from tor_agent.errors import RuntimeFailure
from tor_agent.ovs.state import Conflict, InterfaceFailure


class OvsError(RuntimeFailure):
    """Base class: OVSDB or ovs-vswitchd did not do what was asked."""


class OvsdbUnavailable(OvsError):
    """ovsdb-server cannot be reached (or has not sent its contents yet) at `remote`."""

    retryable = True

    def __init__(self, remote: str, detail: str) -> None:
        self.remote = remote
        super().__init__(f"ovsdb-server at {remote}: {detail}")


class TransactionFailed(OvsError):
    """ovsdb-server refused or did not finish a transaction; `status` is the IDL's verdict."""

    def __init__(self, status: str, detail: str) -> None:
        self.status = status
        super().__init__(f"OVSDB transaction {status}: {detail}")


class VswitchdTimeout(OvsError):
    """ovs-vswitchd did not apply configuration `next_cfg` in time (is it running?)."""

    retryable = True

    def __init__(self, next_cfg: int, cur_cfg: int, timeout: float) -> None:
        self.next_cfg, self.cur_cfg = next_cfg, cur_cfg
        super().__init__(
            f"ovs-vswitchd did not apply configuration {next_cfg} within {timeout:g}s "
            f"(cur_cfg is {cur_cfg}): is ovs-vswitchd running and connected to this database?"
        )


class InterfaceError(OvsError):
    """ovs-vswitchd could not set up one or more interfaces; every one is named with its error."""

    def __init__(self, failures: Sequence[InterfaceFailure]) -> None:
        self.failures = tuple(failures)
        super().__init__("; ".join(str(f) for f in self.failures))


class RowConflict(OvsError):
    """A row tor-agent wants but may not touch (foreign), or must keep; carries the `Conflict`."""

    def __init__(self, conflict: Conflict) -> None:
        self.conflict = conflict
        super().__init__(str(conflict))
