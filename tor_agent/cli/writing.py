"""What every mutating command shares: ask the running agent (the only writer while it runs), or, without one,
make the change here with a writer of its own; then print the pass report the same way either way."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tor_agent.daemon.control import NoDaemon, request
from tor_agent.errors import EXIT_INVALID, EXIT_RUNTIME, RuntimeFailure, TorAgentError

if TYPE_CHECKING:
    from tor_agent.reconcile.writer import Writer

REQUEST_TIMEOUT_S = 300.0  # the daemon's pass: FRR, links, OVS; a slow switch CPU takes a while


class DaemonRefused(TorAgentError):
    """The running agent refused the request; carries its exit code (2: invalid input, 1: refused or failed)."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def ask_daemon(message: dict[str, Any], control_socket: Path) -> dict[str, Any] | None:
    """The running agent's answer to `message`, or None when no agent runs. A refusal raises DaemonRefused."""
    try:
        answer = request(message, control_socket, REQUEST_TIMEOUT_S)
    except NoDaemon:
        return None
    if not answer.get("ok"):
        code = answer.get("exit")
        text = str(answer.get("error") or "the running tor-agent refused the request")
        raise DaemonRefused(text, code if code in (EXIT_INVALID, EXIT_RUNTIME) else EXIT_RUNTIME)
    return answer


def answered_report(answer: dict[str, Any]) -> dict[str, Any]:
    """The pass report in the agent's answer; says on stderr that the running agent made the change."""
    report = answer.get("report")
    if not isinstance(report, dict):
        raise RuntimeFailure("the running tor-agent's answer carries no pass report")
    click.echo(f"tor-agent: done by the running agent (pid {answer.get('pid')})", err=True)
    return report


def local_writer(state_dir: Path) -> Writer:
    """A writer of this command's own (no agent runs)."""
    from tor_agent.health.readers import drain_check
    from tor_agent.reconcile.agentstate import AgentState
    from tor_agent.reconcile.drivers import switch_drivers
    from tor_agent.reconcile.engine import Engine
    from tor_agent.reconcile.history import History
    from tor_agent.reconcile.writer import Writer

    return Writer(Engine(switch_drivers(state_dir)), History.in_dir(state_dir), AgentState(state_dir), drain_check)


def running_locally(writer: Writer, config: Path) -> None:
    """Load what runs now into a writer of this command's own: the pinned history entry (after a rollback),
    else CONFIG."""
    pinned = writer.pinned_entry()
    writer.adopt(writer.candidate_from(pinned) if pinned else writer.candidate(config), "cli", pinned=bool(pinned))


def finish(doc: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Print a pass report (text or JSON) and exit 1 when it has problems."""
    if as_json:
        from tor_agent.cli.common import print_json

        print_json({**report_json(doc), **(extra or {})})
    else:
        echo_report(doc)
    if doc["problems"]:
        sys.exit(EXIT_RUNTIME)


def stage(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    """One stage of a report, by name."""
    return next((s for s in doc["stages"] if s["stage"] == name), None)


def report_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON `apply` prints."""
    frr = stage(doc, "frr")
    said = frr["data"].get("said", []) if frr else []
    return {"changed": doc["changed"], "seconds": doc["seconds"], **frr_json(frr), "frr_said": said,
            **stages_json(doc)}  # fmt: skip


def stages_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc[key] for key in ("hostname", "problems", "missing", "stages", "peers", "dropped_peers")}


def frr_json(frr: dict[str, Any] | None) -> dict[str, Any]:
    if frr is None:
        return {"changes": [], "notes": []}
    notes = [n for n in frr["notes"] if not n.startswith("FRR said about ")]
    return {"changes": frr["data"].get("changes", []), "notes": notes}


def echo_report(doc: dict[str, Any]) -> None:
    """The report as text: FRR's diff, every other stage's changes, problems and notes; a summary on stderr."""
    frr = stage(doc, "frr")
    if frr is not None and not frr["skipped"]:
        echo_notes(frr["notes"])
        if frr["changes"]:
            click.echo(frr["detail"], nl=False)
            click.echo(f"FRR: {len(frr['changes'])} changes applied, verified and saved in {frr['seconds']:.2f}s")
        elif not frr["problems"]:
            click.echo("FRR: nothing to change")
    echo_stages(doc, skip=("frr",))
    click.echo(f"{doc['hostname']}: {doc['summary']}", err=True)


def echo_stages(doc: dict[str, Any], skip: Sequence[str] = ()) -> None:
    for st in doc["stages"]:
        if st["stage"] in skip:
            echo_problems(st)
            continue
        echo_notes(st["notes"], st)
        for change in st["changes"]:
            click.echo(f"{st['label']}: {change}")
        echo_problems(st)


def echo_problems(st: dict[str, Any]) -> None:
    for problem in st["problems"]:
        label = st["label"]
        text = problem if problem.startswith(label) else f"{label}: {problem}"
        click.echo(f"tor-agent: {text}", err=True)


def echo_notes(notes: Sequence[str], st: dict[str, Any] | None = None) -> None:
    prefix = f"{st['label']}: " if st is not None else ""
    for note in notes:
        click.echo(f"tor-agent: note: {prefix}{note}", err=True)
