"""`tor-agent run` (tor_agent.daemon) with in-memory drivers: start, READY/WATCHDOG/STATUS, retry until the
daemons answer, netlink events, SIGHUP reload (a bad file changes nothing), SIGTERM (exit 0), exit 2."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from test_engine import ECMP, LEAF, Fakes, ospf

from tor_agent.daemon import Daemon, DaemonOptions, SdNotify
from tor_agent.frr.apply import DaemonsDown
from tor_agent.net import NetlinkChanges
from tor_agent.reconcile.engine import EngineDrivers
from tor_agent.wait import wait_until


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    yield sock
    sock.close()


def messages(sock: socket.socket) -> list[str]:
    """Every datagram waiting, without blocking."""
    found = []
    sock.setblocking(False)
    try:
        while True:
            found.append(sock.recv(4096).decode())
    except BlockingIOError:
        return found
    finally:
        sock.settimeout(5)


@dataclass
class FakeMonitor:
    """A NetlinkMonitor whose changes the test injects (a pipe makes it readable)."""

    pending: list[NetlinkChanges] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)

    def fileno(self) -> int:
        return self.r

    def inject(self, changes: NetlinkChanges) -> None:
        self.pending.append(changes)
        os.write(self.w, b"x")

    def read(self) -> NetlinkChanges:
        with contextlib.suppress(BlockingIOError):
            os.read(self.r, 64)
        changes = NetlinkChanges()
        while self.pending:
            changes.merge(self.pending.pop())
        return changes

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def write_intent(path: Path, **ospf_edits: object) -> Path:
    doc = yaml.safe_load(yaml.safe_dump(LEAF))
    doc["underlay"]["ospf"].update(ospf_edits)
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Running:
    daemon: Daemon
    fakes: Fakes
    monitor: FakeMonitor
    status_file: Path
    result: list[int] = field(default_factory=list)

    def status(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}


def start(tmp_path: Path, sock: socket.socket | None, fakes: Fakes, config: Path) -> Running:
    monitor = FakeMonitor()
    options = DaemonOptions(
        config=config, full_every=60.0, debounce=0.01, status_file=tmp_path / "status.json", lock=tmp_path / "lock"
    )
    drivers: Callable[[Path], EngineDrivers] = lambda _state_dir: fakes.engine(tmp_path).drivers  # noqa: E731
    notify = SdNotify(sock.getsockname() if sock is not None else None, watchdog_usec=30_000_000)
    daemon = Daemon(options, drivers=drivers, notify=notify, monitor=lambda: monitor)  # type: ignore[arg-type,return-value]
    return Running(daemon, fakes, monitor, options.status_file)


def serve(running: Running, until: Callable[[Running], object], then: Callable[[Running], None]) -> int:
    """Run the daemon in this (the main) thread; a helper thread waits for `until`, then does `then`."""

    def driver() -> None:
        try:
            wait_until(lambda: until(running), 10, 0.01, "the daemon to get there")
            then(running)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=driver, daemon=True)
    helper.start()
    code = running.daemon.run()
    helper.join(5)
    return code


def test_invalid_intent_at_start_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("version: 1\nnode: {}\n")
    fakes = Fakes()
    assert start(tmp_path, None, fakes, bad).daemon.run() == 2
    assert fakes.kernel.calls == [] and fakes.overlay.converged == []


def test_first_pass_then_ready_watchdog_status_and_clean_exit(tmp_path: Path, notify_socket: socket.socket) -> None:
    fakes = Fakes()
    running = start(tmp_path, notify_socket, fakes, write_intent(tmp_path / "agent.yaml"))
    code = serve(running, lambda r: r.status().get("ready"), lambda r: None)
    assert code == 0
    sent = messages(notify_socket)
    assert sent[0] == "WATCHDOG=1"
    assert any(m.startswith("READY=1") for m in sent)
    assert any(m.startswith("STATUS=leaf1: ready; full pass:") for m in sent)
    assert fakes.kernel.calls[:2] == ["macs", "apply_links"]


def test_first_pass_is_retried_until_the_daemons_answer(tmp_path: Path, notify_socket: socket.socket) -> None:
    fakes = Fakes()
    fakes.frr.error = DaemonsDown(frozenset({"ospfd"}))
    running = start(tmp_path, notify_socket, fakes, write_intent(tmp_path / "agent.yaml"))

    def not_ready_then_fixed(r: Running) -> None:
        assert not r.status().get("ready") and not any(m.startswith("READY") for m in messages(notify_socket))
        fakes.frr.error = None
        wait_until(lambda: r.status().get("ready"), 5, 0.01, "ready once FRR answers")

    serve(running, lambda r: len(fakes.frr.calls) >= 1 and r.status(), not_ready_then_fixed)
    assert len(fakes.frr.calls) >= 2 and running.daemon.ready


def test_route_change_runs_an_overlay_pass_link_change_a_full_one(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))

    def events(r: Running) -> None:
        frr_before = len(fakes.frr.calls)
        fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
        r.monitor.inject(NetlinkChanges(routes=True))
        wait_until(lambda: r.status()["last_pass"]["peers"], 5, 0.01, "an overlay pass with the new peer")  # type: ignore[index]
        assert r.status()["last_pass"]["scope"] == "overlay" and len(fakes.frr.calls) == frr_before  # type: ignore[index]
        r.monitor.inject(NetlinkChanges(links=True))
        wait_until(lambda: len(fakes.frr.calls) > frr_before, 5, 0.01, "a full pass after a link change")

    serve(running, lambda r: r.status().get("ready"), events)
    assert set(fakes.overlay.converged[-1].tunnels) == {ospf("198.18.0.12").prefix.network_address}


def test_a_held_tunnel_goes_when_its_hold_down_ends_without_another_event(tmp_path: Path) -> None:
    fakes = Fakes()
    fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))
    config = write_intent(tmp_path / "agent.yaml")
    doc = yaml.safe_load(config.read_text())
    doc["overlay"]["tunnels"]["hold_down_s"] = 1
    config.write_text(yaml.safe_dump(doc))
    running = start(tmp_path, None, fakes, config)
    tunnels = lambda: {str(p) for p in fakes.overlay.converged[-1].tunnels}  # noqa: E731

    def events(r: Running) -> None:
        fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
        r.monitor.inject(NetlinkChanges(routes=True))
        wait_until(lambda: r.status()["last_pass"]["held_peers"], 5, 0.01, "an overlay pass holding 198.18.0.13")  # type: ignore[index]
        assert tunnels() == {"198.18.0.12", "198.18.0.13"}
        wait_until(lambda: tunnels() == {"198.18.0.12"}, 5, 0.01, "the tunnel to 198.18.0.13 to go after 1 s")

    serve(running, lambda r: r.status().get("ready") and len(tunnels()) == 2, events)
    assert running.status()["last_pass"]["held_peers"] == {}  # type: ignore[index]


def test_sighup_with_a_bad_file_changes_nothing_and_a_good_one_is_applied(tmp_path: Path) -> None:
    fakes = Fakes()
    config = write_intent(tmp_path / "agent.yaml")
    running = start(tmp_path, None, fakes, config)

    def reloads(r: Running) -> None:
        passes = r.status()["passes"]
        config.write_text(config.read_text().replace("area: 0.0.0.0", "area: not-an-area"))
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: r.status().get("reload_error"), 5, 0.01, "the refused reload to be reported")
        assert r.status()["passes"] == passes and r.daemon.intent is not None
        assert r.daemon.intent.underlay.ospf.area == "0.0.0.0"
        write_intent(config, maximum_paths=4)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: r.status()["passes"] > passes and not r.status()["reload_error"], 5, 0.01, "a pass")  # type: ignore[operator]
        assert r.daemon.intent.underlay.ospf.maximum_paths == 4

    assert serve(running, lambda r: r.status().get("ready"), reloads) == 0


def test_sd_notify_abstract_socket_and_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@tor-agent-test")
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notify = SdNotify.from_env()
    assert notify.address == "\0tor-agent-test" and notify.watchdog_interval == 10.0
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert SdNotify.from_env().watchdog_interval == 15.0  # at least every 15 s
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert SdNotify.from_env().watchdog_usec is None  # meant for another process
    SdNotify(None).send("READY=1")  # without a socket: nothing, no error


def test_metrics_textfile_after_the_first_pass(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))
    metrics = tmp_path / "tor-agent.prom"
    running.daemon.options = dataclasses.replace(running.daemon.options, metrics_file=metrics)
    code = serve(running, lambda r: metrics.exists(), lambda r: None)
    assert code == 0
    lines = metrics.read_text().splitlines()
    assert "tor_agent_reconcile_passes_total 1" in lines
    assert "tor_agent_last_apply_success 1" in lines
    assert "tor_agent_drift_repairs_total 0" in lines  # the first pass is the initial apply, not drift
