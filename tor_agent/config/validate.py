"""Turn a parsed intent document into a frozen `Intent`, reporting every problem at once.

The generic reader checks each field against its declaration; what is checked here spans fields: the
role's sections, OSPF timers together, uplinks apart from each other and the loopback, and the OSPF key
file's content. The overlay and controllers sections are checked in `validate_overlay`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from tor_agent.config.files import FileProblem, read_file
from tor_agent.config.quote import one_line
from tor_agent.config.reader import Reader, resolve, secret_file_mode
from tor_agent.config.schema import Intent, Node, Ospf, OspfAuth, Underlay, Uplink
from tor_agent.config.validate_overlay import check_controllers, check_overlay

OSPF_DEFAULT_HELLO_S = 10  # FRR's, when hello_interval_s is not set
OSPF_MD5_KEY_BYTES = (1, 16)
# An OSPF MD5 key as vtysh keeps it: printable ASCII without space, and without `?` (vtysh's help key).
_OSPF_KEY = re.compile(r"[!-~]+", re.ASCII)


def build_intent(doc: Any, base_dir: Path, r: Reader) -> Intent | None:
    """Validate `doc`; relative file paths in it are taken relative to `base_dir`."""
    intent = r.section(Intent, doc, "")
    node: Node | None = r.sections.get("node")
    underlay: Underlay | None = r.sections.get("underlay")
    if node is not None and isinstance(doc, dict):
        _role_sections(node, doc, r)
    ospf = r.sections.get("underlay.ospf")
    if ospf is not None:
        _timers(ospf, r)
    auth = _auth(r.sections.get("underlay.ospf.authentication"), base_dir, r)
    _uplinks(r, node)
    overlay = check_overlay(r, node, underlay)
    controllers = check_controllers(r, base_dir, node, underlay)
    if r.problems or intent is None:
        return None
    if auth is not None:
        ospf = dataclasses.replace(intent.underlay.ospf, authentication=auth)
        intent = dataclasses.replace(intent, underlay=dataclasses.replace(intent.underlay, ospf=ospf))
    return dataclasses.replace(intent, overlay=overlay, controllers=controllers)


def _role_sections(node: Node, top: dict[str, Any], r: Reader) -> None:
    if node.role == "spine":
        for key in ("overlay", "controllers"):
            r.require(key not in top, key, "a spine carries no overlay: remove this section (or set node.role: leaf)")
    else:
        r.require("overlay" in top, "overlay", "is required on a leaf (the bridge and its GRE tunnels)")


def _timers(ospf: Ospf, r: Reader) -> None:
    hello, dead = ospf.hello_interval_s, ospf.dead_interval_s
    if hello is not None:
        r.require(
            (dead or 40) > hello,
            "underlay.ospf.dead_interval_s",
            f"must be greater than hello_interval_s ({hello}); 4 x hello is usual",
        )
    elif dead is not None:
        r.require(
            dead > OSPF_DEFAULT_HELLO_S,
            "underlay.ospf.dead_interval_s",
            f"must be greater than the hello interval, FRR's default {OSPF_DEFAULT_HELLO_S} s as hello_interval_s "
            "is not set; 4 x hello is usual",
        )


def _auth(auth: OspfAuth | None, base_dir: Path, r: Reader) -> OspfAuth | None:
    """The authentication section with its key read from key_file (resolved), or None."""
    if auth is None:
        return None
    key_file, where = resolve(base_dir, auth.key_file), "underlay.ospf.authentication.key_file"
    try:
        content = read_file(key_file)
    except FileProblem as e:
        r.require(False, where, f"cannot read {one_line(key_file)}: {e} (create it holding the MD5 key, mode 0600)")
        return None
    key = content.data.strip().decode("ascii", errors="replace")
    lo, hi = OSPF_MD5_KEY_BYTES
    ok = r.require(
        lo <= len(key) <= hi and bool(_OSPF_KEY.fullmatch(key)) and "?" not in key,
        where,
        f"{one_line(key_file)} must hold one key of {lo}..{hi} ASCII printable characters without spaces or ? "
        "(FRR counts bytes; vtysh takes ? as a request for help)",
    )
    secret_file_mode(content.mode, key_file, where, r)
    return dataclasses.replace(auth, key_file=key_file, key=key) if ok else None


def _uplinks(r: Reader, node: Node | None) -> None:
    """Each uplink numbered or unnumbered; names unique; subnets apart from each other and the loopback."""
    for path, uplink in r.sections.items():
        if isinstance(uplink, Uplink):
            r.require(
                (uplink.address is not None) != uplink.unnumbered,
                path,
                "set exactly one of address (numbered) or unnumbered: true (borrows the loopback /32)",
            )
    underlay: Underlay | None = r.sections.get("underlay")
    if underlay is None:
        return
    uplinks = underlay.uplinks
    seen: dict[str, int] = {}
    for i, u in enumerate(uplinks):
        if u.name in seen:
            r.require(
                False,
                f"underlay.uplinks[{i}].name",
                f"{u.name!r} is already underlay.uplinks[{seen[u.name]}] (names must be unique)",
            )
        seen.setdefault(u.name, i)
        if u.address is not None and node is not None:
            r.require(
                node.loopback.ip not in u.address.network,
                f"underlay.uplinks[{i}].address",
                f"{u.address.network} contains the loopback {node.loopback.ip} (keep the loopback outside every link)",
            )
    _subnets_apart(uplinks, r)


def _subnets_apart(uplinks: tuple[Uplink, ...], r: Reader) -> None:
    # CIDR blocks either nest or are disjoint: in address order, a block overlaps an earlier one exactly
    # when it starts before the widest block seen so far ends (n log n, where comparing pairs was n²).
    numbered = sorted(
        (int(u.address.network.network_address), -u.address.network.prefixlen, i, u.address.network)
        for i, u in enumerate(uplinks)
        if u.address is not None
    )
    widest: tuple[int, int] | None = None  # (last address, index)
    overlaps: list[tuple[int, int]] = []
    for start, _, i, net in numbered:
        if widest is not None and start <= widest[0]:
            overlaps.append(tuple(sorted((i, widest[1]))))  # type: ignore[arg-type]
        if widest is None or int(net.broadcast_address) > widest[0]:
            widest = (int(net.broadcast_address), i)
    for first, later in sorted(overlaps):
        mine, other = uplinks[later].address, uplinks[first].address
        assert mine is not None and other is not None
        r.require(
            False,
            f"underlay.uplinks[{later}].address",
            f"{mine.network} overlaps underlay.uplinks[{first}] ({other.network})",
        )
