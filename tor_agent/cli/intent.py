"""`tor-agent check` and `tor-agent render`: read-only commands on the intent file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import load
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, ConfigError
from tor_agent.fileio import replace_file
from tor_agent.render import render_frr


@click.command()
@CONFIG
@JSON
@reports_errors
def check(config: Path, as_json: bool) -> None:
    """Validate the intent file CONFIG and report every problem at once. Changes nothing.

    \b
    Example:
      tor-agent check /etc/tor-agent/agent.yaml
      tor-agent check --json leaf1.yaml | jq .errors
    """
    try:
        intent = load(config)
    except ConfigError as e:
        if not as_json:
            raise
        print_json({"ok": False, "file": str(config), "errors": [vars(p) for p in e.problems]})
        sys.exit(EXIT_INVALID)
    if as_json:
        print_json({"ok": True, "file": str(config), **_summary(intent)})
    else:
        s = _summary(intent)
        click.echo(f"{config}: ok ({s['role']} {s['hostname']}, {s['uplinks']} uplinks)")


@click.command()
@CONFIG
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the FRR configuration to this file (atomically) instead of standard output.",
)
@reports_errors
def render(config: Path, output: Path | None) -> None:
    """Render the FRR configuration (frr.conf) for the intent file CONFIG. Changes nothing in FRR.

    \b
    Example:
      tor-agent render /etc/tor-agent/agent.yaml
      tor-agent render /etc/tor-agent/agent.yaml --output /etc/frr/frr.conf
    """
    text = render_frr(load(config))
    if output is None:
        click.echo(text, nl=False)
    else:
        replace_file(output, text, keep_owner=True)  # frr.conf keeps frr:frr and its mode


def _summary(intent: Intent) -> dict[str, Any]:
    return {
        "hostname": intent.node.hostname,
        "role": intent.node.role,
        "router_id": str(intent.node.router_id),
        "uplinks": len(intent.underlay.uplinks),
        "tunnel_peers": [str(p) for p in intent.overlay.tunnels.peers] if intent.overlay else [],
        "controllers": [str(t) for t in intent.controllers.targets] if intent.controllers else [],
    }
