"""Safe change: `drain` / `undrain` (planned maintenance), `confirm` (keep an `apply --confirm`), `rollback`
(apply a history entry again) and `history` (the intents this switch ran). The mutating ones go through the
running agent while it runs, and make the change themselves otherwise (tor_agent.cli.writing)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from tor_agent.cli.common import CONFIG, JSON, print_json, reports_errors
from tor_agent.cli.options import CONTROL, STATE_DIR
from tor_agent.cli.writing import (
    answered_report,
    ask_daemon,
    finish,
    local_writer,
    running_locally,
)
from tor_agent.errors import RuntimeFailure

NEAR_ZERO_PPS = 5.0  # transit below this (or 2 % of what it was) counts as gone
SAMPLE_S = 0.1


@click.command()
@CONFIG
@JSON
@STATE_DIR
@CONTROL
@click.option("--force", is_flag=True, help="Drain even when the path check says pairs of switches would be short.")
@click.option(
    "--min-paths",
    type=click.IntRange(0, 64),
    default=None,
    help="Every pair of other switches keeps at least this many paths that avoid drained switches "
    "[default: the intent's underlay.ospf.drain_min_paths, 1 unless set].",
)
@click.option("--wait", is_flag=True, help="Return once traffic has left the switch; print how long that took.")
@click.option("--wait-timeout", type=click.FloatRange(1, 3600), default=60, show_default=True, metavar="SECONDS")
@reports_errors
def drain(
    config: Path,
    as_json: bool,
    state_dir: Path,
    control_socket: Path,
    force: bool,
    min_paths: int | None,
    wait: bool,
    wait_timeout: float,
) -> None:
    """Drain the switch for planned maintenance: OSPF advertises every transit link at the maximum metric
    (`max-metric router-lsa administrative`), so traffic moves to other paths before anything goes down;
    adjacencies stay up. First the live link-state database is checked: when draining would leave a pair of
    other switches with fewer paths than --min-paths that avoid drained switches (never drain the last
    healthy spine), drain refuses, names the pairs and exits 1, unless --force. The drained state is kept
    under --state-dir: it survives an agent restart, an FRR restart and a reboot, until `tor-agent undrain`.
    `status`, `verify` (exit 1 unless --allow-drained), the agent's status line and metrics show it.
    CONFIG (used only when no agent runs) defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent drain --wait
      tor-agent drain --force          # even the last spine
    """
    before = _forwarding_rate() if wait else 0.0
    start = time.monotonic()
    message = {"op": "drain", "force": force, "min_paths": min_paths}
    answer = ask_daemon(message, control_socket)
    if answer is not None:
        doc, losses = answered_report(answer), answer.get("forced_losses", [])
    else:
        writer = local_writer(state_dir)
        running_locally(writer, config)
        losses = [str(x) for x in writer.drain(force, min_paths)]
        doc = writer.run().as_json()
    for loss in losses:
        click.echo(f"tor-agent: warning: drained by --force: {loss}", err=True)
    waited = _wait_drained(config, before, start, wait_timeout) if wait else {}
    finish(doc, as_json, {"drained": True, "forced_losses": losses, **waited})


@click.command()
@CONFIG
@JSON
@STATE_DIR
@CONTROL
@reports_errors
def undrain(config: Path, as_json: bool, state_dir: Path, control_socket: Path) -> None:
    """Take the switch back into service: transit links get their metrics back and traffic returns.
    CONFIG (used only when no agent runs) defaults to /etc/tor-agent/agent.yaml ($TOR_AGENT_CONFIG).

    \b
    Example:
      tor-agent undrain
    """
    answer = ask_daemon({"op": "undrain"}, control_socket)
    if answer is not None:
        doc = answered_report(answer)
    else:
        writer = local_writer(state_dir)
        running_locally(writer, config)
        writer.undrain()
        doc = writer.run().as_json()
    finish(doc, as_json, {"drained": False})


@click.command()
@JSON
@STATE_DIR
@CONTROL
@reports_errors
def confirm(as_json: bool, state_dir: Path, control_socket: Path) -> None:
    """Keep the intent applied with `tor-agent apply --confirm`: the switch no longer goes back when the
    window ends. Exit 2 when nothing waits to be confirmed.

    \b
    Example:
      tor-agent apply --confirm 120 && tor-agent verify && tor-agent confirm
    """
    answer = ask_daemon({"op": "confirm"}, control_socket)
    entry = answer["entry"] if answer is not None else local_writer(state_dir).confirm().as_json()
    if as_json:
        print_json({"confirmed": entry})
    else:
        click.echo(f"confirmed: history entry {entry['id']} ({entry['source']}) stays")


@click.command()
@click.argument("entry_id", metavar="[ID]", type=int, required=False)
@CONFIG
@JSON
@STATE_DIR
@CONTROL
@reports_errors
def rollback(entry_id: int | None, config: Path, as_json: bool, state_dir: Path, control_socket: Path) -> None:
    """Apply history entry ID again (default: the intent that ran before the current one), exactly as it was
    applied; it keeps running across agent restarts until the next `tor-agent apply` or reload. Files the
    stored intent names (an OSPF key file, TLS files) are read from their paths now. See `tor-agent history`.

    \b
    Example:
      tor-agent rollback          # the previous intent
      tor-agent rollback 3
    """
    answer = ask_daemon({"op": "rollback", "id": entry_id}, control_socket)
    if answer is not None:
        doc = answered_report(answer)
        target = answer["rolled_back_to"]
    else:
        writer = local_writer(state_dir)
        history = writer.history
        entry = history.get(entry_id) if entry_id is not None else history.previous()
        writer.state.set_pending(None)
        writer.adopt(writer.candidate_from(entry), "rollback", pinned=True)
        doc, target = writer.run().as_json(), entry.as_json()
    click.echo(f"tor-agent: rolled back to history entry {target['id']} ({target['source']})", err=True)
    finish(doc, as_json, {"rolled_back_to": target})


@click.command()
@JSON
@STATE_DIR
@click.option("--last", type=click.IntRange(1, 1000), default=None, metavar="N", help="Only the newest N entries.")
@reports_errors
def history(as_json: bool, state_dir: Path, last: int | None) -> None:
    """The intents this switch ran, oldest first: id, when, the SHA-256 of the intent file, who applied it
    (start, cli, reload, rollback, confirm-timeout, degraded), the file it came from; the one running now
    is marked `*` (`pinned` after a rollback), one on trial `?`. Kept under --state-dir, the newest 20 by
    default (`tor-agent run --history-size`). Reads only.

    \b
    Example:
      tor-agent history
      tor-agent diff --against 3     # what changed since entry 3
      tor-agent rollback 3
    """
    from tor_agent.reconcile.agentstate import AgentState
    from tor_agent.reconcile.history import History

    store = History.in_dir(state_dir)
    entries = store.entries()[-last:] if last else store.entries()
    current, pinned = store.current()
    pending = AgentState(state_dir).pending()
    drain_state = AgentState(state_dir).drain()
    if as_json:
        print_json({"entries": [e.as_json() for e in entries], "current": current, "pinned": pinned,
                    "pending_confirm": pending.as_json() if pending else None,
                    "drain": drain_state.as_json()})  # fmt: skip
        return
    if not entries:
        click.echo(f"no history yet ({store.directory})")
    for e in entries:
        mark = "*" if e.id == current else "?" if not e.confirmed else " "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        note = " pinned" if e.id == current and pinned else ""
        click.echo(f"{mark}{e.id:4d}  {when}  {e.sha256[:12]}  {e.who:<15} {e.source}{note}")
    if pending is not None:
        click.echo(f"commit-confirm pending: entry {pending.entry}, back to {pending.previous} in "
                   f"{max(0.0, pending.remaining()):.0f} s unless `tor-agent confirm`")  # fmt: skip


def _forwarding_rate() -> float:
    """Packets per second the kernel forwards now (a short sample)."""
    from tor_agent.net.counters import forwarded
    from tor_agent.wait import wait_until

    start, first = time.monotonic(), forwarded()
    wait_until(lambda: time.monotonic() - start >= 5 * SAMPLE_S, 1.0, SAMPLE_S, "a forwarding sample")
    return (forwarded() - first) / (time.monotonic() - start)


def _wait_drained(config: Path, before: float, start: float, timeout: float) -> dict[str, Any]:
    """Wait until every neighbour acknowledged the drained LSA and transit has fallen to (near) zero."""
    from tor_agent.config import load
    from tor_agent.frr.vtysh import Vtysh
    from tor_agent.health.lsdb import NEIGHBOR_DETAIL, ROUTER_LSAS, drain_state, parse_lsdb, retransmissions
    from tor_agent.net.counters import forwarded
    from tor_agent.wait import WaitTimeout, wait_until

    me = load(config).node.router_id
    vtysh = Vtysh(timeout_s=5.0)
    deadline = start + timeout

    def flooded() -> bool:
        drained, _ = drain_state(parse_lsdb(vtysh.show_json(ROUTER_LSAS)), me)
        return drained and not any(retransmissions(vtysh.show_json(NEIGHBOR_DETAIL)).values())

    threshold = max(NEAR_ZERO_PPS, 0.02 * before)
    sample = {"t": time.monotonic(), "n": forwarded(), "rate": before}

    def gone() -> bool:
        now, count = time.monotonic(), forwarded()
        if now - sample["t"] >= 2 * SAMPLE_S:
            sample["rate"] = (count - sample["n"]) / (now - sample["t"])
            sample["t"], sample["n"] = now, count
        return sample["rate"] <= threshold

    try:
        wait_until(flooded, max(0.1, deadline - time.monotonic()), SAMPLE_S, "every neighbour to acknowledge the LSA")
        acked = time.monotonic() - start
        wait_until(gone, max(0.1, deadline - time.monotonic()), SAMPLE_S, "transit traffic to leave")
    except WaitTimeout as e:
        raise RuntimeFailure(f"drained, but traffic had not left within {timeout:g} s: {e}") from e
    took = time.monotonic() - start
    click.echo(
        f"tor-agent: drained: every neighbour had the LSA after {acked:.2f} s; transit {before:.0f} -> "
        f"{sample['rate']:.0f} pkt/s after {took:.2f} s",
        err=True,
    )
    return {"lsa_acked_s": round(acked, 3), "transit_before_pps": round(before, 1),
            "transit_after_pps": round(sample["rate"], 1), "traffic_gone_s": round(took, 3)}  # fmt: skip
