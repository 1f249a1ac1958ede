"""Metrics textfile: valid Prometheus exposition (read back with prometheus_client's own parser, a test
dependency only: the agent writes the format itself), atomic replacement."""

from __future__ import annotations

from pathlib import Path

import pytest

from tor_agent.daemon.metrics import AgentMetrics, exposition, write_textfile


def test_exposition_of_a_pass() -> None:
    m = AgentMetrics(tunnels_up=2, tunnels_down=1, controllers_connected=1, ospf_neighbours_full=2)
    m.ecmp_width = {"198.18.0.12": 2, "198.18.0.13": 1}
    m.record_pass(ok=True, repaired=3, now=1700000000.0)
    m.record_pass(ok=False, repaired=0, now=1700000030.0)
    assert AgentMetrics(last_apply_time=1700000030.25).families()[-1].samples[0].value == 1700000030.25
    text = exposition(m.families())
    lines = text.splitlines()
    assert "tor_agent_reconcile_passes_total 2" in lines
    assert "tor_agent_reconcile_failures_total 1" in lines
    assert "tor_agent_drift_repairs_total 3" in lines
    assert 'tor_agent_tunnels{state="up"} 2' in lines
    assert 'tor_agent_tunnels{state="down"} 1' in lines
    assert 'tor_agent_ecmp_width{vtep="198.18.0.12"} 2' in lines
    assert "tor_agent_last_apply_success 0" in lines
    assert "tor_agent_last_apply_timestamp_seconds 1700000030" in lines
    assert "# TYPE tor_agent_reconcile_passes_total counter" in lines
    # every sample line belongs to a family announced by HELP and TYPE
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    samples = [line for line in lines if not line.startswith("#")]
    assert all(s.split("{")[0].split()[0] in names for s in samples)


def test_prometheus_client_parses_the_exposition_back() -> None:
    parser = pytest.importorskip("prometheus_client.parser")  # the Debian build runs without it under nocheck
    m = AgentMetrics(tunnels_up=2, controllers_connected=1, ecmp_width={"198.18.0.12": 2, 'a"b\\c': 1})
    m.record_pass(ok=True, repaired=1, now=1700000000.5)
    families = {f.name: f for f in parser.text_string_to_metric_families(exposition(m.families()))}
    assert families["tor_agent_reconcile_passes"].type == "counter"  # the parser drops _total from the family
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("tor_agent_reconcile_passes_total", ())] == 1
    assert samples[("tor_agent_tunnels", (("state", "up"),))] == 2
    assert samples[("tor_agent_ecmp_width", (("vtep", 'a"b\\c'),))] == 1
    assert samples[("tor_agent_last_apply_timestamp_seconds", ())] == 1700000000.5


def test_label_values_are_escaped() -> None:
    m = AgentMetrics(ecmp_width={'a"b\\c': 1})
    assert 'tor_agent_ecmp_width{vtep="a\\"b\\\\c"} 1' in exposition(m.families())


def test_write_textfile_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "tor-agent.prom"
    target.write_text("old\n")
    write_textfile(AgentMetrics(passes=5), target)
    assert "tor_agent_reconcile_passes_total 5" in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["tor-agent.prom"]
    assert target.stat().st_mode & 0o777 == 0o644
