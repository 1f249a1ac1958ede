"""`tor-agent status` and `tor-agent verify`: read-only underlay health (OSPF, BFD, ECMP in OSPF/zebra/kernel)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import load
from tor_agent.config.schema import Intent
from tor_agent.errors import EXIT_OK, EXIT_RUNTIME, RuntimeFailure
from tor_agent.frr.vtysh import Vtysh
from tor_agent.health import Degraded, UnderlayState, UnderlayStatus, collect, judge
from tor_agent.health import status as underlay_status
from tor_agent.health.report import status_lines, verify_lines
from tor_agent.health.underlay import bfd_enabled
from tor_agent.net import kernel_routes

SHOW_TIMEOUT_S = 10.0  # a show command answers in ~20 ms; a stuck daemon must not hang a periodic verify


def read_underlay(intent: Intent) -> UnderlayState:
    """FRR's and the kernel's view of this switch's underlay (this network namespace, FRR's default sockets)."""
    return collect(Vtysh(timeout_s=SHOW_TIMEOUT_S), kernel_routes, bfd=bfd_enabled(intent))


@click.command()
@CONFIG
@JSON
@reports_errors
def status(config: Path, as_json: bool) -> None:
    """Show the underlay of the intent file CONFIG: the OSPF neighbour and BFD session of every uplink, all BFD
    sessions, and the route to every known VTEP (on a spine: every other loopback) with its nexthops as OSPF,
    zebra and the kernel FIB see them, plus what `verify` would report. Changes nothing. Exit 0 whenever
    the state could be read.

    \b
    Example:
      tor-agent status /etc/tor-agent/agent.yaml
      tor-agent status --json /etc/tor-agent/agent.yaml | jq '.vteps[] | {address, width}'
    """
    intent = load(config)
    st = underlay_status(read_underlay(intent), intent)
    problems = judge(st)
    if as_json:
        print_json({**st.as_json(), "ok": not problems, "degraded": [p.as_json() for p in problems]})
    else:
        click.echo("\n".join(status_lines(st, problems)))


@click.command()
@CONFIG
@JSON
@reports_errors
def verify(config: Path, as_json: bool) -> None:
    """Check the underlay of the intent file CONFIG: every uplink has a Full OSPF neighbour (and an up BFD
    session when BFD is on), and every known VTEP has the same route in OSPF, zebra's FIB and the kernel FIB,
    over as many ECMP nexthops as there are healthy uplinks. Exit 0 healthy, 1 degraded (each item listed),
    2 invalid CONFIG. Cheap enough to run every few seconds (four vtysh calls and one netlink dump).

    \b
    Example:
      tor-agent verify /etc/tor-agent/agent.yaml
      watch -n 2 tor-agent verify --json /etc/tor-agent/agent.yaml
    """
    intent = load(config)
    st: UnderlayStatus | None = None
    try:
        st = underlay_status(read_underlay(intent), intent)
        problems = judge(st)
    except RuntimeFailure as e:
        problems = [Degraded("read", "tor-agent", f"cannot read the underlay: {e}")]
    if as_json:
        print_json({"ok": not problems, "hostname": intent.node.hostname, "degraded": [p.as_json() for p in problems]})
    else:
        click.echo("\n".join(verify_lines(intent.node.hostname, problems, st)))
    sys.exit(EXIT_RUNTIME if problems else EXIT_OK)
