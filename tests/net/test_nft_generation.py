"""The nftables ruleset's generation id and the daemon's nft reader that runs `nft` only when it moved
(tor_agent.net.nft), in a namespace the test creates."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from nsutil import Netns

from tor_agent.net.nft import GenerationCachedNft, ruleset_generation
from tor_agent.net.state import NftTable

MakeNetns = Callable[[str], Netns]


@dataclass(frozen=True)
class CountingNft(GenerationCachedNft):
    """Counts the `nft` processes it runs."""

    runs: list[list[str]] = field(default_factory=list, compare=False)

    def _run(self, args: list[str], stdin: str | None = None) -> str:
        self.runs.append(args)
        return super()._run(args, stdin)


def _reads_and_runs() -> list[tuple[NftTable | None, int]]:
    """(what read() returned, `nft` processes so far) after each look."""
    nft = CountingNft()
    seen = []

    def look() -> None:
        seen.append((nft.read(), len(nft.runs)))

    look()  # no table: one run
    look()  # nothing moved: none
    nft.set_drop_ports(["lo"])  # tor-agent's own change (one run): read again
    look()
    look()
    subprocess.run(["nft", "add", "table", "inet", "someone_elses"], check=True, timeout=10)  # any change
    look()
    return seen


def test_nft_runs_only_when_the_ruleset_generation_moved(make_netns: MakeNetns) -> None:
    ns = make_netns("nftgen")
    first = ns.run(ruleset_generation)
    assert isinstance(first, int)
    ns.exec("nft", "add", "table", "inet", "x")
    assert ns.run(ruleset_generation) != first
    seen = ns.run(_reads_and_runs)
    ours = NftTable(frozenset({"lo"}), exact=True)
    assert seen == [(None, 1), (None, 1), (ours, 3), (ours, 3), (ours, 4)]
