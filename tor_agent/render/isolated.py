"""Rendering for the long-running agent: in a short-lived child process, once per intent.

Jinja2 (with MarkupSafe) costs the agent about 3 MB of resident memory for good, for work it does only when
the intent changes (start, SIGHUP, `tor-agent apply`). So the agent renders in a forked child that imports
Jinja2, renders, hands the text back through a pipe and exits: the agent itself never imports Jinja2. A fork
shares the parent's already imported modules, so the child costs only the Jinja2 import and the rendering.
Renderings are kept per (intent view, templates): an intent applied again is not rendered again.

The child touches nothing the parent's other threads hold: it renders (pure) and writes to its pipe.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections import OrderedDict
from pathlib import Path

from tor_agent.config.schema import Intent
from tor_agent.errors import RuntimeFailure, TorAgentError
from tor_agent.render.frr import FrrView, frr_view, render_frr, template_dir

CACHED = 8  # renderings kept (the running intent, the previous one, a couple applied by hand; each also drained)


class RenderFailed(RuntimeFailure):
    """The rendering child could not be started or died without an answer."""


class ChildRenderer:
    """`render(intent, template_dir, drained)` as `render_frr`, done in a child process, remembered per intent
    (and variant: a prepared intent has its drained rendering too)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[FrrView, Path, tuple[tuple[str, int, int], ...]], str] = OrderedDict()
        self.renders = 0  # children started (a test and the status file look)

    def __call__(self, intent: Intent, templates: Path | None = None, drained: bool = False) -> str:
        directory = templates if templates is not None else template_dir()
        key = (frr_view(intent, drained), directory, _stamp(directory))
        text = self._cache.get(key)
        if text is None:
            text = render_in_child(intent, directory, drained)
            self.renders += 1
            self._cache[key] = text
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return text


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every template: a template changed on disk is rendered again."""
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(directory)))
    except OSError:
        return ()


def render_in_child(intent: Intent, directory: Path, drained: bool = False) -> str:
    """`render_frr(intent, directory, drained)` in a forked child; its TorAgentError (TemplateError) is raised
    here."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(read_fd)
        os.close(write_fd)
        raise RenderFailed(f"cannot start the FRR rendering: {e}") from e
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(intent, directory, drained, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        kind, value = pickle.loads(data)
    except Exception as e:
        raise RenderFailed(f"the FRR rendering died ({_exit_text(status)}) without an answer") from e
    if kind == "text":
        return str(value)
    if kind == "error" and isinstance(value, TorAgentError):
        raise value
    raise RenderFailed(f"the FRR rendering failed: {value}")


def _child(intent: Intent, directory: Path, drained: bool, write_fd: int) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the parent's signal pipe is the parent's
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        try:
            answer: tuple[str, object] = ("text", render_frr(intent, directory, drained=drained))
        except TorAgentError as e:
            answer = ("error", e)
        except Exception as e:
            answer = ("crash", f"{type(e).__name__}: {e}")
        with contextlib.suppress(OSError), os.fdopen(write_fd, "wb") as pipe:
            pipe.write(pickle.dumps(answer))
        code = 0
    finally:
        os._exit(code)


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"
