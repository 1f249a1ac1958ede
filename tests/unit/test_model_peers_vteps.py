"""VTEP discovery (tor_agent.model.peers): pure, over route prefixes; the route index peer selection uses."""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from tor_agent.config import load
from tor_agent.config.schema import Discover
from tor_agent.model.peers import discover_vteps, known_vteps
from tor_agent.model.routes import KernelRoute, RouteIndex, longest_match

DATA = Path(__file__).resolve().parent / "data" / "health"
PREFIXES = [
    IPv4Network(p)
    for p in ("198.18.0.1/32", "198.18.0.11/32", "198.18.0.12/32", "198.18.0.13/32", "198.18.1.0/31", "203.0.113.7/32")
]
OWN = IPv4Address("198.18.0.11")


def addresses(*texts: str) -> frozenset[IPv4Address]:
    return frozenset(IPv4Address(t) for t in texts)


def test_discover_takes_slash_32s_inside_the_prefix_except_our_own() -> None:
    assert discover_vteps(PREFIXES, IPv4Network("198.18.0.8/29"), OWN) == addresses("198.18.0.12", "198.18.0.13")


def test_discover_anywhere_when_no_prefix() -> None:
    assert discover_vteps(PREFIXES, None, OWN) == addresses("198.18.0.1", "198.18.0.12", "198.18.0.13", "203.0.113.7")


def test_leaf_knows_static_peers_plus_discovered_ones() -> None:
    intent = load(DATA / "leaf1-healthy" / "intent.yaml")
    assert known_vteps(intent, PREFIXES) == (IPv4Address("198.18.0.12"), IPv4Address("198.18.0.13"))
    assert known_vteps(intent, []) == (IPv4Address("198.18.0.12"),)  # a static peer stays known without a route


def test_leaf_without_discovery_knows_only_its_peers() -> None:
    intent = load(DATA / "leaf1-healthy" / "intent.yaml")
    assert intent.overlay is not None
    tunnels = dataclasses.replace(intent.overlay.tunnels, discover=None)
    intent = dataclasses.replace(intent, overlay=dataclasses.replace(intent.overlay, tunnels=tunnels))
    assert known_vteps(intent, PREFIXES) == (IPv4Address("198.18.0.12"),)
    wide = dataclasses.replace(tunnels, discover=Discover(IPv4Network("198.18.0.0/24")))
    intent = dataclasses.replace(intent, overlay=dataclasses.replace(intent.overlay, tunnels=wide))
    assert IPv4Address("198.18.0.1") in known_vteps(intent, PREFIXES)  # a prefix covering spines finds spines


def test_spine_knows_every_other_loopback() -> None:
    intent = load(DATA / "spine1-healthy" / "intent.yaml")
    assert known_vteps(intent, PREFIXES) == tuple(
        sorted(addresses("198.18.0.11", "198.18.0.12", "198.18.0.13", "203.0.113.7"))
    )


def test_route_index_matches_as_longest_match_does() -> None:
    """The index peer selection uses: the same route as a scan, for every address, over overlapping prefixes of
    every length, equal prefixes with different metrics included."""
    rng = random.Random(7)
    routes = []
    for _ in range(300):
        length = rng.choice([0, 8, 16, 24, 28, 31, 32, 32, 32])
        address = IPv4Address(rng.choice([0xC6120000, 0xC6120100, 0x0A000000]) + rng.randrange(512))
        routes.append(KernelRoute(IPv4Network((address, length), strict=False), "ospf", (), metric=rng.randrange(3)))
    index = RouteIndex(routes)
    for _ in range(2000):
        address = IPv4Address(rng.choice([0xC6120000, 0xC6120100, 0x0A000000, 0xCB007100]) + rng.randrange(600))
        assert index.match(address) == longest_match(routes, address), address
