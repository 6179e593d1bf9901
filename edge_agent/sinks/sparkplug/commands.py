"""NCMD and DCMD: the rebirth request is answered, every other command refused.

``Node Control/Rebirth`` = true on the NCMD topic asks for a complete rebirth
[tck-id-operational-behavior-data-commands-ncmd-rebirth-name,
tck-id-operational-behavior-data-commands-ncmd-rebirth-value]. Writes to a device or
node metric are refused until the safe-writes policy exists (issue 18): logged once per
(device, metric) with the reason, and counted. A payload that does not decode is logged
(once until one decodes again) and counted; nothing here may raise into paho's reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import structlog

from edge_agent.episodes import Episode
from edge_agent.sinks.sparkplug.payloads import REBIRTH, CommandError, decode_command
from edge_agent.sinks.sparkplug.topics import CommandTopic

log = structlog.get_logger("edge_agent.sink.sparkplug")

REFUSAL: Final = (
    "writes through Sparkplug are refused until the safe-writes policy exists (issue 18)"
)


@dataclass(slots=True)
class CommandCounters:
    rebirth_requests: int = 0
    commands_refused: int = 0
    commands_undecodable: int = 0


@dataclass(slots=True)
class CommandHandler:
    """Reads one command message; says whether a rebirth is asked for."""

    sink: str
    counters: CommandCounters = field(default_factory=CommandCounters)
    _refused: set[tuple[str, str]] = field(default_factory=set)
    _undecodable: Episode = field(default_factory=Episode)

    def handle(self, command: CommandTopic, payload: bytes) -> bool:
        """True when ``payload`` (on ``command``'s topic) asks for a rebirth."""
        try:
            metrics = decode_command(payload)
        except CommandError as exc:
            self.counters.commands_undecodable += 1
            if self._undecodable.begin():
                log.warning(
                    "sparkplug command payload not decodable; ignored (quiet until one decodes)",
                    sink=self.sink,
                    device=command.device,
                    error=str(exc),
                )
            return False
        self._undecodable.end()
        rebirth = False
        for name, alias, value, _datatype in metrics:
            # By name only: the NBIRTH gives the metric no alias (tck-id-operational-behavior-
            # data-commands-rebirth-name-aliases), so no alias can mean it.
            if command.device is None and name == REBIRTH:
                if value is True:
                    rebirth = True
                    self.counters.rebirth_requests += 1
                continue
            self.counters.commands_refused += 1
            metric = name if name is not None else f"alias {alias}"
            key = (command.device or "", metric)
            if key not in self._refused:
                self._refused.add(key)
                log.warning(
                    "sparkplug command refused",
                    sink=self.sink,
                    device=command.device or "(edge node)",
                    metric=metric,
                    reason=REFUSAL,
                )
        return rebirth
