"""Raw Ethernet frames between the lab's hosts: which host receives which frame, and when.

Tenant isolation cannot be told from pings when two networks use the same addresses and MACs: a reply may
come from the wrong host. So senders put a token into frames of a local experimental EtherType (0x88B5),
addressed to a MAC (a host's, one nobody has, broadcast), and a sniffer on every host prints each such frame
it receives with its arrival time (wall clock, comparable between nodes: they share the machine's clock).
Each runs as a Python process inside its node (`Sniffer`, `Stream`, `send`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from labs.labkit.nodes import Background, background, node_run
from labs.nslab.topology import Topology
from tor_agent.wait import wait_until

ETHERTYPE = 0x88B5  # IEEE 802 local experimental
BROADCAST = "ff:ff:ff:ff:ff:ff"
NOBODY = "02:00:00:00:99:99"  # a unicast MAC no host has: its frames are flooded in their network

SNIFF = f"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons({ETHERTYPE}))
s.bind((sys.argv[1], {ETHERTYPE}))
token = sys.argv[2].encode()
print("ready", flush=True)
while True:
    frame, addr = s.recvfrom(2048)
    if addr[2] != socket.PACKET_OUTGOING and frame[14:14 + len(token)] == token:
        print(f"{{time.time():.6f}} {{frame[14:].split(bytes(1))[0].decode()}} {{frame[:6].hex(':')}}", flush=True)
"""
SEND = f"""
import socket, sys, time
iface, token, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
n = 0
while count == 0 or n < count * (len(sys.argv) - 5):
    for dst in sys.argv[5:]:
        src = bytes.fromhex(open(f"/sys/class/net/{{iface}}/address").read().strip().replace(":", ""))
        payload = f"{{token}}:{{n}}:{{time.time():.6f}}".encode().ljust(46, bytes(1))
        s.send(bytes.fromhex(dst.replace(":", "")) + src + ({ETHERTYPE}).to_bytes(2, "big") + payload)
        n += 1
    if interval:
        time.sleep(interval)
print(n, flush=True)
"""


@dataclass(frozen=True)
class Arrival:
    at: float  # wall clock
    payload: str  # TOKEN:SEQ:SENT_AT
    dst: str  # the frame's destination MAC


def _start(topo: Topology, node: str, script: str, args: list[str], log: Path) -> Background:
    return background(topo, node, ["python3", "-c", script, *args], log)


@dataclass
class Sniffer:
    """Frames carrying `token` that `node` receives on `iface`."""

    topo: Topology
    node: str
    token: str
    log: Path
    iface: str = "eth1"
    running: Background | None = field(default=None, repr=False)

    def start(self) -> Sniffer:
        self.running = _start(self.topo, self.node, SNIFF, [self.iface, self.token], self.log)
        wait_until(lambda: self.log.read_text().startswith("ready"), 10, 0.02, f"the sniffer on {self.node}")
        return self

    def arrivals(self) -> list[Arrival]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                found.append(Arrival(float(parts[0]), parts[1], parts[2]))
        return found

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()


@dataclass
class Stream:
    """`node` sending a frame with `token` to each of `dsts` every `interval` seconds until stopped."""

    topo: Topology
    node: str
    token: str
    dsts: tuple[str, ...]
    log: Path
    interval: float = 0.005
    iface: str = "eth1"
    running: Background | None = field(default=None, repr=False)

    def start(self) -> Stream:
        args = [self.iface, self.token, "0", str(self.interval), *self.dsts]
        self.running = _start(self.topo, self.node, SEND, args, self.log)
        return self

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()


def send(topo: Topology, node: str, token: str, dsts: list[str], count: int = 1, iface: str = "eth1") -> None:
    """`count` frames with `token` from `node` to each of `dsts`, at once."""
    node_run(topo, node, "python3", "-c", SEND, iface, token, str(count), "0", *dsts)


def mac(topo: Topology, node: str, iface: str = "eth1") -> str:
    """The MAC address of `iface` in `node`."""
    return node_run(topo, node, "cat", f"/sys/class/net/{iface}/address").stdout.strip()


def now() -> float:
    """Wall clock, as the frames' times are."""
    return time.time()
