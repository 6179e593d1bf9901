"""A small honest stand-in for the write gate, and a client for the local socket.

The gate here decides nothing: it records each request and answers with the outcome
it was given, as the real gate's result would look; a request a channel could not read
(``refusal`` set) it refuses with that reason, as the contract says every gate does.
Tests of the channel use it; the gate's own rules are tested with the gate.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from edge_agent.writes.model import Outcome, WriteRequest, WriteResult


class RecordingGate:
    """Records requests; answers ``outcome`` (applied: read back what was asked)."""

    def __init__(self, outcome: Outcome = Outcome.APPLIED, reason: str = "") -> None:
        self.outcome = outcome
        self.reason = reason
        self.requests: list[WriteRequest] = []
        #: When set, submit waits for it (a command still in flight).
        self.hold: asyncio.Event | None = None
        self.finished = 0

    async def submit(self, request: WriteRequest) -> WriteResult:
        self.requests.append(request)
        if self.hold is not None:
            await self.hold.wait()
        written = time.time_ns()
        self.finished += 1
        outcome, reason = self.outcome, self.reason
        if request.refusal:
            outcome, reason = Outcome.REFUSED, request.refusal
        sent = outcome not in (Outcome.REFUSED, Outcome.DRY_RUN)
        return WriteResult(
            id=request.id,
            device=request.device,
            target=request.tag or "",
            outcome=outcome,
            reason=reason,
            requested=request.value,
            before=7.0 if sent else None,
            read_back=request.value if outcome is Outcome.APPLIED else None,
            sent="holding 10 <- 0x0041 (function 6)" if outcome is not Outcome.REFUSED else "",
            received_at_ns=request.received_at_ns,
            written_at_ns=written if sent else 0,
            confirmed_at_ns=written + 100_000_000 if outcome is Outcome.APPLIED else 0,
            finished_at_ns=written + 101_000_000,
        )


class FailingGate:
    """A gate with a bug: it raises."""

    async def submit(self, request: WriteRequest) -> WriteResult:
        raise RuntimeError("boom")


async def ask(path: Path, line: bytes) -> dict[str, object]:
    """Send ``line`` as is, return the answer line as JSON."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    document = json.loads(answer)
    assert isinstance(document, dict)
    return document


def request_line(**fields: object) -> bytes:
    body: dict[str, object] = {
        "id": "cmd-1",
        "device": "press-1",
        "tag": "setpoint",
        "value": 6.5,
        "dry_run": False,
    }
    body.update(fields)
    return json.dumps(body).encode() + b"\n"
