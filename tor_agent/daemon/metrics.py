"""Prometheus metrics of the agent, written as a node-exporter textfile.

A textfile (`/var/lib/prometheus/node-exporter/tor-agent.prom` by default, the directory Debian's
prometheus-node-exporter reads) needs no listening socket and no extra dependency on the switch. The
file is replaced atomically, so the exporter never reads half of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tor_agent.daemon.paths import DEFAULT_TEXTFILE
from tor_agent.fileio import replace_file


@dataclass(frozen=True)
class Sample:
    """One metric value with its labels."""

    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Metric:
    """A metric family: name, type, help text and samples."""

    name: str
    kind: str  # "counter" | "gauge"
    help: str
    samples: tuple[Sample, ...]


@dataclass
class AgentMetrics:
    """What the daemon counts and observes; `families()` turns it into Prometheus metric families."""

    passes: int = 0
    failed_passes: int = 0
    drift_repairs: int = 0
    tunnels_up: int = 0
    tunnels_down: int = 0
    controllers_connected: int = 0
    ospf_neighbours_full: int = 0
    ecmp_width: dict[str, int] = field(default_factory=dict)  # remote VTEP -> kernel nexthops
    last_apply_ok: bool = True
    last_apply_time: float = 0.0
    reload_failures: int = 0
    drained: bool = False
    confirm_pending: bool = False
    missing_parts: list[str] = field(default_factory=list)  # the intent field and interface of each
    pass_cpu_seconds: dict[str, float] = field(default_factory=dict)  # scope -> CPU seconds its passes took
    cpu_seconds: float = 0.0  # the agent's CPU seconds so far (all threads and the processes it ran)

    def record_pass(self, ok: bool, repaired: int, now: float | None = None) -> None:
        """Count one reconcile pass and the drift it repaired."""
        self.passes += 1
        self.failed_passes += 0 if ok else 1
        self.drift_repairs += repaired
        self.last_apply_ok = ok
        self.last_apply_time = time.time() if now is None else now

    def families(self) -> list[Metric]:
        """The metric families, in a stable order."""

        def gauge(name: str, help_: str, value: float) -> Metric:
            return Metric(f"tor_agent_{name}", "gauge", help_, (Sample(value),))

        return [
            Metric("tor_agent_reconcile_passes_total", "counter", "Reconcile passes run.", (Sample(self.passes),)),
            Metric(
                "tor_agent_reconcile_failures_total", "counter", "Passes that failed.", (Sample(self.failed_passes),)
            ),
            Metric(
                "tor_agent_drift_repairs_total",
                "counter",
                "Changes made to repair drift.",
                (Sample(self.drift_repairs),),
            ),
            Metric(
                "tor_agent_tunnels",
                "gauge",
                "Tunnel peers: up = has a tunnel over an underlay route, down = known peer left without one.",
                (Sample(self.tunnels_up, (("state", "up"),)), Sample(self.tunnels_down, (("state", "down"),))),
            ),
            gauge("controllers_connected", "OpenFlow controllers connected.", self.controllers_connected),
            gauge("ospf_neighbours_full", "OSPF neighbours in state Full.", self.ospf_neighbours_full),
            Metric(
                "tor_agent_ecmp_width",
                "gauge",
                "Kernel ECMP nexthops towards each remote VTEP.",
                tuple(Sample(w, (("vtep", v),)) for v, w in sorted(self.ecmp_width.items())),
            ),
            Metric(
                "tor_agent_config_reload_failures_total",
                "counter",
                "Intent files refused on reload (SIGHUP); the last good intent kept running.",
                (Sample(self.reload_failures),),
            ),
            gauge(
                "parts_missing", "Parts the intent names that are not there (each skipped).", len(self.missing_parts)
            ),
            Metric(
                "tor_agent_part_missing",
                "gauge",
                "1 for each part the intent names that is not there.",
                tuple(Sample(1, (("part", p),)) for p in self.missing_parts),
            ),
            gauge("drained", "1 while the switch is drained (tor-agent drain).", int(self.drained)),
            gauge(
                "confirm_pending", "1 while an apply --confirm waits for tor-agent confirm.", int(self.confirm_pending)
            ),
            Metric(
                "tor_agent_pass_cpu_seconds_total",
                "counter",
                "CPU seconds the passes took, by scope (the agent's threads and the processes it ran: vtysh, nft).",
                tuple(Sample(v, (("scope", k),)) for k, v in sorted(self.pass_cpu_seconds.items())),
            ),
            Metric(
                "tor_agent_cpu_seconds_total",
                "counter",
                "CPU seconds the agent used in all (passes, the OVSDB loop, the controller keeper, its processes).",
                (Sample(self.cpu_seconds),),
            ),
            gauge("last_apply_success", "1 if the last pass succeeded.", 1 if self.last_apply_ok else 0),
            gauge("last_apply_timestamp_seconds", "When the last pass ended (Unix time).", self.last_apply_time),
        ]


def exposition(families: Iterable[Metric]) -> str:
    """Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels)
            value = _number(sample.value)
            lines.append(f"{family.name}{{{labels}}} {value}" if labels else f"{family.name} {value}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Whole numbers without a decimal point, others with full precision (timestamps!)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_textfile(metrics: AgentMetrics, path: Path = DEFAULT_TEXTFILE) -> None:
    """Replace `path` atomically with the current metrics (the directory must exist)."""
    replace_file(path, exposition(metrics.families()))
