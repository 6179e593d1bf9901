"""Review of the changes after the first review (74ce6af..): each test shows one bug
the fixes, the trial or the refactors brought in (or left), and fails until it is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.encode import encode
from edge_agent.config import ModbusDeviceConfig, ModbusTag
from edge_agent.config.loader import parse_config
from edge_agent.driver import WriteFailed, WriteOutcomeUnknown
from edge_agent.errors import DriverError
from edge_agent.writes.model import Outcome
from tests.gate_support import make_gate, plant, plant_text

# -- scrub: the audit record and the result keep what a command asked


def _method_plant(first: str, second: str) -> str:
    """The gate's plant with method ack's arguments renamed (and the second a bool)."""
    code = "{name: code, min: 0, max: 99, step: 1}"
    who = "{name: who, allowed: [operator, shift-lead]}"
    text = plant_text().replace(code, code.replace("code", first))
    return text.replace(who, f"{{name: {second}, allowed: [true, false]}}")


async def test_a_method_argument_named_like_bypass_or_token_count_is_audited() -> None:
    """writes/scrub.py drops every key redaction.is_secret_key matches, at any depth, so
    a method's arguments (the keys of ``requested``) named ``token_count`` (``token``
    anywhere) or ``bypass`` (``pass`` at the end) vanish from the result and from the
    audit record: the log of a call that set a bypass does not say to what. They are
    the names a plant gave its method's arguments in the write: block, not secrets."""
    gate = make_gate(parse_config(_method_plant("token_count", "bypass"), env={}))
    result = await gate.send(
        device="press-2", method="ack", args={"token_count": 5, "bypass": True}
    )
    assert result.outcome is Outcome.APPLIED
    assert gate.opcua.writes == [("call", ("ack", {"token_count": 5, "bypass": True}))]
    assert result.to_json()["requested"] == {"token_count": 5, "bypass": True}
    assert gate.audit.records[-1]["requested"] == {"token_count": 5, "bypass": True}


# -- check: the register-range rule on valid plants


BOILER = """
plant: {name: p}
devices:
  - name: boiler
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    poll_groups:
      - interval: 1s
        tags:
          - name: supply_setpoint
            address: 10
            scale: %(scale)s
            offset: %(offset)s
            type: %(type)s
            write: {channels: [cli], min: %(min)s, max: %(max)s}
"""


@pytest.mark.parametrize(
    ("type_", "scale", "offset", "low", "high"),
    [
        # the whole of a uint16 in 0.001 degC from -40: -40.000 to 25.535
        ("uint16", "0.001", "-40", "-40", "25.535"),
        # the whole of an int16 in 0.01 K shown in degC: -600.83 to 54.52
        ("int16", "0.01", "-273.15", "-600.83", "54.52"),
    ],
)
def test_a_range_that_is_exactly_what_the_register_holds_is_no_error(
    type_: str, scale: str, offset: str, low: str, high: str
) -> None:
    """config/checks/writes.py computes the register's ends in floats (raw x scale +
    offset) and compares the bounds with them: 65535 x 0.001 - 40 comes out one ulp
    below 25.535, so ``max: 25.535`` is an error "above what a uint16 x 0.001 + -40 can
    hold (-40 to 25.535)". The driver writes 25.535 (raw 65535) without complaint."""
    values = {"type": type_, "scale": scale, "offset": offset, "min": low, "max": high}
    config = parse_config(BOILER % values, env={})  # ConfigError today
    [device] = config.devices
    assert isinstance(device, ModbusDeviceConfig)
    tag = device.poll_groups[0].tags[0]
    assert isinstance(tag, ModbusTag)
    for bound in (float(low), float(high)):
        encode(tag, bound)  # the device can be sent both ends


# -- Modbus: exception codes 4 and 11 answering the read of a read-modify-write


@pytest.mark.integration
@pytest.mark.parametrize("code", [4, 11])
async def test_an_exception_to_the_read_of_a_bit_change_is_not_an_unknown_write(
    code: int,
) -> None:
    """tag_writes.py now calls exceptions 4, 5 and 11 an unknown outcome ("the device may
    or may not hold it") for any ModbusExceptionResponse out of the channel, but a bit
    change (mask_write: false) first reads the register, and an exception answering
    that read means nothing was written (the channel says "nothing written"). The gate
    then counts a write against the rate, reads back, and can audit ``unknown`` for a
    command that provably never reached the device."""
    from tests.integration.test_modbus_writes_hostile import _writes, gateway
    from tests.modbus_hostile import Asked, Reply, exception_pdu, honest

    def refuse_the_read(asked: Asked) -> list[Reply]:
        if asked.function == 3 and asked.address == 20:
            return [Reply(exception_pdu(3, code))]
        return honest(asked)

    async with gateway({1: refuse_the_read}) as (server, drivers):
        prepared = await drivers["d1"].prepare("flag", True)
        with pytest.raises((WriteFailed, DriverError, WriteOutcomeUnknown)) as raised:
            await drivers["d1"].write(prepared)
        assert _writes(server.asked) == []  # nothing was written
    assert not isinstance(raised.value, WriteOutcomeUnknown), str(raised.value)


# -- Sparkplug: a DCMD cut short by the stop


def _dcmd(values: list[str]) -> bytes:
    from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb

    payload = pb.Payload(timestamp=1)
    for value in values:
        metric = payload.metrics.add(name="mode")
        metric.datatype, metric.string_value = 12, value  # String
    return payload.SerializeToString()


async def test_every_metric_of_a_dcmd_the_stop_cuts_short_is_audited() -> None:
    """A DCMD's metrics run one after the other in one task; stop() cancels it after its
    grace. The metric under way is audited by the gate (unknown: it was being written),
    the ones after it are only counted and logged ("metrics not handled"): commands
    that arrived and left no audit record. Sparkplug has no result topic, so the audit
    log is a DCMD's only trace; the gate refuses a ``refusal`` request without waiting
    on anything, so they can go to it as refusals like the busy ones."""
    from edge_agent.sinks.sparkplug.commands import CommandHandler
    from edge_agent.sinks.sparkplug.topics import CommandTopic

    gate = make_gate()
    gate.device.write_mode = "hangs"
    handler = CommandHandler(sink="spb", gate=gate.service)
    handler.describe(["compressor-1"])
    handler.handle(CommandTopic("compressor-1"), _dcmd(["auto", "off", "auto"]))
    await gate.device.hanging.wait()  # the first metric's write is out
    await handler.stop(grace_s=0)
    assert len(gate.device.writes) == 1
    assert [r["outcome"] for r in gate.audit.records] == ["unknown", "refused", "refused"]


# -- the audit directory that cannot be made


async def test_a_gate_whose_audit_directory_cannot_be_made_writes_nothing(
    tmp_path: Path,
) -> None:
    """open_audit_log now makes the directory with the gate and, when it cannot, logs
    "writes will be refused". They are not: the gate refuses only after an append has
    failed, so the first command is written to the device and then has no audit record
    (the append fails for the same reason), although the agent knew at start."""
    from edge_agent.config.writes import AuditFiles
    from edge_agent.service.writes_wiring import open_audit_log
    from edge_agent.writes.model import WriteRequest
    from edge_agent.writes.policy import PlantWrites
    from edge_agent.writes.service import WriteService

    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be\n")
    audit = open_audit_log(blocker / "audit", AuditFiles())
    gate = make_gate()
    # The gate as the wiring makes it (WritesWiring.configure), on that log.
    service = WriteService(
        PlantWrites.of(plant()),
        gate.devices,
        audit,
        time_ns=gate.clock.time_ns,
        sleep=gate.clock.sleep,
    )
    service.start()
    request = WriteRequest(
        id="c1",
        channel="cli",
        identity="operator",
        device="compressor-1",
        tag="pressure_setpoint",
        value=6.5,
        received_at_ns=gate.clock.now,
    )
    result = await service.submit(request)
    assert gate.device.writes == [], f"written without an audit record: {result.outcome}"
    assert result.outcome is Outcome.REFUSED
