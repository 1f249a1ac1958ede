"""`tor-agent apply` and `tor-agent diff`: the whole switch (OVS, links, FRR, tunnels, OVS routes) vs the intent.

While `tor-agent run` runs, it is the switch's only writer: `apply` hands it the intent file over its control
socket and prints the pass the daemon ran. Without a daemon, `apply` prepares and applies the intent itself,
under the engine lock. Either way a pass report is printed from the same JSON document.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.cli.options import CONTROL, STATE_DIR
from tor_agent.cli.writing import (
    answered_report,
    ask_daemon,
    echo_notes,
    echo_stages,
    finish,
    frr_json,
    local_writer,
    stage,
    stages_json,
)
from tor_agent.errors import EXIT_INVALID, EXIT_RUNTIME, TorAgentError

EXIT_PENDING = 3  # `diff --exit-code`: changes pending (1 and 2 keep their meaning: failure, invalid input)


class NeedsAgent(TorAgentError):
    """A request only the running agent can carry out."""

    exit_code = EXIT_INVALID


@click.command()
@CONFIG
@JSON
@STATE_DIR
@CONTROL
@click.option(
    "--confirm",
    "confirm_s",
    type=click.IntRange(1, 86400),
    metavar="SECONDS",
    help="Commit-confirm: unless `tor-agent confirm` follows within SECONDS, the switch goes back to the "
    "previous intent (FRR, links, OVS, controllers). Needs the running agent.",
)
@click.option(
    "--rollback-on-degrade",
    is_flag=True,
    help="With --confirm: go back as soon as health is worse than before the change (fewer Full neighbours, "
    "less ECMP width to a VTEP, fewer controllers connected, tunnels lost).",
)
@reports_errors
def apply(
    config: Path, as_json: bool, state_dir: Path, control_socket: Path, confirm_s: int | None, rollback_on_degrade: bool
) -> None:
    """Make the switch match the intent file CONFIG, in one pass over every part in order: OVS bridges and
    ports (leaves), kernel links (addresses, MTUs, nftables, sysctls), FRR, tunnel peers discovered from
    OSPF's routes, GRE tunnels, and OVS's tunnel routes (netdev leaves). First every part checks the intent
    (FRR's own parser on the rendering included): an intent any part refuses changes nothing (exit 2).
    FRR is changed only where it differs from its live running configuration, in one batch, verified and
    saved to /etc/frr/frr.conf; on a failure FRR is rolled back. Only what tor-agent owns is changed (OVSDB
    rows with its marker, addresses it added, docs/frr-ownership.md). A part the intent names that is not
    there (an interface not cabled yet) is skipped and named, everything else is applied; a failed part is
    reported and the others still run; exit 1 then. A second apply with the same CONFIG changes nothing.
    Every applied intent is kept in the history (`tor-agent history`).

    While the agent runs (`tor-agent run`, the service), it is the only writer: apply hands it CONFIG, it
    runs CONFIG from then on (until `systemctl reload` or a restart re-reads its own file) and apply prints
    the pass it ran. CONFIG defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent apply
      tor-agent apply --confirm 120 --rollback-on-degrade   # then `tor-agent confirm`
      tor-agent apply --json /etc/tor-agent/agent.yaml | jq .stages
    """
    from tor_agent.config import load

    if rollback_on_degrade and confirm_s is None:
        raise click.UsageError("--rollback-on-degrade goes with --confirm SECONDS")
    intent = load(config)  # an invalid file is reported here, with the same words with or without a running agent
    message: dict[str, Any] = {"op": "apply", "config": str(config.resolve())}
    if confirm_s is not None:
        message |= {"confirm_s": confirm_s, "rollback_on_degrade": rollback_on_degrade}
    answer = ask_daemon(message, control_socket)
    if answer is not None:
        doc = answered_report(answer)
        pending = answer.get("pending_confirm")
        if pending:
            click.echo(f"tor-agent: on trial for {confirm_s} s: `tor-agent confirm` keeps it, else it goes back to"
                       f" history entry {pending['previous']}", err=True)  # fmt: skip
    elif confirm_s is not None:
        raise NeedsAgent("apply --confirm needs the running agent, whose timer rolls back (systemctl start tor-agent)")
    else:
        writer = local_writer(state_dir)
        writer.settle_plain_apply()
        writer.adopt(writer.candidate(config, intent), "cli")
        doc = writer.run().as_json()
    finish(doc, as_json)


@click.command()
@CONFIG
@JSON
@STATE_DIR
@click.option(
    "--exit-code",
    is_flag=True,
    help=f"Exit {EXIT_PENDING} when there are changes to apply, 0 when there are none (like diff(1)).",
)
@click.option(
    "--against",
    "against",
    type=int,
    metavar="ID",
    help="Instead: what changed between history entry ID and CONFIG (the intent files and their frr.conf).",
)
@reports_errors
def diff(config: Path, as_json: bool, state_dir: Path, exit_code: bool, against: int | None) -> None:
    """Show what `tor-agent apply` would change now: FRR (`-` removed, `+` added, computed against FRR's
    live running configuration; OSPF keys shown as <redacted>), then links, OVS (bridges, ports, tunnels
    to the peers OSPF shows now) and OVS's tunnel routes. Changes nothing. On a leaf whose OVS bridges do
    not exist yet, the links that need them are reported as missing. With --against ID: the difference
    between history entry ID (`tor-agent history`) and CONFIG, in the intent file and the rendered frr.conf.
    CONFIG defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    Exit codes: 0 the diff was computed (with --exit-code: and nothing to change), 1 a part could not be
    read, 2 invalid CONFIG, 3 changes to apply (only with --exit-code).

    \b
    Example:
      tor-agent diff
      tor-agent diff --exit-code /etc/tor-agent/agent.yaml >/dev/null; [ $? -eq 3 ] && echo "the switch drifted"
      tor-agent diff --against 3
    """
    if against is not None:
        _diff_against(config, state_dir, against, as_json, exit_code)
        return
    from tor_agent.config import load
    from tor_agent.reconcile.agentstate import AgentState
    from tor_agent.reconcile.drivers import switch_drivers
    from tor_agent.reconcile.engine import Engine

    engine = Engine(switch_drivers(state_dir))
    drained = AgentState(state_dir).drain().drained
    doc = engine.diff(engine.prepare(load(config)), drained=drained).as_json()
    frr = stage(doc, "frr")
    if as_json:
        data = frr["data"] if frr else {}
        commands = data.get("commands", "")
        print_json({"in_sync": not doc["changed"], **frr_json(frr), "commands": commands, **stages_json(doc)})
    else:
        if frr is not None:
            echo_notes(frr["notes"])
            click.echo(frr["detail"] or "FRR: nothing to change", nl=not frr["detail"])
        echo_stages(doc, skip=("frr",))
    if doc["problems"]:
        sys.exit(EXIT_RUNTIME)
    if exit_code and doc["changed"]:
        sys.exit(EXIT_PENDING)


def _diff_against(config: Path, state_dir: Path, entry_id: int, as_json: bool, exit_code: bool) -> None:
    from tor_agent.config import load
    from tor_agent.reconcile.history import History
    from tor_agent.render import render_frr

    history = History.in_dir(state_dir)
    entry = history.get(entry_id)
    intent = load(config)
    old_text, old_frr = history.intent_text(entry), history.frr_text(entry)
    new_text, new_frr = config.read_text(encoding="utf-8"), render_frr(intent)
    intent_diff = _unified(old_text, new_text, f"history {entry.id}: {entry.source}", str(config))
    frr_diff = _unified(_redacted(old_frr), _redacted(new_frr), f"history {entry.id}: frr.conf", "frr.conf")
    if as_json:
        print_json({"entry": entry.as_json(), "same": not (intent_diff or frr_diff), "intent": intent_diff,
                    "frr": frr_diff})  # fmt: skip
    else:
        click.echo(intent_diff + frr_diff or f"no difference between history entry {entry.id} and {config}", nl=False)
        if not (intent_diff or frr_diff):
            click.echo()
    if exit_code and (intent_diff or frr_diff):
        sys.exit(EXIT_PENDING)


def _unified(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), old_name, new_name))


def _redacted(text: str) -> str:
    from tor_agent.frr.config_tree import redact

    return redact(text)
