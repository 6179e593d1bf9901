"""Safe writes: commands to devices, checked against the plant's policy and audited.

A command comes in on a channel (MQTT, the local socket of ``edge-agent write``, the
console, Sparkplug), becomes a :class:`~edge_agent.writes.model.WriteRequest`, and goes
through the one :class:`~edge_agent.writes.model.WriteGate` the agent holds: policy,
signature, rate limits, the device's state, the write, the read-back, the audit log.
docs/WRITES.md is the operator's side of it.
"""
