"""The `ovs` library, imported as tor-agent uses it: without Python's ssl module.

ovs.stream, ovs.poller and ovs.socket_util import `ssl` when they can (4 MB of the agent's memory: libssl
and libcrypto) and do without it when they cannot: then only `ssl:` streams are missing. tor-agent's OVSDB
and unixctl connections are unix sockets, and an `ssl:` OVSDB remote would also need the keys and
certificates the library is given through calls tor-agent never makes. So the library is imported with
`import ssl` failing once; a process that has imported ssl or the library already keeps them as they are.
"""

from __future__ import annotations

import sys

if "ssl" not in sys.modules and "ovs.stream" not in sys.modules:
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError, as without it
    try:
        import ovs.socket_util
        import ovs.stream
    finally:
        del sys.modules["ssl"]

import ovs
import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

__all__ = ["ovs"]
