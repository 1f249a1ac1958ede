"""The FRR driver: runs vtysh, reads FRR's configuration, applies a rendered one safely.

`vtysh` is the only module that runs FRR's shell; `config_tree` and `delta` are pure (parsing,
ownership, the command batch); `apply` is the delta → check → batch → verify → persist flow with
rollback; `config_file` persists the verified configuration; `ledger` records which interfaces'
OSPF configuration tor-agent made. Ownership rules: docs/frr-ownership.md.
"""
