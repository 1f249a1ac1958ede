"""`tor-agent apply` and `tor-agent diff`: the whole switch (OVS, links, FRR, tunnels, OVS routes) vs the intent."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.config import load
from tor_agent.errors import EXIT_RUNTIME
from tor_agent.frr.config_tree import redact
from tor_agent.frr.delta import Delta
from tor_agent.frr.ledger import DEFAULT_STATE_DIR
from tor_agent.reconcile.engine import Engine, EngineDrivers, EngineReport, StageReport

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
    """Make the switch match the intent file CONFIG, in one pass over every part in order: OVS bridges and
    ports (leaves), kernel links (addresses, MTUs, nftables, sysctls), FRR, tunnel peers discovered from
    OSPF's routes, GRE tunnels, and OVS's tunnel routes (netdev leaves). FRR is changed only where it
    differs from its live running configuration, checked first with FRR's parser, in one batch, verified
    and saved to /etc/frr/frr.conf; on a failure FRR is rolled back. Only what tor-agent owns is changed
    (OVSDB rows with its marker, addresses it added, docs/frr-ownership.md). A failed part is reported
    and the others still run; exit 1 then. An invalid CONFIG changes nothing (exit 2). A second apply
    with the same CONFIG changes nothing. Waits while the daemon (`tor-agent run`) is in a pass.

    \b
    Example:
      tor-agent apply /etc/tor-agent/agent.yaml
      tor-agent apply --json /etc/tor-agent/agent.yaml | jq .stages
    """
    intent = load(config)
    report = Engine(EngineDrivers.default(state_dir)).apply(intent)
    if as_json:
        print_json(_apply_json(report))
    else:
        _echo_apply(report)
    if report.problems:
        sys.exit(EXIT_RUNTIME)


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
    """Show what `tor-agent apply` would change now: FRR (`-` removed, `+` added, computed against FRR's
    live running configuration; OSPF keys shown as <redacted>), then links, OVS (bridges, ports, tunnels
    to the peers OSPF shows now) and OVS's tunnel routes. Changes nothing. On a leaf whose OVS bridges do
    not exist yet, the links that need them are reported as missing.

    Exit codes: 0 the diff was computed (with --exit-code: and nothing to change), 1 a part could not be
    read, 2 invalid CONFIG, 3 changes to apply (only with --exit-code).

    \b
    Example:
      tor-agent diff /etc/tor-agent/agent.yaml
      tor-agent diff --exit-code /etc/tor-agent/agent.yaml >/dev/null; [ $? -eq 3 ] && echo "the switch drifted"
    """
    report = Engine(EngineDrivers.default(state_dir)).diff(load(config))
    delta = report.frr_delta
    if as_json:
        commands = redact(delta.commands()) if delta is not None else ""
        print_json({"in_sync": not report.changed, **_delta_json(delta), "commands": commands, **_stages_json(report)})
    else:
        if delta is not None:
            _echo_notes(delta.notes)
            click.echo(delta.diff_text() if delta else "FRR: nothing to change", nl=not delta)
        _echo_stages(report, skip=("frr",))
    if report.problems:
        sys.exit(EXIT_RUNTIME)
    if exit_code and report.changed:
        sys.exit(EXIT_PENDING)


def _apply_json(report: EngineReport) -> dict[str, object]:
    frr = report.frr
    said = [f"FRR said about {m}" for m in frr.messages] if frr is not None else []
    delta = frr.delta if frr is not None else None
    return {"changed": report.changed, "seconds": round(report.seconds, 3), **_delta_json(delta), "frr_said": said,
            **_stages_json(report)}  # fmt: skip


def _stages_json(report: EngineReport) -> dict[str, object]:
    data = report.as_json()
    return {key: data[key] for key in ("hostname", "problems", "stages", "peers", "dropped_peers")}


def _delta_json(delta: Delta | None) -> dict[str, object]:
    if delta is None:
        return {"changes": [], "notes": []}
    return {"changes": [c.as_dict() for c in delta.changes], "notes": list(delta.notes)}


def _echo_apply(report: EngineReport) -> None:
    frr, stage = report.frr, report.stage("frr")
    if frr is not None and stage is not None:
        _echo_notes(stage.notes)
        if frr.changed:
            click.echo(frr.delta.diff_text(), nl=False)
            click.echo(f"FRR: {len(frr.delta.changes)} changes applied, verified and saved in {stage.seconds:.2f}s")
        else:
            click.echo("FRR: nothing to change")
    _echo_stages(report, skip=("frr",))
    click.echo(f"{report.hostname}: {report.summary()}", err=True)


def _echo_stages(report: EngineReport, skip: Sequence[str] = ()) -> None:
    for stage in report.stages:
        if stage.stage in skip:
            _echo_problems(stage)
            continue
        _echo_notes(stage.notes, stage)
        for change in stage.changes:
            click.echo(f"{stage.label}: {change}")
        _echo_problems(stage)


def _echo_problems(stage: StageReport) -> None:
    for problem in stage.problems:
        text = problem if problem.startswith(stage.label) else f"{stage.label}: {problem}"
        click.echo(f"tor-agent: {text}", err=True)


def _echo_notes(notes: Sequence[str], stage: StageReport | None = None) -> None:
    prefix = f"{stage.label}: " if stage is not None else ""
    for note in notes:
        click.echo(f"tor-agent: note: {prefix}{note}", err=True)
