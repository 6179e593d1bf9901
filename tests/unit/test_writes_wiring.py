"""The agent's write wiring: one gate, handed to the sinks that carry commands, kept on
reload (its rate windows and ids too), and the reload plan of ``commands:``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.config.writes import AuditFiles
from edge_agent.service.agent import Agent
from edge_agent.service.reload import plan_reload
from edge_agent.service.writes_wiring import WritesWiring, wants_gate
from edge_agent.writes.model import Outcome, WriteGate, WriteRequest
from edge_agent.writes.service import WriteService
from tests.gate_support import MemoryAudit

PLANT = """
plant: {name: hall-1}
state_dir: %(state)s
commands: {max_age: 30s}
devices:
  - name: compressor-1
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1}
    poll_groups:
      - interval: 1s
        tags:
          - name: setpoint
            address: 10
            write: {channels: [cli], min: 0, max: 100}
"""


def _config(tmp_path: Path, text: str = PLANT) -> PlantConfig:
    return parse_config(text % {"state": tmp_path}, env={})


@dataclass
class Opened:
    """The audit factory: one MemoryAudit per directory opened."""

    logs: dict[Path, MemoryAudit] = field(default_factory=dict)

    def __call__(self, directory: Path, files: AuditFiles) -> MemoryAudit:
        return self.logs.setdefault(directory, MemoryAudit())


@dataclass
class CommandSink:
    """A sink that carries commands (the TakesCommands capability), recording what it got."""

    name: str = "broker"
    gates: list[WriteGate | None] = field(default_factory=list)
    audited: list[Mapping[str, object]] = field(default_factory=list)

    def take_commands(self, gate: WriteGate | None) -> None:
        self.gates.append(gate)

    def publish_audit(self, record: Mapping[str, object]) -> None:
        self.audited.append(record)


async def test_the_agent_has_one_gate_on_its_audit_log(tmp_path: Path) -> None:
    opened = Opened()
    agent = Agent(_config(tmp_path), audit_factory=opened)
    assert isinstance(agent.writes, WriteService)
    assert list(opened.logs) == [tmp_path / "audit"]
    request = WriteRequest(
        id="w1", channel="cli", identity="op", device="compressor-1", tag="setpoint", value=5
    )
    result = await agent.writes.submit(request)
    # The poller has not connected (the agent is not running): nothing is written.
    assert result.outcome is Outcome.REFUSED
    assert opened.logs[tmp_path / "audit"].records[-1]["id"] == "w1"


def test_a_plant_that_writes_nothing_has_no_gate(tmp_path: Path) -> None:
    text = PLANT.replace("            write: {channels: [cli], min: 0, max: 100}\n", "")
    config = _config(tmp_path, text)
    assert not wants_gate(config)
    assert Agent(config, audit_factory=Opened()).writes is None
    with_commands = text + "sinks: [{name: b, type: mqtt, host: 127.0.0.1, commands: true}]\n"
    assert wants_gate(_config(tmp_path, with_commands)), "its refusals are audited"


def test_command_sinks_get_the_gate_and_publish_every_audit_record(tmp_path: Path) -> None:
    wiring = WritesWiring(list, Opened())
    sink = CommandSink()
    wiring.configure(_config(tmp_path))
    wiring.connect(sink)  # type: ignore[arg-type]
    assert sink.gates == [wiring.service]
    wiring.disconnect(sink)  # type: ignore[arg-type]
    assert sink.gates == [wiring.service, None]


async def test_sinks_running_before_the_plant_needed_a_gate_get_it_on_reload(
    tmp_path: Path,
) -> None:
    text = PLANT.replace("            write: {channels: [cli], min: 0, max: 100}\n", "")
    wiring = WritesWiring(list, Opened())
    sink = CommandSink()
    wiring.configure(_config(tmp_path, text))
    wiring.connect(sink)  # type: ignore[arg-type]
    assert sink.gates == [None], "no gate: the sink refuses every command"
    wiring.configure(_config(tmp_path), [sink])  # type: ignore[list-item]
    assert sink.gates == [None, wiring.service]
    assert wiring.service is not None
    await wiring.service.submit(
        WriteRequest(
            id="x", channel="cli", identity="", device="compressor-1", tag="setpoint", value=500
        )
    )
    assert [r["id"] for r in sink.audited] == ["x"]


async def test_a_reload_keeps_the_gate_and_its_ids(tmp_path: Path) -> None:
    opened = Opened()
    agent = Agent(_config(tmp_path), audit_factory=opened)
    gate = agent.writes
    assert gate is not None
    request = WriteRequest(
        id="r1", channel="cli", identity="op", device="compressor-1", tag="setpoint", value=5
    )
    await gate.submit(request)
    new = _config(tmp_path, PLANT.replace("max: 100", "max: 4").replace("30s", "20s"))
    result = await agent.reconfigure(new)
    assert result.applied
    assert result.plan is not None
    assert result.plan.commands_changed
    assert agent.writes is gate, "the same gate: its rate windows and ids carry over"
    assert gate.policy.commands.max_age == 20
    again = await gate.submit(request)
    assert "duplicate id" in again.reason
    fresh = await gate.submit(
        WriteRequest(
            id="r2", channel="cli", identity="op", device="compressor-1", tag="setpoint", value=5
        )
    )
    assert "5 is above max 4 for setpoint" in fresh.reason, "the new policy applies"
    assert len(opened.logs) == 1


def test_the_reload_plan_of_commands(tmp_path: Path) -> None:
    old = _config(tmp_path)
    assert not plan_reload(old, old).commands_changed
    live = _config(tmp_path, PLANT.replace("{max_age: 30s}", '{max_age: 10s, signatures: "off"}'))
    plan = plan_reload(old, live)
    assert plan.commands_changed
    assert plan.needs_restart == ()
    later = _config(
        tmp_path, PLANT.replace("{max_age: 30s}", "{max_age: 30s, socket: false, audit: {keep: 3}}")
    )
    plan = plan_reload(old, later)
    assert plan.commands_changed
    assert plan.needs_restart == ("commands.audit", "commands.socket")
    assert plan.describe()["commands_changed"] is True


def test_the_audit_directory_exists_from_the_start(tmp_path: Path) -> None:
    """Made when the gate starts, not at the first command: `edge-agent audit` on an
    agent that has had no command yet finds an empty log (exit 0), not none ("wrong
    state_dir?")."""
    wiring = WritesWiring(list)
    wiring.configure(_config(tmp_path))
    assert wiring.service is not None
    audit = tmp_path / "audit"
    assert not audit.exists()
    wiring.start()
    assert audit.is_dir()
    assert audit.stat().st_mode & 0o777 == 0o700
    assert list(audit.iterdir()) == []
