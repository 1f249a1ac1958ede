"""Pieces every `tor-agent` subcommand shares: arguments, error reporting, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from tor_agent.errors import EXIT_RUNTIME, ConfigError, TorAgentError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = Path("/etc/tor-agent/agent.yaml")
CONFIG_ENV = "TOR_AGENT_CONFIG"
# Optional, as vtysh and ovs-vsctl need no path on a switch: the switch's own intent file by default.
CONFIG = click.argument(
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="[CONFIG]",
    required=False,
    default=DEFAULT_CONFIG,
    envvar=CONFIG_ENV,
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")


def reports_errors(func: F) -> F:
    """Turn tor-agent's typed errors into a message on stderr and the documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TorAgentError as e:
            click.echo(str(e) if isinstance(e, ConfigError) else f"tor-agent: {e}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            click.echo(f"tor-agent: {e}", err=True)
            sys.exit(EXIT_RUNTIME)

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Print `data` as stable, indented JSON."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))
