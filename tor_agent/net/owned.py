"""The record of the addresses tor-agent added: the only ones it ever removes.

Why a file: the kernel's address protocol (IFA_PROTO, Linux 5.18+) would mark them in the kernel itself,
but Debian 12's pyroute2 0.7.2 and iproute2 6.1 cannot set or show it. The record lives under /run
because kernel addresses do not survive a reboot either, and because /run is private to each node of
the namespace lab. Entries carry the interface index: an interface deleted and recreated (an OVS bridge
after ovs-vswitchd restarts) is another interface, and what is on it now was not added by tor-agent.
Entries whose address is gone are dropped at every apply. A record that cannot be read is treated as
empty: tor-agent then removes nothing, which is the safe side.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Interface
from pathlib import Path

from tor_agent.fileio import replace_file
from tor_agent.net.errors import NetError
from tor_agent.net.state import OwnedAddress

log = logging.getLogger(__name__)

OWNED_FILE = Path("/run/tor-agent/addresses.json")
VERSION = 1


def load_owned(path: Path) -> frozenset[OwnedAddress]:
    """The recorded addresses; empty if there is no record or it cannot be read (logged)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        return frozenset(
            OwnedAddress(ifname=str(e["ifname"]), ifindex=int(e["ifindex"]), address=IPv4Interface(e["address"]))
            for e in doc["addresses"]
        )
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("%s: cannot read the record of tor-agent's addresses (%s): removing none", path, e)
        return frozenset()


def save_owned(path: Path, owned: Iterable[OwnedAddress]) -> None:
    """Replace the record atomically."""
    entries = [
        {"ifname": o.ifname, "ifindex": o.ifindex, "address": str(o.address)}
        for o in sorted(owned, key=lambda o: (o.ifname, o.address))
    ]
    text = json.dumps({"version": VERSION, "addresses": entries}, indent=1) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text, mode=0o600)
    except OSError as e:
        raise NetError(f"{path}: cannot record tor-agent's addresses: {e.strerror or e}") from e


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock next to the record: one apply at a time (daemon and CLI)."""
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise NetError(f"{lock}: cannot lock: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
