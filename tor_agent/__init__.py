"""tor-agent: the switch-side agent for L2-over-L3 data-center fabrics."""

__version__ = "0.1.0"
