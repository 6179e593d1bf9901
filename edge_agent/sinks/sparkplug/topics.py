"""The topics of one Sparkplug B edge node (spec chapter 4, "Topic Namespace Elements").

``spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`` for the edge node's
own messages and ``spBv1.0/STATE/{host_id}`` for a host application's state
[tck-id-topic-structure-namespace-a]. The ids were checked by the config
(:func:`edge_agent.config.sparkplug.id_problem`): one topic level each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: The namespace of Sparkplug B 3.0 [tck-id-topic-structure-namespace-a].
NAMESPACE: Final = "spBv1.0"


@dataclass(frozen=True, slots=True)
class CommandTopic:
    """An incoming NCMD (``device`` None) or DCMD (``device`` its Sparkplug id)."""

    device: str | None


@dataclass(slots=True)
class Topics:
    """Every topic one edge node publishes or subscribes to; device topics are cached."""

    group_id: str
    edge_node_id: str
    _device: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def node(self, message_type: str) -> str:
        """``spBv1.0/group/NBIRTH/node`` and the like."""
        return f"{NAMESPACE}/{self.group_id}/{message_type}/{self.edge_node_id}"

    def device(self, message_type: str, device_id: str) -> str:
        """``spBv1.0/group/DDATA/node/device`` and the like (cached: one per DDATA)."""
        key = (message_type, device_id)
        topic = self._device.get(key)
        if topic is None:
            topic = f"{self.node(message_type)}/{device_id}"
            self._device[key] = topic
        return topic

    @property
    def nbirth(self) -> str:
        return self.node("NBIRTH")

    @property
    def ndeath(self) -> str:
        return self.node("NDEATH")

    @property
    def ncmd(self) -> str:
        """Subscribed before the NBIRTH [tck-id-message-flow-edge-node-ncmd-subscribe]."""
        return self.node("NCMD")

    @property
    def dcmd(self) -> str:
        """Every device's DCMD: a filter [tck-id-message-flow-device-dcmd-subscribe]."""
        return self.node("DCMD") + "/+"

    def command(self, topic: str) -> CommandTopic | None:
        """The NCMD or DCMD ``topic`` addresses, or None when it is neither of ours."""
        if topic == self.ncmd:
            return CommandTopic(None)
        prefix = self.node("DCMD") + "/"
        if topic.startswith(prefix) and "/" not in topic[len(prefix) :] and topic[len(prefix) :]:
            return CommandTopic(topic[len(prefix) :])
        return None


def state_topic(host_id: str) -> str:
    """The STATE topic of host application ``host_id`` (3.0: no group level)
    [tck-id-message-flow-edge-node-birth-publish-phid-wait-id]."""
    return f"{NAMESPACE}/STATE/{host_id}"
