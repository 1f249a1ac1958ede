"""Hosts of a running lab as the overlay tests drive them: pings, the replies a `ping -D` logged, and a VM
moving from one host's port to another's (its MAC and address go along, as a live migration does)."""

from __future__ import annotations

import re

from labs.labkit.nodes import node_run
from labs.nslab.topology import Topology

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.M)


def pings(topo: Topology, src: str, address: str, count: int = 1, interval: float = 0.1) -> bool:
    """`count` pings from node `src` to `address`, every one answered."""
    argv = ["ping", "-c", str(count), "-i", str(interval), "-W", "1", address]
    done = node_run(topo, src, *argv, check=False)
    return done.returncode == 0 and " 0% packet loss" in done.stdout


def reply_times(ping_log: str) -> list[float]:
    """Wall-clock times of the echo replies in the output of `ping -D`."""
    return [float(m[1]) for m in REPLY.finditer(ping_log)]


def move_vm(topo: Topology, leaving: str, arriving: str, address: str, mac: str) -> None:
    """The VM at `leaving`'s eth1 goes down there and comes up at `arriving`'s eth1 with the same MAC and IPv4
    `address` (/24), announcing itself with gratuitous ARP, as hypervisors do."""
    node_run(topo, leaving, "ip", "link", "set", "eth1", "down")
    node_run(topo, arriving, "ip", "link", "set", "eth1", "down")
    node_run(topo, arriving, "ip", "link", "set", "eth1", "address", mac)
    node_run(topo, arriving, "sysctl", "-qw", "net.ipv4.conf.eth1.arp_notify=1")
    node_run(topo, arriving, "ip", "address", "add", f"{address}/24", "dev", "eth1")
    node_run(topo, arriving, "ip", "link", "set", "eth1", "up")


def move_back(topo: Topology, leaving: str, arriving: str, arriving_mac: str) -> None:
    """Undo `move_vm` (best effort, for a test's clean-up): `arriving` gets its own MAC back and no address,
    and `leaving`'s eth1 comes up again."""
    node_run(topo, arriving, "ip", "link", "set", "eth1", "down", check=False)
    node_run(topo, arriving, "ip", "address", "flush", "dev", "eth1", check=False)
    node_run(topo, arriving, "ip", "link", "set", "eth1", "address", arriving_mac, check=False)
    node_run(topo, arriving, "ip", "link", "set", "eth1", "up", check=False)
    node_run(topo, leaving, "ip", "link", "set", "eth1", "up", check=False)
