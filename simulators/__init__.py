"""Simulated factory equipment with exact ground truth, served over Modbus and OPC UA.

* :mod:`simulators.equipment` - pure, seeded models (machine, power meter) and
  the :class:`~simulators.equipment.Simulation` that steps them; no I/O.
* :mod:`simulators.profile` - YAML profiles: servers, units, register maps.
* :mod:`simulators.registers` - value to register encoding (independent of drivers/).
* :mod:`simulators.modbus_server` - pymodbus front end (TCP on 127.0.0.1, RTU).
* :mod:`simulators.opcua_server` - asyncua front end (OPC UA on 127.0.0.1).
* :mod:`simulators.serve` - ``serve_profile()`` and the :class:`~simulators.serve.Plant` handle.
* :mod:`simulators.pty` - socat pty pairs for RTU without hardware.
* :mod:`simulators.cli` - ``run_simulate()`` behind ``edge-agent simulate``.

Nothing is imported here, so that importing the pure models does not load pymodbus.
"""
