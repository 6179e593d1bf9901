"""Per-device metric units: meters, machines and plant totals.

A unit owns the calculators of one metric device (counter and power trackers,
state tracker, parts counters), its open windows of every kind, and turns a
closed window into metric batches (:mod:`~edge_agent.metrics.output`).
:mod:`.meter`, :mod:`.machine` and :mod:`.total` hold one kind of unit each;
:mod:`.feed` is what they share: the handler type the processor calls, and the
energy feed of a meter or of a machine with an energy source.

Pure: units are fed ``(t_ns, value)`` of good samples by the processor, and are
told which windows closed; they never read a clock or touch a file.
"""
