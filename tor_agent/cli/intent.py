"""`tor-agent check` and `tor-agent render`: read-only commands on the intent file."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import load
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_INVALID, ConfigError
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
        write_atomically(output, text)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half of one.

    An existing file keeps its mode and owner (frr.conf belongs to frr:frr).
    """
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if old is not None:
            os.chmod(tmp, old.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, old.st_uid, old.st_gid)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary(intent: Intent) -> dict[str, Any]:
    return {
        "hostname": intent.node.hostname,
        "role": intent.node.role,
        "router_id": str(intent.node.router_id),
        "uplinks": len(intent.underlay.uplinks),
        "tunnel_peers": [str(p) for p in intent.overlay.tunnels.peers] if intent.overlay else [],
        "controllers": [str(t) for t in intent.controllers.targets] if intent.controllers else [],
    }
