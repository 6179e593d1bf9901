"""Whether the devices came back after a document was applied (``rollback_after``).

Devices online before the document was applied, and still in it, must be online again
within ``rollback_after``; the watch ends as soon as they all are. A device the
document removed is not waited for. "Online" is the agent's own device state (the one
``/status`` shows): connected and every read answered. The MQTT sink that carries
remote configuration, if it was connected before, must be connected again too: a
document that breaks it (a wrong broker address) is undone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping

from edge_agent.runtime.source_runner import DeviceState

#: Named among what is not back when the sink carrying remote configuration is not
#: connected again (a document that breaks it would leave no way to push the next).
SINK = "the remote_config sink (not connected)"
#: How often the device states are looked at during the watch.
LOOK_EVERY_S = 0.5


def online(states: Mapping[str, DeviceState]) -> set[str]:
    return {name for name, state in states.items() if state is DeviceState.ONLINE}


async def devices_not_back(
    expected: Collection[str],
    states: Callable[[], Mapping[str, DeviceState]],
    within: float,
    sink_connected: Callable[[], bool] | None = None,
) -> list[str]:
    """The devices of ``expected`` still in the plant but not online after ``within``
    seconds (sorted), and :data:`SINK` if ``sink_connected`` (given when the sink that
    carries remote configuration was connected before) is not true by then; [] as soon
    as every one is back."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        now = states()
        missing = sorted(d for d in expected if d in now and now[d] is not DeviceState.ONLINE)
        if sink_connected is not None and not sink_connected():
            missing.append(SINK)
        left = deadline - loop.time()
        if not missing or left <= 0:
            return missing
        await asyncio.sleep(min(LOOK_EVERY_S, left))
