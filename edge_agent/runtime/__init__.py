"""The framework pieces of the data path, side by side (as Telegraf's models/).

* :mod:`.source_runner` - one runner per device: interval, alignment, overrun skip,
  timeouts, backoff, :class:`~.source_runner.DeviceState`.
* :mod:`.pipeline` - processors over each batch, then the outbox.
* :mod:`.sink_runner` - one runner per sink: peek from its feed, send, retry, linger,
  drain.
"""
