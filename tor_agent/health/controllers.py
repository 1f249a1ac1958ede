"""Controller health: what OVSDB (and the kernel) say about the switch's OpenFlow controller connections.

`controllers_status(intent, rows, ...)` joins the intent's targets with the Controller rows of the overlay
bridge (pure); `judge` lists what is wrong (alarms), `verify` adds "no controller connected" at once.
`switch_connected` is the one rule for "connected": ovs-vswitchd refreshes `Controller.is_connected` only on
its 5 s stats timer, while the kernel knows at once whether ovs-vswitchd's own TCP connection is there
(tor_agent.net.sockets.DaemonSockets; a connection of any other process never counts).

A one-shot reader (the CLI) has no memory: how long a controller has been down comes from OVS's own
`sec_since_disconnect`. The long-running keeper (tor_agent.reconcile.controllers) adds what needs memory
(flaps, reachability probes, forced reconnects) through the optional fields.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tor_agent.config.declare import default_of
from tor_agent.config.schema import Controllers, Intent
from tor_agent.health.finding import Finding
from tor_agent.model.overlay import canonical_target, desired_controllers
from tor_agent.net.sockets import Endpoint as Endpoint  # re-exported: tests use it
from tor_agent.ovs.state import ControllerState, SslState

AlarmKind = Literal["all-down", "down", "no-master", "missing", "read"]
# How long a controller may be down before the alarm (flows keep forwarding) when the caller has no intent
# value: the default of the intent's controllers.alarm_grace_s.
DEFAULT_GRACE_S = float(default_of(Controllers, "alarm_grace_s"))
_ACTIVE_ROLES = ("master", "other")  # "other" is OpenFlow's EQUAL


@dataclass(frozen=True)
class ControllerStatus:
    """One controller of the overlay bridge: configured, found in OVSDB, or both."""

    target: str  # canonical
    configured: bool
    written_as: str | None = None  # the target string in OVSDB (None: no row)
    owned: bool = False
    connected: bool = False
    role: str | None = None
    state: str | None = None  # OVS's connection state: ACTIVE, IDLE, BACKOFF, CONNECTING, VOID
    last_error: str | None = None
    sec_since_connect: int | None = None
    sec_since_disconnect: int | None = None
    # What a long-running keeper knows (None from a one-shot read):
    reachable: bool | None = None  # the agent's own TCP probe reached the controller
    down_for_s: float | None = None
    flaps: int | None = None  # connected -> disconnected transitions seen
    reconnects_forced: int | None = None

    @property
    def active(self) -> bool:
        """Connected in a role that may program the switch (master or equal)."""
        return self.connected and self.role in _ACTIVE_ROLES

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(vars(self))


@dataclass(frozen=True)
class ControllersStatus:
    """The overlay bridge's controllers as one report."""

    bridge: str | None
    fail_mode: str | None
    controllers: tuple[ControllerStatus, ...]
    ssl: SslState | None = None
    # Why `connected` is OVSDB's alone (ovs-vswitchd's sockets could not be told); None when they were read.
    ovsdb_only: str | None = None

    @property
    def configured(self) -> tuple[ControllerStatus, ...]:
        return tuple(c for c in self.controllers if c.configured)

    @property
    def connected(self) -> tuple[ControllerStatus, ...]:
        return tuple(c for c in self.configured if c.connected)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        ssl = None
        if self.ssl is not None:
            ssl = {"owned": self.ssl.owned, **vars(self.ssl.spec)}
        return {
            "bridge": self.bridge,
            "fail_mode": self.fail_mode,
            "connected": len(self.connected),
            "configured": len(self.configured),
            "controllers": [c.as_json() for c in self.controllers],
            "ssl": ssl,
            "ovsdb_only": self.ovsdb_only,
        }


@dataclass(frozen=True)
class ControllerAlarm(Finding):
    """One thing wrong with the controller connections; `subject` names the target or the bridge."""

    kind: AlarmKind


def controllers_status(
    intent: Intent,
    rows: Iterable[ControllerState],
    ssl: SslState | None = None,
    established: frozenset[Endpoint] | None = None,
    ovsdb_only: str | None = None,
) -> ControllersStatus:
    """Join the intent's controller targets with the overlay bridge's Controller rows.

    `established`: the endpoints ovs-vswitchd holds an ESTABLISHED TCP connection to (None: cannot be told,
    `ovsdb_only` says why); see `switch_connected`.
    """
    overlay = intent.overlay
    bridge = overlay.bridge if overlay is not None else None
    wanted = desired_controllers(intent.controllers) if overlay is not None else {}
    found: dict[str, ControllerState] = {}
    for row in sorted((r for r in rows if r.bridge == bridge), key=lambda r: not r.is_connected):
        found.setdefault(row.canonical, row)
    targets = [*wanted, *sorted(t for t in found if t not in wanted)]
    return ControllersStatus(
        bridge=bridge,
        fail_mode=overlay.fail_mode if overlay is not None else None,
        controllers=tuple(_one(t, t in wanted, found.get(t), established) for t in targets),
        ssl=ssl,
        ovsdb_only=None if established is not None else ovsdb_only,
    )


def switch_connected(target: str, reported: bool, established: frozenset[Endpoint] | None) -> bool:
    """Whether the switch is connected to controller `target`.

    `reported`: OVSDB's is_connected (an OpenFlow session: TCP, TLS and HELLO done; refreshed every 5 s);
    `established`: the endpoints ovs-vswitchd itself holds an ESTABLISHED TCP connection to (None: unknown).
    A tcp: target is connected when ovs-vswitchd's TCP connection is there, at once (OVSDB alone when that
    cannot be told). An ssl: target needs OVSDB to agree: ovs-vswitchd's TCP connection is ESTABLISHED for the
    whole TLS handshake, also one about to be refused (a wrong CA), so the kernel can only tell at once that
    an ssl: controller is gone, never that it is there.
    """
    tcp = endpoint(target)
    if established is None or tcp is None:
        return reported
    held = tcp in established
    return held and reported if canonical_target(target).startswith("ssl:") else held


def _one(
    target: str, configured: bool, row: ControllerState | None, established: frozenset[Endpoint] | None
) -> ControllerStatus:
    if row is None:
        return ControllerStatus(target, configured)
    return ControllerStatus(
        target=target,
        configured=configured,
        written_as=row.target,
        owned=row.owned,
        connected=switch_connected(target, row.is_connected, established),
        role=row.role,
        state=row.status_value("state"),
        last_error=row.status_value("last_error"),
        sec_since_connect=_int(row.status_value("sec_since_connect")),
        sec_since_disconnect=_int(row.status_value("sec_since_disconnect")),
    )


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def alarm_grace_s(intent: Intent, override: float | None = None) -> float:
    """The alarm grace time: `override` (e.g. a --grace option) if given, else the intent's
    `controllers.alarm_grace_s` (DEFAULT_GRACE_S without controllers)."""
    if override is not None:
        return override
    return float(intent.controllers.alarm_grace_s) if intent.controllers is not None else DEFAULT_GRACE_S


def judge(st: ControllersStatus, grace_s: float = DEFAULT_GRACE_S) -> list[ControllerAlarm]:
    """The alarms: every configured controller down (or without a row) for `grace_s`, as one alarm; else
    each controller without a row or down for `grace_s`, and connected controllers none of which is master
    or equal. How long is unknown for a one-shot read of a row never connected, or of a missing row: those
    count as past grace. Empty when healthy or when no controller is configured."""
    configured = st.configured
    bridge = st.bridge or "bridge"
    long_down = [c for c in configured if not c.connected and _down_at_least(c, grace_s)]
    if configured and not st.connected:
        if len(long_down) == len(configured):
            return [ControllerAlarm("all-down", bridge, _all_down_message(st, configured))]
        return []
    alarms = [
        ControllerAlarm("missing", c.target, f"no Controller row on {bridge}")
        if c.written_as is None
        else ControllerAlarm("down", c.target, _down_message(c))
        for c in long_down
    ]
    known = [c for c in st.connected if c.role is not None]  # OVSDB may not have caught up yet
    if known and len(known) == len(st.connected) and not any(c.active for c in known):
        roles = ", ".join(f"{c.target} {c.role or 'role unknown'}" for c in st.connected)
        alarms.append(ControllerAlarm("no-master", bridge, f"no master or equal controller ({roles})"))
    return alarms


def verify(st: ControllersStatus, grace_s: float = DEFAULT_GRACE_S) -> list[ControllerAlarm]:
    """What `tor-agent verify` fails on: `judge`, plus "no controller connected" without waiting for grace."""
    alarms = judge(st, grace_s)
    if st.configured and not st.connected and not any(a.kind == "all-down" for a in alarms):
        alarms.append(ControllerAlarm("all-down", st.bridge or "bridge", _all_down_message(st, st.configured)))
    return alarms


def _down_at_least(c: ControllerStatus, seconds: float) -> bool:
    down = _down_for(c)
    return down is None or down >= seconds


def _down_for(c: ControllerStatus) -> float | None:
    """Seconds down: the keeper's own figure, else OVS's; None when unknown (never connected)."""
    if c.down_for_s is not None:
        return c.down_for_s
    return float(c.sec_since_disconnect) if c.sec_since_disconnect is not None else None


def _down_message(c: ControllerStatus) -> str:
    if c.written_as is None:
        return "no Controller row"
    seconds = _down_for(c)
    since = f"for {seconds:.0f}s" if seconds is not None else "since it was configured (never connected)"
    why = f", last error: {c.last_error}" if c.last_error else ""
    probe = ""
    if c.reachable is not None:
        probe = ", reachable (TCP) but the switch is not connected" if c.reachable else ", not reachable (TCP)"
    return f"not connected {since} (OVS state {c.state or 'unknown'}{why}{probe})"


def _all_down_message(st: ControllersStatus, configured: Sequence[ControllerStatus]) -> str:
    keeps = (
        "installed flows keep forwarding (fail_mode secure), nothing new is learned"
        if st.fail_mode == "secure"
        else "the bridge falls back to a learning switch after 3 inactivity probes (fail_mode standalone)"
    )
    names = "; ".join(f"{c.target} {_down_message(c)}" for c in configured)
    return f"no controller connected: {keeps}. {names}"


# --- the kernel's view ---------------------------------------------------------------------------------


def endpoint(target: str) -> Endpoint | None:
    """The (address, port) a tcp:/ssl: target connects to; None for anything else."""
    canonical = canonical_target(target)
    scheme, _, rest = canonical.partition(":")
    if scheme not in ("tcp", "ssl"):
        return None
    host, _, port = rest.rpartition(":")
    try:
        return ipaddress.ip_address(host.strip("[]")), int(port)
    except ValueError:
        return None


# --- text ------------------------------------------------------------------------------------------------


def status_lines(st: ControllersStatus, alarms: Sequence[ControllerAlarm]) -> list[str]:
    """The controllers section of `tor-agent status` and `tor-agent controllers`."""
    if not st.controllers:
        return [f"controllers of {st.bridge or '-'}: none configured"]
    head = f"controllers of {st.bridge} (fail_mode {st.fail_mode or '-'}): "
    lines = [head + f"{len(st.connected)}/{len(st.configured)} connected"]
    lines += [f"  {_line(c)}" for c in st.controllers]
    if st.ssl is not None:
        s = st.ssl.spec
        lines.append(f"  SSL: key {s.private_key}, certificate {s.certificate}, CA {s.ca_cert}")
    if st.ovsdb_only is not None:
        lines.append(f"  connected as OVSDB says (refreshed every 5 s): {st.ovsdb_only}")
    lines += [f"alarm: {a}" for a in alarms]
    return lines


def _line(c: ControllerStatus) -> str:
    name = c.target if c.written_as in (None, c.target) else f"{c.target} (written {c.written_as})"
    if not c.configured:
        name += " [not in the intent]"
    if c.written_as is None:
        return f"{name:<32} no Controller row"
    if c.connected:
        since = f", up {_duration(c.sec_since_connect)}" if c.sec_since_connect is not None else ""
        return f"{name:<32} connected, role {c.role or 'unknown'}{since}{_counters(c)}"
    return f"{name:<32} NOT connected: {_down_message(c)}{_counters(c)}"


def _counters(c: ControllerStatus) -> str:
    parts = []
    if c.flaps:
        parts.append(f"{c.flaps} flap(s)")
    if c.reconnects_forced:
        parts.append(f"{c.reconnects_forced} forced reconnect(s)")
    return f" [{', '.join(parts)}]" if parts else ""


def _duration(seconds: float) -> str:
    """3s, 5m12s, 2h03m, 3d04h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
