"""Edge metrics: energy, demand, coal and CO2 equivalents, machine utilization and OEE.

The calculators (:mod:`~edge_agent.metrics.windows`, :mod:`~edge_agent.metrics.energy`,
:mod:`~edge_agent.metrics.demand`, :mod:`~edge_agent.metrics.conversions`,
:mod:`~edge_agent.metrics.utilization`, :mod:`~edge_agent.metrics.tracks`, and
:mod:`~edge_agent.metrics.units` with its specs, accumulators and output) are pure:
no I/O, no clock of their own, time in integer nanoseconds.
:mod:`~edge_agent.metrics.processor` is the glue the pipeline calls (its units built
by :mod:`~edge_agent.metrics.build`), :mod:`~edge_agent.metrics.store` persists
accumulators, :mod:`~edge_agent.metrics.timer` closes windows on time, and
:mod:`~edge_agent.metrics.live` reads today's KPIs for displays.
:mod:`~edge_agent.metrics.contract` is what the sinks and the pipeline know of a
metric batch. See docs/METRICS.md.

This package module imports nothing, so a sink importing the contract loads no
calculator.
"""
