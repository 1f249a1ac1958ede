"""Desired state derived from a validated intent: pure functions, no I/O."""
