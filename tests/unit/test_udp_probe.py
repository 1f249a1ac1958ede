"""The lab's traffic probe tells loss from reordering: a datagram overtaken on a path change fills its gap."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labs.labkit import udp_probe
from labs.labkit.probe import Probe


def receive(order: list[int], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The receiver's events for one flow's datagrams arriving in `order` (sent 1 ms apart)."""
    flows: dict[str, udp_probe._FlowState] = {}
    for seq in order:
        udp_probe._received(flows, "f", seq, seq * 1_000_000)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


class Receiver:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def gaps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    probe = Probe.__new__(Probe)
    probe._receivers = [Receiver(events)]  # type: ignore[list-item]
    return probe.gaps()


def test_a_reordered_datagram_is_not_lost(capsys: pytest.CaptureFixture[str]) -> None:
    events = receive([0, 1, 3, 2, 4], capsys)
    assert [e["event"] for e in events] == ["first", "gap", "late"]
    assert gaps(events) == []


def test_a_lost_datagram_stays_lost_next_to_a_late_one(capsys: pytest.CaptureFixture[str]) -> None:
    events = receive([0, 1, 5, 3, 6], capsys)  # 2 and 4 never come, 3 comes late
    (gap,) = gaps(events)
    assert gap["lost"] == 2 and (gap["from_ns"], gap["to_ns"]) == (1_000_000, 5_000_000)


@given(st.permutations(range(40)), st.sets(st.integers(1, 38), max_size=10))
def test_gaps_count_exactly_what_never_came(order: list[int], dropped: set[int]) -> None:
    """Whatever the arrival order, the gaps' losses add up to the datagrams that never arrived (after the
    first one received, and before the last)."""
    arrived = [s for s in order if s not in dropped]
    flows: dict[str, udp_probe._FlowState] = {}
    events: list[dict[str, Any]] = []
    with patch.object(udp_probe, "_emit", events.append):
        for seq in arrived:
            udp_probe._received(flows, "f", seq, seq * 1_000_000)
    first, top = arrived[0], max(arrived)
    never = {s for s in dropped if first < s < top}
    assert sum(g["lost"] for g in gaps(events)) == len(never)
