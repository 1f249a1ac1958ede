"""Running commands on the host and inside nodes; every call has an argv list and a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

DEFAULT_TIMEOUT_S = 30.0


class CommandError(Exception):
    """A command failed; carries its argv, exit code and output."""

    def __init__(self, argv: list[str], code: int, output: str) -> None:
        self.argv, self.code, self.output = argv, code, output
        super().__init__(f"{' '.join(argv)} exited {code}: {output.strip()}")


def run(
    argv: list[str],
    timeout: float = DEFAULT_TIMEOUT_S,
    stdin: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """Run `argv`, return stdout; raise CommandError (with stderr) when it fails and `check`."""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, -1, f"timed out after {timeout:g}s") from e
    if check and done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr or done.stdout)
    return done.stdout


def ip_batch(netns: str, lines: list[str], timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Run many `ip` commands in one network namespace with one process."""
    if lines:
        run(["ip", "-n", netns, "-batch", "-"], timeout=timeout, stdin="\n".join(lines) + "\n")


def enter(pid: int) -> list[str]:
    """The argv prefix that runs a command inside a node: its mount, UTS and network namespaces, in the
    caller's working directory (entering a mount namespace would otherwise move it to /)."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-n", f"--wd={os.getcwd()}", "--"]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def signal_all(pids: set[int], signum: int) -> None:
    """Send `signum` to each pid that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def netns_list() -> list[str]:
    """Names of the host's named network namespaces."""
    out = run(["ip", "netns", "list"], timeout=10)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(netns: str) -> set[int]:
    """Every process whose network namespace is `netns`."""
    out = run(["ip", "netns", "pids", netns], timeout=10, check=False)
    return {int(p) for p in out.split()}


KILL = signal.SIGKILL
TERM = signal.SIGTERM
