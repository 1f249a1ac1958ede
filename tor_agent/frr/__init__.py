"""The FRR driver: runs vtysh, reads FRR's configuration, applies a rendered one safely.

`vtysh` is the only module that runs FRR's shell; `config_tree` and `delta` are pure (parsing,
ownership, the command batch); `apply` is the check → delta → apply → verify → persist flow with
rollback; `ledger` records which interfaces' OSPF configuration tor-agent made.
"""
