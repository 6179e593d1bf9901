"""OPC UA driver (asyncua client): bulk reads, subscriptions, security, browse.

* :mod:`drivers.opcua.session` - one session: security, trust check, identity, services.
* :mod:`drivers.opcua.nodes` - NodeIds, namespace URIs, browse paths, enumerations.
* :mod:`drivers.opcua.limits` - the server's operation limits; chunked requests.
* :mod:`drivers.opcua.convert`, :mod:`drivers.opcua.quality`, :mod:`drivers.opcua.batches` -
  values, StatusCodes and timestamps into sample batches.
* :mod:`drivers.opcua.security` - own application certificate, trusted/rejected lists.
* :mod:`drivers.opcua.driver` - the Driver the scheduler polls.
* :mod:`drivers.opcua.browse` - the address space as a tree (``edge-agent browse``).
"""

from drivers.opcua.driver import OpcUaDriver, build_opcua_drivers

__all__ = ["OpcUaDriver", "build_opcua_drivers"]
