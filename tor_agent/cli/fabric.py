"""`tor-agent fabric render` and `tor-agent fabric check`: every switch's intent from one topology file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from tor_agent.cli.common import JSON, print_json, reports_errors
from tor_agent.errors import EXIT_INVALID

if TYPE_CHECKING:  # the fabric package is imported by the commands themselves, so `tor-agent --help` stays quick
    from tor_agent.fabric import Finding, Settings, Topology

TOPOLOGY = click.argument("topology", type=click.Path(dir_okay=False, path_type=Path), metavar="TOPOLOGY")
SETTINGS = click.option(
    "--settings",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Fabric-wide settings, per-role and per-node intent sections (docs/fabric.md); default: the built-in ones.",
)


@click.group()
def fabric() -> None:
    """Render every switch's intent from a containerlab topology, or check a fabric's intents together.

    A node's role is its label tor-agent.role (spine, leaf, host, controller); nodes without it are left
    out. Both commands change nothing on this switch.

    \b
    Example:
      tor-agent fabric render fabric.clab.yml --settings fabric.settings.yml --output-dir configs
      tor-agent fabric check fabric.clab.yml --intents configs
    """


@fabric.command()
@TOPOLOGY
@SETTINGS
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write DIR/<node>/ for every spine and leaf: what belongs in its /etc/tor-agent/ (agent.yaml, fabric.yaml).",
)
@JSON
@reports_errors
def render(topology: Path, settings: Path | None, output_dir: Path, as_json: bool) -> None:
    """Render the intent of every spine and leaf of TOPOLOGY into DIR/<node>/.

    Router IDs, loopbacks, link addresses, DPIDs, uplinks, access ports, controller targets and MTUs are
    derived from TOPOLOGY; --settings overrides the defaults and merges intent sections per role and per
    node. Every intent passes `tor-agent check` and the fabric passes `tor-agent fabric check`, or
    nothing is written (exit 2). Files in DIR that this rendering does not make are left alone.

    \b
    Example:
      tor-agent fabric render fabric.clab.yml --output-dir configs
      tor-agent fabric render fabric.clab.yml --settings fabric.settings.yml --output-dir configs
      scp -r configs/leaf1/. leaf1:/etc/tor-agent/
    """
    from tor_agent.fabric import render_fabric
    from tor_agent.fabric.files import write_rendering

    topo, conf, findings = _inputs(topology, settings, as_json)
    rendering, found = render_fabric(topo, conf)
    findings += found
    if rendering is None:
        _fail(topology, findings, as_json)
    findings += write_rendering(rendering, output_dir)
    nodes = {name: node.files for name, node in rendering.nodes.items()}
    if as_json:
        print_json({"ok": True, "output_dir": str(output_dir), "nodes": nodes, **_by_severity(findings)})
        return
    _echo_findings(findings)
    spines, leaves = len(topo.role("spine")), len(topo.role("leaf"))
    click.echo(f"{output_dir}: rendered {spines} spines and {leaves} leaves from {topology}{_warned(findings)}")


@fabric.command()
@TOPOLOGY
@SETTINGS
@click.option(
    "--intents",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Check the intents in DIR (DIR/<node>/agent.yaml or DIR/<node>.yaml) instead of rendering them.",
)
@JSON
@reports_errors
def check(topology: Path, settings: Path | None, intents: Path | None, as_json: bool) -> None:
    """Check that the intents of TOPOLOGY's switches agree with each other; list every problem at once.

    Finds what no single intent shows: link ends that do not pair up (addresses, MTU, OSPF area, timers,
    authentication, BFD), overlapping link subnets, duplicate router IDs, loopbacks and DPIDs, spine
    loopbacks inside a VTEP prefix and leaf loopbacks outside it, tenant MTUs that do not fit a path,
    controller targets that are not controller nodes; warns of leaf pairs with fewer than two spines.
    Without --intents it checks what `fabric render` would write. Exit 2 when there is an error.

    \b
    Example:
      tor-agent fabric check fabric.clab.yml --intents /srv/fabric/intents
      tor-agent fabric check fabric.clab.yml --settings fabric.settings.yml
      tor-agent fabric check --json fabric.clab.yml --intents configs | jq .errors
    """
    from tor_agent.fabric import check_fabric, render_fabric
    from tor_agent.fabric.files import read_intents

    if intents is not None and settings is not None:
        raise click.UsageError("--settings renders the intents to check; with --intents, leave it out")
    topo, conf, findings = _inputs(topology, settings, as_json)
    if intents is None:
        rendering, found = render_fabric(topo, conf)
        findings += found
        checked = len(rendering.nodes) if rendering else 0
    else:
        loaded, unread, found = read_intents(topo, intents)
        findings += found + check_fabric(topo, loaded, unread)
        checked = len(loaded)
    if any(f.severity == "error" for f in findings):
        _fail(topology, findings, as_json)
    if as_json:
        print_json({"ok": True, "topology": str(topology), **_by_severity(findings)})
        return
    _echo_findings(findings)
    click.echo(f"{topology}: ok ({checked} switches, {len(topo.fabric_links)} links){_warned(findings)}")


def _inputs(topology: Path, settings: Path | None, as_json: bool) -> tuple[Topology, Settings, list[Finding]]:
    """The topology and settings, or exit 2 with every problem of both."""
    from tor_agent.fabric import read_settings, read_topology

    topo, findings = read_topology(topology)
    conf, found = read_settings(settings)
    findings += found
    if topo is None or conf is None or any(f.severity == "error" for f in findings):
        _fail(topology, findings, as_json)
    return topo, conf, findings


def _fail(topology: Path, findings: list[Finding], as_json: bool) -> NoReturn:
    if as_json:
        print_json({"ok": False, "topology": str(topology), **_by_severity(findings)})
    else:
        _echo_findings(findings)
        click.echo(f"{topology}: {_counts(findings)}", err=True)
    sys.exit(EXIT_INVALID)


def _echo_findings(findings: list[Finding]) -> None:
    for severity in ("error", "warning", "note"):
        for f in findings:
            if f.severity == severity:
                click.echo(f.text(), err=True)


def _counts(findings: list[Finding]) -> str:
    counts = [(sum(1 for f in findings if f.severity == s), s) for s in ("error", "warning")]
    return ", ".join(f"{n} {s}{'' if n == 1 else 's'}" for n, s in counts)


def _warned(findings: list[Finding]) -> str:
    n = sum(1 for f in findings if f.severity == "warning")
    return f" with {n} warning{'' if n == 1 else 's'}" if n else ""


def _by_severity(findings: list[Finding]) -> dict[str, Any]:
    return {f"{s}s": [f.as_json() for f in findings if f.severity == s] for s in ("error", "warning", "note")}
