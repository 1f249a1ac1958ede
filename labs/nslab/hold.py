"""The holder: the first process of a node, owning its mount and UTS namespaces for the node's lifetime.

Started by the realiser as `ip netns exec <ns> unshare --mount --uts --propagation private -- labs/lab
_hold ...`. It gives the node a private file tree like a container's: /etc, /var/lib, /usr/local and /opt
are overlays over the host's (the node may add files there without touching the host); in them /etc/frr,
/etc/openvswitch, /etc/tor-agent, /var/lib/openvswitch and /var/lib/tor-agent start empty (opaque
directories: the host's content is hidden, and they are plain directories, not mount points, as in an
image); /var/log is a bind mount of a fresh per-node directory and /run a tmpfs. Then the binds it is given
(the image's files first, then the topology's, which cover them as a container's binds cover its image);
then the hostname. It prints `ready` and waits to be killed.

So inside a node, as inside a container, a mount point under /etc/frr or /etc/tor-agent is always
something a topology bound there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import sys
from pathlib import Path

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MNT_DETACH = 0x2
OVERLAID = ("/etc", "/var/lib", "/usr/local", "/opt")
EMPTY_DIRS = ("/etc/frr", "/etc/openvswitch", "/etc/tor-agent", "/var/lib/openvswitch", "/var/lib/tor-agent")
PRIVATE_DIRS = ("/var/log",)  # bound from the node's directory: its logs stay there on the host
OPAQUE = "trusted.overlay.opaque"
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError naming source and target."""
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def bind(source: Path, target: str, read_only: bool = False) -> None:
    """Bind `source` onto `target`, creating the target (a file or a directory, like the source)."""
    dest = Path(target)
    if not dest.exists():
        private = [d for d in OVERLAID if Path(d).is_dir()] + list(PRIVATE_DIRS)  # a host without /opt: not overlaid
        if not any(dest.resolve().is_relative_to(d) for d in private):
            raise OSError(f"bind target {target} does not exist and is outside the node's private tree")
        if source.is_dir():
            dest.mkdir(parents=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.touch()
    mount(str(source), target, flags=MS_BIND)
    if read_only:
        mount("none", target, flags=MS_BIND | MS_REMOUNT | MS_RDONLY)


def detach_under(root: str) -> None:
    """Lazily unmount every mount below `root` (deepest first). The copies of the host's /run/netns
    mounts would otherwise keep every namespace that existed at `up` (anyone's) alive until `down`."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(root + "/")), key=len, reverse=True):
        if _libc.umount2(point.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
            err = ctypes.get_errno()
            raise OSError(err, f"umount {point}: {os.strerror(err)}")


def private_tree(node_dir: Path) -> None:
    """Overlays with their empty directories, the private directories bound, tmpfs on /run."""
    for lower in OVERLAID:
        if not Path(lower).is_dir():
            continue
        name = lower.strip("/").replace("/", "-")
        upper, work = node_dir / f"{name}.upper", node_dir / f"{name}.work"
        for d in (upper, work):
            d.mkdir(parents=True, exist_ok=True)
        for empty in (Path(e) for e in EMPTY_DIRS if Path(e).is_relative_to(lower)):
            opaque = upper / empty.relative_to(lower)
            opaque.mkdir(parents=True, exist_ok=True)
            os.setxattr(opaque, OPAQUE, b"y")
        mount("overlay", lower, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    for target in PRIVATE_DIRS:
        source = node_dir / target.lstrip("/")
        source.mkdir(parents=True, exist_ok=True)
        bind(source, target)
    detach_under("/run")
    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")


def main(argv: list[str]) -> int:
    """argv: NODE_DIR HOSTNAME [SOURCE TARGET ro|rw]..."""
    node_dir, hostname, rest = Path(argv[0]), argv[1], argv[2:]
    try:
        private_tree(node_dir)
        for i in range(0, len(rest), 3):
            bind(Path(rest[i]), rest[i + 1], read_only=rest[i + 2] == "ro")
        socket.sethostname(hostname)
        Path("/etc/hostname").write_text(hostname + "\n")
    except OSError as e:
        print(f"error: {hostname}: {e}", flush=True)
        return 1
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the realiser stops reading after `ready`
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()
