"""Allowed ranges, taken from FRR 8.4, Open vSwitch 3.1 and Linux, in one place for code and docs."""

IFNAME_MAX = 15  # Linux IFNAMSIZ - 1
MTU = (68, 65535)
# How long `tor-agent run` keeps a tunnel whose peer's route went (0: not at all).
TUNNEL_HOLD_DOWN_S = (0, 600)
OSPF_AREA = (0, 4294967295)
OSPF_MAXIMUM_PATHS = (1, 256)  # Debian builds FRR with --enable-multipath=256 (also its default)
OSPF_REFERENCE_BANDWIDTH_MBPS = (1, 4294967)
OSPF_INTERVAL_S = (1, 65535)  # hello-interval and dead-interval
OSPF_COST = (1, 65535)
OSPF_LSA_THROTTLE_MS = (0, 5000)
OSPF_LSA_MIN_ARRIVAL_MS = (0, 600000)
OSPF_KEY_ID = (1, 255)
OSPF_MD5_KEY_LEN = (1, 16)
BFD_INTERVAL_MS = (10, 60000)
BFD_MULTIPLIER = (2, 255)
GRE_KEY = (0, 2**32 - 1)
TCP_PORT = (1, 65535)
OPENFLOW_PORT = 6653
# OVS floors the inactivity probe at 5 s; 0 disables it.
INACTIVITY_PROBE_MS = (5000, 3600000)
MAX_BACKOFF_MS = (1000, 3600000)
# The controller keeper's own timers (not OVS's): how long a controller (or all of them) may be down, or
# none master/equal, before the alarm; how often it TCP-probes a controller the switch is not connected to.
CONTROLLER_ALARM_GRACE_S = (1, 3600)
CONTROLLER_PROBE_INTERVAL_MS = (100, 10000)
OPENFLOW_VERSIONS = ("OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15")

# Bytes a GRE-encapsulated tenant frame adds to the tenant's IP MTU on an uplink:
# outer IPv4 header 20 + GRE header 4 (+ 4 with a key) + the tenant's Ethernet header 14.
GRE_OVERHEAD = 20 + 4 + 14
GRE_KEY_OVERHEAD = 4


def gre_overhead(keyed: bool) -> int:
    """Encapsulation overhead of one tenant frame in bytes."""
    return GRE_OVERHEAD + (GRE_KEY_OVERHEAD if keyed else 0)
