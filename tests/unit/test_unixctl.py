"""The in-process unixctl client (tor_agent.ovs.unixctl) against a stand-in daemon on a unix socket: a batch
is sent at once and answered in order, a refusal stays with its command, a connection broken since its last
use is opened again, a daemon that does not answer costs the timeout and no more. The real ovs-vswitchd is
in tests/ovs/test_routes.py."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tor_agent.ovs.unixctl import UnixctlClient, UnixctlRefused, UnixctlUnreachable, socket_path

Answer = Callable[[str, list[str]], tuple[Any, Any]]  # method, params -> (result, error)


class StandIn:
    """A unixctl server: answers each request with `answer` (None: never answers), the first ones not
    before `hold` requests have arrived on the connection; closes the connection after `close_after`
    answers; counts connections."""

    def __init__(self, path: Path, answer: Answer | None, close_after: int | None = None, hold: int = 0) -> None:
        self.path, self.answer, self.close_after, self.hold = path, answer, close_after, hold
        self.connections = 0
        self.requests: list[tuple[str, list[str]]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer, decoder, served, arrived, hold = "", json.JSONDecoder(), 0, [], self.hold
        with conn:
            while chunk := conn.recv(65536):
                buffer += chunk.decode()
                while buffer.strip():
                    try:
                        request, end = decoder.raw_decode(buffer.lstrip())
                    except ValueError:
                        break
                    buffer = buffer.lstrip()[end:]
                    self.requests.append((request["method"], request["params"]))
                    arrived.append(request)
                if self.answer is None or len(arrived) < hold:
                    continue
                hold = 0
                for request in arrived:
                    result, error = self.answer(request["method"], request["params"])
                    conn.sendall(json.dumps({"id": request["id"], "result": result, "error": error}).encode())
                    served += 1
                    if self.close_after is not None and served >= self.close_after:
                        return
                arrived.clear()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., StandIn]]:
    made: list[StandIn] = []

    def make(answer: Answer | None, close_after: int | None = None, hold: int = 0) -> StandIn:
        made.append(StandIn(tmp_path / "daemon.ctl", answer, close_after, hold))
        return made[-1]

    yield make
    for s in made:
        s.close()


def echo(method: str, params: list[str]) -> tuple[Any, Any]:
    if method == "refuse":
        return None, "no such thing\n"
    return f"{method} {' '.join(params)}".strip(), None


def test_a_batch_is_sent_at_once_and_answered_in_order_each_refusal_in_its_place(
    server: Callable[..., StandIn],
) -> None:
    s = server(echo, hold=101)  # answers nothing until the whole batch has arrived
    client = UnixctlClient(str(s.path), timeout_s=5)
    requests = [("ovs/route/add", (f"198.19.0.{i}/32", "br-eth1")) for i in range(100)]
    requests.insert(50, ("refuse", ()))
    answers = client.batch(requests)
    assert answers[:2] == ["ovs/route/add 198.19.0.0/32 br-eth1", "ovs/route/add 198.19.0.1/32 br-eth1"]
    refused = answers[50]
    assert isinstance(refused, UnixctlRefused) and refused.command == "refuse" and str(refused) == "no such thing"
    assert answers[-1] == "ovs/route/add 198.19.0.99/32 br-eth1" and len(answers) == 101
    assert client.call("ovs/route/show") == "ovs/route/show"
    assert s.connections == 1  # one connection for both


def test_a_connection_broken_since_its_last_use_is_opened_again(server: Callable[..., StandIn]) -> None:
    s = server(echo, close_after=1)  # a daemon that restarted after answering once
    client = UnixctlClient(str(s.path), timeout_s=5)
    assert client.call("first") == "first"
    assert client.call("second") == "second"
    assert s.connections == 2


def test_a_daemon_that_does_not_answer_is_unreachable_after_the_timeout(server: Callable[..., StandIn]) -> None:
    s = server(None)
    client = UnixctlClient(str(s.path), timeout_s=0.3)
    with pytest.raises(UnixctlUnreachable, match=r"no answer within 0\.3s"):
        client.call("ovs/route/show")


def test_no_daemon_is_unreachable_naming_the_socket(tmp_path: Path) -> None:
    with pytest.raises(UnixctlUnreachable, match=r"nothing\.ctl"):
        UnixctlClient(str(tmp_path / "nothing.ctl"), timeout_s=1).call("ovs/route/show")


def test_a_daemon_name_is_found_through_its_pidfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ovs-vswitchd.pid").write_text("4242\n")
    assert socket_path("ovs-vswitchd", tmp_path) == tmp_path / "ovs-vswitchd.4242.ctl"
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    assert socket_path("ovs-vswitchd") == tmp_path / "ovs-vswitchd.4242.ctl"
    with pytest.raises(UnixctlUnreachable, match="ovsdb-server is not running"):
        socket_path("ovsdb-server")
