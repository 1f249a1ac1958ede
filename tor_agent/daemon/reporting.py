"""What the daemon tells the world after every pass: the status file (JSON) and the metrics textfile."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tor_agent.config.schema import Intent
from tor_agent.daemon.kernel import CpuTimes
from tor_agent.daemon.metrics import AgentMetrics, write_textfile
from tor_agent.errors import RuntimeFailure
from tor_agent.fileio import replace_file
from tor_agent.health import status as underlay_status
from tor_agent.health.readers import read_underlay
from tor_agent.model.routes import KernelRoute
from tor_agent.reconcile.controllers import ControllerKeeper
from tor_agent.reconcile.report import EngineReport

log = logging.getLogger(__name__)

NO_CPU = CpuTimes(0.0, 0.0)

UNDERLAY_READ_TIMEOUT_S = 5.0


@dataclass
class PassCpu:
    """The CPU time the passes of one scope took: how many, in all, the last one."""

    passes: int = 0
    total: CpuTimes = NO_CPU
    last: CpuTimes = NO_CPU

    def as_json(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "cpu_s": round(self.total.total, 4),
            "children_cpu_s": round(self.total.children, 4),
            "last_cpu_s": round(self.last.total, 4),
            "last_children_cpu_s": round(self.last.children, 4),
        }


class Reporter:
    """The status file at `status_file` and, when `metrics_file` is set, the Prometheus textfile."""

    def __init__(self, status_file: Path, metrics_file: Path | None) -> None:
        self.status_file, self.metrics_file = status_file, metrics_file
        self.metrics = AgentMetrics()
        self.pass_cpu: dict[str, PassCpu] = {}

    def cpu(self, scope: str, used: CpuTimes) -> None:
        """Count the CPU time one pass of `scope` took (the agent's threads and the processes it ran)."""
        entry = self.pass_cpu.setdefault(scope, PassCpu())
        entry.passes += 1
        entry.total += used
        entry.last = used
        self.metrics.pass_cpu_seconds[scope] = entry.total.total

    def cpu_json(self) -> dict[str, Any]:
        """The CPU section of the status file: per scope, and the agent's whole CPU time so far."""
        whole = CpuTimes.now()
        return {
            "process_s": round(whole.own, 3),
            "children_s": round(whole.children, 3),
            "passes": {scope: entry.as_json() for scope, entry in sorted(self.pass_cpu.items())},
        }

    def record(self, report: EngineReport, ready: bool) -> None:
        """Count a pass: before the first good one changes are the initial apply, after it they repair drift."""
        self.metrics.record_pass(report.ok, sum(len(s.changes) for s in report.stages) if ready else 0)
        self.metrics.missing_parts = list(report.missing)

    def observe(
        self,
        intent: Intent,
        report: EngineReport,
        keeper: ControllerKeeper | None,
        routes: Callable[[], tuple[KernelRoute, ...]],
        drained: bool = False,
        confirm_left: float | None = None,
    ) -> None:
        """After a full pass: refresh the observed gauges (one underlay read, as `verify` does, over FRR's vty
        sockets and the kernel routes as `routes` has them) and write them."""
        if self.metrics_file is None:
            return
        m = self.metrics
        m.drained, m.confirm_pending = drained, confirm_left is not None
        m.tunnels_up, m.tunnels_down = len(report.peers.usable), len(report.peers.dropped)
        m.controllers_connected = len(keeper.status().connected) if keeper is not None else 0
        try:
            st = underlay_status(read_underlay(intent, UNDERLAY_READ_TIMEOUT_S, routes), intent)
            m.ospf_neighbours_full = sum(1 for u in st.uplinks if u.healthy)
            m.ecmp_width = {str(v.address): v.width for v in st.vteps}
        except RuntimeFailure as e:
            log.warning("metrics: cannot read the underlay: %s", e)
        self.write_metrics()

    def write_metrics(self) -> None:
        """Write the textfile now (when there is one)."""
        if self.metrics_file is None:
            return
        self.metrics.cpu_seconds = CpuTimes.now().total
        try:
            write_textfile(self.metrics, self.metrics_file)
        except OSError as e:
            log.warning("%s: cannot write the metrics: %s", self.metrics_file, e)

    def status(self, doc: dict[str, Any]) -> None:
        """Replace the status file with `doc`."""
        try:
            write_json(self.status_file, doc)
        except OSError as e:
            log.warning("%s: cannot write the status file: %s", self.status_file, e)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace `path` with `doc` atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
