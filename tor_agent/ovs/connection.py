"""The OVS driver: one OVSDB IDL connection, snapshots of it, and one-transaction apply.

With tor_agent.ovs.unixctl (ovs-vswitchd's unixctl socket), the only module using the `ovs` library
(imported through tor_agent.ovs.library).
Works with Debian's python3-openvswitch 3.1 and PyPI's `ovs` 4.x. Only the tables and columns tor-agent
needs are replicated (RSS and update traffic).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from tor_agent.ovs.cache import Row, RowCache, optional
from tor_agent.ovs.errors import OvsdbUnavailable, TransactionFailed, VswitchdTimeout
from tor_agent.ovs.library import ovs
from tor_agent.ovs.state import Action, ApplyResult, ControllerState, InterfaceFailure, OvsSnapshot
from tor_agent.ovs.txn import TxnBuilder

log = logging.getLogger(__name__)

DEFAULT_REMOTE = "unix:/run/openvswitch/db.sock"
DATABASE = "Open_vSwitch"
COLUMNS: dict[str, list[str]] = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg", "ssl"],
    "Bridge": [
        "name",
        "ports",
        "controller",
        "datapath_type",
        "protocols",
        "fail_mode",
        "other_config",
        "external_ids",
    ],
    "Port": ["name", "interfaces", "external_ids"],
    "Interface": [
        "name",
        "type",
        "options",
        "bfd",
        "mtu_request",
        "ofport_request",
        "ofport",
        "error",
        "external_ids",
    ],
    "Controller": [
        "target",
        "inactivity_probe",
        "max_backoff",
        "connection_mode",
        "external_ids",
        "is_connected",
        "role",
        "status",
    ],
    "SSL": ["private_key", "certificate", "ca_cert", "external_ids"],
}
MAX_ATTEMPTS = 5
TRIM_AFTER = 100  # actions: a transaction this large leaves parsing garbage worth handing back to the OS
Txn = ovs.db.idl.Transaction


def fetch_schema(remote: str, timeout: float) -> Any:
    """The Open_vSwitch schema as the server has it (no schema file needed; always the server's version)."""
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote), int(timeout * 1000))
    if error:
        raise OvsdbUnavailable(remote, f"cannot connect: {os.strerror(error)}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        error, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", [DATABASE]))
    finally:
        rpc.close()
    if error:
        raise OvsdbUnavailable(remote, f"get_schema failed: {os.strerror(error)}")
    if reply.error:
        raise OvsdbUnavailable(remote, f"get_schema failed: {reply.error}")
    return reply.result


def release_memory() -> None:
    """Return freed heap pages to the OS (glibc only; a no-op elsewhere).

    The initial database dump and large transactions are parsed as one JSON document each; the transient
    objects leave megabytes of free but fragmented heap behind (~5 MB at 1000 ports).
    """
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


class _Idl(ovs.db.idl.Idl):  # type: ignore[misc]
    """The IDL, reporting every changed row (table name, UUID, changed columns if known) to a callback."""

    def __init__(self, remote: str, helper: Any, on_change: Callable[[str, UUID, frozenset[str] | None], None]) -> None:
        super().__init__(remote, helper)
        self.on_change = on_change

    def notify(self, event: str, row: Row, updates: Row | None = None) -> None:
        # For an update the IDL passes a row holding the old values of the changed columns only.
        changed = getattr(updates, "_data", None) if event == ovs.db.idl.ROW_UPDATE else None
        columns = frozenset(changed) if isinstance(changed, dict) else None
        self.on_change(row._table.name, row.uuid, columns)


class OvsConnection:
    """One connection to ovsdb-server: snapshots of the overlay tables and one-transaction apply.

    Open with `OvsConnection.open(remote)`. Not thread-safe: one thread drives it (`run`, `wait`,
    `snapshot`, `apply`). `generation` moves whenever a Bridge, Port or Interface row may have changed,
    which is what an event loop watches.
    """

    def __init__(self, idl: _Idl, cache: RowCache, remote: str, vswitchd_timeout: float, txn_timeout: float) -> None:
        self._idl, self._cache, self.remote = idl, cache, remote
        self.vswitchd_timeout = vswitchd_timeout
        self.txn_timeout = txn_timeout
        self.transactions = 0  # transactions sent to ovsdb-server (a no-op pass sends none)

    @classmethod
    def open(
        cls,
        remote: str = DEFAULT_REMOTE,
        timeout: float = 10.0,
        *,
        vswitchd_timeout: float = 10.0,
        txn_timeout: float = 10.0,
    ) -> OvsConnection:
        """Connect to `remote` and wait (up to `timeout` s) until the replica holds the database."""
        helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(remote, timeout))
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        cache = RowCache()
        conn = cls(_Idl(remote, helper, cache.mark), cache, remote, vswitchd_timeout, txn_timeout)
        try:
            conn.wait_ready(timeout)
        except OvsdbUnavailable:
            conn.close()
            raise
        release_memory()
        return conn

    def close(self) -> None:
        """Drop the connection."""
        self._idl.close()

    def __enter__(self) -> OvsConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- event plumbing ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while the replica is synchronised with the server (transactions can be sent)."""
        # The IDL stays in its MONITORING state with stale rows until it notices a reconnection; only its
        # session knows that the connection dropped (ovsdbapp reads it the same way).
        rpc = self._idl._session.rpc
        return bool(rpc is not None and rpc.get_status() == 0 and self._idl.state == self._idl.IDL_S_MONITORING)

    @property
    def generation(self) -> int:
        """A counter that moves when a row tor-agent manages may have changed (not for controller status)."""
        return self._cache.generation

    @property
    def status_generation(self) -> int:
        """A counter that moves when a Controller row may have changed, its status included."""
        return self._cache.status_generation

    def run(self) -> None:
        """Process what ovsdb-server sent (updates, replies, reconnection); never blocks."""
        self._idl.run()

    def wait(self, timeout: float, fds: Sequence[int] = ()) -> None:
        """Block until ovsdb-server sends something, one of `fds` is readable, or `timeout` s pass."""
        poller = ovs.poller.Poller()
        self._idl.wait(poller)
        for fd in fds:
            poller.fd_wait(fd, ovs.poller.POLLIN)
        poller.timer_wait(max(0, int(timeout * 1000)))
        poller.block()

    def _run_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Run the IDL until `done()` or the deadline; returns done()."""
        while True:
            self._idl.run()
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait(remaining)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the replica is synchronised; OvsdbUnavailable after `timeout` s."""
        if not self._run_until(lambda: self.ready, time.monotonic() + timeout):
            raise OvsdbUnavailable(self.remote, f"no database contents within {timeout:g}s")

    # --- reading -----------------------------------------------------------------------------------

    def _root(self) -> Row | None:
        return next(iter(self._idl.tables[DATABASE].rows.values()), None)

    @property
    def next_cfg(self) -> int:
        """The configuration number the database asks ovs-vswitchd for (0 without an Open_vSwitch row)."""
        root = self._root()
        return 0 if root is None else int(root.next_cfg)

    @property
    def cur_cfg(self) -> int:
        """The configuration number ovs-vswitchd has applied."""
        root = self._root()
        return 0 if root is None else int(root.cur_cfg)

    def snapshot(self, full: bool = False) -> OvsSnapshot:
        """Bridges, ports and interfaces, owned and foreign, as plain values.

        Only rows that changed since the previous snapshot are read again; `full` re-reads everything.
        Raises OvsdbUnavailable while the replica is not synchronised.
        """
        if not self.ready:
            raise OvsdbUnavailable(self.remote, "not connected (reconnecting)")
        if full:
            self._cache.invalidate()
        return self._cache.snapshot(self._idl.tables)

    def controllers(self) -> tuple[ControllerState, ...]:
        """Every Controller row with its bridge and connection status (no port is read: cheap to poll).

        Raises OvsdbUnavailable while the replica is not synchronised.
        """
        if not self.ready:
            raise OvsdbUnavailable(self.remote, "not connected (reconnecting)")
        return self._cache.controller_states(self._idl.tables)

    # --- writing -----------------------------------------------------------------------------------

    def apply(self, actions: Sequence[Action]) -> ApplyResult:
        """Apply `actions` in one transaction, then wait until ovs-vswitchd has applied it.

        Retries when OVSDB says "try again" (after the replica changed). Rows without tor-agent's marker
        are never modified: such actions come back as conflicts. Interfaces ovs-vswitchd could not set up
        come back as failures. Raises TransactionFailed, VswitchdTimeout or OvsdbUnavailable.
        """
        start = time.monotonic()
        if not actions:
            return ApplyResult(committed=False)
        deadline = start + self.txn_timeout
        for attempt in range(1, MAX_ATTEMPTS + 1):
            seqno = self._idl.change_seqno
            builder, txn, incremented = self._build(actions)
            status = self._commit(txn, deadline)
            if status != Txn.TRY_AGAIN:
                break
            log.info("OVSDB transaction: try again (attempt %d)", attempt)
            self._await_change(seqno, deadline)
        conflicts = tuple(builder.conflicts)
        if status == Txn.UNCHANGED:
            return ApplyResult(False, conflicts=conflicts, attempts=attempt, seconds=time.monotonic() - start)
        if status != Txn.SUCCESS:
            raise TransactionFailed(status, txn.get_error())
        next_cfg = txn.get_increment_new_value() if incremented else None
        if next_cfg is not None:
            self._await_vswitchd(next_cfg)
        failures = self._failures(txn, builder.touched)
        if len(actions) >= TRIM_AFTER:
            release_memory()
        seconds = time.monotonic() - start
        log.info("OVSDB: %d actions in one transaction, next_cfg %s, %.3fs", len(actions), next_cfg, seconds)
        return ApplyResult(True, next_cfg, failures, conflicts, attempt, seconds)

    def _build(self, actions: Sequence[Action]) -> tuple[TxnBuilder, Any, bool]:
        self._idl.run()
        snap = self.snapshot()
        txn = Txn(self._idl)
        txn.add_comment("tor-agent: overlay reconcile")
        root = self._root()
        incremented = root is not None
        if root is None:
            # A database never initialised (`ovs-vsctl init` not run, ovs-vswitchd not up yet): create the
            # one root row. The IDL sends no insert for a row without a written column: write one.
            root = txn.insert(self._idl.tables[DATABASE])
            root.bridges = []
        else:
            root.increment("next_cfg")
        builder = TxnBuilder(self._idl, txn, snap, self._cache.index, root)
        builder.build(actions)
        return builder, txn, incremented

    def _commit(self, txn: Any, deadline: float) -> str:
        status: str = txn.commit()
        if status == Txn.INCOMPLETE:
            self.transactions += 1
        while True:
            if status != Txn.INCOMPLETE:
                return status
            if time.monotonic() >= deadline:
                txn.abort()
                raise TransactionFailed("timed out", f"no reply from ovsdb-server within {self.txn_timeout:g}s")
            self._idl.run()
            poller = ovs.poller.Poller()
            self._idl.wait(poller)
            txn.wait(poller)
            poller.timer_wait(max(1, int((deadline - time.monotonic()) * 1000)))
            poller.block()
            status = txn.commit()

    def _await_change(self, seqno: int, deadline: float) -> None:
        """After "try again": wait until the replica changed (e.g. reloaded after a reconnection)."""
        self._run_until(lambda: bool(self._idl.change_seqno != seqno), deadline)

    def _await_vswitchd(self, next_cfg: int) -> None:
        deadline = time.monotonic() + self.vswitchd_timeout
        if not self._run_until(lambda: self.cur_cfg >= next_cfg, deadline):
            raise VswitchdTimeout(next_cfg, self.cur_cfg, self.vswitchd_timeout)

    def _failures(self, txn: Any, touched: dict[str, Row]) -> tuple[InterfaceFailure, ...]:
        """The written interfaces ovs-vswitchd did not set up, read from their rows (no full re-read)."""
        rows = self._idl.tables["Interface"].rows
        failures = []
        for name, written in sorted(touched.items()):
            row = rows.get(txn.get_insert_uuid(written.uuid) or written.uuid)
            if row is None:
                continue
            ofport, error = optional(row.ofport), optional(row.error)
            if ofport == -1 or error:
                failures.append(InterfaceFailure(name, ofport, error or ""))
        return tuple(failures)
