"""`tor-agent check`, `render` and `schema`: read-only commands on the intent file."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import IntentError, load
from tor_agent.config.describe import schema_json
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, ConfigError, Problem
from tor_agent.fileio import replace_file
from tor_agent.render import render_frr


@click.command()
@CONFIG
@JSON
@reports_errors
def check(config: Path, as_json: bool) -> None:
    """Validate the intent file CONFIG and the files it names, and report every problem at once (exit 2),
    one line each. Warnings (e.g. a private key others can read) go to standard error. Changes nothing.

    \b
    Example:
      tor-agent check /etc/tor-agent/agent.yaml
      tor-agent check --json leaf1.yaml | jq .errors
    """
    try:
        intent = load(config)
    except ConfigError as e:
        warnings = e.warnings if isinstance(e, IntentError) else []
        if not as_json:
            _print_warnings(str(config), warnings)
            raise
        print_json({"ok": False, "file": str(config), "errors": _dicts(e.problems), "warnings": _dicts(warnings)})
        sys.exit(EXIT_INVALID)
    if as_json:
        print_json({"ok": True, "file": str(config), **_summary(intent), "warnings": _dicts(intent.warnings)})
    else:
        _print_warnings(str(config), intent.warnings)
        s = _summary(intent)
        click.echo(f"{config}: ok ({s['role']} {s['hostname']}, {s['uplinks']} uplinks)")


@click.command()
@CONFIG
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the FRR configuration to this file (atomically, replacing a symlink there rather than writing "
    "through it) instead of standard output. A configuration holding the OSPF key is written mode 0600.",
)
@reports_errors
def render(config: Path, output: Path | None) -> None:
    """Render the FRR configuration (frr.conf) for the intent file CONFIG. Changes nothing in FRR.

    \b
    Example:
      tor-agent render /etc/tor-agent/agent.yaml
      tor-agent render /etc/tor-agent/agent.yaml --output /etc/frr/frr.conf
    """
    intent = load(config)
    text = render_frr(intent)
    if output is None:
        click.echo(text, nl=False)
    elif intent.underlay.ospf.authentication is not None:
        replace_file(output, text, mode=0o600)  # the key is the writer's alone, whatever the path held before
    else:
        replace_file(output, text, keep_owner=_is_regular_file(output))  # frr.conf keeps frr:frr and its mode


@click.command()
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of the intent file, generated from the same declarations the
    loader reads it with. Editors use it to complete and check the file as it is written; `check` also
    checks the rules that span fields. Changes nothing.

    \b
    Example:
      tor-agent schema > /etc/tor-agent/intent.schema.json
      # in agent.yaml, for editors with the YAML language server:
      # yaml-language-server: $schema=/etc/tor-agent/intent.schema.json
    """
    click.echo(schema_json(), nl=False)


def _is_regular_file(path: Path) -> bool:
    """True for a regular file at `path` itself: never a symlink's target, whose owner and mode are not ours."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _print_warnings(source: str, warnings: Iterable[Problem]) -> None:
    for w in warnings:
        where = f"{source}: {w.path}" if w.path else source
        click.echo(f"{where}: warning: {w.message}", err=True)


def _dicts(problems: Iterable[Problem]) -> list[dict[str, str]]:
    return [{"path": p.path, "message": p.message} for p in problems]


def _summary(intent: Intent) -> dict[str, Any]:
    return {
        "hostname": intent.node.hostname,
        "role": intent.node.role,
        "router_id": str(intent.node.router_id),
        "uplinks": len(intent.underlay.uplinks),
        "tunnel_peers": [str(p) for p in intent.overlay.tunnels.peers] if intent.overlay else [],
        "controllers": [str(t) for t in intent.controllers.targets] if intent.controllers else [],
    }
