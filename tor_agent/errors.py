"""Typed errors shared by every layer.

Exit codes (documented in the README and in `tor-agent --help`):
0 ok, 1 runtime failure (a daemon or the switch did not do what was asked), 2 invalid input.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INVALID = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what is wrong with it."""

    path: str
    message: str

    def format(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message}"


class TorAgentError(Exception):
    """Base class of every error tor-agent reports to an operator."""

    exit_code = EXIT_RUNTIME


class ConfigError(TorAgentError):
    """The intent file is missing, unreadable, malformed or invalid; carries every problem found."""

    exit_code = EXIT_INVALID

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


class RuntimeFailure(TorAgentError):
    """A daemon or the switch did not do what was asked.

    `retryable`: a daemon did not answer (not running, restarting, timed out), so the same request may well
    work a moment later; the daemon then retries soon instead of waiting for its next periodic pass.
    """

    exit_code = EXIT_RUNTIME
    retryable = False


class PartMissing(RuntimeFailure):
    """A part the intent names is not there (an interface not cabled yet, renamed): it alone is skipped,
    everything else is applied, and it is configured when it appears. `subject` names it for reports."""

    def __init__(self, subject: str, message: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {message}")
