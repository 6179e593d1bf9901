"""The Agent's lifecycle around the data path: the service a gateway runs.

* :mod:`.agent` - one plant's Agent: builds drivers, runners, outbox and sinks from a
  config, starts them (sinks first), stops them (sources first), reconfigures them.
* :mod:`.supervisor` - ``edge-agent run``: signals, SIGHUP reload, watchdog, exit codes.
* :mod:`.reload` - what a new plant file changes, and the checks before it is applied.
* :mod:`.health` - the HTTP listener: /healthz, /metrics, /status.
* :mod:`.telemetry` - Prometheus metrics of every runner.
* :mod:`.status` - the retained MQTT status document.
* :mod:`.liveness` - is the agent alive (loop lag, stalled pollers)?
* :mod:`.sdnotify` - systemd notifications and the watchdog.
"""
