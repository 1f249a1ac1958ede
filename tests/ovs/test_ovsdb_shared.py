"""`status` and `verify` read OVSDB through one connection per run (tor_agent.cli.health.Ovsdb), against a
real ovsdb-server: the controllers and the overlay readers share it, and a failed open is not waited for twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ovs_sandbox import OvsSandbox
from ovs_testlib import make_intent

from tor_agent.cli import health as health_cli
from tor_agent.ovs.connection import OvsConnection
from tor_agent.ovs.errors import OvsdbUnavailable

pytestmark = pytest.mark.ovs


def counted_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every OvsConnection.open from now on, by remote (the real open still runs)."""
    opened: list[str] = []
    real = OvsConnection.open

    def open_counted(remote: str, *args: Any, **kwargs: Any) -> OvsConnection:
        opened.append(remote)
        return real(remote, *args, **kwargs)

    monkeypatch.setattr(OvsConnection, "open", open_counted)
    return opened


def test_the_readers_of_one_run_share_one_connection(sandbox: OvsSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = counted_opens(monkeypatch)
    intent = make_intent()
    with health_cli.Ovsdb(sandbox.remote) as ovsdb:
        first = health_cli.read_controllers(intent, ovsdb)
        second = health_cli.read_controllers(intent, ovsdb)
        conn = ovsdb()
        assert conn.snapshot().bridges is not None
    assert opened == [sandbox.remote]
    assert first == second
    with pytest.raises(OvsdbUnavailable):
        conn.snapshot()  # closed with the run


def test_a_failed_open_is_not_tried_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = counted_opens(monkeypatch)
    remote = f"unix:{tmp_path / 'no-such.sock'}"
    with health_cli.Ovsdb(remote) as ovsdb:
        with pytest.raises(OvsdbUnavailable) as first:
            ovsdb()
        with pytest.raises(OvsdbUnavailable) as again:
            ovsdb()
    assert again.value is first.value and opened == [remote]
