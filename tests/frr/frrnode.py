"""A switch-like FRR node for tests and the bench: FRR 8.4 with its default paths, in private namespaces.

Each node is a holder process made by `unshare` with its own network, mount, UTS and PID namespaces:
a tmpfs on /run (tor-agent's engine lock lands there, not on the host), /etc/frr, /run/frr and /var/log/frr, its
own hostname, FRR started by its init script
(`frrinit.sh`: watchfrr, zebra, ospfd, staticd, bfdd). Killing the holder (PID 1 of the node's PID
namespace) ends every process of the node and frees its namespaces, even when the test runner dies
(the kernel sends SIGKILL down the chain). Nothing is created in the host's network namespace and no
named netns is left behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tor_agent.frr.config_file import IntegratedConfig
from tor_agent.frr.vtysh import Vtysh
from tor_agent.wait import wait_until

FRR_DIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "ospfd", "staticd", "bfdd")
_PR_SET_PDEATHSIG = 1

_DAEMONS_FILE = """\
zebra=yes
ospfd=yes
staticd=yes
bfdd=yes
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
ospfd_options="  -A 127.0.0.1"
staticd_options="-A 127.0.0.1"
bfdd_options="   -A 127.0.0.1"
"""

# Runs as PID 1 of the node: private FRR directories, hostname, lo up; then reaps orphans until killed.
_HOLDER = r"""
import os, signal, subprocess, sys
name, daemons = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True)  # a node's own /run
os.mkdir("/run/frr")
for d, mode in (("/etc/frr", "0750"), ("/run/frr", "0755"), ("/var/log/frr", "0755")):
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", d], check=True)
    subprocess.run(["chown", "frr:frr", d], check=True)
files = {
    "daemons": daemons,
    "vtysh.conf": "service integrated-vtysh-config\n",
    "frr.conf": "service integrated-vtysh-config\n",
}
for f, text in files.items():
    with open(f"/etc/frr/{f}", "w") as out:
        out.write(text)
    os.chmod(f"/etc/frr/{f}", 0o640)
    subprocess.run(["chown", "frr:frr", f"/etc/frr/{f}"], check=True)
subprocess.run(["hostname", name], check=True)
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # as PID 1, let the kernel reap every orphaned daemon
print("ready", flush=True)
while True:
    signal.pause()
"""


def skip_reason() -> str | None:
    """Why FRR node tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network, mount, UTS and PID namespaces)"
    missing = [str(FRR_DIR / d) for d in (*DAEMONS, "watchfrr", "frrinit.sh") if not (FRR_DIR / d).exists()]
    missing += [tool for tool in ("vtysh", "unshare", "nsenter", "ip") if shutil.which(tool) is None]
    return f"needs FRR 8.4 and util-linux (apt install frr iproute2): missing {', '.join(missing)}" if missing else None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class FrrNode:
    """One node; `start()` makes its namespaces, `start_frr()` starts FRR, `close()` ends everything."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid = 0
        self._unshare: subprocess.Popen[str] | None = None

    def start(self) -> FrrNode:
        """Create the node's namespaces and private FRR directories."""
        argv = ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]
        argv += ["--propagation", "private", sys.executable, "-c", _HOLDER, self.name, _DAEMONS_FILE]
        self._unshare = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        assert self._unshare.stdout is not None
        if self._unshare.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"node {self.name}: namespace holder did not start")
        self.pid = wait_until(lambda: _child_of(self._pid_of_unshare()), 5, what=f"{self.name}'s holder pid")
        return self

    def _pid_of_unshare(self) -> int:
        assert self._unshare is not None
        return self._unshare.pid

    def enter(self, pid_ns: bool = False) -> tuple[str, ...]:
        """The argv prefix that runs a command inside the node."""
        return ("nsenter", "-t", str(self.pid), "-n", "-m", "-u", *(("-p",) if pid_ns else ()), "--")

    def run(
        self,
        *argv: str,
        check: bool = True,
        pid_ns: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the node; raise with its output when it fails and `check` is set."""
        result = subprocess.run(
            [*self.enter(pid_ns), *argv], capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)} -> {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def vtysh(self) -> Vtysh:
        """A Vtysh that talks to this node's FRR."""
        return Vtysh(prefix=self.enter())

    def frr_conf(self) -> IntegratedConfig:
        """The node's /etc/frr/frr.conf, as seen from outside the node."""
        return IntegratedConfig(Path(f"/proc/{self.pid}/root/etc/frr/frr.conf"))

    def start_frr(self) -> None:
        """Start FRR as the init script does, and wait until every daemon answers vtysh."""
        self.run(str(FRR_DIR / "frrinit.sh"), "start", pid_ns=True)
        self.wait_frr()

    def restart_frr(self) -> None:
        """Stop every FRR daemon and start them again (they load /etc/frr/frr.conf)."""
        self.run(str(FRR_DIR / "frrinit.sh"), "restart", pid_ns=True)
        self.wait_frr()

    def wait_frr(self) -> None:
        """Wait until watchfrr reports every daemon up."""
        wait_until(self._frr_up, 30, what=f"FRR daemons on {self.name}")

    def _frr_up(self) -> bool:
        out = self.run("vtysh", "-c", "show watchfrr", check=False).stdout
        return all(f"{d}" in out for d in DAEMONS) and "Up" in out and "Down" not in out

    def show_json(self, command: str) -> Any:
        """`vtysh -c COMMAND` parsed as JSON."""
        return json.loads(self.run("vtysh", "-c", command).stdout)

    def close(self) -> None:
        """End every process of the node (its namespaces go with them)."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        if self._unshare is not None:
            self._unshare.kill()
            self._unshare.wait(timeout=10)
            if self._unshare.stdout is not None:
                self._unshare.stdout.close()
            self._unshare = None


def veth(node: FrrNode, ifname: str, address: str) -> None:
    """An uplink-like interface inside `node`: one end of a veth pair (the other end, `<ifname>p`, stays idle)."""
    batch_ip(
        node,
        [
            f"link add {ifname} type veth peer name {ifname}p",
            f"addr add {address} dev {ifname}",
            f"link set {ifname}p up",
            f"link set {ifname} up",
        ],
    )


def link(a: FrrNode, a_if: str, a_addr: str, b: FrrNode, b_if: str, b_addr: str, mtu: int = 1500) -> None:
    """A veth pair between two nodes, addressed and up on both ends."""
    a.run("ip", "link", "add", a_if, "mtu", str(mtu), "type", "veth", "peer", "name", b_if, "netns", str(b.pid))
    for node, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
        node.run("ip", "addr", "add", addr, "dev", ifname)
        node.run("ip", "link", "set", ifname, "mtu", str(mtu), "up")


def batch_ip(node: FrrNode, commands: Sequence[str]) -> None:
    """Run many `ip` commands in the node at once (`ip -batch`)."""
    result = subprocess.run(
        [*node.enter(), "ip", "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{node.name}: ip -batch failed: {result.stderr}")


def _child_of(ppid: int) -> int:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            return int(entry.name)
    return 0
