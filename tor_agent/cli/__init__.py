"""The `tor-agent` command line, for the switch shell.

Exit codes: 0 ok, 1 runtime failure (a daemon or the switch did not do what was asked),
2 invalid input (intent file or arguments). Errors never print a traceback.
"""

from __future__ import annotations

import click

from tor_agent import __version__
from tor_agent.cli import apply, change, controllers, fabric, health, intent, run


@click.group(
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


for command in (
    intent.check,
    intent.render,
    apply.apply,
    apply.diff,
    health.status,
    health.verify,
    change.drain,
    change.undrain,
    change.confirm,
    change.rollback,
    change.history,
    run.run,
    intent.schema,
):
    main.add_command(command)
main.add_command(controllers.controllers)
main.add_command(fabric.fabric)
