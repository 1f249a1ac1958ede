"""`tor-agent status` and `tor-agent verify`: read-only health of the underlay (OSPF, BFD, ECMP in
OSPF/zebra/kernel, the cabling when the intent names each uplink's neighbour) and, when the intent has
controllers, of the OpenFlow controller connections; `verify --fabric`: the area's LSDB against the fabric
the switch was rendered from."""

from __future__ import annotations

import dataclasses
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.cli.options import STATE_DIR
from tor_agent.config import load
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, EXIT_OK, EXIT_RUNTIME, RuntimeFailure
from tor_agent.health import Degraded, UnderlayState, UnderlayStatus, judge
from tor_agent.health import status as underlay_status
from tor_agent.health.controllers import ControllerAlarm, ControllersStatus, alarm_grace_s
from tor_agent.health.controllers import judge as judge_controllers
from tor_agent.health.controllers import status_lines as controller_lines
from tor_agent.health.controllers import verify as verify_controllers
from tor_agent.health.finding import Finding
from tor_agent.health.neighbours import Cabling, LldpNeighbour, LldpUnavailable, check_cabling, expectations
from tor_agent.health.overlay import OverlayState, check_overlay, overlay_lines, verify_line
from tor_agent.health.parts import MissingPart, parts_lines
from tor_agent.health.report import status_lines, verify_lines
from tor_agent.reconcile.agentstate import AgentState

if TYPE_CHECKING:
    from tor_agent.health.fabric_live import RouterLinks
    from tor_agent.ovs.connection import OvsConnection

ONLY = click.option(
    "--only",
    type=click.Choice(["underlay"]),
    default=None,
    help="Check one layer only: underlay = OSPF, BFD and ECMP (no OVSDB read: tunnels and controllers skipped).",
)


# The readers, imported when a command runs (pyroute2, the OVS library: never for --help); tests replace these.


def read_underlay(intent: Intent) -> UnderlayState:
    """FRR's and the kernel's view of the underlay (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_underlay as read

    return read(intent)


def read_parts(intent: Intent) -> list[MissingPart]:
    """The interfaces the intent names that are not there (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_parts as read

    return read(intent)


class Ovsdb:
    """The one OVSDB connection a command's readers share: opened by the first reader that asks (a command that
    reads no OVSDB never loads the ovs library), closed when the command is done. A failed open is not tried
    again: the next reader gets the same error at once."""

    def __init__(self, remote: str | None = None) -> None:
        self._remote = remote  # None: the switch's own (unix:/run/openvswitch/db.sock)
        self._conn: OvsConnection | None = None
        self._failed: RuntimeFailure | None = None

    def __call__(self) -> OvsConnection:
        if self._failed is not None:
            raise self._failed
        if self._conn is None:
            from tor_agent.cli.controllers import DEFAULT_REMOTE, OVSDB_TIMEOUT_S
            from tor_agent.ovs.connection import OvsConnection

            try:
                self._conn = OvsConnection.open(self._remote or DEFAULT_REMOTE, OVSDB_TIMEOUT_S)
            except RuntimeFailure as e:
                self._failed = e
                raise
        return self._conn

    def __enter__(self) -> Ovsdb:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()


def read_overlay(intent: Intent, ovsdb: Ovsdb) -> OverlayState:
    """The overlay as OVSDB, ovs-vswitchd and the kernel have it (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_overlay as read

    return read(intent, ovsdb())


def read_controllers(intent: Intent, ovsdb: Ovsdb) -> ControllersStatus:
    """The controllers of the intent's overlay bridge (tor_agent.cli.controllers)."""
    from tor_agent.cli.controllers import read_controllers as read

    return read(intent, conn=ovsdb())


def read_lldp() -> tuple[LldpNeighbour, ...]:
    """lldpd's neighbours (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_lldp as read

    return read()


def read_router_links() -> dict[IPv4Address, RouterLinks]:
    """The area's router LSAs (tor_agent.health.readers)."""
    from tor_agent.health.readers import read_router_links as read

    return read()


def drained_finding(state_dir: Path, allowed: bool) -> list[Finding]:
    """A drained switch is not healthy (traffic goes around it), unless `allowed`."""
    drain = AgentState(state_dir).drain()
    if not drain.drained or allowed:
        return []
    return [Finding("drained", "DRAINED", "traffic goes around this switch (undrain; verify --allow-drained)")]


def agent_state_json(state_dir: Path) -> dict[str, Any]:
    """The drain state and a pending commit-confirm, as plain data."""
    state = AgentState(state_dir)
    pending = state.pending()
    return {"drain": state.drain().as_json(), "pending_confirm": pending.as_json() if pending else None}


def agent_state_lines(state_dir: Path) -> list[str]:
    """`DRAINED since ...`, `commit-confirm pending ...`: what the operator is doing with the switch."""
    state = AgentState(state_dir)
    lines = []
    drain = state.drain()
    if drain.drained:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drain.since)) if drain.since else "?"
        lines.append(f"DRAINED since {since}{' (forced)' if drain.forced else ''}: `tor-agent undrain` ends it")
    pending = state.pending()
    if pending is not None:
        deadline = time.strftime("%H:%M:%S", time.localtime(pending.deadline))
        lines.append(f"commit-confirm pending: history entry {pending.entry} goes back to {pending.previous} at"
                     f" {deadline} ({max(0.0, pending.remaining()):.0f} s) unless `tor-agent confirm`")  # fmt: skip
    return lines


def check_parts(intent: Intent, only: str | None = None) -> list[MissingPart]:
    """The interfaces the intent names that are not there (`only="underlay"`: the loopback and uplinks);
    one finding naming the error when the kernel cannot be asked."""
    try:
        parts = read_parts(intent)
    except RuntimeFailure as e:
        return [MissingPart("read", "tor-agent", f"cannot read the interfaces: {e}")]
    return [p for p in parts if not p.subject.startswith("overlay.")] if only == "underlay" else parts


def check_controllers(
    intent: Intent, ovsdb: Ovsdb, verifying: bool
) -> tuple[ControllersStatus | None, list[ControllerAlarm]]:
    """The controllers section: None and no alarm when the intent has no controllers (spines); an alarm
    naming the error when OVSDB cannot be read. Alarms wait the intent's `controllers.alarm_grace_s`;
    `verifying`: no controller connected fails at once."""
    if intent.controllers is None or intent.overlay is None:
        return None, []
    try:
        st = read_controllers(intent, ovsdb)
    except RuntimeFailure as e:
        return None, [ControllerAlarm("read", intent.overlay.bridge, f"cannot read the controllers: {e}")]
    grace = alarm_grace_s(intent)
    return st, verify_controllers(st, grace) if verifying else judge_controllers(st, grace)


def read_cabling(st: UnderlayStatus | None) -> Cabling | None:
    """Each uplink with an expected neighbour against what LLDP and OSPF find there; None (and lldpd is not
    asked) when no uplink names its neighbour or the underlay could not be read."""
    if st is None or not expectations(st.uplinks):
        return None
    try:
        return check_cabling(st.uplinks, read_lldp())
    except LldpUnavailable as e:
        return check_cabling(st.uplinks, None, str(e))


def cabling_lines(hostname: str, cabling: Cabling | None) -> list[str]:
    """The verify report's cabling part (none without expectations)."""
    if cabling is None:
        return []
    problems, notes = cabling.problems(), [f"  note: {n}" for n in cabling.notes()]
    if problems:
        return [f"{hostname}: cabling degraded ({len(problems)}):", *(f"  {p}" for p in problems), *notes]
    return [f"{hostname}: cabling: {cabling.summary()}", *notes]


@click.command()
@CONFIG
@JSON
@ONLY
@STATE_DIR
@reports_errors
def status(config: Path, as_json: bool, only: str | None, state_dir: Path) -> None:
    """Show the underlay of the intent file CONFIG: the OSPF neighbour and BFD session of every uplink, all BFD
    sessions, and the route to every known VTEP (on a spine: every other loopback) with its nexthops as OSPF, zebra and
    the kernel FIB see them, the cabling of each uplink whose neighbour the intent names (LLDP and the OSPF neighbour's
    router ID), plus what `verify` would report; on a leaf with controllers, their connections and alarms too (as
    `tor-agent controllers`); on a leaf, the tunnels' GRE key mode and every tunnel peer with its port, ofport, key, BFD
    state and route; and every interface the intent names that is missing. Changes nothing. Exit 0 whenever the state
    could be read. CONFIG defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent status /etc/tor-agent/agent.yaml
      tor-agent status --json /etc/tor-agent/agent.yaml | jq '.vteps[] | {address, width}'
    """
    intent = load(config)
    st = underlay_status(read_underlay(intent), intent)
    problems = judge(st)
    cabling = read_cabling(st)
    miscabled = cabling.problems() if cabling is not None else []
    parts = check_parts(intent, only)
    if only == "underlay":
        intent = dataclasses.replace(intent, overlay=None, controllers=None)
    with Ovsdb() as ovsdb:
        ctl, alarms = check_controllers(intent, ovsdb, verifying=False)
        ov, ov_problems = check_overlay(intent, lambda: read_overlay(intent, ovsdb))
    if as_json:
        degraded = [p.as_json() for p in (*parts, *problems, *miscabled, *alarms, *ov_problems)]
        extra = {"controllers": ctl.as_json() if ctl is not None else None} if intent.controllers is not None else {}
        extra |= {"overlay": ov.as_json() if ov is not None else None} if intent.overlay is not None else {}
        extra |= {"cabling": cabling.as_json()} if cabling is not None else {}
        missing = {"missing": [p.subject for p in parts]}
        agent = agent_state_json(state_dir)
        print_json({**st.as_json(), **extra, **missing, **agent, "ok": not degraded, "degraded": degraded})
    else:
        lines = [*agent_state_lines(state_dir), *status_lines(st, problems), *(f"missing: {p}" for p in parts)]
        if cabling is not None:
            lines += [f"cabling: {cabling.summary()}", *(f"degraded: {p}" for p in miscabled)]
            lines += [f"note: {n}" for n in cabling.notes()]
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
@STATE_DIR
@click.option("--allow-drained", is_flag=True, help="A drained switch (tor-agent drain) is not a failure.")
@click.option(
    "--fabric",
    "fabric",
    is_flag=True,
    help="Check the whole fabric instead of this switch: the area's LSDB against the plan in --fabric-file.",
)
@click.option(
    "--fabric-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The fabric as planned (`tor-agent fabric render` writes it); default: fabric.yaml beside CONFIG.",
)
@reports_errors
def verify(
    config: Path,
    as_json: bool,
    only: str | None,
    state_dir: Path,
    allow_drained: bool,
    fabric: bool,
    fabric_file: Path | None,
) -> None:
    """Check the underlay of the intent file CONFIG: every uplink has a Full OSPF neighbour (and an up BFD session when
    BFD is on) and, where the intent names the neighbour expected on it, is cabled to that switch and port (as lldpd's
    LLDP and the OSPF neighbour's router ID show), and every known VTEP has the same route in OSPF, zebra's FIB and the
    kernel FIB, over as many ECMP nexthops as there are healthy uplinks (a drained neighbour's uplink is left out, as
    OSPF does); with controllers in CONFIG, at least one is connected, none has been down for
    controllers.alarm_grace_s (10 s by default) and one is master or equal; on a leaf, a working tunnel to every peer
    with an underlay route (port set up, the intent's GRE key mode, BFD up, an OVS route on netdev); every interface
    the intent names exists (a missing access port or uplink is named); this switch is not drained (unless
    --allow-drained). Exit 0 healthy, 1 degraded (each item listed), 2 invalid CONFIG. Cheap enough to run every few
    seconds (five questions to FRR's daemons over their vty sockets, two netlink dumps, one OVSDB read; one lldpcli
    call with expected neighbours). CONFIG defaults to /etc/tor-agent/agent.yaml.

    With --fabric, on any switch: the area's link-state database against the fabric CONFIG was rendered from
    (fabric.yaml beside it, or --fabric-file): missing, extra and miscabled links, unknown or absent router IDs, costs
    other than planned, and pairs of leaves with fewer equal-cost paths than planned (drained switches are notes, not
    faults). One line per finding. Exit 0 as planned, 1 findings, 2 invalid CONFIG or fabric file.

    \b
    Example:
      tor-agent verify /etc/tor-agent/agent.yaml
      watch -n 2 tor-agent verify --json /etc/tor-agent/agent.yaml
      tor-agent verify --fabric /etc/tor-agent/agent.yaml
    """
    if fabric:
        verify_fabric(config, fabric_file, as_json, only)
    if fabric_file is not None:
        click.echo("tor-agent: --fabric-file is only read with --fabric", err=True)
        sys.exit(EXIT_INVALID)
    intent = load(config)
    st: UnderlayStatus | None = None
    cabling: Cabling | None = None
    try:
        st = underlay_status(read_underlay(intent), intent)
        problems = judge(st)
        cabling = read_cabling(st)
    except RuntimeFailure as e:
        problems = [Degraded("read", "tor-agent", f"cannot read the underlay: {e}")]
    miscabled = cabling.problems() if cabling is not None else []
    parts = check_parts(intent, only)
    drained = drained_finding(state_dir, allow_drained)
    if only == "underlay":
        intent = dataclasses.replace(intent, overlay=None, controllers=None)
    with Ovsdb() as ovsdb:
        ctl, alarms = check_controllers(intent, ovsdb, verifying=True)
        ov, ov_problems = check_overlay(intent, lambda: read_overlay(intent, ovsdb))
    hostname = intent.node.hostname
    if as_json:
        degraded = [p.as_json() for p in (*drained, *parts, *problems, *miscabled, *alarms, *ov_problems)]
        key = {"tunnel_key": ov.as_json()["key"]} if ov is not None else {}  # the key mode, as status shows it
        extra = {"cabling": cabling.as_json()} if cabling is not None else {}
        print_json({"ok": not degraded, "hostname": hostname, **key, "degraded": degraded, **extra})
    else:
        lines = [*(f"{hostname}: {d}" for d in drained), *parts_lines(hostname, parts)]
        lines += verify_lines(hostname, problems, st)
        lines += cabling_lines(hostname, cabling)
        if alarms:
            lines += [f"{hostname}: controllers degraded ({len(alarms)}):", *(f"  {a}" for a in alarms)]
        elif ctl is not None:
            lines.append(f"{hostname}: controllers healthy: {len(ctl.connected)}/{len(ctl.configured)} connected")
        lines += verify_line(hostname, ov, ov_problems) if ov is not None else [f"  {p}" for p in ov_problems]
        click.echo("\n".join(lines))
    failed = drained or parts or problems or miscabled or alarms or ov_problems
    sys.exit(EXIT_RUNTIME if failed else EXIT_OK)


def verify_fabric(config: Path, fabric_file: Path | None, as_json: bool, only: str | None) -> None:
    """`verify --fabric`: the area's LSDB against the plan; exits."""
    from tor_agent.fabric.planned import VIEW_FILE, read_view
    from tor_agent.health.fabric_live import FabricFinding, FabricReport, compare

    if only is not None:
        click.echo("tor-agent: --only does not apply with --fabric (it checks the whole fabric's LSDB)", err=True)
        sys.exit(EXIT_INVALID)
    intent = load(config)
    view = read_view(fabric_file or config.parent / VIEW_FILE)
    try:
        report = compare(view, read_router_links())
    except RuntimeFailure as e:
        failed = FabricFinding("read", "tor-agent", f"cannot read the LSDB: {e}")
        report = FabricReport(view.fabric, (failed,), (), 0, len(view.links), 0, 0)
    hostname = intent.node.hostname
    if as_json:
        print_json({**report.as_json(), "hostname": hostname, "plan": view.source})
    else:
        click.echo("\n".join(report.lines(hostname)))
    sys.exit(EXIT_OK if report.ok else EXIT_RUNTIME)
