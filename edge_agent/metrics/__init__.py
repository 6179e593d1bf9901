"""Edge metrics: energy, demand, coal and CO2 equivalents, machine utilization and OEE.

The calculators (:mod:`~edge_agent.metrics.windows`, :mod:`~edge_agent.metrics.energy`,
:mod:`~edge_agent.metrics.demand`, :mod:`~edge_agent.metrics.conversions`,
:mod:`~edge_agent.metrics.utilization`, :mod:`~edge_agent.metrics.tracks`, and
:mod:`~edge_agent.metrics.units` with its specs, accumulators and output) are pure:
no I/O, no clock of their own, time in integer nanoseconds.
:mod:`~edge_agent.metrics.processor` is the glue the pipeline calls,
:mod:`~edge_agent.metrics.store` persists accumulators, and
:mod:`~edge_agent.metrics.timer` closes windows on time. See docs/METRICS.md.
"""
