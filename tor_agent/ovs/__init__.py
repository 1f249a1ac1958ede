"""The Open vSwitch driver (OVSDB through the `ovs` Python IDL).

`connection.OvsConnection` is the driver; `state` holds the plain values it exchanges (snapshots and
actions) and imports nothing from the `ovs` library, so the reconciler can be tested with fakes.
`routes.OvsRouteTable` keeps OVS's own route table over ovs-vswitchd's unixctl socket (`unixctl`).
"""
