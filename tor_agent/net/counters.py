"""The kernel's IPv4 forwarding counter (`Ip: ForwDatagrams` in /proc/net/snmp, this network namespace): how
much transit traffic a switch carries, for `tor-agent drain --wait`."""

from __future__ import annotations

from pathlib import Path

from tor_agent.net.errors import NetError

SNMP = Path("/proc/net/snmp")


def forwarded(snmp: Path = SNMP) -> int:
    """IPv4 datagrams the kernel has forwarded so far."""
    try:
        return parse_forwarded(snmp.read_text())
    except OSError as e:
        raise NetError(f"cannot read {snmp}: {e}") from e


def parse_forwarded(text: str) -> int:
    """`ForwDatagrams` from the two `Ip:` lines (names, then values) of /proc/net/snmp."""
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Ip:")]
    if len(rows) != 2 or "ForwDatagrams" not in rows[0] or len(rows[1]) != len(rows[0]):
        raise NetError("/proc/net/snmp has no Ip: ForwDatagrams counter")
    return int(rows[1][rows[0].index("ForwDatagrams")])
