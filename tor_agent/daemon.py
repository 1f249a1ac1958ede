"""`tor-agent run`: the long-running agent. One engine (tor_agent.reconcile.engine) driven by events.

- Start: load the intent (invalid: exit 2), then a full pass, retried with backoff until FRR and OVS
  answer; then READY=1 to systemd and the status file says `ready`.
- OVSDB changes: the OverlayLoop thread owns the OVSDB connection and repairs drift within milliseconds
  (a deleted tunnel port comes back); every later engine pass reaches OVS through it.
- Netlink changes (main thread, select()): a route change → an overlay pass (peers, tunnels, OVS routes);
  a link or address change → a full pass. Changes are debounced and batched.
- A peer whose route went keeps its tunnel for `overlay.tunnels.hold_down_s` (TunnelHold); an overlay pass
  runs when that ends.
- A full pass every `full_every` s as the safe fallback; after a pass with problems the next comes
  sooner, backing off 1, 2, 4 … s up to `full_every`.
- SIGHUP: reload the intent; an invalid file is refused and reported (log, STATUS, status file) and
  nothing changes. SIGTERM/SIGINT: exit 0, leaving the switch as it is (nothing is ever torn down).
- WATCHDOG=1 from the main thread at least every 15 s; STATUS= one line after every pass.
The main thread blocks in select() between events: an idle agent costs nothing but its periodic pass.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tor_agent.config import load
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, ConfigError, RuntimeFailure
from tor_agent.fileio import replace_file
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.frr.vtysh import Vtysh
from tor_agent.health import collect
from tor_agent.health import status as underlay_status
from tor_agent.health.underlay import bfd_enabled
from tor_agent.metrics import AgentMetrics, write_textfile
from tor_agent.model.overlay import OvsDesired
from tor_agent.net import NetlinkChanges, NetlinkMonitor, kernel_routes
from tor_agent.ovs.errors import OvsError
from tor_agent.reconcile.controllers import ControllerKeeper, KeepaliveSettings
from tor_agent.reconcile.engine import DirectOverlay, Engine, EngineDrivers, EngineLock, EngineReport, Scope
from tor_agent.reconcile.overlay import OverlayLoop, OverlayReconciler, PassReport, Plan
from tor_agent.reconcile.peers import TunnelHold

log = logging.getLogger(__name__)

STATUS_FILE = Path("/run/tor-agent/status.json")
WATCHDOG_MAX_S = 15.0
CONVERGE_TIMEOUT_S = 20.0  # an OVS pass through the loop: a transaction plus ovs-vswitchd's reconfiguration
_DEBOUNCE_CAP = 5  # a stream of changes delays a pass by at most this many debounce intervals


# --- systemd ------------------------------------------------------------------------------------------------


class SdNotify:
    """The sd_notify protocol: datagrams to $NOTIFY_SOCKET (a no-op without it)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls) -> SdNotify:
        """From systemd's environment (WATCHDOG_USEC only when WATCHDOG_PID is unset or this process)."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        return cls(os.environ.get("NOTIFY_SOCKET"), int(usec) if usec and usec.isdigit() and mine else None)

    @property
    def watchdog_interval(self) -> float:
        """How often to send WATCHDOG=1: half systemd's timeout, at most WATCHDOG_MAX_S."""
        if self.watchdog_usec:
            return min(WATCHDOG_MAX_S, self.watchdog_usec / 2e6)
        return WATCHDOG_MAX_S

    def send(self, *fields: str) -> None:
        """Send `KEY=value` fields in one datagram; failures are logged, never raised."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as e:
            log.warning("sd_notify to %s failed: %s", self.address.lstrip("\0"), e)

    def status(self, text: str) -> None:
        """STATUS=<one line>."""
        self.send("STATUS=" + " ".join(text.split()))


# --- OVS through the OverlayLoop thread ---------------------------------------------------------------------


class LoopOverlay:
    """The engine's OverlayPort once the OverlayLoop thread owns the OVSDB connection.

    `converge` hands the loop the new desired state and waits for the pass that applied it.
    """

    def __init__(self, loop: OverlayLoop, timeout: float = CONVERGE_TIMEOUT_S) -> None:
        self.loop, self.timeout = loop, timeout
        self._cond = threading.Condition()
        self._applied: tuple[OvsDesired, PassReport] | None = None

    def on_report(self, report: PassReport) -> None:
        """The loop's callback (its own thread): remember which desired state this pass applied."""
        with self._cond:
            self._applied = (self.loop.reconciler.desired, report)
            self._cond.notify_all()

    def tunnel_peers(self) -> frozenset[Any]:
        return frozenset(self.loop.reconciler.desired.tunnels)

    def plan(self, desired: OvsDesired) -> Plan:
        raise RuntimeFailure("the daemon applies; `tor-agent diff` computes plans")

    def converge(self, desired: OvsDesired) -> PassReport:
        with self._cond:
            self.loop.update(desired)
            done = self._cond.wait_for(lambda: self._applied is not None and self._applied[0] is desired, self.timeout)
            if done and self._applied is not None:
                return self._applied[1]
        error = OvsError(f"the OVSDB loop did not apply the new state within {self.timeout:g}s")
        return PassReport(Plan(), error=error)


@dataclass
class _LoopThread:
    loop: OverlayLoop
    port: LoopOverlay
    conn: Any
    thread: threading.Thread
    keeper: ControllerKeeper | None = None

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(timeout=30)
        self.loop.close()
        if self.keeper is not None:
            self.keeper.close()
        self.conn.close()


# --- the daemon ---------------------------------------------------------------------------------------------


@dataclass
class DaemonOptions:
    """How `tor-agent run` runs."""

    config: Path
    full_every: float = 30.0
    debounce: float = 0.05
    status_file: Path = STATUS_FILE
    state_dir: Path = DEFAULT_STATE_DIR
    lock: Path | None = None  # None: the engine's default (/run/tor-agent/engine.lock)
    metrics_file: Path | None = None  # a node-exporter textfile; None: no metrics


@dataclass
class _Pending:
    """Netlink changes waiting for their pass."""

    changes: NetlinkChanges = field(default_factory=NetlinkChanges)
    first: float = 0.0
    last: float = 0.0

    def add(self, changes: NetlinkChanges, now: float) -> None:
        if not self.changes:
            self.first = now
        self.changes.merge(changes)
        self.last = now

    def due(self, debounce: float) -> float | None:
        """When the pass for these changes is due (None: nothing pending)."""
        if not self.changes:
            return None
        return min(self.last + debounce, self.first + _DEBOUNCE_CAP * debounce)

    def take(self) -> NetlinkChanges:
        changes, self.changes = self.changes, NetlinkChanges()
        return changes


class Daemon:
    """`Daemon(options).run()` runs until SIGTERM and returns the exit code."""

    def __init__(
        self,
        options: DaemonOptions,
        drivers: Callable[[Path], EngineDrivers] = EngineDrivers.default,
        notify: SdNotify | None = None,
        monitor: Callable[[], NetlinkMonitor] = NetlinkMonitor,
    ) -> None:
        self.options = options
        self.notify = notify or SdNotify.from_env()
        lock = EngineLock(options.lock) if options.lock else EngineLock()
        self.engine = Engine(drivers(options.state_dir), lock, hold=TunnelHold())
        self._monitor_factory = monitor
        self.intent: Intent | None = None
        self.ready = False
        self.last: EngineReport | None = None
        self.reload_error: str | None = None
        self.backoff = 0.0
        self._loop: _LoopThread | None = None
        self._stopping = False
        self._next_full = 0.0
        self._next_overlay: float | None = None  # when a held tunnel's hold-down ends
        self._next_watchdog = 0.0
        self._pending = _Pending()
        self.passes = 0
        self.metrics = AgentMetrics()

    # --- life cycle ---

    def run(self) -> int:
        """Load the intent, serve until SIGTERM; 0 on a clean stop, 2 on an invalid intent at start."""
        try:
            self.intent = load(self.options.config)
        except ConfigError as e:
            for line in str(e).splitlines():
                log.error("%s", line)
            log.error("invalid intent: not started (nothing was changed)")
            return EXIT_INVALID
        log.info("tor-agent starting for %s (%s)", self.intent.node.hostname, self.options.config)
        try:
            with self._signals() as wake, self._netlink() as monitor:
                self._serve(wake, monitor)
        except RuntimeFailure as e:
            log.error("%s", e)
            return EXIT_RUNTIME
        finally:
            self._stop_loop()
        log.info("tor-agent stopped (the switch is left as it is)")
        return EXIT_OK

    @contextlib.contextmanager
    def _signals(self) -> Iterator[int]:
        """SIGHUP/SIGTERM/SIGINT wake select() through a pipe: the signal numbers are the bytes read."""
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        wanted = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
        old = {s: signal.signal(s, lambda *_: None) for s in wanted}
        old_fd = signal.set_wakeup_fd(w)
        try:
            yield r
        finally:
            signal.set_wakeup_fd(old_fd)
            for s, handler in old.items():
                signal.signal(s, handler)
            os.close(r)
            os.close(w)

    @contextlib.contextmanager
    def _netlink(self) -> Iterator[NetlinkMonitor]:
        monitor = self._monitor_factory()
        try:
            yield monitor
        finally:
            monitor.close()

    def _serve(self, wake: int, monitor: NetlinkMonitor) -> None:
        self._next_full = time.monotonic()
        self._next_watchdog = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if now >= self._next_watchdog:
                self.notify.send("WATCHDOG=1")
                self._next_watchdog = now + self.notify.watchdog_interval
            self._check_loop()
            due = self._pending.due(self.options.debounce) if self.ready else None
            if now >= self._next_full:
                self._pending.take()
                self._pass("full")
                continue
            hold_over = self._next_overlay is not None and now >= self._next_overlay  # decide the held tunnels
            if hold_over or (due is not None and now >= due):
                changes = self._pending.take()
                self._pass("full" if changes.links else "overlay")
                continue
            deadline = min(d for d in (self._next_full, self._next_watchdog, due, self._next_overlay) if d is not None)
            self._wait(wake, monitor, max(0.0, deadline - now))

    def _wait(self, wake: int, monitor: NetlinkMonitor, timeout: float) -> None:
        try:
            readable, _, _ = select.select([wake, monitor.fileno()], [], [], timeout)
        except InterruptedError:
            return
        if monitor.fileno() in readable:
            self._pending.add(monitor.read(), time.monotonic())
        if wake in readable:
            for signum in _drain(wake):
                self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            log.info("%s: stopping", signal.Signals(signum).name)
            self._stopping = True
        elif signum == signal.SIGHUP:
            self._reload()

    def _reload(self) -> None:
        try:
            intent = load(self.options.config)
        except ConfigError as e:
            self.reload_error = f"reload refused, still running the last good intent: {e}"
            for line in str(e).splitlines():
                log.error("reload refused: %s", line)
            log.error("SIGHUP: %s is invalid: nothing changed, the last good intent keeps running", self.options.config)
            self._publish()
            return
        log.info("SIGHUP: %s reloaded", self.options.config)
        self.intent, self.reload_error = intent, None
        settings = KeepaliveSettings.from_intent(intent)
        if self._loop is not None and self._loop.keeper is not None and settings is not None:
            self._loop.keeper.update(settings)
        self._next_full = time.monotonic()

    # --- passes ---

    def _pass(self, scope: Scope) -> None:
        assert self.intent is not None
        self._next_overlay = None
        if not self.ready:
            scope = "full"
        try:
            report = self.engine.apply(self.intent, scope)
        except Exception:  # a bug must not stop the agent: log it, back off, try again
            log.exception("%s pass failed unexpectedly", scope)
            self._schedule(failed=True)
            return
        self.passes += 1
        self.last = report
        # just after the first hold-down ends (a pass exactly at its end would still hold it)
        self._next_overlay = time.monotonic() + min(report.held.values()) + 0.05 if report.held else None
        # before the first good pass, changes are the initial apply; after it, every change repairs drift
        self.metrics.record_pass(report.ok, sum(len(s.changes) for s in report.stages) if self.ready else 0)
        if scope == "full":
            self._write_metrics(report)
        (log.warning if report.problems else log.info)("%s", report.summary())
        for stage in report.stages:
            for change in stage.changes if stage.stage != "links" else ():  # the links driver logs its own
                log.info("%s: %s", stage.label, change)
        if not self.ready and not report.unreachable:
            self._become_ready()
        self._ensure_loop()
        self._schedule(failed=bool(report.problems), scope=scope)
        self._publish()

    def _schedule(self, failed: bool, scope: Scope = "full") -> None:
        """The next full pass: `full_every` after a good one, sooner (backing off) after problems."""
        now = time.monotonic()
        self.backoff = min(self.options.full_every, max(1.0, self.backoff * 2)) if failed else 0.0
        if scope == "full":
            self._next_full = now + (self.backoff if failed else self.options.full_every)
        elif failed:
            self._next_full = min(self._next_full, now + self.backoff)

    def _become_ready(self) -> None:
        self.ready = True
        self.notify.send("READY=1", f"MAINPID={os.getpid()}")
        log.info("first pass done: ready")

    # --- the OVSDB loop thread ---

    def _ensure_loop(self) -> None:
        """Start the OverlayLoop once a pass opened OVSDB; stop it when the intent no longer has an overlay."""
        assert self.intent is not None
        overlay = self.engine.drivers.overlay
        if self.intent.overlay is None:
            self._stop_loop()
            return
        if self._loop is not None or not isinstance(overlay, DirectOverlay) or overlay.last_desired is None:
            return
        desired, conn = overlay.last_desired, overlay.take()
        if conn is None:
            return
        # The keeper rides on the loop's thread and OVSDB connection: it reconnects a returning controller
        # within a second instead of waiting out OVS's backoff, and raises the controller alarms.
        settings = KeepaliveSettings.from_intent(self.intent)
        keeper = ControllerKeeper(conn, settings) if settings is not None else None
        loop = OverlayLoop(OverlayReconciler(conn, desired), conn, full_every=self.options.full_every, sidecar=keeper)
        port = LoopOverlay(loop)
        loop.on_report = port.on_report
        thread = threading.Thread(target=loop.run, name="ovsdb-loop", daemon=True)
        thread.start()
        self._loop = _LoopThread(loop, port, conn, thread, keeper)
        self.engine.drivers.overlay = port
        log.info("OVSDB loop started: drift is repaired as OVSDB reports it")

    def _check_loop(self) -> None:
        if self._loop is not None and not self._loop.thread.is_alive():
            raise RuntimeFailure("the OVSDB loop thread died (see the log above): exiting so that systemd restarts")

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
            self.engine.drivers.overlay = DirectOverlay()

    # --- reporting ---

    def _write_metrics(self, report: EngineReport) -> None:
        """Refresh the observed gauges (one underlay read, as `verify` does) and write the textfile."""
        if self.options.metrics_file is None or self.intent is None:
            return
        m = self.metrics
        m.tunnels_up, m.tunnels_down = len(report.peers.usable), len(report.peers.dropped)
        keeper = self._loop.keeper if self._loop is not None else None
        m.controllers_connected = len(keeper.status().connected) if keeper is not None else 0
        try:
            st = underlay_status(
                collect(Vtysh(timeout_s=5.0), kernel_routes, bfd=bfd_enabled(self.intent)), self.intent
            )
            m.ospf_neighbours_full = sum(1 for u in st.uplinks if u.healthy)
            m.ecmp_width = {str(v.address): v.width for v in st.vteps}
        except RuntimeFailure as e:
            log.warning("metrics: cannot read the underlay: %s", e)
        try:
            write_textfile(m, self.options.metrics_file)
        except OSError as e:
            log.warning("%s: cannot write the metrics: %s", self.options.metrics_file, e)

    def status_line(self) -> str:
        """One line for systemd's STATUS and the logs."""
        assert self.intent is not None
        state = "ready" if self.ready else "starting"
        text = f"{self.intent.node.hostname}: {state}"
        if self.last is not None:
            text += f"; {self.last.summary()}"
        if self.reload_error is not None:
            text += "; reload refused (invalid intent)"
        return text

    def _publish(self) -> None:
        self.notify.status(self.status_line())
        doc = {
            "ready": self.ready,
            "pid": os.getpid(),
            "config": str(self.options.config),
            "hostname": self.intent.node.hostname if self.intent else None,
            "passes": self.passes,
            "status": self.status_line(),
            "reload_error": self.reload_error,
            "last_pass": self.last.as_json() if self.last else None,
            "loop": _loop_stats(self._loop),
            "time": time.time(),
        }
        try:
            write_json(self.options.status_file, doc)
        except OSError as e:
            log.warning("%s: cannot write the status file: %s", self.options.status_file, e)


def _loop_stats(loop: _LoopThread | None) -> dict[str, int] | None:
    if loop is None:
        return None
    stats = loop.loop.stats
    return {"passes": stats.passes, "writes": stats.writes, "errors": stats.errors}


def _drain(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            return data
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            return data
        data += chunk


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace `path` with `doc` atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
