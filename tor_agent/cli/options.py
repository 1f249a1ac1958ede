"""The options the commands that touch the agent's records share: where the records are, and the running
agent's control socket. Apart from `writing`, so that a read-only command (verify, status) need not import the
control client."""

from __future__ import annotations

from pathlib import Path

import click

from tor_agent.daemon.paths import CONTROL_SOCKET
from tor_agent.frr.ledger import DEFAULT_STATE_DIR

STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="TOR_AGENT_STATE_DIR",
    help="tor-agent's records: FRR interfaces it configured, the history, drain state (env TOR_AGENT_STATE_DIR).",
)
CONTROL = click.option(
    "--control-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=CONTROL_SOCKET,
    show_default=True,
    help="The running agent's control socket: while an agent runs, it makes the change.",
)
