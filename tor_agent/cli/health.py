"""`tor-agent status` and `tor-agent verify`: read-only health of the underlay (OSPF, BFD, ECMP in
OSPF/zebra/kernel) and, when the intent has controllers, of the OpenFlow controller connections."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.errors import EXIT_OK, EXIT_RUNTIME, RuntimeFailure

if TYPE_CHECKING:
    from tor_agent.config.schema import Intent
    from tor_agent.health import UnderlayState
    from tor_agent.health.controllers import ControllerAlarm, ControllersStatus
    from tor_agent.health.overlay import OverlayProblem, OverlayState, OverlayStatus
    from tor_agent.health.parts import MissingPart

ONLY = click.option(
    "--only",
    type=click.Choice(["underlay"]),
    default=None,
    help="Check one layer only: underlay = OSPF, BFD and ECMP (no OVSDB read: tunnels and controllers skipped).",
)


# The readers, imported when a command runs (pyroute2, the OVS library); tests replace these names.


def read_underlay(intent: Intent) -> UnderlayState:
    """FRR's and the kernel's view of the underlay (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_underlay as read

    return read(intent)


def read_parts(intent: Intent) -> list[MissingPart]:
    """The interfaces the intent names that are not there (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_parts as read

    return read(intent)


def read_overlay(intent: Intent) -> OverlayState:
    """The overlay as OVSDB, ovs-vswitchd and the kernel have it (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_overlay as read

    return read(intent)


def read_controllers(intent: Intent) -> ControllersStatus:
    """The controllers of the intent's overlay bridge (tor_agent.cli.controllers)."""
    from tor_agent.cli.controllers import read_controllers as read

    return read(intent)


def check_overlay(
    intent: Intent, read: Callable[[], OverlayState]
) -> tuple[OverlayStatus | None, list[OverlayProblem]]:
    """The overlay section (tor_agent.health.overlay.check_overlay)."""
    from tor_agent.health.overlay import check_overlay as check

    return check(intent, read)


def check_parts(intent: Intent, only: str | None = None) -> list[MissingPart]:
    """The interfaces the intent names that are not there (`only="underlay"`: the loopback and uplinks);
    one finding naming the error when the kernel cannot be asked."""
    from tor_agent.health.parts import MissingPart

    try:
        parts = read_parts(intent)
    except RuntimeFailure as e:
        return [MissingPart("read", "tor-agent", f"cannot read the interfaces: {e}")]
    return [p for p in parts if not p.subject.startswith("overlay.")] if only == "underlay" else parts


def check_controllers(intent: Intent, verifying: bool) -> tuple[ControllersStatus | None, list[ControllerAlarm]]:
    """The controllers section: None and no alarm when the intent has no controllers (spines); an alarm
    naming the error when OVSDB cannot be read. Alarms wait the intent's `controllers.alarm_grace_s`;
    `verifying`: no controller connected fails at once."""
    from tor_agent.health.controllers import ControllerAlarm, alarm_grace_s, judge, verify

    if intent.controllers is None or intent.overlay is None:
        return None, []
    try:
        st = read_controllers(intent)
    except RuntimeFailure as e:
        return None, [ControllerAlarm("read", intent.overlay.bridge, f"cannot read the controllers: {e}")]
    grace = alarm_grace_s(intent)
    return st, verify(st, grace) if verifying else judge(st, grace)


@click.command()
@CONFIG
@JSON
@ONLY
@reports_errors
def status(config: Path, as_json: bool, only: str | None) -> None:
    """Show the underlay of the intent file CONFIG: the OSPF neighbour and BFD session of every uplink, all BFD
    sessions, and the route to every known VTEP (on a spine: every other loopback) with its nexthops as OSPF,
    zebra and the kernel FIB see them, plus what `verify` would report; on a leaf with controllers, their
    connections and alarms too (as `tor-agent controllers`); on a leaf, every tunnel peer with its port, ofport,
    BFD state and route; and every interface the intent names that is missing. Changes nothing. Exit 0
    whenever the state could be read. CONFIG defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent status /etc/tor-agent/agent.yaml
      tor-agent status --json /etc/tor-agent/agent.yaml | jq '.vteps[] | {address, width}'
    """
    from tor_agent.config import load
    from tor_agent.health import judge
    from tor_agent.health import status as underlay_status
    from tor_agent.health.controllers import status_lines as controller_lines
    from tor_agent.health.overlay import overlay_lines
    from tor_agent.health.report import status_lines

    intent = load(config)
    st = underlay_status(read_underlay(intent), intent)
    problems = judge(st)
    parts = check_parts(intent, only)
    if only == "underlay":
        intent = dataclasses.replace(intent, overlay=None, controllers=None)
    ctl, alarms = check_controllers(intent, verifying=False)
    ov, ov_problems = check_overlay(intent, lambda: read_overlay(intent))
    if as_json:
        degraded = [p.as_json() for p in (*parts, *problems, *alarms, *ov_problems)]
        extra = {"controllers": ctl.as_json() if ctl is not None else None} if intent.controllers is not None else {}
        extra |= {"overlay": ov.as_json() if ov is not None else None} if intent.overlay is not None else {}
        missing = {"missing": [p.subject for p in parts]}
        print_json({**st.as_json(), **extra, **missing, "ok": not degraded, "degraded": degraded})
    else:
        lines = [*status_lines(st, problems), *(f"missing: {p}" for p in parts)]
        if ctl is not None:
            lines += controller_lines(ctl, alarms)
        else:
            lines += [f"alarm: {a}" for a in alarms]
        lines += overlay_lines(ov, ov_problems) if ov is not None else [f"degraded: {p}" for p in ov_problems]
        click.echo("\n".join(lines))


@click.command()
@CONFIG
@JSON
@ONLY
@reports_errors
def verify(config: Path, as_json: bool, only: str | None) -> None:
    """Check the underlay of the intent file CONFIG: every uplink has a Full OSPF neighbour (and an up BFD
    session when BFD is on), and every known VTEP has the same route in OSPF, zebra's FIB and the kernel FIB,
    over as many ECMP nexthops as there are healthy uplinks; with controllers in CONFIG, at least one is
    connected, none has been down for controllers.alarm_grace_s (10 s by default) and one is master or
    equal; on a leaf, a working tunnel to every peer with an underlay route (port set up, BFD up, an OVS
    route on netdev); every interface the intent names exists (a missing access port or uplink is named).
    Exit 0 healthy, 1 degraded (each item listed), 2 invalid CONFIG. Cheap enough to run every few seconds
    (four questions to FRR's daemons over their vty sockets, two netlink dumps, one OVSDB read). CONFIG
    defaults to /etc/tor-agent/agent.yaml.

    \b
    Example:
      tor-agent verify /etc/tor-agent/agent.yaml
      watch -n 2 tor-agent verify --json /etc/tor-agent/agent.yaml
    """
    from tor_agent.config import load
    from tor_agent.health import Degraded, UnderlayStatus, judge
    from tor_agent.health import status as underlay_status
    from tor_agent.health.overlay import verify_line
    from tor_agent.health.parts import parts_lines
    from tor_agent.health.report import verify_lines

    intent = load(config)
    st: UnderlayStatus | None = None
    try:
        st = underlay_status(read_underlay(intent), intent)
        problems = judge(st)
    except RuntimeFailure as e:
        problems = [Degraded("read", "tor-agent", f"cannot read the underlay: {e}")]
    parts = check_parts(intent, only)
    if only == "underlay":
        intent = dataclasses.replace(intent, overlay=None, controllers=None)
    ctl, alarms = check_controllers(intent, verifying=True)
    ov, ov_problems = check_overlay(intent, lambda: read_overlay(intent))
    hostname = intent.node.hostname
    if as_json:
        degraded = [p.as_json() for p in (*parts, *problems, *alarms, *ov_problems)]
        print_json({"ok": not degraded, "hostname": hostname, "degraded": degraded})
    else:
        lines = [*parts_lines(hostname, parts), *verify_lines(hostname, problems, st)]
        if alarms:
            lines += [f"{hostname}: controllers degraded ({len(alarms)}):", *(f"  {a}" for a in alarms)]
        elif ctl is not None:
            lines.append(f"{hostname}: controllers healthy: {len(ctl.connected)}/{len(ctl.configured)} connected")
        lines += verify_line(hostname, ov, ov_problems) if ov is not None else [f"  {p}" for p in ov_problems]
        click.echo("\n".join(lines))
    sys.exit(EXIT_RUNTIME if parts or problems or alarms or ov_problems else EXIT_OK)
