"""Review of issue 18 (safe writes), the device side and the gate: each test names a way
a wrong or unsafe write could come about, and fails while the code lets it happen.

Real servers where the existing tests use them (tests/modbus_hostile.py); the gate on
its stand-ins (tests/gate_support.py); the encoders and the config check as pure units.
"""

from __future__ import annotations

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.driver import WriteFailed, WriteOutcomeUnknown
from edge_agent.writes.model import Outcome
from edge_agent.writes.policy import PlantWrites
from tests.gate_support import T0, make_gate, plant_text
from tests.integration.test_modbus_writes_hostile import gateway, on_writes
from tests.modbus_hostile import Reply, exception_pdu

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


# -- Modbus: an exception that is not the device saying no


@pytest.mark.integration
@pytest.mark.parametrize(
    ("code", "why"),
    [
        (
            11,
            "a TCP/RTU gateway sent the write down the serial line; the device's answer "
            "did not come back in time: the device may well hold the value",
        ),
        (5, "acknowledge: the device accepted the request and is still processing it"),
    ],
    ids=["gateway-target-11", "acknowledge-5"],
)
async def test_a_gateway_timeout_or_acknowledge_to_a_write_is_an_unknown_outcome(
    code: int, why: str
) -> None:
    """Exception 11 (gateway target device failed to respond) and 5 (acknowledge) do not
    mean "the device said no". Reported as WriteFailed, the gate says *failed*, skips the
    read-back, and the operator is invited to send it again: a second write of something
    the device may already have taken. They must be WriteOutcomeUnknown (resolved by
    the read-back, never retried)."""
    answer = on_writes(lambda asked: [Reply(exception_pdu(asked.function, code))])
    async with gateway({1: answer}) as (server, drivers):
        prepared = await drivers["d1"].prepare("sp", 6.5)
        try:
            await drivers["d1"].write(prepared)
        except WriteOutcomeUnknown:
            pass
        except WriteFailed as exc:
            pytest.fail(f"exception {code} ({why}) reported as a failed write: {exc}")
        else:
            pytest.fail(f"exception {code} taken as a confirmed write")
        assert len([a for a in server.asked if a.function == 6]) == 1
