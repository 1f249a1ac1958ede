"""`tor-agent apply` and `tor-agent diff`: the underlay (FRR) against the intent file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import load
from tor_agent.frr.config_tree import redact
from tor_agent.frr.delta import Delta
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.reconcile.underlay import UnderlayDrivers, apply_underlay, diff_underlay

EXIT_PENDING = 3  # `diff --exit-code`: changes pending (1 and 2 keep their meaning: failure, invalid input)

STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="TOR_AGENT_STATE_DIR",
    help="Where tor-agent records which interfaces' OSPF configuration it made (env TOR_AGENT_STATE_DIR).",
)


@click.command()
@CONFIG
@JSON
@STATE_DIR
@reports_errors
def apply(config: Path, as_json: bool, state_dir: Path) -> None:
    """Make FRR match the intent file CONFIG: change only what differs from FRR's live running
    configuration, checked first with FRR's parser, in one batch; verify; save to /etc/frr/frr.conf.
    On any failure FRR is rolled back to its previous running configuration and the exit code is 1.
    Only lines tor-agent owns are changed (docs/frr-ownership.md); an invalid CONFIG changes nothing
    (exit 2). A second apply with the same CONFIG changes nothing.

    \b
    Example:
      tor-agent apply /etc/tor-agent/agent.yaml
      tor-agent apply --json /etc/tor-agent/agent.yaml | jq .changes
    """
    intent = load(config)
    started = time.monotonic()
    result = apply_underlay(intent, UnderlayDrivers.default(state_dir))
    seconds = round(time.monotonic() - started, 3)
    delta = result.frr.delta
    said = [f"FRR said about {m}" for m in result.frr.messages]
    if as_json:
        print_json({"changed": result.changed, "seconds": seconds, **_delta_json(delta), "frr_said": said})
        return
    _echo_notes(delta)
    for line in said:
        click.echo(f"tor-agent: note: {line}", err=True)
    if not result.changed:
        click.echo("FRR: nothing to change")
        return
    click.echo(delta.diff_text(), nl=False)
    click.echo(f"FRR: {len(delta.changes)} changes applied, verified and saved in {seconds:.2f}s")


@click.command()
@CONFIG
@JSON
@STATE_DIR
@click.option(
    "--exit-code",
    is_flag=True,
    help=f"Exit {EXIT_PENDING} when there are changes to apply, 0 when there are none (like diff(1)).",
)
@reports_errors
def diff(config: Path, as_json: bool, state_dir: Path, exit_code: bool) -> None:
    """Show what `tor-agent apply` would change in FRR now (`-` removed, `+` added), computed against
    FRR's live running configuration. Changes nothing. OSPF keys are shown as <redacted>.

    Exit codes: 0 the diff was computed (with --exit-code: and nothing to change), 1 FRR could not be
    read, 2 invalid CONFIG, 3 changes to apply (only with --exit-code).

    \b
    Example:
      tor-agent diff /etc/tor-agent/agent.yaml
      tor-agent diff --exit-code /etc/tor-agent/agent.yaml >/dev/null; [ $? -eq 3 ] && echo "FRR drifted"
    """
    delta = diff_underlay(load(config), UnderlayDrivers.default(state_dir))
    if as_json:
        print_json({"in_sync": not delta, **_delta_json(delta), "commands": redact(delta.commands())})
    else:
        _echo_notes(delta)
        click.echo(delta.diff_text() if delta else "FRR: nothing to change", nl=not delta)
    if exit_code and delta:
        sys.exit(EXIT_PENDING)


def _delta_json(delta: Delta) -> dict[str, object]:
    return {"changes": [c.as_dict() for c in delta.changes], "notes": list(delta.notes)}


def _echo_notes(delta: Delta) -> None:
    for note in delta.notes:
        click.echo(f"tor-agent: note: {note}", err=True)
