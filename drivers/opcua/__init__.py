"""OPC UA driver (asyncua client): bulk reads, subscriptions, security, browse.

* :mod:`drivers.opcua.session` - one session: security, trust check, identity, services.
* :mod:`drivers.opcua.nodes` - NodeIds, namespace URIs, browse paths, enumerations.
* :mod:`drivers.opcua.limits` - the server's operation limits; chunked requests.
* :mod:`drivers.opcua.convert`, :mod:`drivers.opcua.quality`, :mod:`drivers.opcua.batches` -
  values, StatusCodes and timestamps into sample batches.
* :mod:`drivers.opcua.security` - own application certificate, trusted/rejected lists.
* :mod:`drivers.opcua.driver` - the Driver the scheduler polls; its read and subscribe
  groups in :mod:`drivers.opcua.groups`.
* :mod:`drivers.opcua.browse` - the address space as a tree (``edge-agent browse``).
* :mod:`drivers.opcua.kind` - the driver registry's entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.opcua.driver import OpcUaDriver, build_opcua_drivers

__all__ = ["OpcUaDriver", "build_opcua_drivers"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): the registry imports drivers.opcua.kind for ``check`` summaries,
    # which must not load asyncua; the driver loads it when a device is built.
    if name in __all__:
        from drivers.opcua import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
