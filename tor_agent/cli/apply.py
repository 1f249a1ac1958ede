"""`tor-agent apply` and `tor-agent diff`: the whole switch (OVS, links, FRR, tunnels, OVS routes) vs the intent.

While `tor-agent run` runs, it is the switch's only writer: `apply` hands it the intent file over its control
socket and prints the pass the daemon ran. Without a daemon, `apply` prepares and applies the intent itself,
under the engine lock. Either way a pass report is printed from the same JSON document.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.daemon.control import NoDaemon, request
from tor_agent.daemon.paths import CONTROL_SOCKET
from tor_agent.errors import EXIT_INVALID, EXIT_RUNTIME, RuntimeFailure, TorAgentError
from tor_agent.frr.ledger import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from tor_agent.config.schema import Intent

EXIT_PENDING = 3  # `diff --exit-code`: changes pending (1 and 2 keep their meaning: failure, invalid input)
APPLY_TIMEOUT_S = 300.0  # the daemon's pass: FRR, links, OVS; a slow switch CPU takes a while

STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="TOR_AGENT_STATE_DIR",
    help="Where tor-agent records which interfaces' OSPF configuration it made (env TOR_AGENT_STATE_DIR).",
)
CONTROL = click.option(
    "--control-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=CONTROL_SOCKET,
    show_default=True,
    help="The running agent's control socket: while an agent runs, it applies the change.",
)


class DaemonRefused(TorAgentError):
    """The running daemon refused the intent file (invalid, or a part refused it): nothing was changed."""

    exit_code = EXIT_INVALID


class DaemonFailed(RuntimeFailure):
    """The running daemon could not run the pass."""


@click.command()
@CONFIG
@JSON
@STATE_DIR
@CONTROL
@reports_errors
def apply(config: Path, as_json: bool, state_dir: Path, control_socket: Path) -> None:
    """Make the switch match the intent file CONFIG, in one pass over every part in order: OVS bridges and
    ports (leaves), kernel links (addresses, MTUs, nftables, sysctls), FRR, tunnel peers discovered from
    OSPF's routes, GRE tunnels, and OVS's tunnel routes (netdev leaves). First every part checks the intent
    (FRR's own parser on the rendering included): an intent any part refuses changes nothing (exit 2).
    FRR is changed only where it differs from its live running configuration, in one batch, verified and
    saved to /etc/frr/frr.conf; on a failure FRR is rolled back. Only what tor-agent owns is changed (OVSDB
    rows with its marker, addresses it added, docs/frr-ownership.md). A part the intent names that is not
    there (an interface not cabled yet) is skipped and named, everything else is applied; a failed part is
    reported and the others still run; exit 1 then. A second apply with the same CONFIG changes nothing.

    While the agent runs (`tor-agent run`, the service), it is the only writer: apply hands it CONFIG, it
    runs CONFIG from then on (until `systemctl reload` or a restart re-reads its own file) and apply prints
    the pass it ran. CONFIG defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent apply
      tor-agent apply --json /etc/tor-agent/agent.yaml | jq .stages
    """
    from tor_agent.config import load

    intent = load(config)  # checked here first: an invalid file is reported with the same words either way
    doc = _through_daemon(config, control_socket)
    if doc is None:
        doc = _directly(intent, state_dir)
    if as_json:
        print_json(_apply_json(doc))
    else:
        _echo_apply(doc)
    if doc["problems"]:
        sys.exit(EXIT_RUNTIME)


def _through_daemon(config: Path, control_socket: Path) -> dict[str, Any] | None:
    """The daemon's pass report for `config` (already checked), or None when no daemon runs."""
    try:
        answer = request({"op": "apply", "config": str(config.resolve())}, control_socket, APPLY_TIMEOUT_S)
    except NoDaemon:
        return None
    if not answer.get("ok"):
        message = str(answer.get("error") or "the running tor-agent refused the request")
        if answer.get("exit") == EXIT_INVALID:
            raise DaemonRefused(message)
        raise DaemonFailed(f"the running tor-agent: {message}")
    report = answer.get("report")
    if not isinstance(report, dict):
        raise DaemonFailed("the running tor-agent's answer carries no pass report")
    click.echo(f"tor-agent: applied by the running agent (pid {answer.get('pid')})", err=True)
    return report


def _directly(intent: Intent, state_dir: Path) -> dict[str, Any]:
    from tor_agent.reconcile.drivers import switch_drivers
    from tor_agent.reconcile.engine import Engine

    engine = Engine(switch_drivers(state_dir))
    return engine.apply(engine.prepare(intent)).as_json()


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
    not exist yet, the links that need them are reported as missing. CONFIG defaults to
    /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    Exit codes: 0 the diff was computed (with --exit-code: and nothing to change), 1 a part could not be
    read, 2 invalid CONFIG, 3 changes to apply (only with --exit-code).

    \b
    Example:
      tor-agent diff
      tor-agent diff --exit-code /etc/tor-agent/agent.yaml >/dev/null; [ $? -eq 3 ] && echo "the switch drifted"
    """
    from tor_agent.config import load
    from tor_agent.reconcile.drivers import switch_drivers
    from tor_agent.reconcile.engine import Engine

    engine = Engine(switch_drivers(state_dir))
    doc = engine.diff(engine.prepare(load(config))).as_json()
    frr = _stage(doc, "frr")
    if as_json:
        data = frr["data"] if frr else {}
        commands = data.get("commands", "")
        print_json({"in_sync": not doc["changed"], **_frr_json(frr), "commands": commands, **_stages_json(doc)})
    else:
        if frr is not None:
            _echo_notes(frr["notes"])
            click.echo(frr["detail"] or "FRR: nothing to change", nl=not frr["detail"])
        _echo_stages(doc, skip=("frr",))
    if doc["problems"]:
        sys.exit(EXIT_RUNTIME)
    if exit_code and doc["changed"]:
        sys.exit(EXIT_PENDING)


def _stage(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in doc["stages"] if s["stage"] == name), None)


def _apply_json(doc: dict[str, Any]) -> dict[str, Any]:
    frr = _stage(doc, "frr")
    said = frr["data"].get("said", []) if frr else []
    return {"changed": doc["changed"], "seconds": doc["seconds"], **_frr_json(frr), "frr_said": said,
            **_stages_json(doc)}  # fmt: skip


def _stages_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc[key] for key in ("hostname", "problems", "missing", "stages", "peers", "dropped_peers")}


def _frr_json(frr: dict[str, Any] | None) -> dict[str, Any]:
    if frr is None:
        return {"changes": [], "notes": []}
    notes = [n for n in frr["notes"] if not n.startswith("FRR said about ")]
    return {"changes": frr["data"].get("changes", []), "notes": notes}


def _echo_apply(doc: dict[str, Any]) -> None:
    frr = _stage(doc, "frr")
    if frr is not None and not frr["skipped"]:
        _echo_notes(frr["notes"])
        if frr["changes"]:
            click.echo(frr["detail"], nl=False)
            click.echo(f"FRR: {len(frr['changes'])} changes applied, verified and saved in {frr['seconds']:.2f}s")
        elif not frr["problems"]:
            click.echo("FRR: nothing to change")
    _echo_stages(doc, skip=("frr",))
    click.echo(f"{doc['hostname']}: {doc['summary']}", err=True)


def _echo_stages(doc: dict[str, Any], skip: Sequence[str] = ()) -> None:
    for stage in doc["stages"]:
        if stage["stage"] in skip:
            _echo_problems(stage)
            continue
        _echo_notes(stage["notes"], stage)
        for change in stage["changes"]:
            click.echo(f"{stage['label']}: {change}")
        _echo_problems(stage)


def _echo_problems(stage: dict[str, Any]) -> None:
    for problem in stage["problems"]:
        label = stage["label"]
        text = problem if problem.startswith(label) else f"{label}: {problem}"
        click.echo(f"tor-agent: {text}", err=True)


def _echo_notes(notes: Sequence[str], stage: dict[str, Any] | None = None) -> None:
    prefix = f"{stage['label']}: " if stage is not None else ""
    for note in notes:
        click.echo(f"tor-agent: note: {prefix}{note}", err=True)
