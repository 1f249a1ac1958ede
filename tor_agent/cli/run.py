"""`tor-agent run`: the long-running agent (tor_agent.daemon), as systemd starts it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from tor_agent.cli.common import CONFIG_ENV, DEFAULT_CONFIG
from tor_agent.cli.options import CONTROL, STATE_DIR
from tor_agent.daemon.paths import DEFAULT_TEXTFILE, STATUS_FILE


def setup_logging(verbose: bool) -> None:
    """Log lines to stdout; journald stamps them itself, anywhere else they carry the time."""
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"{stamp}%(levelname)s %(name)s: %(message)s",
        force=True,
    )


@click.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar=CONFIG_ENV,
    help=f"The intent file (env {CONFIG_ENV}).",
)
@click.option(
    "--full-every",
    type=click.FloatRange(min=1.0),
    default=30.0,
    show_default=True,
    help="Seconds between full passes (the fallback behind the OVSDB and netlink events).",
)
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=STATUS_FILE,
    show_default=True,
    help="Where the agent writes its state after every pass (JSON; `ready` once the first pass is done).",
)
@STATE_DIR
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write Prometheus metrics to this node-exporter textfile after every full pass "
    f"[default: {DEFAULT_TEXTFILE} if its directory exists].",
)
@CONTROL
@click.option(
    "--history-size",
    type=click.IntRange(1, 10000),
    default=20,
    show_default=True,
    help="How many applied intents `tor-agent history` keeps.",
)
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages too.")
def run(
    config: Path,
    full_every: float,
    status_file: Path,
    state_dir: Path,
    metrics_file: Path | None,
    control_socket: Path,
    history_size: int,
    verbose: bool,
) -> None:
    """Run the agent: keep the switch equal to the intent file until stopped. A full pass at start
    (retried until FRR and Open vSwitch answer), then passes on events: OVSDB changes (a tunnel port
    deleted by hand comes back within half a second), kernel route changes (OVS's tunnel routes follow
    the kernel's within milliseconds, tunnel peers within a second; a peer whose route went keeps its
    tunnel for the intent's overlay.tunnels.hold_down_s), link changes, and a full pass every
    --full-every seconds (FRR is read in full only when one of its daemons' configurations moved).
    The status file also holds the CPU time the passes took.
    Logs go to standard output. Tells systemd READY=1 after the first pass, WATCHDOG=1 at least every
    15 s, and a one-line STATUS. SIGHUP re-reads the intent file: an invalid one is refused, reported,
    and the last good intent keeps running. SIGTERM stops the agent and leaves the switch as it is.
    With node-exporter's textfile directory present, it also writes Prometheus metrics there
    (passes, drift repairs, tunnels, controllers connected, OSPF neighbours Full, ECMP width, last result).
    Exit codes: 0 stopped by a signal, 1 runtime failure, 2 invalid intent file at start.

    \b
    Example:
      tor-agent run --config /etc/tor-agent/agent.yaml
      systemctl reload tor-agent          # SIGHUP: re-read agent.yaml
    """
    from tor_agent.daemon.service import Daemon, DaemonOptions

    setup_logging(verbose)
    if metrics_file is None and DEFAULT_TEXTFILE.parent.is_dir():
        metrics_file = DEFAULT_TEXTFILE
    options = DaemonOptions(
        config=config,
        full_every=full_every,
        status_file=status_file,
        state_dir=state_dir,
        metrics_file=metrics_file,
        control_socket=control_socket,
        history_size=history_size,
    )
    sys.exit(Daemon(options).run())
