"""What the daemon answers on its control socket: apply (optionally on trial), confirm, rollback, drain,
undrain, hello. Each change runs a full pass at once and is answered with that pass's report; a refusal changes
nothing and says why. The same exit codes as the commands: 2 invalid input, 1 refused or failed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tor_agent.errors import EXIT_INVALID, EXIT_RUNTIME, RuntimeFailure, TorAgentError
from tor_agent.reconcile.history import Entry
from tor_agent.reconcile.writer import DrainRefused

if TYPE_CHECKING:
    from tor_agent.daemon.service import Daemon

Answer = dict[str, Any]
MAX_CONFIRM_S = 24 * 3600.0


def answer(daemon: Daemon, message: dict[str, Any]) -> Answer:
    """The answer to one request (`message["op"]` names it)."""
    from tor_agent.daemon.service import Refused

    handler = OPS.get(str(message.get("op")))
    if handler is None:
        return _error(EXIT_INVALID, f"unknown request {message.get('op')!r} (known: {', '.join(sorted(OPS))})")
    try:
        return handler(daemon, message)
    except Refused as e:
        return _error(EXIT_INVALID, str(e))
    except TorAgentError as e:
        return _error(e.exit_code, str(e))


def _error(code: int, message: str, **extra: Any) -> Answer:
    return {"ok": False, "exit": code, "error": message, **extra}


def _hello(daemon: Daemon, message: dict[str, Any]) -> Answer:
    return {"ok": True, "pid": _pid(), "config": str(daemon.source), "ready": daemon.ready}


def _apply(daemon: Daemon, message: dict[str, Any]) -> Answer:
    config, confirm_s = message.get("config"), message.get("confirm_s")
    if not isinstance(config, str) or not config:
        return _error(EXIT_INVALID, "apply: no intent file given")
    if confirm_s is not None and (not isinstance(confirm_s, int | float) or not 1 <= confirm_s <= MAX_CONFIRM_S):
        return _error(EXIT_INVALID, f"apply: --confirm must be 1..{MAX_CONFIRM_S:g} seconds")
    path = Path(config)
    candidate = daemon.candidate(path)
    if confirm_s is None:
        daemon.writer.settle_plain_apply()
        daemon.adopt(candidate, "cli")
    else:
        degrade = bool(message.get("rollback_on_degrade"))
        baseline = daemon.trial.score().as_json() if degrade else {}
        daemon.writer.begin_trial(candidate, float(confirm_s), degrade, baseline)
        daemon.after_change(path)
    return _ran(daemon, config=str(path))


def _confirm(daemon: Daemon, message: dict[str, Any]) -> Answer:
    entry = daemon.writer.confirm()
    daemon.publish()
    return {"ok": True, "pid": _pid(), "entry": entry.as_json()}


def _rollback(daemon: Daemon, message: dict[str, Any]) -> Answer:
    wanted = message.get("id")
    history = daemon.writer.history
    if wanted is not None and (not isinstance(wanted, int) or isinstance(wanted, bool)):
        return _error(EXIT_INVALID, "rollback: the entry id must be a number (see `tor-agent history`)")
    entry: Entry = history.get(wanted) if wanted is not None else history.previous()
    candidate = daemon._guarded(lambda: daemon.writer.candidate_from(entry))
    daemon.writer.state.set_pending(None)  # an explicit rollback ends a trial
    daemon.adopt(candidate, "rollback", pinned=True)
    return _ran(daemon, rolled_back_to=entry.as_json())


def _drain(daemon: Daemon, message: dict[str, Any]) -> Answer:
    min_paths = message.get("min_paths")
    if min_paths is not None and (
        not isinstance(min_paths, int) or isinstance(min_paths, bool) or not 0 <= min_paths <= 64
    ):
        return _error(EXIT_INVALID, "drain: --min-paths must be 0..64")
    try:
        losses = daemon.writer.drain(bool(message.get("force")), min_paths)
    except DrainRefused as e:
        return _error(EXIT_RUNTIME, str(e), losses=[str(x) for x in e.losses])
    except RuntimeFailure as e:
        return _error(EXIT_RUNTIME, f"cannot check the fabric's paths: {e} (--force drains without the check)")
    return _ran(daemon, forced_losses=[str(x) for x in losses])


def _undrain(daemon: Daemon, message: dict[str, Any]) -> Answer:
    daemon.writer.undrain()
    return _ran(daemon)


def _ran(daemon: Daemon, **extra: Any) -> Answer:
    """Run the full pass the change asks for and answer with it."""
    report = daemon.run_pass("full")
    if report is None:
        return _error(EXIT_RUNTIME, "the pass failed unexpectedly (see the agent's log)")
    pending = daemon.writer.state.pending()
    return {
        "ok": True,
        "pid": _pid(),
        "report": report.as_json(),
        "drained": daemon.writer.drained,
        "pending_confirm": pending.as_json() if pending is not None else None,
        **extra,
    }


def _pid() -> int:
    return os.getpid()


OPS: dict[str, Callable[[Daemon, dict[str, Any]], Answer]] = {
    "hello": _hello,
    "apply": _apply,
    "confirm": _confirm,
    "rollback": _rollback,
    "drain": _drain,
    "undrain": _undrain,
}
