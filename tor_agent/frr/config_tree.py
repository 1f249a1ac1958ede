"""FRR configuration text as stanzas (pure, no I/O).

`parse_config` reads running-config output or a rendered frr.conf into a map from a context path
(`()` for global lines, `("interface eth1",)`, `("bfd", "profile tor-agent")`) to that context's
lines. It is normalised so that cosmetic differences never look like a change: the order of
stanzas, `!`/`exit`/`end` lines, `frr version`, blank lines, indentation width and runs of spaces.
Within a stanza, lines keep their first-seen order (used only to order commands) and duplicates
are merged. A nested context's header is also a line of its parent (`profile tor-agent` is a line
of `("bfd",)`), so a stanza with no lines still exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

ContextPath = tuple[str, ...]

_IGNORED = re.compile(r"^(!.*|#.*|end|exit(-\S+)?|frr version .*|Building configuration\.\.\.|Current configuration:)$")
# Context headers that can be empty, so indentation alone cannot tell them from plain lines.
_TOP_CONTEXTS = re.compile(
    r"^((interface|router|vrf|route-map|nexthop-group|pseudowire|key chain) \S.*"
    r"|bfd|rpki|segment-routing|line vty|mpls ldp)$"
)
# Nested context headers, by the first word of their parent (`router bgp` only, not `router ospf`).
_NESTED_CONTEXTS = {
    "bfd": re.compile(r"^(profile|peer) \S"),
    "router bgp": re.compile(r"^address-family \S"),
    "interface": re.compile(r"^link-params$"),
}
_SECRETS = re.compile(r"(\b(?:message-digest-key \d+ md5|authentication-key) )\S+")


@dataclass(frozen=True)
class FrrConfig:
    """A parsed FRR configuration: context path -> lines of that context, in first-seen order."""

    stanzas: Mapping[ContextPath, tuple[str, ...]]

    def lines(self, path: ContextPath) -> tuple[str, ...]:
        """The lines of context `path` (empty when the context does not exist)."""
        return self.stanzas.get(path, ())

    def has(self, path: ContextPath) -> bool:
        """Whether the context `path` exists (global `()` always does)."""
        return path == () or path in self.stanzas

    def paths(self) -> tuple[ContextPath, ...]:
        """Every context path, global first, then in first-seen order."""
        return tuple(self.stanzas)


def parse_config(text: str) -> FrrConfig:
    """Parse FRR configuration `text` (running-config output or a frr.conf) into stanzas."""
    content = list(_content_lines(text))
    stanzas: dict[ContextPath, list[str]] = {(): []}
    stack: list[tuple[int, ContextPath, re.Pattern[str] | None]] = []  # indent, path, its child headers
    path: ContextPath = ()
    for i, (indent, line) in enumerate(content):
        while stack and stack[-1][0] >= indent:
            stack.pop()
            path = stack[-1][1] if stack else ()
        next_indent = content[i + 1][0] if i + 1 < len(content) else -1
        headers = stack[-1][2] if stack else _TOP_CONTEXTS
        if next_indent > indent or (headers is not None and headers.match(line)):
            if path:
                _append(stanzas[path], line)
            path = (*path, line)
            stanzas.setdefault(path, [])
            stack.append((indent, path, _nested_contexts(path)))
        else:
            _append(stanzas.setdefault(path, []), line)
    return FrrConfig({path: tuple(lines) for path, lines in stanzas.items()})


def redact(text: str) -> str:
    """`text` with OSPF keys replaced by `<redacted>`: for messages, logs and diffs shown to people."""
    return _SECRETS.sub(r"\1<redacted>", text)


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    for raw in text.splitlines():
        line = " ".join(raw.split())  # surrounding whitespace dropped, runs of spaces and tabs made single
        if line and not (line[0] in "!#efBC" and _IGNORED.match(line)):
            yield len(raw) - len(raw.lstrip()), line


def _nested_contexts(path: ContextPath) -> re.Pattern[str] | None:
    if len(path) != 1:
        return None
    words = path[0].split()
    return _NESTED_CONTEXTS.get(words[0]) or _NESTED_CONTEXTS.get(" ".join(words[:2]))


def _append(lines: list[str], line: str) -> None:
    if line not in lines:
        lines.append(line)
