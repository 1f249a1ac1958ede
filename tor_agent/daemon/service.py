"""`tor-agent run`: the long-running agent and the switch's only writer while it runs.

- Start: load and prepare the intent (invalid: exit 2), then a full pass, retried with backoff until FRR and
  OVS answer; then READY=1 to systemd and the status file says `ready`.
- OVSDB changes: once the first pass opened OVSDB, an OverlayLoop thread owns the connection and repairs
  drift within milliseconds, under the engine lock (tor_agent.reconcile.ovs_rows).
- Netlink changes, hold-downs and the periodic full pass: tor_agent.daemon.schedule decides when and which.
- SIGHUP: reload the intent file; anything that fails to load, render or pass FRR's parser is refused, the
  last good intent keeps running, one line is logged and a metric counted. SIGTERM/SIGINT: exit 0, leaving
  the switch as it is (nothing is ever torn down).
- The control socket (tor_agent.daemon.control): `tor-agent apply` hands the daemon an intent file; the
  daemon prepares it (refused: nothing changes), makes it the running intent, runs a full pass at once and
  answers with the pass's report.
- WATCHDOG=1 from the main thread at least every 15 s; STATUS= one line, the status file and the metrics
  textfile after every pass.
The main thread blocks in select() between events: an idle agent costs nothing but its periodic pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tor_agent.config import load
from tor_agent.daemon.control import ControlServer, Request
from tor_agent.daemon.kernel import CpuTimes, KernelView
from tor_agent.daemon.notify import SdNotify
from tor_agent.daemon.paths import CONTROL_SOCKET, STATUS_FILE
from tor_agent.daemon.quiet import QuietFrr
from tor_agent.daemon.reporting import Reporter
from tor_agent.daemon.schedule import Schedule, Scope
from tor_agent.daemon.signals import received, signal_pipe
from tor_agent.errors import EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, ConfigError, RuntimeFailure
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.frr.vty import Vty, config_fingerprint
from tor_agent.model.peers import TunnelHold, uplink_bridges
from tor_agent.net.links import LinksDriver
from tor_agent.net.monitor import NetlinkChanges, NetlinkMonitor
from tor_agent.net.nft import GenerationCachedNft
from tor_agent.reconcile.controllers import ControllerKeeper, KeepaliveSettings
from tor_agent.reconcile.drivers import Drivers, switch_drivers
from tor_agent.reconcile.engine import Engine, IntentRefused
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.overlay import LoopStats
from tor_agent.reconcile.ovs_rows import OvsRows
from tor_agent.reconcile.report import EngineReport
from tor_agent.reconcile.stages import Prepared
from tor_agent.render.isolated import ChildRenderer

log = logging.getLogger(__name__)

REFUSAL_MAX = 2000  # characters of a refused intent's problems in the one log line


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
    control_socket: Path | None = CONTROL_SOCKET  # None: no control socket


class Refused(Exception):
    """An intent file the daemon will not run: one line saying why."""


class Daemon:
    """`Daemon(options).run()` runs until SIGTERM and returns the exit code."""

    def __init__(
        self,
        options: DaemonOptions,
        drivers: Callable[[Path], Drivers] = switch_drivers,
        notify: SdNotify | None = None,
        monitor: Callable[[], NetlinkMonitor] = NetlinkMonitor,
        frr_fingerprint: Callable[[], str] = lambda: config_fingerprint(Vty()),
    ) -> None:
        self.options = options
        self.notify = notify or SdNotify.from_env()
        self.lock = EngineLock(options.lock) if options.lock else EngineLock()
        self.drivers = drivers(options.state_dir)
        self.kernel = KernelView(self.drivers.kernel)  # MACs and routes kept up to date by netlink's announcements
        self.drivers.kernel = self.kernel
        self.frr = QuietFrr(self.drivers.frr, frr_fingerprint)  # FRR read in full only when it moved
        self.drivers.frr = self.frr
        if isinstance(self.drivers.links, LinksDriver):  # `nft` runs only when the ruleset moved
            self.drivers.links = dataclasses.replace(self.drivers.links, nft=GenerationCachedNft())
        self.engine = Engine(self.drivers, self.lock, hold=TunnelHold(), render=ChildRenderer())
        self.schedule = Schedule(options.full_every, options.debounce)
        self.reporter = Reporter(options.status_file, options.metrics_file)
        self._monitor_factory = monitor
        self.prepared: Prepared | None = None
        self.source = options.config  # the file the running intent came from
        self.ready = False
        self.last: EngineReport | None = None
        self.reload_error: str | None = None
        self.passes = 0
        self._stopping = False
        self._next_watchdog = 0.0

    @property
    def intent(self) -> Any:
        """The running intent (None before one was loaded)."""
        return self.prepared.intent if self.prepared is not None else None

    # --- life cycle ---

    def run(self) -> int:
        """Load the intent, serve until SIGTERM; 0 on a clean stop, 2 on an invalid intent at start."""
        try:
            self._adopt(self._prepare(self.options.config), self.options.config)
        except Refused as e:
            log.error("%s: not started (nothing was changed)", e)
            return EXIT_INVALID
        except RuntimeFailure as e:
            log.error("cannot check the intent: %s", e)
            return EXIT_RUNTIME
        log.info("tor-agent starting for %s (%s)", self.intent.node.hostname, self.options.config)
        try:
            with signal_pipe() as wake, self._netlink() as monitor, self._control() as control:
                self._serve(wake, monitor, control)
        except RuntimeFailure as e:
            log.error("%s", e)
            return EXIT_RUNTIME
        finally:
            self._stop_loop()
        log.info("tor-agent stopped (the switch is left as it is)")
        return EXIT_OK

    @contextlib.contextmanager
    def _netlink(self) -> Iterator[NetlinkMonitor]:
        monitor = self._monitor_factory()
        try:
            yield monitor
        finally:
            monitor.close()

    @contextlib.contextmanager
    def _control(self) -> Iterator[ControlServer | None]:
        if self.options.control_socket is None:
            yield None
            return
        server = ControlServer(self.options.control_socket)
        try:
            yield server
        finally:
            server.close()

    def _serve(self, wake: int, monitor: NetlinkMonitor, control: ControlServer | None) -> None:
        self.schedule.full_now(time.monotonic())
        self._next_watchdog = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if now >= self._next_watchdog:
                self.notify.send("WATCHDOG=1")
                self._next_watchdog = now + self.notify.watchdog_interval
            self._check_loop()
            scope = self.schedule.due(now, self.ready)
            if scope is not None:
                self._pass(scope)
                continue
            deadline = min(self.schedule.deadline(self.ready), self._next_watchdog)
            self._wait(wake, monitor, control, max(0.0, deadline - now))

    def _wait(self, wake: int, monitor: NetlinkMonitor, control: ControlServer | None, timeout: float) -> None:
        fds = [wake, monitor.fileno(), *([control.fileno()] if control is not None else [])]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        if monitor.fileno() in readable:
            self._on_netlink(monitor.read())
        if wake in readable:
            for signum in received(wake):
                self._on_signal(signum)
        if control is not None and control.fileno() in readable:
            self._on_request(control)

    def _on_netlink(self, changes: NetlinkChanges) -> None:
        """Schedule the passes `changes` ask for: a routes pass at once when the kept table has every route
        change (a netdev leaf moves OVS's tunnel routes straight from the events), the overlay or full pass
        debounced."""
        now = time.monotonic()
        self.schedule.netlink(changes, now)
        if self.kernel.changed(changes) and changes.route_updates and self.ready and self._reroutes():
            self.schedule.reroute(now)

    def _reroutes(self) -> bool:
        """Whether this switch keeps OVS's route table (a netdev leaf)."""
        return self.intent is not None and bool(uplink_bridges(self.intent))

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            log.info("%s: stopping", signal.Signals(signum).name)
            self._stopping = True
        elif signum == signal.SIGHUP:
            self._reload()

    # --- intents ---

    def _prepare(self, path: Path) -> Prepared:
        """Load `path` and have every stage check it. Raises Refused (one line) or RuntimeFailure."""
        try:
            return self.engine.prepare(load(path))
        except ConfigError as e:
            raise Refused(_one_line(str(e))) from e
        except IntentRefused as e:
            raise Refused(str(e)) from e

    def _adopt(self, prepared: Prepared, source: Path) -> None:
        """Make `prepared` the running intent; a full pass follows at once."""
        self.prepared, self.source, self.reload_error = prepared, source, None
        settings = KeepaliveSettings.from_intent(prepared.intent)
        ovs = self.drivers.ovs
        if isinstance(ovs, OvsRows) and ovs.looping:
            keeper = ovs.sidecar
            if prepared.intent.overlay is None or (settings is None) != (keeper is None):
                ovs.stop_loop()  # the next pass starts it again as the intent now needs it
            elif isinstance(keeper, ControllerKeeper) and settings is not None:
                keeper.update(settings)
        self.schedule.full_now(time.monotonic())

    def _reload(self) -> None:
        try:
            prepared = self._prepare(self.options.config)
        except (Refused, RuntimeFailure) as e:
            self._refuse(f"SIGHUP: {e}")
            return
        except Exception as e:  # a bug must not stop the agent: refuse the file, keep the last good intent
            log.exception("SIGHUP: checking %s failed unexpectedly", self.options.config)
            self._refuse(f"SIGHUP: {self.options.config}: cannot be checked: {e!r}")
            return
        log.info("SIGHUP: %s reloaded", self.options.config)
        self._adopt(prepared, self.options.config)

    def _refuse(self, why: str) -> None:
        self.reload_error = f"reload refused, still running the last good intent: {why}"
        log.error("reload refused: %s (the last good intent keeps running)", why[:REFUSAL_MAX])
        self.reporter.metrics.reload_failures += 1
        self.reporter.write_metrics()
        self._publish()

    # --- the control socket ---

    def _on_request(self, control: ControlServer) -> None:
        request = control.accept()
        if request is None:
            return
        try:
            answer = self._answer(request)
        except Exception as e:  # a bug must not stop the agent
            log.exception("control: %s failed unexpectedly", request.message.get("op"))
            answer = {"ok": False, "exit": EXIT_RUNTIME, "error": f"the daemon failed: {e!r}"}
        control.reply(request.conn, answer)

    def _answer(self, request: Request) -> dict[str, Any]:
        op = request.message["op"]
        if op == "hello":
            return {"ok": True, "pid": os.getpid(), "config": str(self.source), "ready": self.ready}
        if op == "apply":
            return self._apply_request(request.message.get("config"))
        return {"ok": False, "exit": EXIT_INVALID, "error": f"unknown request {op!r}"}

    def _apply_request(self, config: object) -> dict[str, Any]:
        if not isinstance(config, str) or not config:
            return {"ok": False, "exit": EXIT_INVALID, "error": "apply: no intent file given"}
        path = Path(config)
        try:
            prepared = self._prepare(path)
        except Refused as e:
            return {"ok": False, "exit": EXIT_INVALID, "error": str(e)}
        except RuntimeFailure as e:
            return {"ok": False, "exit": EXIT_RUNTIME, "error": str(e)}
        log.info("control: apply %s", path)
        self._adopt(prepared, path)
        report = self._pass("full")
        if report is None:
            return {"ok": False, "exit": EXIT_RUNTIME, "error": "the pass failed unexpectedly (see the agent's log)"}
        return {"ok": True, "pid": os.getpid(), "config": str(path), "report": report.as_json()}

    # --- passes ---

    def _pass(self, scope: Scope) -> EngineReport | None:
        assert self.prepared is not None
        scope = scope if self.ready else "full"
        self.schedule.started(scope)
        if scope == "routes" and not self.kernel.table.valid:
            return None  # a link change made the table stale since: the full pass due covers it
        before = CpuTimes.now()
        try:
            routes = self.kernel.table.routes() if scope == "routes" else None
            report = self.engine.apply(self.prepared, scope, routes)
        except Exception:  # a bug must not stop the agent: log it, back off, try again
            log.exception("%s pass failed unexpectedly", scope)
            self.schedule.finished(scope, True, time.monotonic())
            return None
        self.reporter.cpu(scope, CpuTimes.now() - before)
        self.passes += 1
        self.last = report
        self.schedule.finished(scope, bool(report.problems), time.monotonic(), report.held)
        self._log(report)
        self.reporter.record(report, self.ready)  # before ready: changes are the initial apply, not drift
        if not self.ready and not report.unreachable:
            self.ready = True
            self.notify.send("READY=1", f"MAINPID={os.getpid()}")
            log.info("first pass done: ready")
        self._ensure_loop()
        if scope == "full":
            self.reporter.observe(self.intent, report, self._keeper(), self.kernel.routes)
        self._publish()
        return report

    @staticmethod
    def _log(report: EngineReport) -> None:
        (log.warning if report.problems else log.info)("%s", report.summary())
        for stage in report.stages:
            for change in stage.changes if stage.stage != "links" else ():  # the links driver logs its own
                log.info("%s: %s", stage.label, change)

    # --- the OVSDB loop thread ---

    def _ensure_loop(self) -> None:
        """Start the OVSDB loop once a pass opened OVSDB; stop it when the intent has no overlay."""
        ovs = self.drivers.ovs
        if not isinstance(ovs, OvsRows) or self.intent is None:
            return
        if self.intent.overlay is None:
            ovs.stop_loop()
            return
        settings = KeepaliveSettings.from_intent(self.intent)
        # The keeper rides on the loop's thread and OVSDB connection: it reconnects a returning controller
        # within a second instead of waiting out OVS's backoff, and raises the controller alarms.
        keeper = (lambda conn: ControllerKeeper(conn, settings)) if settings is not None else None
        ovs.start_loop(self.options.full_every, self.lock, keeper)

    def _keeper(self) -> ControllerKeeper | None:
        ovs = self.drivers.ovs
        sidecar = ovs.sidecar if isinstance(ovs, OvsRows) else None
        return sidecar if isinstance(sidecar, ControllerKeeper) else None

    def _check_loop(self) -> None:
        ovs = self.drivers.ovs
        if isinstance(ovs, OvsRows) and not ovs.loop_alive():
            raise RuntimeFailure("the OVSDB loop thread died (see the log above): exiting so that systemd restarts")

    def _stop_loop(self) -> None:
        ovs = self.drivers.ovs
        if isinstance(ovs, OvsRows):
            ovs.stop_loop()

    # --- reporting ---

    def status_line(self) -> str:
        """One line for systemd's STATUS and the logs."""
        assert self.intent is not None
        text = f"{self.intent.node.hostname}: {'ready' if self.ready else 'starting'}"
        if self.last is not None:
            text += f"; {self.last.summary()}"
        if self.reload_error is not None:
            text += "; reload refused (invalid intent)"
        return text

    def _publish(self) -> None:
        self.notify.status(self.status_line())
        ovs = self.drivers.ovs
        stats = ovs.loop_stats() if isinstance(ovs, OvsRows) else None
        self.reporter.status(
            {
                "ready": self.ready,
                "pid": os.getpid(),
                "config": str(self.source),
                "hostname": self.intent.node.hostname if self.intent else None,
                "passes": self.passes,
                "status": self.status_line(),
                "reload_error": self.reload_error,
                "last_pass": self.last.as_json() if self.last else None,
                "loop": _loop_json(stats),
                "cpu": self.reporter.cpu_json(),
                "reads": {"frr": self.frr.reads, "frr_unchanged": self.frr.skipped, "routes": self.kernel.dumps},
                "time": time.time(),
            }
        )


def _loop_json(stats: LoopStats | None) -> dict[str, int] | None:
    if stats is None:
        return None
    return {"passes": stats.passes, "writes": stats.writes, "errors": stats.errors, "lock_waits": stats.lock_waits}


def _one_line(text: str) -> str:
    """Several problem lines as one, bounded."""
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= REFUSAL_MAX else line[: REFUSAL_MAX - 1] + "…"
