"""Network namespaces for tests: each test creates its own and deletes it, and runs Python inside it.

`Netns.run(fn, ...)` forks, moves the child into the namespace with setns(2) and returns what `fn`
returned (or raises what it raised): pyroute2 sockets, /proc/sys/net and `nft` then all see that
namespace, exactly as tor-agent does on a switch.
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def skip_reason() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt install iproute2 nftables)"
    return None


def sh(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command (argv list, timeout); raise with its stderr when `check` and it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


class Netns:
    """A network namespace this test created (or, with create=False, one made elsewhere); `delete()` removes it."""

    def __init__(self, name: str, create: bool = True) -> None:
        self.name = name
        if create:
            sh("ip", "netns", "add", name)
            self.ip("link", "set", "lo", "up")

    def delete(self) -> None:
        """Delete the namespace (its interfaces go with it)."""
        sh("ip", "netns", "delete", self.name, check=False)

    def ip(self, *args: str, check: bool = True) -> str:
        """`ip -n <ns> ...`, its stdout."""
        return sh("ip", "-n", self.name, *args, check=check).stdout

    def ip_json(self, *args: str) -> Any:
        """`ip -j -n <ns> ...`, parsed."""
        return json.loads(self.ip("-j", *args) or "[]")

    def exec(self, *argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace."""
        return sh("ip", "netns", "exec", self.name, *argv, check=check, timeout=timeout)

    def addresses(self, ifname: str) -> set[str]:
        """The IPv4 addresses of `ifname`, as "a.b.c.d/len", read with iproute2 (not with tor-agent's code)."""
        (link,) = self.ip_json("address", "show", "dev", ifname)
        return {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"}

    def link(self, ifname: str) -> dict[str, Any]:
        """`ip -j link show dev <ifname>`."""
        (link,) = self.ip_json("link", "show", "dev", ifname)
        return dict(link)

    def veth_uplinks(self, addresses: dict[str, str]) -> None:
        """One up veth per `name: address` (its peer `p-<name>` up too, in the namespace), as a leaf's uplinks."""
        for name, address in addresses.items():
            self.ip("link", "add", name, "type", "veth", "peer", "name", f"p-{name}")
            self.ip("address", "add", address, "dev", name)
            self.ip("link", "set", name, "up")
            self.ip("link", "set", f"p-{name}", "up")

    def sysctl(self, key: str) -> str:
        """A sysctl of the namespace."""
        return self.exec("sysctl", "-n", key).stdout.strip()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)` in a child process inside the namespace; return or raise its outcome."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            try:
                payload = self._child(fn, args, kwargs)
                with os.fdopen(write_end, "wb") as f:
                    f.write(payload)
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _child(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> bytes:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(NETNS_DIR, self.name), os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.name}")
            os.close(fd)
            result: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except BaseException as e:
            result = (False, e)
        try:
            return pickle.dumps(result)
        except Exception as e:
            return pickle.dumps((False, RuntimeError(f"unpicklable result {result!r}: {e}")))
