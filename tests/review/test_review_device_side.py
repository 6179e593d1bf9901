"""Review of issue 18 (safe writes), the device side and the gate: each test names a way
a wrong or unsafe write could come about, and fails while the code lets it happen.

Real servers where the existing tests use them (tests/modbus_hostile.py); the gate on
its stand-ins (tests/gate_support.py); the encoders and the config check as pure units.
"""

from __future__ import annotations

from edge_agent.config.loader import parse_config
from edge_agent.writes.model import Outcome
from edge_agent.writes.policy import PlantWrites
from tests.gate_support import T0, make_gate, plant_text

# -- the gate: the replay guard across a reload


async def test_raising_max_age_on_reload_does_not_let_a_forgotten_id_be_replayed() -> None:
    """Ids are kept 2 x max_age. A reload that raises max_age (30 s -> 300 s: commands
    were refused as too old) must not make a captured command valid again after its id
    was forgotten under the old window: the device would be written a second time."""
    gate = make_gate()
    first = await gate.send(id="captured", channel="mqtt", issued_at_ns=T0, value=6.0)
    assert first.outcome is Outcome.APPLIED, first.reason
    gate.clock.advance(61)  # past 2 x 30 s: the next command forgets the id
    other = await gate.send(id="other", channel="mqtt", issued_at_ns=gate.clock.now, value=6.5)
    assert other.outcome is Outcome.APPLIED, other.reason
    longer = parse_config(plant_text().replace("max_age: 30s", "max_age: 300s"), env={})
    gate.service.update(PlantWrites.of(longer))
    gate.device.requests.clear()
    replay = await gate.send(id="captured", channel="mqtt", issued_at_ns=T0, value=6.0)
    assert replay.outcome is Outcome.REFUSED, (
        f"a replayed command (issued 61 s ago, id seen before) was {replay.outcome.value}"
    )
    assert gate.device.writes == [], "the replayed command reached the device"
