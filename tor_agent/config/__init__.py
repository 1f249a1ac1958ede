"""Load and validate the intent file: `load(path)` returns a frozen `Intent` or raises `IntentError`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from tor_agent.config.files import FileProblem, read_file
from tor_agent.config.quote import one_line
from tor_agent.config.reader import MAX_PROBLEMS, Reader, TooManyProblems
from tor_agent.config.schema import Intent
from tor_agent.config.validate import build_intent
from tor_agent.config.yamlio import parse_yaml
from tor_agent.errors import ConfigError, Problem

__all__ = ["Intent", "IntentError", "load", "load_text"]

_PATH_LIMIT = 200
_MESSAGE_LIMIT = 400


class IntentError(ConfigError):
    """An invalid intent: every problem, and the warnings found on the way."""

    def __init__(self, source: str, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> None:
        super().__init__(source, _bounded(problems))
        self.warnings = _bounded(warnings)


def load(path: str | Path) -> Intent:
    """Read and validate the intent file at `path`; every problem is reported at once."""
    source = str(path)
    try:
        data = read_file(source).data
    except FileProblem as e:
        hint = " (give the path of the intent file, e.g. /etc/tor-agent/agent.yaml)"
        problem = f"{e}{hint if isinstance(e.__cause__, FileNotFoundError) else ''}"
        raise IntentError(source, [Problem("", problem)]) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise IntentError(source, [Problem("", f"cannot read line {line}: not UTF-8 text (save it as UTF-8)")]) from e
    return load_text(text, source, Path(path).resolve().parent)


def load_text(text: str, source: str = "<text>", base_dir: Path | None = None) -> Intent:
    """Validate intent YAML `text`; `source` names it in errors, relative paths resolve under `base_dir`."""
    doc, problems = parse_yaml(text)
    if problems:
        raise IntentError(source, problems)
    if doc is None:
        raise IntentError(source, [Problem("", "is empty (an intent file needs at least version, node and underlay)")])
    reader = Reader()
    try:
        intent = build_intent(doc, base_dir or Path.cwd(), reader)
    except TooManyProblems:
        stop = Problem("", f"stopped after {MAX_PROBLEMS} problems: fix these, then check again")
        raise IntentError(source, [*reader.problems, stop], reader.warnings) from None
    if reader.problems or intent is None:
        raise IntentError(source, reader.problems or [Problem("", "is not a valid intent")], reader.warnings)
    return dataclasses.replace(intent, source=source, warnings=tuple(_bounded(reader.warnings)))


def _bounded(problems: Iterable[Problem]) -> list[Problem]:
    """Each problem on one line of bounded length, whatever the input held."""
    return [Problem(one_line(p.path, _PATH_LIMIT), one_line(p.message, _MESSAGE_LIMIT)) for p in problems]
