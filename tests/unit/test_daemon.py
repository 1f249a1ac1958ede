"""`tor-agent run` (tor_agent.daemon) with in-memory drivers: start, READY/WATCHDOG/STATUS, retry until the
daemons answer, netlink events, SIGHUP reload (a bad file changes nothing), `apply` through the control socket,
SIGTERM (exit 0), exit 2."""

from __future__ import annotations

import contextlib
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
from engine_fakes import ECMP, Fakes, ospf
from test_engine import LEAF

from tor_agent.daemon.control import request
from tor_agent.daemon.notify import SdNotify
from tor_agent.daemon.service import Daemon, DaemonOptions
from tor_agent.frr.apply import DaemonsDown
from tor_agent.model.routes import KernelRoute
from tor_agent.net import NetlinkChanges
from tor_agent.net.monitor import RouteUpdate
from tor_agent.reconcile.drivers import Drivers
from tor_agent.render.isolated import ChildRenderer
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


def start(
    tmp_path: Path,
    sock: socket.socket | None,
    fakes: Fakes,
    config: Path,
    fingerprint: Callable[[], str] = lambda: "FRR as it is",
) -> Running:
    monitor = FakeMonitor()
    options = DaemonOptions(
        config=config,
        full_every=60.0,
        debounce=0.01,
        status_file=tmp_path / "status.json",
        lock=tmp_path / "lock",
        control_socket=tmp_path / "control.sock",
        state_dir=tmp_path / "state",
        startup_file=tmp_path / "startup.json",
    )
    drivers: Callable[[Path], Drivers] = lambda _state_dir: fakes.drivers()  # noqa: E731
    notify = SdNotify(sock.getsockname() if sock is not None else None, watchdog_usec=30_000_000)
    daemon = Daemon(options, drivers=drivers, notify=notify, monitor=lambda: monitor, frr_fingerprint=fingerprint)  # type: ignore[arg-type,return-value]
    return Running(daemon, fakes, monitor, options.status_file)


def serve(running: Running, until: Callable[[Running], object], then: Callable[[Running], None]) -> int:
    """Run the daemon in this (the main) thread; a helper thread waits for `until`, then does `then`. What the
    helper raised (a failed assertion) is raised here once the daemon stopped."""
    failed: list[BaseException] = []

    def driver() -> None:
        try:
            wait_until(lambda: until(running), 10, 0.01, "the daemon to get there")
            then(running)
        except BaseException as e:
            failed.append(e)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=driver, daemon=True)
    helper.start()
    code = running.daemon.run()
    helper.join(5)
    if failed:
        raise failed[0]
    return code


def test_invalid_intent_at_start_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("version: 1\nnode: {}\n")
    fakes = Fakes()
    assert start(tmp_path, None, fakes, bad).daemon.run() == 2
    assert fakes.kernel.calls == [] and fakes.ovs.converged == [] and fakes.frr.calls == []


def test_first_pass_then_ready_watchdog_status_and_clean_exit(tmp_path: Path, notify_socket: socket.socket) -> None:
    fakes = Fakes()
    running = start(tmp_path, notify_socket, fakes, write_intent(tmp_path / "agent.yaml"))
    code = serve(running, lambda r: r.status().get("ready"), lambda r: None)
    assert code == 0
    sent = messages(notify_socket)
    assert sent[0] == "WATCHDOG=1"
    assert any(m.startswith("READY=1") for m in sent)
    assert any(m.startswith("STATUS=leaf1: ready; full pass:") for m in sent)
    assert fakes.kernel.calls[0] == "macs" and len(fakes.links.applied) == 1


def test_first_pass_is_retried_until_the_daemons_answer(tmp_path: Path, notify_socket: socket.socket) -> None:
    fakes = Fakes()
    fakes.frr.error = DaemonsDown(frozenset({"ospfd"}))
    running = start(tmp_path, notify_socket, fakes, write_intent(tmp_path / "agent.yaml"))

    def not_ready_then_fixed(r: Running) -> None:
        assert not r.status().get("ready") and not any(m.startswith("READY") for m in messages(notify_socket))
        fakes.frr.error = None
        wait_until(lambda: r.status().get("ready"), 5, 0.01, "ready once FRR answers")

    serve(running, lambda r: "apply" in fakes.frr.calls and r.status(), not_ready_then_fixed)
    assert fakes.frr.calls.count("apply") >= 2 and running.daemon.ready


def test_route_change_runs_an_overlay_pass_link_change_a_full_one(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))

    def events(r: Running) -> None:
        frr_before = fakes.frr.calls.count("apply")
        fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
        r.monitor.inject(NetlinkChanges(routes=True))
        wait_until(lambda: r.status()["last_pass"]["peers"], 5, 0.01, "an overlay pass with the new peer")  # type: ignore[index]
        assert r.status()["last_pass"]["scope"] == "overlay" and fakes.frr.calls.count("apply") == frr_before  # type: ignore[index]
        r.monitor.inject(NetlinkChanges(links=True))
        wait_until(lambda: fakes.frr.calls.count("apply") > frr_before, 5, 0.01, "a full pass after a link change")

    serve(running, lambda r: r.status().get("ready"), events)
    assert fakes.ovs.tunnels == {ospf("198.18.0.12").prefix.network_address}


def test_a_held_tunnel_goes_when_its_hold_down_ends_without_another_event(tmp_path: Path) -> None:
    fakes = Fakes()
    fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))
    config = write_intent(tmp_path / "agent.yaml")
    doc = yaml.safe_load(config.read_text())
    doc["overlay"]["tunnels"]["hold_down_s"] = 1
    config.write_text(yaml.safe_dump(doc))
    running = start(tmp_path, None, fakes, config)
    tunnels = lambda: {str(p) for p in fakes.ovs.tunnels}  # noqa: E731

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
    running.daemon.reporter.metrics_file = metrics
    code = serve(running, lambda r: metrics.exists(), lambda r: None)
    assert code == 0
    lines = metrics.read_text().splitlines()
    assert "tor_agent_reconcile_passes_total 1" in lines
    assert "tor_agent_last_apply_success 1" in lines
    assert "tor_agent_drift_repairs_total 0" in lines  # the first pass is the initial apply, not drift


def test_sighup_with_an_intent_frr_refuses_is_refused_and_counted(tmp_path: Path) -> None:
    fakes = Fakes()
    config = write_intent(tmp_path / "agent.yaml")
    running = start(tmp_path, None, fakes, config)
    metrics = tmp_path / "tor-agent.prom"
    running.daemon.reporter.metrics_file = metrics

    def reload_refused(r: Running) -> None:
        passes = r.status()["passes"]
        applied = len(fakes.links.applied)
        fakes.frr.refuse = "rendered line 12 `bogus`"
        write_intent(config, maximum_paths=4)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: r.status().get("reload_error"), 5, 0.01, "the refused reload to be reported")
        assert "FRR's parser" in str(r.status()["reload_error"]) and r.status()["passes"] == passes
        assert len(fakes.links.applied) == applied and r.daemon.intent.underlay.ospf.maximum_paths == 256
        assert "tor_agent_config_reload_failures_total 1" in metrics.read_text().splitlines()

    assert serve(running, lambda r: r.status().get("ready"), reload_refused) == 0


def test_apply_through_the_control_socket_runs_the_new_intent_at_once(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))
    other = write_intent(tmp_path / "other.yaml", maximum_paths=4)
    answers: list[dict[str, object]] = []

    def apply_other(r: Running) -> None:
        answers.append(request({"op": "apply", "config": str(other)}, tmp_path / "control.sock", 10))
        bad = tmp_path / "bad.yaml"
        bad.write_text("version: 1\n")
        answers.append(request({"op": "apply", "config": str(bad)}, tmp_path / "control.sock", 10))

    assert serve(running, lambda r: r.status().get("ready"), apply_other) == 0
    applied, refused = answers
    assert applied["ok"] is True and applied["config"] == str(other)
    report = applied["report"]
    assert isinstance(report, dict) and report["scope"] == "full" and report["hostname"] == "leaf1"
    assert "maximum-paths 4" in fakes.frr.rendered[-1]  # the new intent was checked and then run
    assert running.daemon.intent.underlay.ospf.maximum_paths == 4 and running.status()["config"] == str(other)
    assert refused["ok"] is False and refused["exit"] == 2 and "node" in str(refused["error"])


def moved_route(fakes: Fakes, vtep: str) -> KernelRoute:
    """`vtep`'s route with only the nexthop its OVS route does not use now left (that one died)."""
    (now,) = [r for r in fakes.routes.table if str(r.prefix.network_address) == vtep]
    (left,) = [hop for hop in ECMP if hop[1] != now.device]
    return ospf(vtep, left)


def test_a_route_change_moves_ovs_routes_from_the_event_then_the_overlay_pass_follows(tmp_path: Path) -> None:
    fakes = Fakes()
    fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP), ospf("198.18.0.13", *ECMP))
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))
    running.daemon.schedule.debounce = 0.5  # the overlay pass comes well after the routes pass

    def events(r: Running) -> None:
        dumps = fakes.kernel.calls.count("routes")
        moved = moved_route(fakes, "198.18.0.12")
        fakes.kernel.routes_now = (moved, ospf("198.18.0.13", *ECMP))  # what a dump says from now on
        r.monitor.inject(NetlinkChanges(routes=True, route_updates=[RouteUpdate(moved)]))

        def rerouted() -> bool:
            return any(str(x.prefix.network_address) == "198.18.0.12" and x.device == moved.nexthops[0].ifname
                       for x in fakes.routes.table)  # fmt: skip

        wait_until(rerouted, 5, 0.005, "the OVS route to move")
        wait_until(lambda: r.status()["last_pass"]["scope"] == "routes", 5, 0.005, "the routes pass's report")  # type: ignore[index]
        assert fakes.kernel.calls.count("routes") == dumps  # from the event: no dump
        assert r.status()["cpu"]["passes"]["routes"]["passes"] == 1  # type: ignore[index]
        wait_until(lambda: r.status()["last_pass"]["scope"] == "overlay", 5, 0.01, "the overlay pass after it")  # type: ignore[index]
        assert fakes.kernel.calls.count("routes") == dumps  # the kept table is the kernel's: no dump either

    serve(running, lambda r: r.status().get("ready") and len(fakes.routes.table) == 2, events)


def test_after_a_link_change_route_events_wait_for_the_full_pass_which_dumps(tmp_path: Path) -> None:
    """The kernel flushes a downed link's routes without an event: the kept table is not trusted until the next
    dump, so the route change is left to the (full) pass, which dumps the table and reads the MACs again."""
    fakes = Fakes()
    fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))

    def events(r: Running) -> None:
        moved = moved_route(fakes, "198.18.0.12")
        fakes.kernel.routes_now = (moved,)
        passes, reads = r.status()["passes"], list(fakes.kernel.calls)
        r.monitor.inject(NetlinkChanges(links=True, routes=True, route_updates=[RouteUpdate(moved)]))
        wait_until(lambda: r.status()["passes"] > passes, 5, 0.01, "the next pass")  # type: ignore[operator]
        assert r.status()["last_pass"]["scope"] == "full"  # type: ignore[index]
        assert fakes.kernel.calls == [*reads, "macs", "routes"]
        assert "routes" not in r.status()["cpu"]["passes"]  # type: ignore[index]
        assert [x.device for x in fakes.routes.table] == [moved.nexthops[0].ifname]

    serve(running, lambda r: r.status().get("ready") and fakes.routes.table, events)


def test_a_periodic_full_pass_reads_no_kernel_table_and_frr_only_when_it_moved(tmp_path: Path) -> None:
    fakes = Fakes()
    fakes.kernel.routes_now = (ospf("198.18.0.12", *ECMP),)
    marks = ["boot"]
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"), fingerprint=lambda: marks[0])

    running.daemon.schedule.full_every = 0.1

    def periodic(r: Running) -> None:
        marks[0] = "as applied"
        wait_until(lambda: r.status()["passes"] >= 4, 5, 0.01, "three periodic full passes")  # type: ignore[operator]
        assert fakes.kernel.calls == ["macs", "routes"]  # only the first pass read the kernel
        reads = r.status()["reads"]
        assert isinstance(reads, dict) and reads["frr"] == 2 and reads["frr_unchanged"] >= 2 and reads["routes"] == 1

    serve(running, lambda r: r.status().get("ready"), periodic)


def test_the_daemon_renders_in_a_child_and_reports_cpu_per_pass(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, write_intent(tmp_path / "agent.yaml"))
    assert isinstance(running.daemon.writer.engine.render, ChildRenderer)
    serve(running, lambda r: r.status().get("ready"), lambda r: None)
    cpu = running.status()["cpu"]
    assert isinstance(cpu, dict) and cpu["passes"]["full"]["passes"] == 1 and cpu["process_s"] > 0
    assert cpu["passes"]["full"]["cpu_s"] >= cpu["passes"]["full"]["last_cpu_s"] > 0
