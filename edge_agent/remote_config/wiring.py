"""Remote configuration on the MQTT sink named by ``remote_config.sink``: the
subscription to ``edge/{plant}/config/set``, the queue of documents, the state report.

It follows the agent's sinks (:meth:`edge_agent.service.agent.Agent.follow_sinks`): at
start and after every reload it subscribes on the sink the config names (a sink the
reload made anew gets the subscription again; a SIGHUP that adds ``remote_config:`` or
moves it to another sink takes effect at once), and lets go of a sink that stops.

Each message is screened first (:attr:`screen`: parse, key, signature, age, version;
refused and reported at once if it fails, dropped silently if it is a replay of a
document already dealt with), so only signed documents are queued (a few: a flood of
documents must not become a flood of reloads) and taken one at a time by :meth:`run`.
When the queue is full, the document with the lowest version is dropped (counted and
logged), the newcomer if it is the lowest: the operator's newest document is never the
one pushed out by copies of older ones. The last state
report waits for the connection: one that could not be published (the document just
applied restarted the very sink that carries it) goes out after the next connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog

from edge_agent.config import PlantConfig
from edge_agent.remote_config.state import set_topic, state_topic
from edge_agent.sinks.base import CarriesTopics, Sink, Subscription, TopicCarrier

log = structlog.get_logger("edge_agent.remote_config")

#: Documents waiting to be taken; beyond, they are dropped (and logged).
QUEUE: Final = 4
#: Refusals of messages whose signature was not checked, waiting to be published (not
#: retained); beyond, the oldest go: they answer a sender, they record nothing.
NOTICES: Final = 8

Handle = Callable[[bytes, bool], Awaitable[None]]
#: A message's version if it may wait for its turn, None if it was screened out.
Screen = Callable[[bytes, bool], int | None]


class RemoteConfigChannel:
    """The topics of remote configuration on one sink at a time (module docstring)."""

    def __init__(self, queue: int = QUEUE) -> None:
        self._sink: Sink | None = None
        self._carrier: TopicCarrier | None = None
        self._subscription: Subscription | None = None
        self._state_topic = ""
        #: (payload, retained, version), in order of arrival.
        self._documents: asyncio.Queue[tuple[bytes, bool, int]] = asyncio.Queue(queue)
        self._state: bytes | None = None
        #: Reports published without retain (see :meth:`report`).
        self._notices: deque[bytes] = deque(maxlen=NOTICES)
        self._wake = asyncio.Event()
        #: Checks a message before it may wait (a signature check: junk must not take
        #: the places of real documents): its version, or None: refused (and
        #: reported) or ignored.
        self.screen: Screen | None = None
        #: Signed documents dropped because too many were waiting.
        self.dropped = 0
        #: Messages refused or ignored before they could wait.
        self.screened_out = 0

    @property
    def sink(self) -> str | None:
        """The sink carrying the topics now."""
        return None if self._sink is None else self._sink.name

    # ------------------------------------------------------------------ SinkFollower

    def configure(self, config: PlantConfig, sinks: Sequence[Sink]) -> None:
        settings = config.remote_config
        target = None
        if settings is not None:
            target = next((s for s in sinks if s.name == settings.sink), None)
        topic = set_topic(config.plant.name)
        current = self._subscription
        if target is self._sink and current is not None and current.topic == topic:
            return
        self._let_go()
        if target is None or not isinstance(target, CarriesTopics):
            if settings is not None:  # check refuses this; a sink that failed to build
                log.error("remote config has no MQTT sink to ride", sink=settings.sink)
            return
        self._subscription = Subscription(topic, self._on_message, self._wake.set)
        self._state_topic = state_topic(config.plant.name)
        self._sink, self._carrier = target, target.topics
        target.topics.add(self._subscription)
        log.info("remote config subscribed", sink=target.name, topic=topic)

    def disconnect(self, sink: Sink) -> None:
        if sink is self._sink:
            self._let_go()

    def _let_go(self) -> None:
        carrier, subscription = self._carrier, self._subscription
        self._sink = self._carrier = self._subscription = None
        if carrier is not None and subscription is not None:
            carrier.remove(subscription)

    # ------------------------------------------------------------------ in and out

    @property
    def connected(self) -> bool:
        """Whether the sink carrying the topics is connected now."""
        carrier = self._carrier
        return carrier is not None and carrier.is_connected

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        version = 0 if self.screen is None else self.screen(payload, retained)
        if version is None:
            self.screened_out += 1
            return
        if not self._documents.full():
            self._documents.put_nowait((payload, retained, version))
            return
        waiting = [self._documents.get_nowait() for _ in range(self._documents.qsize())]
        waiting.append((payload, retained, version))
        lowest = min(range(len(waiting)), key=lambda i: waiting[i][2])  # the oldest of equals
        dropped = waiting.pop(lowest)
        for item in waiting:
            self._documents.put_nowait(item)
        self.dropped += 1
        log.warning(
            "remote config document dropped: too many waiting (the lowest version goes)",
            version=dropped[2],
            waiting=self._documents.qsize(),
            dropped=self.dropped,
        )

    def report(self, payload: bytes, retain: bool = True) -> None:
        """Publish ``payload`` on ``config/state``, now or once connected.

        Retained: what became of a verified document and what runs (the last one wins).
        Not retained: a refusal before the signature was checked (anyone with access to
        the broker can cause one; it answers the sender, ``config push``, and must not
        replace the retained report that ``config status`` reads)."""
        if retain:
            self._state = payload
        else:
            self._notices.append(payload)
        self._wake.set()

    async def run(self, handle: Handle) -> None:
        """Take the documents one by one and publish the reports, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._take(handle), name="remote-config-documents")
            tasks.create_task(self._publish(), name="remote-config-state")

    async def _take(self, handle: Handle) -> None:
        while True:
            payload, retained, _ = await self._documents.get()
            try:
                await handle(payload, retained)
            except Exception:  # a bug in one document must not stop the agent
                log.exception("remote config document failed part-way; check the running state")

    async def _publish(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            carrier = self._carrier
            if carrier is None:
                continue
            while self._notices and carrier.is_connected:
                notice = self._notices.popleft()
                await carrier.publish(self._state_topic, notice, retain=False)
            payload = self._state
            if payload is None:
                continue
            published = await carrier.publish(self._state_topic, payload, retain=True)
            if published and self._state is payload:
                self._state = None
