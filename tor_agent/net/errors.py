"""Typed errors of the kernel links driver: each names the interface (and address) it concerns.

They pickle with their fields (a test or a worker may raise them in another process)."""

from __future__ import annotations

import errno as errno_names
import os
from collections.abc import Sequence

from tor_agent.errors import PartMissing, RuntimeFailure
from tor_agent.model.links import LinkSpec


class NetError(RuntimeFailure):
    """The kernel did not do what tor-agent asked of its links, sysctls or nftables."""


class NoSuchInterface(NetError, PartMissing):
    """An interface the intent names does not exist: it alone is skipped, and set up when it appears."""

    def __init__(self, link: LinkSpec) -> None:
        self.link = link
        PartMissing.__init__(self, link.subject, f"no such interface{link.note} (set up when it appears)")

    def __reduce__(self) -> tuple[type[NoSuchInterface], tuple[LinkSpec]]:
        return type(self), (self.link,)


class NetlinkFailure(NetError):
    """A netlink request failed; carries the interface, what was asked and the errno."""

    def __init__(self, interface: str, what: str, code: int) -> None:
        self.interface = interface
        self.what = what
        self.errno = code
        name = errno_names.errorcode.get(code, str(code))
        super().__init__(f"{interface}: cannot {what}: {os.strerror(code)} ({name})")

    def __reduce__(self) -> tuple[type[NetlinkFailure], tuple[str, str, int]]:
        return type(self), (self.interface, self.what, self.errno)


class NftFailure(NetError):
    """`nft` failed or is missing; carries its message."""


class SysctlFailure(NetError):
    """A sysctl could not be read or written; carries its name."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.detail = message
        super().__init__(f"sysctl {key}: {message}")

    def __reduce__(self) -> tuple[type[SysctlFailure], tuple[str, str]]:
        return type(self), (self.key, self.detail)


class LinksDidNotSettle(NetError):
    """After applying, the kernel still differs from the intent; lists what is still to do."""

    def __init__(self, remaining: Sequence[object]) -> None:
        self.remaining = tuple(remaining)
        super().__init__("links still differ from the intent after apply: " + "; ".join(map(str, self.remaining)))

    def __reduce__(self) -> tuple[type[LinksDidNotSettle], tuple[tuple[object, ...]]]:
        return type(self), (self.remaining,)
