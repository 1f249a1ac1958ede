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

Whether the switch is connected follows `switch_connected` (tor_agent.health.controllers): ovs-vswitchd's
own ESTABLISHED TCP connection, seen at once in the kernel's TCP table (a connection of any other process,
the keeper's probes included, never counts); for ssl: targets OVSDB's `is_connected` must agree, and after
ovs-vswitchd's connection went away, an `is_connected` written before that is not believed. When
ovs-vswitchd's sockets cannot be told, OVSDB alone (`is_connected`, refreshed every 5 s). Alarms (via
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
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
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
    switch_connected,
)
from tor_agent.model.overlay import Pairs, canonical_target, desired_controllers
from tor_agent.net.sockets import DaemonSockets, Endpoint
from tor_agent.net.tcp_probe import TcpProber
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
    held: bool | None = None  # ovs-vswitchd holds a TCP connection to it (None: cannot be told)
    stale_status: Pairs | None = None  # ssl: the row's status when that connection went (see _stale)


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
        self._ovsdb_only: str | None = None
        self._raised: dict[tuple[str, str], ControllerAlarm] = {}

    def reconfigure(self, settings: KeepaliveSettings, now: float) -> None:
        """New settings (the intent was reloaded): targets that stay keep their memory and counters."""
        old, self.settings = self.targets, settings
        self.targets = {
            t: old.get(t) or _Target(t, since=now, holdoff=settings.first_holdoff_s) for t in settings.targets
        }

    # --- observations ------------------------------------------------------------------------------

    def observe(
        self,
        now: float,
        rows: Sequence[ControllerState],
        established: frozenset[Endpoint] | None,
        ovsdb_only: str | None = None,
    ) -> None:
        """The bridge's Controller rows (from OVSDB) and, if known, the endpoints ovs-vswitchd holds an
        ESTABLISHED TCP connection to (None: cannot be told, `ovsdb_only` says why)."""
        self._kernel_view = established is not None
        self._ovsdb_only = None if established is not None else ovsdb_only
        mine: dict[str, ControllerState] = {}
        for row in sorted((r for r in rows if r.bridge == self.settings.bridge), key=lambda r: not r.is_connected):
            mine.setdefault(row.canonical, row)
        for t in self.targets.values():
            t.row = mine.get(t.target)
            tcp = endpoint(t.target)
            held = None if established is None or tcp is None else tcp in established
            stale = self._stale(t, held)
            reported = t.row is not None and t.row.is_connected and not stale
            up = switch_connected(t.target, reported, established)
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
    def _stale(t: _Target, held: bool | None) -> bool:
        """Whether the row's is_connected predates the loss of ovs-vswitchd's connection to an ssl: target:
        OVSDB says connected for up to 5 s after the loss, long enough to mistake a reconnection's TLS
        handshake (maybe one about to be refused) for a session. Any status ovs-vswitchd writes afterwards
        is new."""
        status = t.row.status if t.row is not None else None
        if t.held and held is False and canonical_target(t.target).startswith("ssl:"):
            t.stale_status = status
        elif t.stale_status is not None and status != t.stale_status:
            t.stale_status = None
        t.held = held
        return t.stale_status is not None

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
            if t.held:  # ovs-vswitchd is not backing off: it holds a connection (a TLS handshake, a session
                continue  # OVSDB does not show yet); a rewrite would only cut it
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
            ovsdb_only=self._ovsdb_only,
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


class SwitchSockets(Protocol):
    """Which endpoints ovs-vswitchd holds a TCP connection to (`tor_agent.net.sockets.DaemonSockets`, or a fake)."""

    reason: str | None  # why the last answer was None

    def endpoints(self, wanted: Collection[Endpoint]) -> frozenset[Endpoint] | None: ...


class ControllerDriver(Protocol):
    """What the keeper needs from OVSDB (`tor_agent.ovs.connection.OvsConnection`, or a fake)."""

    def controllers(self) -> tuple[ControllerState, ...]: ...

    def apply(self, actions: Sequence[Action]) -> ApplyResult: ...


@dataclass
class ControllerKeeper:
    """The keeper's shell: reads OVSDB and the kernel, runs probes, applies rewrites, raises alarms.

    Call `tick()` whenever OVSDB may have changed, a probe finished (`fds()` readable) or `next_wakeup()`
    passed: `OverlayLoop(sidecar=keeper)` does exactly that. `status()` and `alarms()` may be read from any
    thread. `sockets` tells which controllers ovs-vswitchd holds a TCP connection to, in its namespace
    (None: OVSDB only).
    """

    driver: ControllerDriver
    settings: KeepaliveSettings
    prober: TcpProber | None = None
    sockets: SwitchSockets | None = field(default_factory=DaemonSockets)
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
        self._ovsdb_only: str | None = None
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
            self.policy.observe(now, rows, established, self._ovsdb_only)
            for result in self.prober.results():
                self.policy.probe_result(result.at, result.key, result.ok, result.error)
            due = self.policy.reconnects_due(now)
            if due:
                self.driver.apply([ReconnectController(self.settings.bridge, t) for t in due])
            for target in self.policy.probes_due(now):
                self.prober.submit(target, endpoint(target))
        except OvsError as e:
            self.errors += 1
            log.warning("controller keeper: %s", e)
        alarms = tuple(self.policy.alarms(now))
        with self._lock:
            self._status, self._alarms = self.policy.status(now), alarms
        self._log_events()

    def _established(self) -> frozenset[Endpoint] | None:
        """The controllers ovs-vswitchd holds a TCP connection to; None (and why, logged once) when unknown."""
        found: frozenset[Endpoint] | None = None
        if self.sockets is None:
            why: str | None = "not read"
        else:
            wanted = frozenset(e for e in map(endpoint, self.settings.targets) if e is not None)
            try:
                found = self.sockets.endpoints(wanted)
                why = self.sockets.reason if found is None else None
            except OSError as e:
                why = f"cannot read the TCP table: {e}"
        if why != self._ovsdb_only and why is not None:
            log.info("controller keeper: ovs-vswitchd's connections from OVSDB only (up to 5 s late): %s", why)
        elif why != self._ovsdb_only:
            log.info("controller keeper: ovs-vswitchd's connections from the kernel's TCP table again")
        self._ovsdb_only = why
        return found

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
