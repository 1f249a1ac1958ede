"""A private Open vSwitch (ovsdb-server + ovs-vswitchd) in a temporary directory, for tests and benchmarks.

Everything lives in the sandbox's own directory (database file, unix sockets, pid files, logs, the
per-bridge management sockets) and ovs-vswitchd runs in a network namespace the sandbox creates, so the
tap devices of internal ports never appear in the host's namespace. The system-wide OVS is never touched.
Only the userspace (`netdev`) datapath works here; the kernel datapath is disabled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tor_agent.errors import RuntimeFailure
from tor_agent.wait import wait_until

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BINARIES = ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl", "ovs-appctl")
_CMD_TIMEOUT = 30.0


class SandboxError(RuntimeFailure):
    """A sandbox daemon did not start, or an OVS command failed."""


def missing_binaries() -> list[str]:
    """The OVS programs (and the schema) the sandbox needs but this host lacks."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if not SCHEMA.is_file():
        missing.append(str(SCHEMA))
    if shutil.which("ip") is None:
        missing.append("ip")
    return missing


def run(argv: list[str], timeout: float = _CMD_TIMEOUT) -> str:
    """Run `argv`, return its stdout; a non-zero exit raises SandboxError with stderr."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise SandboxError(f"{argv[0]}: no answer within {timeout:g}s: {' '.join(argv)}") from e
    if done.returncode != 0:
        raise SandboxError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class OvsSandbox:
    """Start with `start()`, stop with `stop()` (or use it as a context manager).

    `remote` is the OVSDB address to give `OvsConnection`; `vsctl(...)` runs ovs-vsctl against it.
    """

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ta-ovs-")))
    netns: str = ""
    init: bool = True  # False: leave the database without its Open_vSwitch row (`ovs-vsctl init` not run)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _own_netns: bool = field(default=False, init=False)

    @property
    def db_file(self) -> Path:
        return self.base / "conf.db"

    @property
    def remote(self) -> str:
        return f"unix:{self.base / 'db.sock'}"

    def ctl(self, daemon: str) -> str:
        """The unixctl socket of `daemon` ("ovsdb-server" or "ovs-vswitchd")."""
        return str(self.base / f"{daemon}.ctl")

    def __enter__(self) -> OvsSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, vswitchd: bool = True) -> None:
        """Create the database and the namespace, start the daemons and wait until they answer.

        `vswitchd=False` starts ovsdb-server only (start_vswitchd() later).
        """
        if not self.netns:
            self.netns = f"ta-ovs-{os.getpid()}-{self.base.name[-6:]}"
        if self.netns not in run(["ip", "netns", "list"]).split():
            run(["ip", "netns", "add", self.netns])
            self._own_netns = True
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        if not self.db_file.exists():
            run(["ovsdb-tool", "create", str(self.db_file), str(SCHEMA)])
        self.start_ovsdb()
        if self.init:
            self.vsctl("--no-wait", "init")
        if vswitchd:
            self.start_vswitchd()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"):
            env[var] = str(self.base)
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.base / f"{name}.stderr").open("ab")
        with log:
            self._procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env(), cwd=self.base
            )

    def _common(self, name: str) -> list[str]:
        return [
            f"--unixctl={self.ctl(name)}",
            f"--pidfile={self.base / (name + '.pid')}",
            f"--log-file={self.base / (name + '.log')}",
            "--no-chdir",
        ]

    def start_ovsdb(self) -> None:
        """Start ovsdb-server on the sandbox's database file (kept across restarts)."""
        remote = f"--remote=p{self.remote}"
        self._spawn("ovsdb-server", ["ovsdb-server", str(self.db_file), remote, *self._common("ovsdb-server")])
        wait_until(lambda: self._answers("ovsdb-server"), 10, interval=0.02, what="ovsdb-server to answer")

    def start_vswitchd(self) -> None:
        """Start ovs-vswitchd inside the sandbox's network namespace (userspace datapath only)."""
        argv = ["ovs-vswitchd", self.remote, "--disable-system", *self._common("ovs-vswitchd")]
        self._spawn("ovs-vswitchd", ["ip", "netns", "exec", self.netns, *argv])
        wait_until(lambda: self._answers("ovs-vswitchd"), 10, interval=0.02, what="ovs-vswitchd to answer")

    def _answers(self, name: str) -> bool:
        proc = self._procs[name]
        if proc.poll() is not None:
            log = (self.base / f"{name}.stderr").read_text(errors="replace")[-2000:]
            raise SandboxError(f"{name} exited with {proc.returncode}: {log}")
        run(["ovs-appctl", "-t", self.ctl(name), "version"], timeout=5)
        return True

    def stop_daemon(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop one daemon (by the process id this sandbox started) and wait for it to exit."""
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart_vswitchd(self) -> None:
        """Kill ovs-vswitchd (SIGKILL: no clean shutdown) and start it again."""
        self.stop_daemon("ovs-vswitchd", signal.SIGKILL)
        self.start_vswitchd()

    def stop(self) -> None:
        """Stop both daemons, delete the namespace if the sandbox made it, remove the directory."""
        self.stop_daemon("ovs-vswitchd")
        self.stop_daemon("ovsdb-server")
        if self._own_netns:
            run(["ip", "netns", "del", self.netns])
            self._own_netns = False
        shutil.rmtree(self.base, ignore_errors=True)

    def vsctl(self, *args: str, timeout: float = _CMD_TIMEOUT) -> str:
        """ovs-vsctl against the sandbox's database; returns stdout."""
        return run(["ovs-vsctl", f"--db={self.remote}", f"--timeout={int(timeout)}", *args], timeout=timeout + 5)

    def appctl(self, daemon: str, *args: str) -> str:
        """ovs-appctl to one of the sandbox's daemons; returns stdout."""
        return run(["ovs-appctl", "-t", self.ctl(daemon), *args])

    def ofctl(self, command: str, bridge: str, *args: str) -> str:
        """ovs-ofctl (OpenFlow 1.3) on one of the sandbox's bridges, through its management socket."""
        return run(["ovs-ofctl", "-O", "OpenFlow13", command, f"unix:{self.base / bridge}.mgmt", *args])

    def netns_exec(self, *argv: str) -> str:
        """Run a command inside the sandbox's namespace (where ovs-vswitchd's ports live)."""
        return run(["ip", "netns", "exec", self.netns, *argv])
