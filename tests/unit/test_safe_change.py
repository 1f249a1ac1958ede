"""Safe change without a switch: the history (record, bound, previous, pin), the writer's drain with its path
check, commit-confirm's trial, confirm and roll-back, and the daemon's window and health watch, over in-memory
drivers."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import Fakes
from test_daemon import Running, serve, start, write_intent

from tor_agent.daemon.control import request
from tor_agent.health.lsdb import PairLoss
from tor_agent.health.score import Score
from tor_agent.reconcile.agentstate import AgentState, PendingConfirm
from tor_agent.reconcile.history import History
from tor_agent.reconcile.writer import DrainRefused, NothingPending, Writer
from tor_agent.wait import wait_until

L1, L2 = IPv4Address("198.18.0.11"), IPv4Address("198.18.0.12")


def intent_file(path: Path, **ospf: Any) -> Path:
    return write_intent(path, **ospf)


def writer(tmp_path: Path, fakes: Fakes, losses: list[PairLoss] | None = None) -> Writer:
    state = tmp_path / "state"
    return Writer(fakes.engine(tmp_path), History.in_dir(state, 3), AgentState(state), lambda _i, _n: losses or [])


def test_history_records_changes_only_keeps_the_newest_and_knows_the_previous(tmp_path: Path) -> None:
    fakes = Fakes()
    w = writer(tmp_path, fakes)
    paths = [intent_file(tmp_path / f"agent{i}.yaml", maximum_paths=i) for i in (2, 3, 4, 5)]
    for path in paths:
        w.adopt(w.candidate(path), "cli")
    again = w.adopt(w.candidate(paths[-1]), "reload")  # the same intent: no new entry
    entries = w.history.entries()
    assert [e.id for e in entries] == [2, 3, 4] and again.id == 4  # size 3: the oldest went
    assert [e.source for e in entries] == [str(p) for p in paths[1:]]
    assert w.history.current() == (4, False) and w.history.previous().id == 3
    assert "maximum-paths 4" in w.history.frr_text(entries[1])
    assert w.history.intent_text(entries[-1]) == paths[-1].read_text()
    assert oct((w.history.directory / "000004" / "frr.conf").stat().st_mode & 0o777) == "0o600"


def test_rollback_is_an_entry_pinned_until_the_next_apply(tmp_path: Path) -> None:
    fakes = Fakes()
    w = writer(tmp_path, fakes)
    first, second = (intent_file(tmp_path / f"a{i}.yaml", maximum_paths=i) for i in (2, 3))
    w.adopt(w.candidate(first), "cli")
    w.adopt(w.candidate(second), "cli")
    back = w.adopt(w.candidate_from(w.history.previous()), "rollback", pinned=True)
    assert back.who == "rollback" and back.sha256 == w.history.entries()[0].sha256
    assert w.pinned_entry() == back
    w.run()
    assert "maximum-paths 2" in fakes.frr.planned[-1]
    w.adopt(w.candidate(second), "cli")
    assert w.pinned_entry() is None


def test_drain_is_refused_naming_the_pairs_unless_forced_and_it_persists(tmp_path: Path) -> None:
    fakes = Fakes()
    loss = PairLoss(L1, L2, 1, 0)
    w = writer(tmp_path, fakes, [loss])
    w.adopt(w.candidate(intent_file(tmp_path / "agent.yaml")), "start")
    with pytest.raises(DrainRefused, match=r"198\.18\.0\.11 <-> 198\.18\.0\.12: 1 path\(s\) now, 0 once drained"):
        w.drain()
    assert not w.drained and not AgentState(tmp_path / "state").drain().drained
    assert w.drain(force=True) == [loss]
    w.run()
    assert "max-metric router-lsa administrative" in fakes.frr.planned[-1]
    again = writer(tmp_path, fakes)  # an agent restart: the drain is agent state, kept on disk
    assert again.drained and again.drain_state.forced
    again.undrain()
    assert not writer(tmp_path, fakes).drained


def test_trial_confirm_and_roll_back(tmp_path: Path) -> None:
    fakes = Fakes()
    w = writer(tmp_path, fakes)
    good, bad = intent_file(tmp_path / "good.yaml"), intent_file(tmp_path / "bad.yaml", maximum_paths=4)
    base = w.adopt(w.candidate(good), "start")
    trial = w.begin_trial(w.candidate(bad), 60, degrade=False, baseline={})
    pending = w.state.pending()
    assert pending is not None and (pending.entry, pending.previous) == (trial.id, base.id) and not trial.confirmed
    back = w.roll_back_trial("confirm-timeout")
    assert back.who == "confirm-timeout" and w.state.pending() is None and w.pinned_entry() == back
    assert w.prepared is not None and "maximum-paths 4" not in w.prepared.frr_text
    w.begin_trial(w.candidate(bad), 60, degrade=False, baseline={})
    assert w.confirm().confirmed and w.state.pending() is None
    with pytest.raises(NothingPending):
        w.confirm()


def test_score_worse_names_every_loss() -> None:
    before = Score(full=2, widths={"198.18.0.12": 2, "198.18.0.13": 2}, controllers=1, tunnels=2)
    after = Score(full=1, widths={"198.18.0.12": 1}, controllers=1, tunnels=2)
    assert after.worse_than(before) == [
        "uplinks Full 2 -> 1",
        "ECMP width to 198.18.0.12 2 -> 1",
        "ECMP width to 198.18.0.13 2 -> 0",
    ]
    assert before.worse_than(before) == [] and Score.from_json(before.as_json()) == before


def control(tmp_path: Path, **message: Any) -> dict[str, Any]:
    return request(message, tmp_path / "control.sock", 10)


def test_daemon_rolls_a_trial_back_when_its_window_passes(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, intent_file(tmp_path / "agent.yaml"))
    trial = intent_file(tmp_path / "trial.yaml", maximum_paths=4)
    answers: list[dict[str, Any]] = []

    def apply_on_trial(r: Running) -> None:
        answers.append(control(tmp_path, op="apply", config=str(trial), confirm_s=1))
        assert r.daemon.intent is not None and r.daemon.intent.underlay.ospf.maximum_paths == 4
        wait_until(lambda: r.status().get("pending_confirm") is None, 5, 0.02, "the window to pass")
        assert r.daemon.intent.underlay.ospf.maximum_paths == 256  # back on the previous intent

    assert serve(running, lambda r: r.status().get("ready"), apply_on_trial) == 0
    assert answers[0]["pending_confirm"]["previous"] == 1
    history = History.in_dir(tmp_path / "state")
    assert [e.who for e in history.entries()] == ["start", "cli", "confirm-timeout"]
    assert history.current() == (3, True)


def test_daemon_rolls_back_at_once_when_health_gets_worse(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, intent_file(tmp_path / "agent.yaml"))
    trial = intent_file(tmp_path / "trial.yaml", maximum_paths=4)
    scores = iter([Score(full=2), Score(full=2), Score(full=1)])
    running.daemon.trial.score = lambda: next(scores, Score(full=1))  # type: ignore[method-assign]

    def apply_then_lose_an_adjacency(r: Running) -> None:
        control(tmp_path, op="apply", config=str(trial), confirm_s=600, rollback_on_degrade=True)
        wait_until(lambda: r.status().get("pending_confirm") is None, 5, 0.02, "the rollback on degrade")

    assert serve(running, lambda r: r.status().get("ready"), apply_then_lose_an_adjacency) == 0
    assert [e.who for e in History.in_dir(tmp_path / "state").entries()][-1] == "degraded"


def test_a_trial_pending_across_a_reboot_comes_back_on_the_previous_intent(tmp_path: Path) -> None:
    fakes = Fakes()
    state = tmp_path / "state"
    w = writer(tmp_path, fakes)
    good, bad = intent_file(tmp_path / "agent.yaml"), intent_file(tmp_path / "bad.yaml", maximum_paths=4)
    w.adopt(w.candidate(good), "start")
    w.begin_trial(w.candidate(bad), 600, degrade=False, baseline={})
    pending = AgentState(state).pending()
    assert pending is not None
    AgentState(state).set_pending(PendingConfirm(**{**pending.as_json(), "boot_id": "an-earlier-boot"}))
    running = start(tmp_path, None, fakes, good)
    assert serve(running, lambda r: r.status().get("ready"), lambda r: None) == 0
    assert running.daemon.intent is not None and running.daemon.intent.underlay.ospf.maximum_paths == 256
    assert AgentState(state).pending() is None
    assert History.in_dir(state).entries()[-1].who == "confirm-timeout"


def test_drain_and_undrain_through_the_daemon(tmp_path: Path) -> None:
    fakes = Fakes()
    running = start(tmp_path, None, fakes, intent_file(tmp_path / "agent.yaml"))
    refusal = [PairLoss(L1, L2, 1, 0)]
    running.daemon.writer.losses = lambda _i, _n: refusal
    answers: list[dict[str, Any]] = []

    def drain_undrain(r: Running) -> None:
        answers.append(control(tmp_path, op="drain"))
        answers.append(control(tmp_path, op="drain", force=True))
        assert "max-metric router-lsa administrative" in fakes.frr.planned[-1]
        assert r.status()["drain"]["drained"] is True and "DRAINED" in str(r.status()["status"])
        answers.append(control(tmp_path, op="undrain"))
        assert "max-metric" not in fakes.frr.planned[-1]

    assert serve(running, lambda r: r.status().get("ready"), drain_undrain) == 0
    refused, forced, undrained = answers
    assert refused["ok"] is False and refused["exit"] == 1 and refused["losses"] == [str(refusal[0])]
    assert forced["drained"] is True and forced["forced_losses"] == [str(refusal[0])]
    assert undrained["drained"] is False


@pytest.mark.parametrize("text", ["", "version: 1\n", "é" * 1000])
def test_the_history_digest_is_sha256_of_the_file(text: str) -> None:
    from tor_agent.reconcile.history import digest

    assert digest(text) == hashlib.sha256(text.encode()).hexdigest()
