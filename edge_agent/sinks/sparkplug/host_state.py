"""The primary host application's STATE messages (Sparkplug 3.0, JSON payload).

``spBv1.0/STATE/{host_id}`` carries ``{"online": bool, "timestamp": ms}``
[tck-id-message-flow-phid-sparkplug-state-publish-payload]. The broker may deliver an
old host session's death (its Will) after the new session's birth, so a message whose
timestamp is older than the newest seen is ignored; an equal or newer one counts
[tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp,
tck-id-operational-behavior-edge-node-termination-host-offline-timestamp].
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class StateError(ValueError):
    """A STATE payload that is not the 3.0 JSON document."""


@dataclass(frozen=True, slots=True)
class HostState:
    online: bool
    timestamp_ms: int


def parse_state(payload: bytes) -> HostState:
    """The state in ``payload``; raises :class:`StateError` saying what is wrong."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        # A 2.2 host publishes the text ONLINE / OFFLINE: say which spec it speaks.
        text = payload[:20].decode("utf-8", "replace")
        raise StateError(
            f"not a JSON document ({text!r}; a Sparkplug 2.2 host sends plain text, "
            f"3.0 sends JSON): {exc}"
        ) from None
    if not isinstance(document, dict):
        raise StateError("not a JSON object")
    online, timestamp = document.get("online"), document.get("timestamp")
    if not isinstance(online, bool):
        raise StateError(f"'online' must be true or false, not {online!r}")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise StateError(f"'timestamp' must be a whole number of ms, not {timestamp!r}")
    return HostState(online, timestamp)


class Verdict(enum.Enum):
    """What a STATE message means to the edge node."""

    #: The host is online (newest state): births may go out.
    ONLINE = "online"
    #: The host is offline (newest state): no births, and a live session ends.
    OFFLINE = "offline"
    #: Older than the newest state seen: an old session's message, ignored.
    STALE = "stale"
    #: Not a 3.0 STATE payload: ignored (logged and counted by the sink).
    INVALID = "invalid"


class HostWatch:
    """The newest state of the primary host on each MQTT server, from the STATE messages
    in arrival order.

    One record per server (:meth:`at` picks the server the messages now come from), kept
    across MQTT sessions of the edge node: the STATE message is retained, and the server
    hands it again after every subscribe; an older one from the same server must still
    lose. Another server's timestamps are not compared (the module docstring).
    """

    def __init__(self) -> None:
        self._states: dict[str, HostState] = {}
        self.server = ""
        self.last_error = ""

    def at(self, server: str) -> None:
        """The STATE messages offered from now on come from ``server`` (``host:port``)."""
        self.server = server

    @property
    def state(self) -> HostState | None:
        """The newest state heard from the current server (None: nothing yet)."""
        return self._states.get(self.server)

    @property
    def online(self) -> bool:
        return self.state is not None and self.state.online

    def offer(self, payload: bytes) -> Verdict:
        try:
            state = parse_state(payload)
        except StateError as exc:
            self.last_error = str(exc)
            return Verdict.INVALID
        newest = self.state
        if newest is not None and state.timestamp_ms < newest.timestamp_ms:
            return Verdict.STALE
        self._states[self.server] = state
        return Verdict.ONLINE if state.online else Verdict.OFFLINE


class OfflineRound:
    """Whether an edge node whose primary host is offline walks on to the next broker.

    An offline STATE ends a born session and walks on
    [tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk].
    Before the births it walks on too, as long as some broker of the list has not said
    offline since the last birth: the host may be online there. Once every broker has
    said it (on a cluster, where the STATE is one retained message for every node, that is
    one round), walking on would only count failovers and delay the births by the backoff
    after the host is back, so the node stays where it is and is born the moment that
    broker's STATE says online. Only a birth or a session lost for another reason
    (:meth:`reset`) starts a new round.
    """

    def __init__(self, brokers: int) -> None:
        self._brokers = brokers
        self._said: set[str] = set()

    def offline(self, server: str) -> bool:
        """``server`` said the host is offline: True while some broker has not said it."""
        self._said.add(server)
        return len(self._said) < self._brokers

    def reset(self) -> None:
        self._said.clear()
