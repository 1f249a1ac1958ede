"""The `tor-agent` command line, for the switch shell.

Exit codes: 0 ok, 1 runtime failure (a daemon or the switch did not do what was asked),
2 invalid input (intent file or arguments). Errors never print a traceback.

Each subcommand's module is imported only when that subcommand runs (or `--help` lists them all): a switch
CPU pays for pyroute2, the OVS library or Jinja2 only in the commands that use them, never for `--version`.
The command modules import those libraries inside their functions for the same reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from tor_agent import __version__

# name -> "module:attribute" of the command
COMMANDS: Mapping[str, str] = {
    "check": "tor_agent.cli.intent:check",
    "render": "tor_agent.cli.intent:render",
    "apply": "tor_agent.cli.apply:apply",
    "diff": "tor_agent.cli.apply:diff",
    "status": "tor_agent.cli.health:status",
    "verify": "tor_agent.cli.health:verify",
    "controllers": "tor_agent.cli.controllers:controllers",
    "run": "tor_agent.cli.run:run",
    "schema": "tor_agent.cli.intent:schema",
    "drain": "tor_agent.cli.change:drain",
    "undrain": "tor_agent.cli.change:undrain",
    "confirm": "tor_agent.cli.change:confirm",
    "rollback": "tor_agent.cli.change:rollback",
    "history": "tor_agent.cli.change:history",
    "fabric": "tor_agent.cli.fabric:fabric",
}


class LazyGroup(click.Group):
    """A group whose commands (`name -> "module:attribute"`) are imported on first use; commands added with
    `add_command` work as in any group."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 ok, 1 runtime failure, 2 invalid input (intent file or arguments).",
)
@click.version_option(__version__, "--version", prog_name="tor-agent", message="%(prog)s %(version)s")
def main() -> None:
    """tor-agent: renders and applies a ToR switch's OSPF/ECMP underlay (FRR) and keeps its
    Open vSwitch GRE overlay and OpenFlow controller connections healthy, from one intent file.

    \b
    Example:
      tor-agent check /etc/tor-agent/agent.yaml
    """
