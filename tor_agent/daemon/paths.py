"""Where the daemon keeps its files (the systemd unit allows writing /run/tor-agent and /var/lib/tor-agent)."""

from pathlib import Path

STATUS_FILE = Path("/run/tor-agent/status.json")
CONTROL_SOCKET = Path("/run/tor-agent/control.sock")
# The directory Debian's prometheus-node-exporter reads textfiles from.
DEFAULT_TEXTFILE = Path("/var/lib/prometheus/node-exporter/tor-agent.prom")
