"""Sparkplug B 3.0: an edge node for SCADA hosts, live state only, beside the P/tx contract.

Kept light on purpose: importing this package (or live, checks) loads no protobuf; the
node and its codec are imported only when a `sparkplug:` section turns the node on.
"""
