"""tor-agent's nftables table: one netdev-ingress drop chain per OVS-attached kernel port (docs/design.md, fact 3).

A userspace OVS reads such a port through AF_PACKET, which taps frames before netdev ingress: the kernel
drops its own copy and so neither answers ARP with the port's MAC nor sends ICMP for GRE, while OVS still
sees every frame. The table `netdev tor_agent` is tor-agent's alone and is replaced as a whole, in one
nft transaction, whenever it differs. Chains are named `drop-<port>`: nft 1.0.6 does not list a netdev
chain's device in JSON, so the name is how tor-agent reads it back.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tor_agent.net import nlmsg
from tor_agent.net.errors import NftFailure
from tor_agent.net.state import NftTable

FAMILY = "netdev"
TABLE = "tor_agent"
CHAIN_PREFIX = "drop-"
PRIORITY = 0
NETLINK_NETFILTER = 12
NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
NFT_MSG_NEWGEN = (10 << 8) | 15
NFTA_GEN_ID = 1
_NFGENMSG = struct.Struct("=BBH")  # family, version, resource id (network order)


@dataclass(frozen=True)
class Nft:
    """The `nft` command; `argv0` and `timeout_s` are injectable for tests."""

    argv0: str = "nft"
    timeout_s: float = 10.0

    def read(self) -> NftTable | None:
        """tor-agent's table as it is, or None when it does not exist (or nft is not installed)."""
        try:
            out = self._run(["-j", "list", "table", FAMILY, TABLE])
        except FileNotFoundError:
            return None
        except NftFailure as e:
            if "No such file or directory" in str(e):
                return None
            raise
        try:
            return parse_table(json.loads(out))
        except (ValueError, TypeError, KeyError) as e:
            raise NftFailure(f"nft: cannot parse `nft -j list table {FAMILY} {TABLE}`: {e}") from e

    def set_drop_ports(self, ports: Sequence[str]) -> None:
        """Make the table exactly one drop chain per port, atomically; no ports: remove the table."""
        try:
            self._run(["-j", "-f", "/dev/stdin"], stdin=json.dumps(table_commands(ports)))
        except FileNotFoundError as e:
            raise NftFailure(f"nft: not found ({self.argv0}): install nftables") from e

    def _run(self, args: list[str], stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                [self.argv0, *args], input=stdin, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise NftFailure(f"nft {' '.join(args)}: no answer within {self.timeout_s:g}s") from e
        if done.returncode != 0:
            raise NftFailure(f"nft {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
        return done.stdout


def ruleset_generation() -> int | None:
    """The nftables ruleset's generation id in this network namespace: it moves with every change to any table
    (one netlink round trip, no process). None when it cannot be asked (no nf_tables, no CAP_NET_ADMIN)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER) as sock:
            sock.settimeout(5.0)
            sock.send(nlmsg.message(NFT_MSG_GETGEN, _NFGENMSG.pack(0, 0, 0)))
            data = sock.recv(4096)
    except OSError:
        return None
    start = nlmsg.HEADER.size + _NFGENMSG.size
    if len(data) < start or nlmsg.HEADER.unpack_from(data)[1] != NFT_MSG_NEWGEN:
        return None
    for kind, value in nlmsg.attributes(data, start):
        if kind == NFTA_GEN_ID and len(value) >= 4:
            generation: int = struct.unpack_from("!I", value)[0]
            return generation
    return None


@dataclass(frozen=True)
class GenerationCachedNft(Nft):
    """`Nft` whose `read` answers from the last `nft` run while the ruleset's generation has not moved: a look
    at an unchanged ruleset costs one netlink round trip instead of an `nft` process."""

    _last: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def read(self) -> NftTable | None:
        generation = ruleset_generation()
        if generation is not None and self._last.get("generation") == generation:
            table: NftTable | None = self._last["table"]
            return table
        self._last.clear()
        table = super().read()
        if generation is not None:
            self._last.update(generation=generation, table=table)
        return table

    def set_drop_ports(self, ports: Sequence[str]) -> None:
        self._last.clear()
        super().set_drop_ports(ports)


def chain_name(port: str) -> str:
    """The drop chain of `port`."""
    return CHAIN_PREFIX + port


def table_commands(ports: Sequence[str]) -> dict[str, Any]:
    """The JSON nft script replacing the table (add + delete + add: nft has no "create or replace")."""
    table = {"family": FAMILY, "name": TABLE}
    commands: list[dict[str, Any]] = [{"add": {"table": table}}, {"delete": {"table": table}}]
    if ports:
        commands.append({"add": {"table": table}})
        commands.extend(
            {
                "add": {
                    "chain": {
                        "family": FAMILY,
                        "table": TABLE,
                        "name": chain_name(port),
                        "type": "filter",
                        "hook": "ingress",
                        "dev": port,
                        "prio": PRIORITY,
                        "policy": "drop",
                    }
                }
            }
            for port in ports
        )
    return {"nftables": commands}


def parse_table(doc: dict[str, Any]) -> NftTable:
    """The drop ports of a `nft -j list table` answer; `exact` is False if anything else is in the table."""
    ports: set[str] = set()
    exact = True
    for item in doc["nftables"]:
        if not item.keys() <= {"metainfo", "table", "chain"}:
            exact = False  # a rule (an `accept` would let frames through), a set, anything tor-agent did not make
        chain = item.get("chain")
        if chain is None:
            continue
        port = _drop_chain_port(chain)
        if port is None:
            exact = False
        else:
            ports.add(port)
    return NftTable(drop_ports=frozenset(ports), exact=exact)


def _drop_chain_port(chain: dict[str, Any]) -> str | None:
    name = str(chain.get("name", ""))
    if not name.startswith(CHAIN_PREFIX):
        return None
    port = name[len(CHAIN_PREFIX) :]
    well_formed = (
        chain.get("type") == "filter"
        and chain.get("hook") == "ingress"
        and chain.get("policy") == "drop"
        and chain.get("dev", port) in (port, [port])  # newer nft lists the device; 1.0.6 does not
    )
    return port if well_formed else None
