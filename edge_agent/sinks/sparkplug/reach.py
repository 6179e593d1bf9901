"""Whether a Sparkplug device can be reached, from the batches the sink delivers.

A device is dead (DDEATH) only when it cannot be reached: the latest batch of *every one*
of its poll groups is all BAD for a connection reason (:data:`CONNECTION_REASONS`). One
group that times out while another answers is a device that answers: its bad samples go
out as BAD metrics, and the device does not flap between DDEATH and DBIRTH at the poll
rate. A bad value (nan, sentinel, decode error, an OPC UA Bad status of one node, Modbus
exceptions 1-4, an internal error of a driver) says nothing about the link: never a death.
The device is born again when any of its groups answers (docs/SPARKPLUG.md, "Devices
online and offline"; tck-id-operational-behavior-device-ddeath).

The reasons are the drivers' own strings, written out here because edge_agent/ does not
import the drivers (tests/unit/test_sparkplug_node.py checks them against the drivers'
constants).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from edge_agent.model import (
    REASON_DISCONNECTED,
    REASON_INVALID_RESPONSE,
    REASON_TIMEOUT,
    Quality,
    SampleBatch,
    exception_reason,
)

#: OPC UA status codes that say the session, its secure channel or its connection is gone
#: or cannot be made (what the OPC UA driver's bad samples carry then: drivers/opcua/session.py
#: ``map_error``, a subscription's status change in drivers/opcua/groups.py), never one
#: node's value.
OPCUA_SESSION_LOSS: Final = frozenset(
    {
        "BadTimeout",
        "BadRequestTimeout",
        "BadCommunicationError",
        "BadConnectionClosed",
        "BadConnectionRejected",
        "BadDisconnect",
        "BadNotConnected",
        "BadServerNotConnected",
        "BadServerHalted",
        "BadShutdown",
        "BadServerTooBusy",
        "BadTcpServerTooBusy",
        "BadTcpInternalError",
        "BadTcpSecureChannelUnknown",
        "BadTcpNotEnoughResources",
        "BadTcpEndpointUrlInvalid",
        "BadMaxConnectionsReached",
        "BadTooManySessions",
        "BadSecureChannelClosed",
        "BadSecureChannelIdInvalid",
        "BadSecureChannelTokenUnknown",
        "BadSessionClosed",
        "BadSessionIdInvalid",
        "BadSessionNotActivated",
        "BadNoSubscription",
        "BadSubscriptionIdInvalid",
        "BadSecurityChecksFailed",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
    }
)

#: Reasons of bad samples that say the device cannot be reached.
CONNECTION_REASONS: Final = frozenset(
    {
        # every driver (edge_agent/model.py)
        REASON_TIMEOUT,
        REASON_DISCONNECTED,
        # Modbus: a reply that does not fit the request (the channel drops the link)
        REASON_INVALID_RESPONSE,
        # Modbus gateway path unavailable, gateway target failed to respond
        # (drivers/modbus/driver.py UNREACHABLE_CODES)
        exception_reason(10),
        exception_reason(11),
        # OPC UA (drivers/opcua/groups.py REASON_WATCHDOG, REASON_NOT_MONITORED, a
        # subscription ended without a status; session.py REASON_UNTRUSTED, map_error)
        "subscription watchdog",
        "not monitored",
        "status change",
        "protocol error",
        "untrusted server certificate",
        "no matching endpoint",
        "no server certificate",
    }
    | OPCUA_SESSION_LOSS
)


def is_poll_batch(batch: SampleBatch) -> bool:
    """A poll group's batch (not a metric window, event, report or guard batch)."""
    return not batch.attributes


def unreachable(batch: SampleBatch) -> bool:
    """True when every sample of ``batch`` is bad for a connection reason."""
    qualities = batch.qualities
    if not qualities or qualities.count(Quality.BAD) != len(qualities):
        return False
    return all(reason in CONNECTION_REASONS for reason in set(batch.reasons))


@dataclass(slots=True)
class Reach:
    """One device's poll groups and which of them last said "unreachable"."""

    #: The device's poll groups: the catalog's, plus any seen in a batch.
    groups: set[str] = field(default_factory=set)
    #: Groups whose latest batch was all bad for a connection reason.
    lost: set[str] = field(default_factory=set)

    def record(self, batch: SampleBatch) -> None:
        """Take a poll batch into account."""
        self.groups.add(batch.group)
        if unreachable(batch):
            self.lost.add(batch.group)
        else:
            self.lost.discard(batch.group)

    @property
    def dead(self) -> bool:
        """Every poll group's latest batch said the device cannot be reached (a group that
        has not reported yet has not said so)."""
        return bool(self.groups) and self.lost >= self.groups

    def regroup(self, groups: set[str]) -> None:
        """A reload: the catalog's groups now; what the others said is forgotten."""
        self.groups = set(groups)
        self.lost &= self.groups
