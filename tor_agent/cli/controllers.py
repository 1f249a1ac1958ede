"""`tor-agent controllers`: the overlay bridge's OpenFlow controller connections, as OVSDB and the kernel see them."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.health.controllers import DEFAULT_GRACE_S

if TYPE_CHECKING:
    from tor_agent.config.schema import Intent
    from tor_agent.health.controllers import ControllersStatus, ControllerStatus
    from tor_agent.ovs.connection import OvsConnection
    from tor_agent.reconcile.controllers import ControllerKeeper

DEFAULT_REMOTE = "unix:/run/openvswitch/db.sock"  # as tor_agent.ovs.connection (imported only when used)
OVSDB_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 0.5

DB = click.option(
    "--db",
    "remote",
    default=DEFAULT_REMOTE,
    show_default=True,
    metavar="REMOTE",
    help="The OVSDB server to read (as ovs-vsctl's --db).",
)
GRACE = click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    show_default=f"controllers.alarm_grace_s in CONFIG, else {DEFAULT_GRACE_S:g}",
    metavar="SECONDS",
    help="How long a controller may be down before it is an alarm (with --keep also: none master or equal).",
)


def read_controllers(
    intent: Intent, remote: str = DEFAULT_REMOTE, probe: bool = False, conn: OvsConnection | None = None
) -> ControllersStatus:
    """The controllers of the intent's overlay bridge: OVSDB's Controller rows and SSL row (through `conn`, else
    a connection of its own to `remote`), ovs-vswitchd's own TCP connections (in this namespace's TCP table: run
    it in the switch's) and, with `probe`, a TCP connect to each controller the switch is not connected to."""
    from tor_agent.health.controllers import controllers_status, endpoint
    from tor_agent.net.sockets import DaemonSockets

    if conn is None:
        from tor_agent.ovs.connection import OvsConnection  # the ovs library: only for commands that use it

        with OvsConnection.open(remote, OVSDB_TIMEOUT_S) as own:
            return read_controllers(intent, remote, probe, own)
    rows = conn.controllers()
    ssl = conn.snapshot().ssl
    vswitchd = DaemonSockets()
    try:
        established = vswitchd.endpoints(frozenset(e for r in rows if (e := endpoint(r.canonical)) is not None))
        why = vswitchd.reason
    except OSError as e:
        established, why = None, f"cannot read the TCP table: {e}"
    st = controllers_status(intent, rows, ssl, established, why)
    if not probe:
        return st
    return replace(st, controllers=tuple(_probed(c) if not c.connected else c for c in st.controllers))


def _probed(c: ControllerStatus) -> ControllerStatus:
    from tor_agent.health.controllers import endpoint
    from tor_agent.net.tcp_probe import tcp_connect

    where = endpoint(c.target)
    if where is None:
        return c
    try:
        tcp_connect(where, PROBE_TIMEOUT_S)
    except OSError:
        return replace(c, reachable=False)
    return replace(c, reachable=True)


def keep(intent: Intent, remote: str, grace: float | None, status_file: Path | None) -> None:
    """Run the controller keeper on its own OVSDB connection until SIGTERM or SIGINT (see --keep); `grace`
    overrides the intent's alarm grace time."""
    from tor_agent.ovs.connection import OvsConnection
    from tor_agent.reconcile.controllers import ControllerKeeper, KeepaliveSettings

    settings = KeepaliveSettings.from_intent(intent, grace_s=grace)
    if settings is None:
        raise click.UsageError("the intent has no overlay controllers to keep")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    stop_r, stop_w = os.pipe()
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        os.write(stop_w, b"s")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    written: str | None = None
    with OvsConnection.open(remote, OVSDB_TIMEOUT_S) as conn:
        keeper = ControllerKeeper(conn, settings)
        try:
            while not stopping:
                conn.run()
                keeper.tick()
                if status_file is not None:
                    written = _write_status(status_file, keeper, written)
                conn.wait(max(0.0, keeper.next_wakeup() - time.monotonic()), [*keeper.fds(), stop_r])
        finally:
            keeper.close()
            os.close(stop_r)
            os.close(stop_w)


def _write_status(path: Path, keeper: ControllerKeeper, written: str | None) -> str:
    """The keeper's view as JSON in `path` (atomically), when it changed."""
    st = keeper.status()
    doc = {**st.as_json(), "alarms": [a.as_json() for a in keeper.alarms()]}
    for c in doc["controllers"]:
        c.pop("down_for_s")  # changes every tick; the rest only on events
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if text != written:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return text


@click.command()
@CONFIG
@JSON
@DB
@GRACE
@click.option("--probe/--no-probe", default=True, show_default=True, help="TCP-probe controllers not connected.")
@click.option(
    "--keep",
    "keep_running",
    is_flag=True,
    help="Stay running: keep the switch connected (probe the controllers it lost every "
    "controllers.probe_interval_ms, reconnect it at once when one answers), log losses, reconnections and "
    "alarms, until SIGTERM. For switches whose `tor-agent run` does not do it itself.",
)
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --keep: write the keeper's view (connections, flaps, forced reconnects, alarms) here as JSON.",
)
@reports_errors
def controllers(
    config: Path,
    as_json: bool,
    remote: str,
    grace: float | None,
    probe: bool,
    keep_running: bool,
    status_file: Path | None,
) -> None:
    """Show the OpenFlow controllers of the intent file CONFIG's overlay bridge: for each target whether the
    switch is connected, its role, OVS's connection state and last error, how long it has been up or down,
    and whether a TCP probe reaches the ones that are down; then the alarms (a controller down for the grace
    time, every controller down, none master or equal; the grace time is the intent's
    controllers.alarm_grace_s unless --grace is given). Changes nothing (without --keep). Exit 0 whenever
    the state could be read.

    Connected means: ovs-vswitchd's own TCP connection to the controller is established (seen at once;
    OVSDB lags up to 5 s), and for ssl: targets OVSDB's is_connected agrees too (a TLS handshake may still
    be refused). A connection of any other process (nc, openssl s_client) never counts. When ovs-vswitchd's
    sockets cannot be told apart (its /proc/PID/fd unreadable and its cgroup shared), OVSDB alone decides
    and the output says why.

    \b
    Example:
      tor-agent controllers /etc/tor-agent/agent.yaml
      tor-agent controllers --json /etc/tor-agent/agent.yaml | jq '.controllers[] | {target, connected, role}'
      tor-agent controllers --keep --status-file /run/tor-agent/controllers.json /etc/tor-agent/agent.yaml
    """
    from tor_agent.config import load
    from tor_agent.health.controllers import alarm_grace_s, judge, status_lines

    intent = load(config)
    if keep_running:
        keep(intent, remote, grace, status_file)
        return
    st = read_controllers(intent, remote, probe)
    alarms = judge(st, alarm_grace_s(intent, grace))
    if as_json:
        print_json({**st.as_json(), "ok": not alarms, "alarms": [a.as_json() for a in alarms]})
    else:
        click.echo("\n".join(status_lines(st, alarms)))
