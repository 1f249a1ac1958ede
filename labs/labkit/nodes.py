"""Commands and processes inside the nodes of a running lab, and the lab's tor-agent daemons.

A command runs inside a node as `labs/lab exec` runs it: in the node's network, mount and UTS namespaces,
with the environment containerlab would give the node (`labs.nslab.realise.exec_argv`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labs.nslab import realise, state
from labs.nslab.topology import Topology

INTENT = "/etc/tor-agent/agent.yaml"
ENGINE_LOCK = "/run/tor-agent/engine.lock"  # tor_agent.reconcile.lock.LOCK_FILE, inside a node
CONTROL_SOCKET = "/run/tor-agent/control.sock"  # tor_agent.daemon.paths.CONTROL_SOCKET, inside a node
AGENT_PID = "/run/tor-agent.pid"  # node-start's record of the node's `tor-agent run`


class NodeCommandError(RuntimeError):
    """A command inside a node failed; names the node, the command and what it said."""

    def __init__(self, node: str, argv: Sequence[str], code: int, output: str) -> None:
        self.node, self.argv, self.code, self.output = node, list(argv), code, output
        super().__init__(f"{node}: {' '.join(argv)} exited {code}: {output.strip()}")


def node_run(
    topo: Topology, node: str, *argv: str, stdin: str | None = None, timeout: float = 30.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run argv inside `node` of the running lab; raise NodeCommandError when it fails and `check`."""
    full, env = realise.exec_argv(topo, node, list(argv))
    done = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and done.returncode != 0:
        raise NodeCommandError(node, argv, done.returncode, done.stderr or done.stdout)
    return done


def tor_agent_binary(topo: Topology) -> str:
    """The tor-agent the lab's switches run (the tree's or the installed package's)."""
    binary = realise.tools_env(topo, strict=False).get("TOR_AGENT")
    if binary is None:
        raise RuntimeError("tor-agent not found: put .venv/bin on PATH (`make venv`) or set TOR_AGENT")
    return binary


def tor_agent(
    topo: Topology, node: str, *args: str, check: bool = False, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`tor-agent ARGS` inside `node`, as on a switch."""
    return node_run(topo, node, tor_agent_binary(topo), *args, timeout=timeout, check=check)


def agent_status(topo: Topology, node: str) -> dict[str, Any]:
    """The node's `tor-agent run` status file (/run/tor-agent/status.json inside the node)."""
    return dict(json.loads(node_run(topo, node, "cat", "/run/tor-agent/status.json").stdout))


def holder(topo: Topology, node: str) -> int:
    """The pid of the node's holder (the first process of its namespaces)."""
    st = state.load(topo.name)
    if st is None or node not in st.holders:
        raise RuntimeError(f"lab {topo.name} is not up")
    return st.holders[node]


def node_pids(topo: Topology, node: str) -> list[int]:
    """Every process in `node`'s network namespace."""
    netns = os.stat(f"/proc/{holder(topo, node)}/ns/net").st_ino
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino == netns:
                    pids.append(int(entry.name))
    return pids


def agent_daemons(topo: Topology, node: str) -> list[int]:
    """The `tor-agent run` daemons inside `node` (none before the switches run the agent)."""
    found = []
    for pid in node_pids(topo, node):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(Path(a).name == "tor-agent" for a in args[:2]) and "run" in args[1:]:
                found.append(pid)
    return found


def rss_mib(pids: set[int]) -> float:
    """Total resident memory of `pids` in MiB (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def node_path(topo: Topology, node: str, path: str) -> Path:
    """`path` inside `node`'s private tree, as the host sees it (through the node holder's root)."""
    return Path(f"/proc/{holder(topo, node)}/root") / path.lstrip("/")


@contextlib.contextmanager
def engine_lock(topo: Topology, node: str) -> Iterator[None]:
    """Hold `node`'s engine lock (tor_agent.reconcile.lock's flock on the node's /run/tor-agent/engine.lock),
    through the node holder's view of its private /run."""
    path = node_path(topo, node, ENGINE_LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def paused_agents(topo: Topology, nodes: Sequence[str]) -> Iterator[list[int]]:
    """Hold the tor-agent daemons of `nodes` stopped (SIGSTOP), so that a hand edit or a temporary intent
    is not repaired behind the caller's back; resume them (SIGCONT) afterwards.

    Each is stopped while this process holds the node's engine lock (the one `tor-agent apply` and the
    daemon take for a pass), so it is never stopped half way through a pass, holding the lock. Its control
    socket is moved aside meanwhile, so that the node's `tor-agent apply` finds no daemon and applies itself,
    as on a switch where the service is stopped."""
    stopped: list[int] = []
    hidden: list[Path] = []
    try:
        for node in nodes:
            pids = agent_daemons(topo, node)
            if not pids:
                continue
            with engine_lock(topo, node):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        stopped.append(pid)
            socket = node_path(topo, node, CONTROL_SOCKET)
            with contextlib.suppress(FileNotFoundError):
                socket.rename(socket.with_name(socket.name + ".paused"))
                hidden.append(socket)
        yield stopped
    finally:
        for socket in hidden:
            socket.with_name(socket.name + ".paused").rename(socket)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class NodeProcess:
    """A process inside a node printing one JSON event per line; a thread collects the events.

    Stopped by closing its stdin (`finish`) or by its process id (`kill`): it is this process's own child.
    """

    def __init__(self, topo: Topology, node: str, argv: list[str]) -> None:
        full, env = realise.exec_argv(topo, node, argv)
        self.node, self.argv = node, argv
        self.proc = subprocess.Popen(
            full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._lock:
                    self.events.append(event)

    def seen(self, kind: str) -> list[dict[str, Any]]:
        """The events of `kind` so far."""
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]

    def alive(self) -> bool:
        """Still running; raises with its stderr when it died."""
        if self.proc.poll() is None:
            return True
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise RuntimeError(f"{self.node}: {' '.join(self.argv)} exited {self.proc.returncode}: {err.strip()}")

    def finish(self, timeout: float = 10.0) -> None:
        """Close stdin (the process's signal to stop) and wait for it."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        finally:
            self.kill()
        self._reader.join(timeout)

    def kill(self) -> None:
        """Kill it if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Background:
    """A process started inside a node with `background`, its output in a host file; stopped by process id."""

    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig` and wait; kill it if it does not end within 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def text(self) -> str:
        """Its output so far."""
        return self.log.read_text(errors="replace")


def background(topo: Topology, node: str, argv: list[str], log: Path) -> Background:
    """Start `argv` inside `node`, its stdout and stderr going to `log`."""
    full, env = realise.exec_argv(topo, node, argv)
    with log.open("wb") as out:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    return Background(proc, log)
