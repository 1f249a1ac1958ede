"""The one place health reads FRR: `frr_reader()` returns a `ShowJson`.

Until tor_agent.frr's Vtysh lands this is a minimal vtysh runner with the same constructor fields
(binary, options, timeout_s) and the same `show_json(command)`; switching is a change to this file only.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from tor_agent.errors import RuntimeFailure
from tor_agent.health.frr_state import ShowJson

SHOW_TIMEOUT_S = 10.0  # a show command answers in ~20 ms; a stuck daemon must not hang a periodic verify


class FrrUnavailable(RuntimeFailure):
    """vtysh could not be run or FRR did not answer; names the command."""


@dataclass(frozen=True)
class VtyshJson:
    """`vtysh [options] -c '<show ... json>'`, parsed."""

    binary: str = "vtysh"
    options: tuple[str, ...] = ()
    timeout_s: float = SHOW_TIMEOUT_S

    def show_json(self, command: str) -> Any:
        """The parsed output of a `show ... json` command."""
        argv = [self.binary, *self.options, "-c", command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError as e:
            raise FrrUnavailable(f"vtysh {command}: cannot run {self.binary!r}: not installed (apt install frr)") from e
        except subprocess.TimeoutExpired as e:
            raise FrrUnavailable(f"vtysh {command}: no answer from FRR within {self.timeout_s:g}s") from e
        if done.returncode != 0:
            message = " ".join((done.stderr.strip() or done.stdout.strip() or "no output").splitlines())
            raise FrrUnavailable(f"vtysh {command}: exit {done.returncode}: {message}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError as e:
            raise FrrUnavailable(f"vtysh {command}: output is not JSON ({e}): {done.stdout[:200]!r}") from e


def frr_reader(options: tuple[str, ...] = ()) -> ShowJson:
    """How health reads FRR: vtysh with `options` (e.g. `--vty_socket DIR`)."""
    return VtyshJson(options=options)
