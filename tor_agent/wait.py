"""The one polling helper: used by the agent, the lab realiser and every test. Never sleep blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tor_agent.errors import RuntimeFailure

T = TypeVar("T")


class WaitTimeout(RuntimeFailure):
    """A polled condition did not become true in time; says what was awaited and the last value seen."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `predicate` until it returns a truthy value and return that value.

    Raises WaitTimeout after `timeout` seconds, naming `what` and the last falsy value (or the last
    exception, if the predicate raised on its final attempt).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # a daemon not up yet raises; keep polling until the deadline
            value, last = None, e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
