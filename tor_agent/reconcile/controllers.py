"""Keep the switch connected to its OpenFlow controllers: notice a controller that is down, reconnect fast.

OVS reconnects on its own, but with a backoff that doubles up to `max_backoff` (1, 2, 4, 8 s...): a
controller that comes back can wait that long for its switches. OVS 3.1 keeps that backoff whatever is
changed in the Controller row (max_backoff, inactivity_probe...; measured, see docs/controllers.md); only a
new target string makes it connect at once. So, while the switch is not connected to a controller:

1. tor-agent probes the controller itself, a plain TCP connect every `probe_interval_s`;
2. when the probe gets through but the switch is still not connected, it rewrites that controller's target
   to the other spelling of the same address (`ReconnectController`): ovs-vswitchd opens a new connection
   at once; the bridge's controller set never becomes empty, so its flows stay;
3. if that does not connect (e.g. TLS refused), the next rewrite waits `first_holdoff_s`, then twice as
   long each time, up to the intent's max_backoff: never more often than OVS itself would try.

Whether the switch is connected comes from the kernel's TCP table when it is readable (immediate) and
from OVSDB otherwise (`is_connected`, refreshed by ovs-vswitchd every 5 s). Alarms (via
tor_agent.health.controllers) are raised after `grace_s`: every controller down (installed flows keep
forwarding with fail_mode secure), one controller down, or connected controllers none of which is master
or equal. Flap counters need memory, so they live here, in the long-running keeper.

`KeepalivePolicy` is the pure state machine (fed OVSDB rows, TCP-table readings and probe results with
explicit times, tested with fakes); `ControllerKeeper` is its shell: it reads the driver, runs the probes
in threads and applies the rewrites, as a sidecar of the daemon's `OverlayLoop` (same thread, same
OVSDB connection).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tor_agent.config.declare import default_of
from tor_agent.config.schema import Controllers, Intent
from tor_agent.health.controllers import (
    DEFAULT_GRACE_S,
    ControllerAlarm,
    ControllersStatus,
    ControllerStatus,
    alarm_grace_s,
    endpoint,
    judge,
)
from tor_agent.model.overlay import desired_controllers
from tor_agent.net.sockets import Connection, Endpoint, established_tcp
from tor_agent.ovs.errors import OvsError
from tor_agent.ovs.state import Action, ApplyResult, ControllerState, ReconnectController

log = logging.getLogger(__name__)

EventKind = Literal["connected", "disconnected", "reachable", "unreachable", "reconnect", "alarm", "cleared"]


@dataclass(frozen=True)
class KeepaliveSettings:
    """What the keeper watches and how eagerly it acts."""

    bridge: str
    targets: tuple[str, ...]  # canonical
    fail_mode: str | None = "secure"
    probe_interval_s: float = default_of(Controllers, "probe_interval_ms") / 1000
    probe_timeout_s: float = 0.5
    poll_interval_s: float = 1.0  # how often the TCP table is read while every controller is up (probes: faster)
    grace_s: float = DEFAULT_GRACE_S
    first_holdoff_s: float = 1.0
    max_holdoff_s: float = default_of(Controllers, "max_backoff_ms") / 1000  # never rewrite more often than OVS

    @classmethod
    def from_intent(cls, intent: Intent, grace_s: float | None = None) -> KeepaliveSettings | None:
        """Settings for the intent's overlay bridge and controllers; None when there are none.

        The alarm grace time is the intent's `controllers.alarm_grace_s` unless `grace_s` overrides it
        (`tor-agent controllers --keep --grace`); the probe interval is `controllers.probe_interval_ms`, and
        the rewrite hold-off's ceiling `controllers.max_backoff_ms`."""
        if intent.overlay is None or intent.controllers is None:
            return None
        c = intent.controllers
        return cls(
            bridge=intent.overlay.bridge,
            targets=tuple(desired_controllers(c)),
            fail_mode=intent.overlay.fail_mode,
            probe_interval_s=c.probe_interval_ms / 1000,
            grace_s=alarm_grace_s(intent, grace_s),
            max_holdoff_s=c.max_backoff_ms / 1000,
        )


@dataclass(frozen=True)
class KeeperEvent:
    """Something the keeper noticed or did (logged; kept for tests and the daemon's status)."""

    seq: int  # 1, 2, ... over the keeper's life
    at: float
    kind: EventKind
    subject: str
    detail: str = ""


@dataclass
class _Target:
    """The keeper's memory of one controller."""

    target: str
    since: float  # when link_up last changed (or when the keeper started watching)
    link_up: bool = False
    row: ControllerState | None = None
    reachable: bool | None = None
    probe_error: str | None = None
    probe_ok_at: float | None = None
    last_probe: float | None = None
    probing: bool = False
    last_kick: float | None = None
    holdoff: float = 0.0
    flaps: int = 0
    kicks: int = 0


class KeepalivePolicy:
    """The keeper's state machine: observations in, decisions out; every call takes the time explicitly."""

    def __init__(self, settings: KeepaliveSettings, now: float) -> None:
        self.settings = settings
        self.targets = {t: _Target(t, since=now, holdoff=settings.first_holdoff_s) for t in settings.targets}
        self.events: deque[KeeperEvent] = deque(maxlen=200)  # bounded: the daemon runs for months
        self.event_count = 0
        self._no_master_since: float | None = None
        self._observed = False
        self._kernel_view = False
        self._raised: dict[tuple[str, str], ControllerAlarm] = {}

    def reconfigure(self, settings: KeepaliveSettings, now: float) -> None:
        """New settings (the intent was reloaded): targets that stay keep their memory and counters."""
        old, self.settings = self.targets, settings
        self.targets = {
            t: old.get(t) or _Target(t, since=now, holdoff=settings.first_holdoff_s) for t in settings.targets
        }

    # --- observations ------------------------------------------------------------------------------

    def observe(self, now: float, rows: Sequence[ControllerState], established: frozenset[Endpoint] | None) -> None:
        """The bridge's Controller rows (from OVSDB) and, if known, the kernel's established TCP endpoints."""
        self._kernel_view = established is not None
        mine: dict[str, ControllerState] = {}
        for row in sorted((r for r in rows if r.bridge == self.settings.bridge), key=lambda r: not r.is_connected):
            mine.setdefault(row.canonical, row)
        for t in self.targets.values():
            t.row = mine.get(t.target)
            tcp = endpoint(t.target)
            if established is not None and tcp is not None:
                up = tcp in established
            else:
                up = t.row is not None and t.row.is_connected
            if not self._observed:
                t.link_up, t.since = up, self._first_since(now, t, up)
            elif up != t.link_up:
                self._link_changed(now, t, up)
        self._observed = True
        active = [t for t in self.targets.values() if t.link_up and t.row is not None]
        no_master = bool(active) and all(t.row is not None and t.row.role == "slave" for t in active)
        if not no_master:
            self._no_master_since = None
        elif self._no_master_since is None:
            self._no_master_since = now

    @staticmethod
    def _first_since(now: float, t: _Target, up: bool) -> float:
        """When the current state began, as far as OVS's own counters tell (they are never too recent)."""
        key = "sec_since_connect" if up else "sec_since_disconnect"
        value = t.row.status_value(key) if t.row is not None else None
        return now - int(value) if value is not None and value.isdigit() else now

    def _link_changed(self, now: float, t: _Target, up: bool) -> None:
        t.link_up, t.since = up, now
        if up:
            t.holdoff = self.settings.first_holdoff_s
            self._event(now, "connected", t.target, f"after {t.kicks} forced reconnect(s)" if t.kicks else "")
        else:
            t.flaps += 1
            t.reachable, t.probe_ok_at, t.last_probe = None, None, None
            self._event(now, "disconnected", t.target, f"flap {t.flaps}")

    def probe_result(self, now: float, target: str, ok: bool, error: str | None = None) -> None:
        """The outcome of a TCP probe started by `probes_due`."""
        t = self.targets.get(target)
        if t is None:
            return
        t.probing = False
        if ok != t.reachable:
            self._event(now, "reachable" if ok else "unreachable", target, error or "")
        t.reachable, t.probe_error = ok, error
        if ok:
            t.probe_ok_at = now

    # --- decisions ---------------------------------------------------------------------------------

    def probes_due(self, now: float) -> list[str]:
        """Targets to probe now (the switch is not connected to them); marks them as being probed."""
        due = []
        for t in self.targets.values():
            if t.link_up or t.probing:
                continue
            if t.last_probe is None or now - t.last_probe >= self.settings.probe_interval_s:
                t.probing, t.last_probe = True, now
                due.append(t.target)
        return due

    def reconnects_due(self, now: float) -> list[str]:
        """Targets whose connection to rewrite now: reachable by a probe newer than the last rewrite, the
        switch still not connected, and the hold-off since the last rewrite over. Records the rewrite."""
        due = []
        for t in self.targets.values():
            if t.link_up or not t.reachable or t.probe_ok_at is None or t.row is None or not t.row.owned:
                continue
            if t.last_kick is not None and (t.probe_ok_at <= t.last_kick or now - t.last_kick < t.holdoff):
                continue
            if t.last_kick is not None:
                t.holdoff = min(t.holdoff * 2, max(self.settings.max_holdoff_s, self.settings.first_holdoff_s))
            t.last_kick, t.kicks = now, t.kicks + 1
            self._event(now, "reconnect", t.target, f"forced reconnect {t.kicks} (TCP probe got through)")
            due.append(t.target)
        return due

    def next_wakeup(self, now: float) -> float:
        """When the shell must call in again: the next probe (now, if one is overdue), the end of a
        rewrite's hold-off, a grace deadline, or the next read of the kernel's TCP table (which nothing
        else announces; read as often as the probes run while a controller is down)."""
        everyone_up = all(t.link_up for t in self.targets.values())
        poll = (
            self.settings.poll_interval_s
            if everyone_up
            else min(self.settings.poll_interval_s, self.settings.probe_interval_s)
        )
        times = [now + poll] if self._kernel_view else []
        deadlines = []
        for t in self.targets.values():
            if t.link_up:
                continue
            if not t.probing and t.last_probe is not None:
                times.append(t.last_probe + self.settings.probe_interval_s)
            if t.reachable and t.last_kick is not None and t.probe_ok_at is not None and t.probe_ok_at > t.last_kick:
                times.append(t.last_kick + t.holdoff)
            deadlines.append(t.since + self.settings.grace_s)
        if self._no_master_since is not None:
            deadlines.append(self._no_master_since + self.settings.grace_s)
        times += [d for d in deadlines if d > now]  # a deadline already passed has been acted on
        return max(now, min(times, default=now + 60.0))

    # --- reporting ---------------------------------------------------------------------------------

    def status(self, now: float) -> ControllersStatus:
        """The controllers as health reports them, with what only the keeper knows filled in."""
        return ControllersStatus(
            bridge=self.settings.bridge,
            fail_mode=self.settings.fail_mode,
            controllers=tuple(self._status_of(now, t) for t in self.targets.values()),
        )

    def _status_of(self, now: float, t: _Target) -> ControllerStatus:
        row = t.row
        return ControllerStatus(
            target=t.target,
            configured=True,
            written_as=row.target if row is not None else None,
            owned=row.owned if row is not None else False,
            connected=t.link_up,
            role=row.role if row is not None else None,
            state=row.status_value("state") if row is not None else None,
            last_error=(row.status_value("last_error") if row is not None else None) or t.probe_error,
            reachable=None if t.link_up else t.reachable,
            down_for_s=None if t.link_up else now - t.since,
            flaps=t.flaps,
            reconnects_forced=t.kicks,
        )

    def alarms(self, now: float) -> list[ControllerAlarm]:
        """The alarms now; raising or clearing one is recorded as an event."""
        found = judge(self.status(now), self.settings.grace_s)
        if self._no_master_since is None or now - self._no_master_since < self.settings.grace_s:
            found = [a for a in found if a.kind != "no-master"]
        current: dict[tuple[str, str], ControllerAlarm] = {(a.kind, a.subject): a for a in found}
        for key, alarm in current.items():
            if key not in self._raised:
                self._event(now, "alarm", alarm.subject, f"{alarm.kind}: {alarm.message}")
        for key, alarm in self._raised.items():
            if key not in current:
                self._event(now, "cleared", alarm.subject, alarm.kind)
        self._raised = current
        return found

    def _event(self, now: float, kind: EventKind, subject: str, detail: str) -> None:
        self.event_count += 1
        self.events.append(KeeperEvent(self.event_count, now, kind, subject, detail))


# --- the shell ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    target: str
    ok: bool
    error: str | None
    at: float


def tcp_connect(where: Endpoint, timeout: float, on_port: Callable[[int], None] | None = None) -> None:
    """Open and close a TCP connection to `where`; raises OSError when it cannot. `on_port` learns the local
    port before the connection exists (the socket is bound first)."""
    family = socket.AF_INET6 if where[0].version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if on_port is not None:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            on_port(sock.getsockname()[1])
        sock.connect((str(where[0]), where[1]))


Connect = Callable[[Endpoint, float, Callable[[int], None]], None]


class TcpProber:
    """TCP connect probes, each in a short-lived thread; results are collected by the owner's thread, which
    a pipe (`fileno`) wakes up. `connect` is injectable (tests open the socket in another namespace).

    The local ports of probes in flight are known (`local_ports`): in the switch's TCP table a probe's own
    connection would otherwise look like ovs-vswitchd's connection to the controller."""

    def __init__(
        self,
        timeout_s: float,
        connect: Connect = tcp_connect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s, self.connect, self.clock = timeout_s, connect, clock
        self._lock = threading.Lock()
        self._results: list[ProbeResult] = []
        self._ports: set[int] = set()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._closed = False

    def fileno(self) -> int:
        """Readable when results are waiting."""
        return self._r

    def submit(self, target: str) -> None:
        """Probe `target` (a tcp:/ssl: target) in the background."""
        threading.Thread(target=self._probe, args=(target,), name=f"probe {target}", daemon=True).start()

    def _probe(self, target: str) -> None:
        where = endpoint(target)
        error: str | None = None
        ports: list[int] = []

        def bound(port: int) -> None:
            ports.append(port)
            with self._lock:
                self._ports.add(port)

        try:
            if where is None:
                raise OSError(f"cannot probe {target}")
            self.connect(where, self.timeout_s, bound)
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g}s"
        except OSError as e:
            error = os.strerror(e.errno) if e.errno else str(e)
        with self._lock:
            self._ports.difference_update(ports)
            if self._closed:
                return
            self._results.append(ProbeResult(target, error is None, error, self.clock()))
            os.write(self._w, b"p")

    def local_ports(self) -> frozenset[int]:
        """Local ports of the probes in flight."""
        with self._lock:
            return frozenset(self._ports)

    def results(self) -> list[ProbeResult]:
        """Results since the last call."""
        try:
            while os.read(self._r, 512):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            done, self._results = self._results, []
        return done

    def close(self) -> None:
        """Release the pipe (probes still running finish into the void)."""
        with self._lock:
            self._closed = True
            os.close(self._r)
            os.close(self._w)


class ControllerDriver(Protocol):
    """What the keeper needs from OVSDB (`tor_agent.ovs.connection.OvsConnection`, or a fake)."""

    def controllers(self) -> tuple[ControllerState, ...]: ...

    def apply(self, actions: Sequence[Action]) -> ApplyResult: ...


@dataclass
class ControllerKeeper:
    """The keeper's shell: reads OVSDB and the kernel, runs probes, applies rewrites, raises alarms.

    Call `tick()` whenever OVSDB may have changed, a probe finished (`fds()` readable) or `next_wakeup()`
    passed: `OverlayLoop(sidecar=keeper)` does exactly that. `status()` and `alarms()` may be read from any
    thread. `sockets` reads the established TCP endpoints of ovs-vswitchd's namespace (None: OVSDB only).
    """

    driver: ControllerDriver
    settings: KeepaliveSettings
    prober: TcpProber | None = None
    sockets: Callable[[], frozenset[Connection]] | None = established_tcp
    clock: Callable[[], float] = time.monotonic
    policy: KeepalivePolicy = field(init=False)

    def __post_init__(self) -> None:
        if self.prober is None:
            self.prober = TcpProber(self.settings.probe_timeout_s, clock=self.clock)
        self.policy = KeepalivePolicy(self.settings, self.clock())
        self._lock = threading.Lock()
        self._status = self.policy.status(self.clock())
        self._alarms: tuple[ControllerAlarm, ...] = ()
        self._pending: KeepaliveSettings | None = None
        self._logged = 0
        self.errors = 0

    def update(self, settings: KeepaliveSettings) -> None:
        """New settings (after the intent was reloaded); safe from any thread, applied at the next tick."""
        with self._lock:
            self._pending = settings

    def fds(self) -> Sequence[int]:
        """File descriptors whose readability means `tick()` has work."""
        return [self.prober.fileno()] if self.prober is not None else []

    def next_wakeup(self) -> float:
        """The monotonic time by which `tick()` must run again."""
        return self.policy.next_wakeup(self.clock())

    def tick(self) -> None:
        """One step: observe, collect probes, rewrite targets, start probes, update alarms."""
        now = self.clock()
        assert self.prober is not None
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.settings = pending
            self.policy.reconfigure(pending, now)
        try:
            rows = self.driver.controllers()
            established = self._established()
            self.policy.observe(now, rows, established)
            for result in self.prober.results():
                self.policy.probe_result(result.at, result.target, result.ok, result.error)
            due = self.policy.reconnects_due(now)
            if due:
                self.driver.apply([ReconnectController(self.settings.bridge, t) for t in due])
            for target in self.policy.probes_due(now):
                self.prober.submit(target)
        except OvsError as e:
            self.errors += 1
            log.warning("controller keeper: %s", e)
        alarms = tuple(self.policy.alarms(now))
        with self._lock:
            self._status, self._alarms = self.policy.status(now), alarms
        self._log_events()

    def _established(self) -> frozenset[Endpoint] | None:
        if self.sockets is None:
            return None
        try:
            connections = self.sockets()
        except OSError as e:
            log.debug("controller keeper: cannot read the TCP table: %s", e)
            return None
        probes = self.prober.local_ports() if self.prober is not None else frozenset()
        return frozenset(remote for local_port, remote in connections if local_port not in probes)

    def _log_events(self) -> None:
        for event in self.policy.events:
            if event.seq > self._logged:
                level = logging.WARNING if event.kind in ("disconnected", "alarm") else logging.INFO
                detail = f": {event.detail}" if event.detail else ""
                log.log(level, "controller %s %s%s", event.subject, event.kind, detail)
        self._logged = self.policy.event_count

    def status(self) -> ControllersStatus:
        """The controllers as of the last tick (thread-safe)."""
        with self._lock:
            return self._status

    def alarms(self) -> tuple[ControllerAlarm, ...]:
        """The alarms as of the last tick (thread-safe)."""
        with self._lock:
            return self._alarms

    def close(self) -> None:
        """Release the prober."""
        if self.prober is not None:
            self.prober.close()
