"""labs/lab: realise a containerlab topology file out of Linux namespaces (no Docker).

  labs/lab up FILE [--timeout S] [--no-wait]   build the lab, wait for the underlay (idempotent)
  labs/lab update FILE [--timeout S] [--no-wait]
                                                bring the running lab to FILE (same lab name): add and
                                                start new nodes and links, remove those not in FILE,
                                                re-bind changed binds of kept nodes
  labs/lab down FILE                            stop and remove everything, even after a crashed up
  labs/lab exec FILE NODE [-- CMD ...]          run CMD (default: a shell) inside NODE
  labs/lab status FILE [--json]                 adjacencies, ECMP widths, OVS, controller
Exit codes: 0 ok, 1 failure (or status not healthy), 2 bad topology file or arguments.
A failed `up` leaves the lab as it is for a look (logs: labs/.state/<lab>/nodes/<node>/, and each node's
/var/log); `down` removes it, state and logs included unless LAB_KEEP_STATE=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from labs.nslab import realise, status, topology

CONVERGE_TIMEOUT_S = 30.0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="labs/lab", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build the lab and wait until its underlay has converged")
    up.add_argument("file", type=Path)
    up.add_argument("--timeout", type=float, default=CONVERGE_TIMEOUT_S, help="convergence budget in seconds")
    up.add_argument("--no-wait", action="store_true", help="return once the nodes have started")
    upd = sub.add_parser("update", help="bring the running lab to FILE: add or remove nodes and links")
    upd.add_argument("file", type=Path)
    upd.add_argument("--timeout", type=float, default=CONVERGE_TIMEOUT_S, help="convergence budget in seconds")
    upd.add_argument("--no-wait", action="store_true", help="return once the new nodes have started")
    down = sub.add_parser("down", help="remove every namespace and process of the lab")
    down.add_argument("file", type=Path)
    ex = sub.add_parser("exec", help="run a command inside a node")
    ex.add_argument("file", type=Path)
    ex.add_argument("node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS... (default: an interactive shell)")
    st = sub.add_parser("status", help="show the lab's health")
    st.add_argument("file", type=Path)
    st.add_argument("--json", action="store_true")
    return p


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the lab up; print the timings."""
    topo = topology.load(args.file)

    def wait(t: topology.Topology, _st: object) -> None:
        status.wait_converged(t, args.timeout)

    try:
        timings = realise.up(topo, None if args.no_wait else wait)
    except Exception as e:
        raise realise.LabError(f"{e}\n(left as it is for a look; `labs/lab down {args.file}` removes it)") from e
    if timings is None:
        print(f"lab {topo.name} is already up")
    else:
        print(f"lab {topo.name} up in {timings}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Bring the running lab to another file of the same lab; print what changed."""
    topo = topology.load(args.file)

    def wait(t: topology.Topology, _st: object) -> None:
        status.wait_converged(t, args.timeout)

    done = realise.update(topo, None if args.no_wait else wait)
    print(f"lab {topo.name} updated to {args.file}: {done}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Take the lab down, from the full topology or, if it no longer parses, its name alone."""
    start = time.monotonic()
    try:
        target: topology.Topology | str = topology.load(args.file)
    except topology.TopologyError:
        target = topology.lab_name(args.file)
    stopped = realise.down(target)
    name = target if isinstance(target, str) else target.name
    print(f"lab {name} down in {time.monotonic() - start:.2f}s ({stopped} processes stopped)")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """Replace this process with the command inside the node."""
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    argv, env = realise.exec_argv(topology.load(args.file), args.node, command)
    os.execvpe(argv[0], argv, env)
    return 1  # not reached


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status; exit 0 only when the lab is healthy."""
    result = status.collect(topology.load(args.file))
    print(result.to_json() if args.json else status.table(result))
    return 0 if result.healthy else 1


def main(argv: list[str]) -> int:
    """Entry point of labs/lab."""
    args = parser().parse_args(argv)
    commands = {"up": cmd_up, "update": cmd_update, "down": cmd_down, "exec": cmd_exec, "status": cmd_status}
    try:
        return commands[args.command](args)
    except topology.TopologyError as e:
        print(f"labs/lab: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # realiser, command and wait errors: one readable line, no traceback
        print(f"labs/lab {args.command}: {e}", file=sys.stderr)
        return 1
