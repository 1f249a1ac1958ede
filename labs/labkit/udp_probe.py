"""The traffic probe's two halves inside the nodes (stdlib only: run by path with whatever python the node has).

  udp_probe.py recv ADDR PORT                            receive every flow sent to ADDR:PORT
  udp_probe.py send SRC DST PORT INTERVAL_S SPORT...     one flow per source port, a datagram per interval

Both run until their stdin closes and print one JSON event per line (labs.labkit.probe reads them).
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DATAGRAM = struct.Struct("!QQ")  # sequence number, send time (CLOCK_MONOTONIC ns: one clock for every namespace)
PROGRESS_S = 0.1
LATE_WINDOW = 50_000  # a datagram this many sequence numbers late is not told apart from a lost one any more


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def send(src: str, dst: str, port: int, interval_s: float, sports: Sequence[int]) -> None:
    """One UDP flow per source port from `src` to `dst`:`port`, a numbered datagram each `interval_s`.

    Never bursts to catch up after a stall (a stall would otherwise look like loss then reordering).
    Stops when stdin closes; prints what it sent.
    """
    socks = []
    for sport in sports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, sport))
        s.connect((dst, port))
        s.setblocking(False)
        socks.append(s)
    seq, errors = 0, 0
    due = time.monotonic()
    while not select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))[0]:
        for s in socks:
            try:
                s.send(DATAGRAM.pack(seq, time.monotonic_ns()))
            except OSError:  # no route for a moment, a full queue: the receiver sees the gap
                errors += 1
        seq += 1
        due = max(due + interval_s, time.monotonic())
    _emit({"event": "sent", "datagrams": seq, "errors": errors})


@dataclass
class _FlowState:
    received: int = 0
    last_seq: int = -1
    last_ns: int = 0
    reordered: int = 0
    missing: set[int] = field(default_factory=set)  # sequence numbers skipped by a gap, not arrived yet


def recv(addr: str, port: int) -> None:
    """Receive every flow sent to `addr`:`port`; print an event for each flow's first datagram, for every gap
    in a flow's sequence numbers as soon as it closes, and every 0.1 s the send time of each flow's latest
    datagram; stop when stdin closes and print the totals."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((addr, port))
    sock.setblocking(False)
    flows: dict[str, _FlowState] = {}
    _emit({"event": "ready"})
    stopping, progress_due = False, time.monotonic()
    while not stopping:
        ready = select.select([sock, sys.stdin], [], [], PROGRESS_S)[0]
        stopping = sys.stdin in ready
        while True:
            try:
                data, (host, sport) = sock.recvfrom(64)
            except BlockingIOError:
                break
            _received(flows, f"{host}:{sport}", *DATAGRAM.unpack(data[: DATAGRAM.size]))
        if time.monotonic() >= progress_due:
            _emit({"event": "progress", "last_ns": {k: f.last_ns for k, f in flows.items()}})
            progress_due = time.monotonic() + PROGRESS_S
    _emit({"event": "totals", "flows": {k: vars(f) for k, f in flows.items()}})


def _received(flows: dict[str, _FlowState], key: str, seq: int, sent_ns: int) -> None:
    flow = flows.get(key)
    if flow is None:
        flow = flows[key] = _FlowState()
        _emit({"event": "first", "flow": key, "seq": seq})
    elif seq <= flow.last_seq:
        # overtaken on a path change: the gap it opened was reordering, not loss
        flow.reordered += 1
        if seq in flow.missing:
            flow.missing.discard(seq)
            _emit({"event": "late", "flow": key, "seq": seq, "sent_ns": sent_ns})
        return
    elif seq > flow.last_seq + 1:
        _emit({"event": "gap", "flow": key, "lost": seq - flow.last_seq - 1, "from_ns": flow.last_ns, "to_ns": sent_ns})
        flow.missing.update(range(max(flow.last_seq + 1, seq - LATE_WINDOW), seq))
        flow.missing = {m for m in flow.missing if m > seq - LATE_WINDOW}
    flow.received += 1
    flow.last_seq, flow.last_ns = seq, sent_ns


def main(argv: Sequence[str]) -> int:
    """`recv ADDR PORT` or `send SRC DST PORT INTERVAL_S SPORT...`."""
    if argv[:1] == ["recv"] and len(argv) == 3:
        recv(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["send"] and len(argv) >= 6:
        send(argv[1], argv[2], int(argv[3]), float(argv[4]), [int(p) for p in argv[5:]])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
