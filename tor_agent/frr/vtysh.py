"""The only place tor-agent runs `vtysh`: argv lists with timeouts, never a shell.

Measured on FRR 8.4.4: every vtysh start costs 20-35 ms, more than reading or parsing a 2000-line
configuration, so each operation here is one process. `configure` sends a batch and reads the
running configuration back in the same vtysh session (commands on stdin, so OSPF keys never show
in the process list); `vtysh -f` followed by `show running-config` costs two starts. A session can
be started ahead (`start_session`) so that its start overlaps the parser check of the batch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tor_agent.errors import RuntimeFailure
from tor_agent.frr.config_tree import redact

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0  # a 2000-line batch takes ~0.3 s; stay well inside systemd's 90 s start timeout
_LINE_ERROR = re.compile(r"^line (\d+): (.*)$")
_RUNNING_PREAMBLE = ("Building configuration...", "Current configuration:")
_PROMPT = re.compile(r"^[^\s#]+(\([^)\s]*\))?# ?")  # `leaf1# `, `leaf1(config-if)# ` in a vtysh session


class VtyshError(RuntimeFailure):
    """vtysh could not be run, or FRR did not answer; names the vtysh command."""

    retryable = True

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        self.detail = message
        super().__init__(f"vtysh {command}: {message}")


@dataclass(frozen=True)
class LineError:
    """What FRR said about one line: its number in the batch, its text (keys redacted), FRR's message."""

    number: int
    line: str
    message: str

    def __str__(self) -> str:
        return f"line {self.number} `{self.line}`: {self.message}"


class LinesRefused(VtyshError):
    """FRR's parser refused lines of a batch; carries each line and FRR's message."""

    retryable = False

    def __init__(self, command: str, errors: Sequence[LineError], output: str) -> None:
        self.errors = tuple(errors)
        self.output = output
        details = "; ".join(str(e) for e in self.errors) or "FRR reported a failure"
        if output:
            details += f" (FRR said: {output})"
        super().__init__(command, details)


@dataclass(frozen=True)
class Running:
    """FRR's running configuration text and the daemons that contributed to it."""

    text: str
    daemons: frozenset[str]


@dataclass(frozen=True)
class Configured:
    """The result of a batch: what FRR said after each line that drew an answer, and the running config after it."""

    messages: tuple[LineError, ...]
    running: Running


@dataclass(frozen=True)
class Vtysh:
    """How to reach FRR's shell.

    `prefix` runs vtysh elsewhere (e.g. `nsenter -t PID -n -m -u --` for a node in a namespace);
    `options` are passed to every call (e.g. `--vty_socket DIR`, `-N PATHSPACE`).
    """

    binary: str = "vtysh"
    prefix: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    tmp_dir: Path | None = field(default=None, compare=False)

    def running(self) -> Running:
        """FRR's live running configuration and the daemons vtysh reached, in one vtysh call.

        A daemon vtysh cannot reach is silently left out of `show running-config` (and configuration
        lines for it are dropped with exit 0, measured): callers must look at `daemons`.
        """
        out = self._run("show running-config", ["-c", "show daemons", "-c", "show running-config"]).stdout
        lines = out.splitlines()
        return _running(lines[:1], lines[1:])

    def running_config(self) -> str:
        """FRR's live running configuration (`show running-config`), without vtysh's preamble."""
        return self.running().text

    def show_json(self, command: str) -> Any:
        """The parsed output of a `show ... json` command."""
        if not command.startswith("show ") or not command.endswith(" json"):
            raise ValueError(f"not a `show ... json` command: {command!r}")
        out = self._run(command, ["-c", command]).stdout
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise VtyshError(command, f"output is not JSON ({e}): {out[:200]!r}") from e

    def check(self, text: str) -> None:
        """Parse `text` with FRR's own parser (`vtysh -C -f`, no daemon involved); raise LinesRefused on any error."""
        # vtysh -f creates FILE.lock next to the file, so it needs a real file in a writable directory.
        with tempfile.TemporaryDirectory(prefix="tor-agent-vtysh.", dir=self.tmp_dir) as tmp:
            path = Path(tmp) / "check.conf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # may hold OSPF keys
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            result = self._run("-C -f", ["-C", "-f", str(path)], check=False)
        if result.returncode != 0:
            raise LinesRefused("-C -f", _line_errors(result.stderr, text), redact(result.stdout.strip()))

    def start_session(self) -> Session:
        """Start a vtysh session now; it connects to the daemons while the caller prepares its batch."""
        argv = [*self.prefix, self.binary, *self.options]
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except FileNotFoundError as e:
            raise VtyshError("configure", f"cannot run {argv[0]!r}: not installed (apt install frr)") from e
        return Session(process, self.timeout_s)

    def configure(self, text: str, session: Session | None = None) -> Configured:
        """Send configuration `text` to the daemons in one vtysh session, then read the running configuration.

        `session` is one from `start_session` (default: a new one). vtysh goes on after a line FRR
        refuses: judge the result by `running`, and use `messages` (FRR's answers, errors and warnings
        alike) to explain a difference.
        """
        batch = [line.rstrip() for line in text.splitlines() if line.strip()]
        script = ["configure", *batch, "end", "show daemons", "show running-config"]
        stdout = (session or self.start_session()).send("".join(f"{line}\n" for line in script))
        outputs = _split_session(stdout, script)
        if outputs is None:  # not the session layout this was written for: read again rather than guess
            log.warning("vtysh: unexpected session output; reading the running configuration separately")
            return Configured((), self.running())
        messages = tuple(
            LineError(number, redact(batch[number - 1].strip()), redact(" ".join(x.strip() for x in out)))
            for number, out in enumerate(outputs[1 : len(batch) + 1], start=1)
            if any(x.strip() for x in out)
        )
        return Configured(messages, _running(outputs[-2], outputs[-1]))

    def write_memory(self) -> None:
        """FRR saves its running configuration to the integrated /etc/frr/frr.conf itself (`write memory`):
        vtysh asks watchfrr, which writes the file as FRR does, with FRR's own rights (where it does not run,
        vtysh writes it)."""
        result = self._run("write memory", ["-c", "write memory"])
        if "[OK]" not in result.stdout:
            raise VtyshError("write memory", f"FRR did not confirm the write: {result.stdout.strip()!r}")

    def _run(self, what: str, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*self.prefix, self.binary, *self.options, *args]
        log.debug("running vtysh %s", what)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError as e:
            raise VtyshError(what, f"cannot run {argv[0]!r}: not installed (apt install frr)") from e
        except subprocess.TimeoutExpired as e:
            raise VtyshError(what, f"no answer from FRR within {self.timeout_s:g}s") from e
        if check and result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
            raise VtyshError(what, f"exit {result.returncode}: {redact(' '.join(message))}")
        return result


class Session:
    """A started vtysh reading commands from its stdin (so OSPF keys never show in the process list)."""

    def __init__(self, process: subprocess.Popen[str], timeout_s: float) -> None:
        self._process = process
        self._timeout_s = timeout_s

    def send(self, script: str) -> str:
        """Send `script`, end the session, and return everything vtysh printed."""
        try:
            stdout, stderr = self._process.communicate(script, timeout=self._timeout_s)
        except subprocess.TimeoutExpired as e:
            self._process.kill()
            self._process.communicate()
            raise VtyshError("configure", f"no answer from FRR within {self._timeout_s:g}s") from e
        if self._process.returncode != 0:
            message = " ".join((stderr.strip() or stdout.strip() or "no output").splitlines())
            raise VtyshError("configure", f"exit {self._process.returncode}: {redact(message)}")
        return stdout

    def cancel(self) -> None:
        """End the session without sending anything."""
        try:
            self._process.communicate("", timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()


def _running(daemons: list[str], lines: list[str]) -> Running:
    lines = list(lines)
    while lines and (not lines[0].strip() or lines[0].strip() in _RUNNING_PREAMBLE):
        lines.pop(0)
    return Running("".join(f"{line}\n" for line in lines), frozenset(" ".join(daemons).split()))


def _split_session(stdout: str, script: Sequence[str]) -> list[list[str]] | None:
    """The output of each line of `script` in a vtysh session (each line is echoed after its prompt)."""
    outputs: list[list[str]] = [[] for _ in script]
    k = -1
    for line in stdout.splitlines():
        if k + 1 < len(script) and _is_echo(line, script[k + 1]):
            k += 1
        elif k >= 0:
            outputs[k].append(line)
    if k != len(script) - 1:
        return None
    last = outputs[-1]
    if last and _PROMPT.fullmatch(last[-1]):
        last.pop()  # the prompt after the last command
    return outputs


def _is_echo(line: str, sent: str) -> bool:
    prompt = _PROMPT.match(line)
    return prompt is not None and line[prompt.end() :] == sent


def _line_errors(stderr: str, text: str) -> list[LineError]:
    """FRR's `line N: message` reports, with the refused line taken from the batch we sent."""
    lines = text.splitlines()
    errors = []
    for raw in stderr.splitlines():
        m = _LINE_ERROR.match(raw.strip())
        if m is None:
            continue
        number = int(m.group(1))
        line = lines[number - 1].strip() if 0 < number <= len(lines) else "?"
        errors.append(LineError(number, redact(line), redact(_frr_message(m.group(2)))))
    return errors


def _frr_message(message: str) -> str:
    # "Failure to communicate[13] to ospfd, line: ..." means ospfd refused the line (its reason is on
    # stdout); "% Unknown command[41]: ..." is a parse error. vtysh appends the line: we print it apart.
    refused = re.match(r"Failure to communicate\[\d+\] to (\S+?),", message)
    if refused:
        return f"{refused.group(1)} refused it"
    return re.split(r"\[\d+\]", message, maxsplit=1)[0].strip()
