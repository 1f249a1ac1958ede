"""Start-up protection (tor_agent.reconcile.startup) and how ospfd's age is read (tor_agent.frr.daemons)."""

from __future__ import annotations

import os
from pathlib import Path

from tor_agent.frr.daemons import DaemonProcess, ospfd
from tor_agent.reconcile.startup import StartupHold, remember, remembered


def test_a_young_ospfd_begins_a_hold_counted_from_its_start() -> None:
    hold = StartupHold(120)
    assert hold.ospfd(DaemonProcess(100, age_s=3.0), now=1000.0) and hold.since == 997.0
    assert not hold.ospfd(DaemonProcess(100, age_s=4.0), now=1001.0)  # the same ospfd: nothing new
    assert not hold.expired(1116.9) and hold.expired(1117.0)
    hold.release()
    assert not hold.active


def test_an_old_ospfd_at_the_agents_start_is_no_start_up() -> None:
    hold = StartupHold(120)
    assert not hold.ospfd(DaemonProcess(100, age_s=3600.0), now=1000.0) and not hold.active
    assert hold.ospfd(DaemonProcess(200, age_s=0.5), now=2000.0)  # watchfrr restarted it


def test_no_ospfd_or_no_protection_holds_nothing() -> None:
    assert not StartupHold(120).ospfd(None, now=1.0)
    assert not StartupHold(0).ospfd(DaemonProcess(100, age_s=1.0), now=1.0)


def test_max_metric_in_frr_that_the_drain_state_does_not_explain_begins_a_hold() -> None:
    hold = StartupHold(120)
    hold.found_max_metric(running=True, drained=True, now=5.0)
    assert not hold.active  # drained: the operator's
    hold.found_max_metric(running=True, drained=False, now=5.0)
    assert hold.since == 5.0
    hold.found_max_metric(running=True, drained=False, now=9.0)
    assert hold.since == 5.0


def test_ospfd_age_from_its_pid_file_and_proc(tmp_path: Path) -> None:
    run, proc = tmp_path / "run", tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    run.mkdir()
    (run / "ospfd.pid").write_text("4242\n")
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", *["0"] * 18, str(100 * ticks)]  # fields 3..22: start time is field 22
    (proc / "4242" / "stat").write_text(f"4242 (ospf d) {' '.join(fields)} 0 0\n")
    (proc / "uptime").write_text("130.50 200.00\n")
    assert ospfd(run, proc) == DaemonProcess(4242, 30.5)
    (run / "ospfd.pid").write_text("99\n")  # gone
    assert ospfd(run, proc) is None
    assert ospfd(tmp_path / "nothing", proc) is None


def test_once_released_the_same_ospfds_max_metric_is_removed_not_held_again() -> None:
    hold = StartupHold(120)
    hold.ospfd(DaemonProcess(100, age_s=1.0), now=10.0)
    hold.release()
    hold.found_max_metric(running=True, drained=False, now=12.0)
    assert not hold.active  # the pass now renders without max-metric: removed
    hold.ospfd(DaemonProcess(200, age_s=0.2), now=50.0)  # a new ospfd: a new hold
    assert hold.active


def test_an_agent_restarted_after_the_hold_does_not_hold_the_same_ospfd_again(tmp_path: Path) -> None:
    record = tmp_path / "startup.json"
    first = StartupHold(120)
    first.ospfd(DaemonProcess(100, age_s=2.0), now=10.0)
    first.release()
    remember(first, record)
    again = StartupHold(120, released=remembered(record))  # the agent restarted 30 s after FRR
    assert not again.ospfd(DaemonProcess(100, age_s=32.0), now=40.0) and not again.active
    assert again.ospfd(DaemonProcess(101, age_s=1.0), now=60.0)  # FRR itself restarted
    assert remembered(tmp_path / "none.json") is None
