"""Bench: a one-line intent change on a 200-uplink FRR configuration, tor-agent vs frr-reload.py.

One FRR 8.4 node in private namespaces (as in tests/frr: watchfrr, zebra, ospfd, staticd, bfdd),
200 veth uplinks with /31 addresses, OSPF on all of them (hello 1, dead 4, BFD profile). The
measuring runs inside the node, as on a switch. Side by side, alternating, over several rounds:
- one-line change (uplink eth1's cost 10 <-> 20): tor-agent's apply (`apply_underlay`: render, read
  FRR, delta, parser check, one batch read back and verified, persist) vs `frr-reload.py --reload` of
  the same rendered file (which neither verifies nor persists);
- no-op apply: tor-agent with nothing to change (render + one read), and the FRR driver alone;
- the same through the `tor-agent apply` command (a new Python process: imports, YAML, render).
Every result is checked against the rendering outside the timed part. Ratios and goals are printed last.

    .venv/bin/python -m bench.frr_apply [--uplinks 200] [--rounds 5]    (as root, from the repository root)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path

from tests.frr.frrnode import FrrNode, batch_ip, skip_reason
from tor_agent.config import Intent, load_text
from tor_agent.frr.apply import FrrDriver
from tor_agent.frr.config_tree import parse_config
from tor_agent.frr.delta import Scope, compute_delta
from tor_agent.frr.ledger import InterfaceLedger
from tor_agent.frr.vtysh import Vtysh
from tor_agent.render import render_frr

REPO = Path(__file__).resolve().parents[1]

GOAL_RATIO, GOAL_NOOP_MS = 0.3, 50.0
FRR_RELOAD = "/usr/lib/frr/frr-reload.py"
HOSTNAME = "spine1"
CLI = os.environ.get("TOR_AGENT") or str(Path(sys.executable).with_name("tor-agent"))


def intent_text(uplinks: int, eth1_cost: int) -> str:
    base = IPv4Address("198.19.0.0")
    links = [
        f"    - {{name: eth{i + 1}, address: {base + 2 * i}/31, cost: {eth1_cost if i == 0 else 10}, mtu: 9000}}"
        for i in range(uplinks)
    ]
    head = [
        "version: 1",
        f"node: {{hostname: {HOSTNAME}, role: spine, router_id: 198.18.0.1, loopback: 198.18.0.1/32}}",
        "underlay:",
        "  ospf:",
        "    area: 0.0.0.0",
        "    maximum_paths: 8",
        "    hello_interval_s: 1",
        "    dead_interval_s: 4",
        "    bfd: {enabled: true, rx_ms: 100, tx_ms: 100, multiplier: 3}",
        "  uplinks:",
    ]
    return "\n".join([*head, *links]) + "\n"


def make_uplinks(node: FrrNode, uplinks: int) -> None:
    # More than 20 OSPF interfaces in one namespace need more IGMP memberships (docs/design.md, fact 15).
    node.run("sysctl", "-q", "-w", f"net.ipv4.igmp_max_memberships={uplinks * 2 + 20}")
    base = IPv4Address("198.19.0.0")
    commands = []
    for i in range(uplinks):
        name = f"eth{i + 1}"
        commands += [
            f"link add {name} mtu 9000 type veth peer name p{i + 1} mtu 9000",
            f"addr add {base + 2 * i}/31 dev {name}",
            f"link set p{i + 1} up",
            f"link set {name} up",
        ]
    batch_ip(node, commands)


# --- inside the node ---------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def check_matches(rendered: str) -> None:
    desired = parse_config(rendered)
    left = compute_delta(desired, parse_config(Vtysh().running_config()), Scope.of(desired))
    if left:
        raise SystemExit(f"FRR does not match the rendering:\n{left.diff_text()}")


def run_quietly(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def apply_underlay(intent: Intent, driver: FrrDriver) -> None:
    """The engine's FRR stage: render, read, plan, apply."""
    apply_text(driver, render_frr(intent))


def apply_text(driver: FrrDriver, text: str) -> None:
    driver.apply(driver.plan(text, driver.read()))


def inside(work: Path, rounds: int, results: Path | None = None) -> None:
    intents: dict[int, Intent] = {cost: load_text((work / f"intent-{cost}.yaml").read_text()) for cost in (10, 20)}
    rendered = {cost: render_frr(intent) for cost, intent in intents.items()}
    files = {cost: str(work / f"frr-{cost}.conf") for cost in (10, 20)}
    cli_env = {**os.environ, "TOR_AGENT_STATE_DIR": str(work / "state")}
    drivers = FrrDriver(Vtysh(), InterfaceLedger.in_dir(work / "state"))
    print(f"first apply from an empty FRR: {timed(lambda: apply_underlay(intents[10], drivers)) * 1000:.0f} ms")
    check_matches(rendered[10])
    run_quietly([FRR_RELOAD, "--reload", files[10]])  # warm-up: frr-reload also drops `no ip forwarding` once
    apply_underlay(intents[10], drivers)

    times: dict[str, list[float]] = {k: [] for k in ("ta", "fr", "noop", "noop_driver", "cli", "cli_noop", "parse")}
    for _ in range(rounds):
        for cost, other in ((20, 10), (10, 20)):
            times["ta"].append(timed(partial(apply_underlay, intents[cost], drivers)))
            check_matches(rendered[cost])
            for target in (other, cost):
                times["fr"].append(timed(partial(run_quietly, [FRR_RELOAD, "--reload", files[target]])))
                check_matches(rendered[target])
        times["noop"].append(timed(lambda: apply_underlay(intents[10], drivers)))
        times["parse"].append(timed(lambda: drivers.vtysh.check(rendered[10])))  # FRR's parser, as prepare runs it
        times["noop_driver"].append(timed(lambda: apply_text(drivers, rendered[10])))
    for _ in range(max(2, rounds // 2)):
        for cost in (20, 10):
            times["cli"].append(timed(partial(run_quietly, [CLI, "apply", str(work / f"intent-{cost}.yaml")], cli_env)))
            check_matches(rendered[cost])
        times["cli_noop"].append(timed(lambda: run_quietly([CLI, "apply", str(work / "intent-10.yaml")], cli_env)))
    report(times)
    if results is not None:
        results.write_text(json.dumps(times))


def ms(values: list[float]) -> str:
    low, mid, high = min(values) * 1000, statistics.median(values) * 1000, max(values) * 1000
    return f"median {mid:7.1f} ms  (min {low:6.1f}, max {high:6.1f}, n={len(values)})"


def report(times: dict[str, list[float]]) -> None:
    ta, fr, cli = (statistics.median(times[k]) for k in ("ta", "fr", "cli"))
    noop, noop_driver = statistics.median(times["noop"]), statistics.median(times["noop_driver"])
    print()
    print(f"one-line change, tor-agent apply (render, check, batch, verify, persist): {ms(times['ta'])}")
    print(f"one-line change, frr-reload.py --reload (no verify, no persist):        {ms(times['fr'])}")
    print(f"one-line change, `tor-agent apply` command (process, YAML, render):      {ms(times['cli'])}")
    print(f"no-op, tor-agent apply (render + one FRR read):                         {ms(times['noop'])}")
    print(f"no-op, FRR driver alone (rendered text given):                          {ms(times['noop_driver'])}")
    print(f"no-op, `tor-agent apply` command:                                       {ms(times['cli_noop'])}")
    print()
    driver = f"FRR driver alone {noop_driver * 1000:.1f} ms"
    print(f"no-op apply: {noop * 1000:.1f} ms, {driver} (goal <= {GOAL_NOOP_MS:.0f} ms)")
    print(f"`tor-agent apply` command / frr-reload.py --reload, one-line change: {cli / fr:.2f}x")
    print(f"ratio tor-agent apply / frr-reload.py --reload, one-line change: {ta / fr:.2f}x (goal <= {GOAL_RATIO}x)")


# --- outside: the node ---------------------------------------------------------------------------


def outside(
    uplinks: int, rounds: int, confine: Callable[[int], None] | None = None, cli: str | None = None
) -> dict[str, list[float]]:
    """Build the node, measure inside it, return the times (seconds) by case. `confine(pid)` is called with the
    measuring process's pid as soon as it starts (bench/cpulimit.py); `cli` is the tor-agent command to time."""
    reason = skip_reason()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    if not Path(FRR_RELOAD).exists():
        raise SystemExit(f"cannot run: {FRR_RELOAD} missing (apt install frr-pythontools)")
    with tempfile.TemporaryDirectory(prefix="tor-agent-bench-") as tmp:
        work = Path(tmp)
        for cost in (10, 20):
            text = intent_text(uplinks, cost)
            (work / f"intent-{cost}.yaml").write_text(text)
            (work / f"frr-{cost}.conf").write_text(render_frr(load_text(text)))
        lines = len((work / "frr-10.conf").read_text().splitlines())
        print(f"{uplinks} uplinks, rendered frr.conf {lines} lines, {rounds} rounds, measured inside the node")
        node = FrrNode(HOSTNAME).start()
        try:
            node.start_frr()
            make_uplinks(node, uplinks)
            # entering the node's mount namespace moves to its /: back to the repository, for `-m bench...`
            results = work / "results.json"
            argv = [sys.executable, "-m", "bench.frr_apply", "--inside", str(work), "--rounds", str(rounds)]
            argv += ["--results", str(results)]
            env = {**os.environ, "TOR_AGENT": cli} if cli else None
            measuring = subprocess.Popen([*node.enter(), "env", "-C", str(REPO), *argv], env=env)
            if confine is not None:
                confine(measuring.pid)
            if measuring.wait(timeout=1800) != 0:
                raise SystemExit(f"measuring inside the node failed (exit {measuring.returncode})")
            times: dict[str, list[float]] = json.loads(results.read_text())
            return times
        finally:
            node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uplinks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        inside(args.inside, args.rounds, args.results)
    else:
        outside(args.uplinks, args.rounds)


if __name__ == "__main__":
    main()
