"""Reconcilers: diff desired state against a driver's snapshot, apply the difference, verify."""
