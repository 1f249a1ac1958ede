"""`tor-agent run`: the long-running agent and the switch's only writer while it runs.

- Start: the intent file (or, after a rollback, the pinned history entry; or, with a commit-confirm pending,
  the intent on trial, rolled back at once when its window passed or the switch rebooted meanwhile) is loaded
  and prepared (invalid: exit 2); then a full pass, retried with backoff until FRR and OVS answer; then READY=1
  to systemd and the status file says `ready`.
- OVSDB changes: once the first pass opened OVSDB, an OverlayLoop thread owns the connection and repairs
  drift within milliseconds, under the engine lock (tor_agent.reconcile.ovs_rows).
- Netlink changes, hold-downs and the periodic full pass: tor_agent.daemon.schedule decides when and which.
- SIGHUP: reload the intent file; anything that fails to load, render or pass FRR's parser is refused, the
  last good intent keeps running, one line is logged and a metric counted. SIGTERM/SIGINT: exit 0, leaving
  the switch as it is (nothing is ever torn down).
- The control socket (tor_agent.daemon.control, tor_agent.daemon.requests): apply (with commit-confirm),
  confirm, rollback, drain, undrain; each answered with the pass it ran.
- A commit-confirm's window and its health watch (tor_agent.daemon.trial).
- WATCHDOG=1 from the main thread at least every 15 s; STATUS= one line, the status file and the metrics
  textfile after every pass, with the CPU time each kind of pass took.
The main thread blocks in select() between events: an idle agent costs nothing but its periodic pass, which reads
FRR in full only when its running configuration moved (tor_agent.daemon.quiet) and the kernel's routes from a
table netlink keeps current (tor_agent.daemon.kernel); FRR is rendered in a child process (Jinja2 never loads).
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

from tor_agent.config.schema import Intent
from tor_agent.daemon.control import ControlServer
from tor_agent.daemon.kernel import CpuTimes, KernelView
from tor_agent.daemon.notify import SdNotify
from tor_agent.daemon.paths import CONTROL_SOCKET, STATUS_FILE
from tor_agent.daemon.quiet import QuietFrr
from tor_agent.daemon.reporting import Reporter
from tor_agent.daemon.requests import answer
from tor_agent.daemon.schedule import Schedule, Scope
from tor_agent.daemon.signals import received, signal_pipe
from tor_agent.daemon.trial import Trial
from tor_agent.errors import EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, ConfigError, RuntimeFailure
from tor_agent.frr import daemons
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.frr.vty import Vty, config_fingerprint
from tor_agent.health import status as underlay_status
from tor_agent.health.readers import drain_check, read_underlay
from tor_agent.model.peers import TunnelHold, uplink_bridges
from tor_agent.net.links import LinksDriver
from tor_agent.net.monitor import NetlinkChanges, NetlinkMonitor
from tor_agent.net.nft import GenerationCachedNft
from tor_agent.reconcile import startup
from tor_agent.reconcile.agentstate import AgentState, boot_id
from tor_agent.reconcile.controllers import ControllerKeeper, KeepaliveSettings
from tor_agent.reconcile.drivers import Drivers, switch_drivers
from tor_agent.reconcile.engine import Engine, IntentRefused
from tor_agent.reconcile.history import DEFAULT_SIZE, History, Who
from tor_agent.reconcile.lock import EngineLock
from tor_agent.reconcile.overlay import LoopStats
from tor_agent.reconcile.ovs_rows import OvsRows
from tor_agent.reconcile.report import EngineReport
from tor_agent.reconcile.startup import StartupHold
from tor_agent.reconcile.writer import Candidate, Writer
from tor_agent.render.isolated import ChildRenderer

log = logging.getLogger(__name__)

REFUSAL_MAX = 2000  # characters of a refused intent's problems in the one log line
FRR_LOOK_S = 0.5  # how often the daemon looks for a new ospfd (two small file reads)
HOLD_READ_TIMEOUT_S = 2.0


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
    history_size: int = DEFAULT_SIZE
    startup_file: Path = startup.STARTUP_FILE  # which ospfd's start-up hold is over


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
        switch = drivers(options.state_dir)
        self.kernel = KernelView(switch.kernel)  # MACs and routes kept up to date by netlink's announcements
        self.frr = QuietFrr(switch.frr, frr_fingerprint)  # FRR read in full only when it moved
        links = switch.links  # `nft` runs only when the ruleset moved
        if isinstance(links, LinksDriver):
            links = dataclasses.replace(links, nft=GenerationCachedNft())
        self.drivers = dataclasses.replace(switch, kernel=self.kernel, frr=self.frr, links=links)
        engine = Engine(self.drivers, self.lock, hold=TunnelHold(), render=ChildRenderer())
        history = History.in_dir(options.state_dir, options.history_size)
        self.writer = Writer(engine, history, AgentState(options.state_dir), losses=drain_check)
        self.trial = Trial(self)
        self.schedule = Schedule(options.full_every, options.debounce)
        self.reporter = Reporter(options.status_file, options.metrics_file)
        self._monitor_factory = monitor
        self.source = options.config  # the file the running intent came from
        self.ready = False
        self.last: EngineReport | None = None
        self.reload_error: str | None = None
        self.passes = 0
        self.startup = StartupHold(0.0, released=startup.remembered(options.startup_file))
        self._stopping = False
        self._next_watchdog = 0.0
        self._next_frr_look = 0.0

    @property
    def intent(self) -> Intent | None:
        """The running intent (None before one was loaded)."""
        return self.writer.prepared.intent if self.writer.prepared is not None else None

    # --- life cycle ---

    def run(self) -> int:
        """Load the intent, serve until SIGTERM; 0 on a clean stop, 2 on an invalid intent at start."""
        try:
            self._start()
        except Refused as e:
            log.error("%s: not started (nothing was changed)", e)
            return EXIT_INVALID
        except RuntimeFailure as e:
            log.error("cannot check the intent: %s", e)
            return EXIT_RUNTIME
        assert self.intent is not None
        log.info("tor-agent starting for %s (%s)", self.intent.node.hostname, self.source)
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

    def _start(self) -> None:
        """Which intent runs at start: a trial still in its window, the one it rolls back to, a pinned history
        entry (a rollback), else the intent file."""
        pending = self.writer.state.pending()
        if pending is not None:
            if pending.boot_id != boot_id() or pending.remaining() <= 0:
                why = "the switch rebooted" if pending.boot_id != boot_id() else "its window passed"
                log.warning("commit-confirm of history entry %d not confirmed (%s): rolling back", pending.entry, why)
                self.writer.roll_back_trial("confirm-timeout")
                self.source = Path(self.writer.entry.source if self.writer.entry else self.options.config)
                return
            self._adopt(self._guarded(lambda: self.writer.candidate_from(self.writer.history.get(pending.entry))),
                        "start", confirmed=False)  # fmt: skip
            return
        pinned = self.writer.pinned_entry()
        if pinned is not None:
            log.info("running history entry %d (a rollback), not %s: `tor-agent apply` runs the file again",
                     pinned.id, self.options.config)  # fmt: skip
            self._adopt(self._guarded(lambda: self.writer.candidate_from(pinned)), "start", pinned=True)
            return
        self._adopt(self.candidate(self.options.config), "start")

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
            if now >= self._next_frr_look:
                self._look_at_frr(now)
            if self.trial.due(now):
                self.trial.check()
                continue
            scope = self.schedule.due(now, self.ready)
            if scope is not None:
                self.run_pass(scope)
                continue
            deadline = min(self.schedule.deadline(self.ready), self._next_watchdog, self.trial.deadline(),
                           self._next_frr_look)  # fmt: skip
            self._wait(wake, monitor, control, max(0.0, deadline - now))

    def _wait(self, wake: int, monitor: NetlinkMonitor, control: ControlServer | None, timeout: float) -> None:
        fds = [wake, monitor.fileno(), *([control.fileno()] if control is not None else [])]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        if monitor.fileno() in readable:
            self._on_netlink(monitor.read())
            self.trial.soon()  # a route or link changed: an adjacency may have gone
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

    def candidate(self, path: Path) -> Candidate:
        """`path` loaded and checked by every stage. Raises Refused (one line) or RuntimeFailure."""
        return self._guarded(lambda: self.writer.candidate(path))

    @staticmethod
    def _guarded(make: Callable[[], Candidate]) -> Candidate:
        try:
            return make()
        except ConfigError as e:
            raise Refused(_one_line(str(e))) from e
        except IntentRefused as e:
            raise Refused(str(e)) from e

    def adopt(self, candidate: Candidate, who: Who, pinned: bool = False, confirmed: bool = True) -> None:
        """Make `candidate` the running intent (recorded in the history); a full pass follows at once."""
        self._adopt(candidate, who, pinned, confirmed)

    def _adopt(self, candidate: Candidate, who: Who, pinned: bool = False, confirmed: bool = True) -> None:
        self.writer.adopt(candidate, who, pinned, confirmed)
        self.after_change(candidate.source)

    def after_change(self, source: Path) -> None:
        """The running intent changed (adopted, or rolled back by the writer): follow it."""
        assert self.intent is not None
        self.source, self.reload_error = source, None
        self.startup.limit_s = self.intent.underlay.ospf.startup_max_metric_s
        settings = KeepaliveSettings.from_intent(self.intent)
        ovs = self.drivers.ovs
        if isinstance(ovs, OvsRows) and ovs.looping:
            keeper = ovs.sidecar
            if self.intent.overlay is None or (settings is None) != (keeper is None):
                ovs.stop_loop()  # the next pass starts it again as the intent now needs it
            elif isinstance(keeper, ControllerKeeper) and settings is not None:
                keeper.update(settings)
        for warning in getattr(self.intent, "warnings", ()):
            log.warning("%s: %s", self.source, warning)
        self.schedule.full_now(time.monotonic())

    def _reload(self) -> None:
        try:
            candidate = self.candidate(self.options.config)
        except (Refused, RuntimeFailure) as e:
            self._refuse(f"SIGHUP: {e}")
            return
        except Exception as e:  # a bug must not stop the agent: refuse the file, keep the last good intent
            log.exception("SIGHUP: checking %s failed unexpectedly", self.options.config)
            self._refuse(f"SIGHUP: {self.options.config}: cannot be checked: {e!r}")
            return
        log.info("SIGHUP: %s reloaded", self.options.config)
        self.writer.settle_plain_apply()
        self._adopt(candidate, "reload")

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
            reply = answer(self, request.message)
        except Exception as e:  # a bug must not stop the agent
            log.exception("control: %s failed unexpectedly", request.message.get("op"))
            reply = {"ok": False, "exit": EXIT_RUNTIME, "error": f"the daemon failed: {e!r}"}
        control.reply(request.conn, reply)

    # --- passes ---

    def run_pass(self, scope: Scope) -> EngineReport | None:
        """One pass now (a full one until the first is done); None when it failed unexpectedly."""
        assert self.writer.prepared is not None
        scope = scope if self.ready else "full"
        self.schedule.started(scope)
        if scope == "routes" and not self.kernel.table.valid:
            return None  # a link change made the table stale since: the full pass due covers it
        before = CpuTimes.now()
        try:
            routes = self.kernel.table.routes() if scope == "routes" else None
            report = self.writer.run(scope, self.startup, routes)
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
        if scope == "full" and self.intent is not None:
            self.reporter.observe(
                self.intent, report, self.keeper(), self.kernel.routes, self.writer.drained, self._pending_left()
            )
        self.trial.soon()
        self._publish()
        return report

    @staticmethod
    def _log(report: EngineReport) -> None:
        (log.warning if report.problems else log.info)("%s", report.summary())
        for stage in report.stages:
            for change in stage.changes if stage.stage != "links" else ():  # the links driver logs its own
                log.info("%s: %s", stage.label, change)

    # --- start-up protection ---

    def _look_at_frr(self, now: float) -> None:
        """A new ospfd (FRR or the switch just started, or watchfrr restarted it) holds the switch at the maximum
        metric; a hold ends once every uplink is Full, or after `startup_max_metric_s`."""
        self._next_frr_look = now + FRR_LOOK_S
        if self.startup.ospfd(daemons.ospfd(), now):
            log.warning("ospfd started less than %g s ago: holding the switch at the maximum metric until its "
                        "uplinks are Full", self.startup.limit_s)  # fmt: skip
            self.schedule.full_now(now)
        elif self.startup.active and self.ready and self.passes and self._uplinks_ready(now):
            log.info("start-up protection over: the switch carries transit traffic again")
            self.startup.release()
            startup.remember(self.startup, self.options.startup_file)
            self.schedule.full_now(now)

    def _uplinks_ready(self, now: float) -> bool:
        """Every uplink that exists has a Full adjacency (or the hold has lasted its limit)."""
        if self.startup.expired(now):
            return True
        assert self.intent is not None
        missing = set(self.last.missing) if self.last is not None else set()
        try:
            st = underlay_status(read_underlay(self.intent, HOLD_READ_TIMEOUT_S, self.kernel.routes), self.intent)
        except RuntimeFailure as e:
            log.warning("start-up protection: cannot read the uplinks (looking again): %s", e)
            return False
        present = [u for u in st.uplinks if not any(m.startswith(f"{u.where} ") for m in missing)]
        return bool(present) and all(u.healthy for u in present)

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

    def keeper(self) -> ControllerKeeper | None:
        """The controller keeper, while the OVSDB loop runs one."""
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

    def _pending_left(self) -> float | None:
        pending = self.writer.state.pending()
        return pending.remaining() if pending is not None else None

    def status_line(self) -> str:
        """One line for systemd's STATUS and the logs."""
        assert self.intent is not None
        text = f"{self.intent.node.hostname}: {'ready' if self.ready else 'starting'}"
        if self.writer.drained:
            text += "; DRAINED"
        elif self.startup.active:
            text += "; held at max-metric since FRR started"
        left = self._pending_left()
        if left is not None:
            text += f"; commit-confirm pending ({max(0.0, left):.0f} s left)"
        if self.last is not None:
            text += f"; {self.last.summary()}"
        if self.reload_error is not None:
            text += "; reload refused (invalid intent)"
        return text

    def publish(self) -> None:
        """Refresh STATUS and the status file now."""
        self._publish()

    def _publish(self) -> None:
        if self.intent is None:
            return
        self.notify.status(self.status_line())
        ovs = self.drivers.ovs
        stats = ovs.loop_stats() if isinstance(ovs, OvsRows) else None
        pending = self.writer.state.pending()
        entry = self.writer.entry
        self.reporter.status(
            {
                "ready": self.ready,
                "pid": os.getpid(),
                "config": str(self.source),
                "hostname": self.intent.node.hostname,
                "passes": self.passes,
                "status": self.status_line(),
                "reload_error": self.reload_error,
                "drain": self.writer.drain_state.as_json(),
                "startup_hold": self.startup.active,
                "pending_confirm": pending.as_json() if pending is not None else None,
                "history_entry": entry.as_json() if entry is not None else None,
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
