"""The console's write form: ``POST /console/api/write`` and what the device page shows of
each tag's write policy.

A write needs a logged-in user with ``writes: true`` (the ``write`` permission, checked
here, and again by the gate from the identity) and the session's CSRF token, like every
POST. A logged-in user without the permission is answered 403 and the command goes to
the gate as a refusal all the same, so it is audited and logged with the user's name:
every command of somebody we know leaves a record. A console on loopback without users
lets anyone look but nobody write: a write names who sent it, and an anonymous visitor
is nobody (the console's guard answers it, unaudited; docs/WRITES.md).

The body ``{"device", "tag", "value", "dry_run"}`` becomes a
:class:`~edge_agent.writes.model.WriteRequest` of channel ``console`` with the user's
name as identity, handed to the one gate; the answer is the result document. The gate
comes from the agent through :attr:`WriteDoor.gate` (a callable: the agent makes a new
gate on reload); without one every write is refused "writes are not enabled".

A body the endpoint cannot take (not a JSON object, an unknown field, a value that is no
value) is answered 400 with the reason, and handed to the gate all the same, as a
refusal (``WriteRequest.refusal``) so the audit log has it with the user's name: every
command that reached the write code leaves a record. A request refused for its login,
CSRF token never reaches this code (the console's guard answers it).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from edge_agent.config import PlantConfig
from edge_agent.config.writes import WritePolicy
from edge_agent.console.answers import JSON, json_answer, json_object
from edge_agent.writes.model import Outcome, WriteGate, WriteRequest, WriteResult

NOT_ENABLED: Final = "writes are not enabled on this agent"
#: Longest text value taken from the form (a Modbus string is at most 250 bytes).
MAX_TEXT: Final = 1024
_FIELDS: Final = frozenset({"device", "tag", "value", "dry_run"})


def policy_summary(policy: WritePolicy) -> dict[str, Any]:
    """What the device page shows of a tag's ``write:`` block (nothing secret in it)."""
    return {
        "channels": list(policy.channels),
        "console": "console" in policy.channels,
        "min": policy.min,
        "max": policy.max,
        "step": policy.step,
        "allowed": list(policy.allowed) if policy.allowed is not None else None,
        "only_when": (
            {"tag": policy.only_when.tag, "values": list(policy.only_when.values)}
            if policy.only_when is not None
            else None
        ),
    }


class WritePolicies:
    """Tag write policies by device, made once per config (the device page asks every
    second while it is open)."""

    def __init__(self) -> None:
        self._made_for: PlantConfig | None = None
        self._devices: dict[str, dict[str, dict[str, Any]]] = {}

    def of(self, config: PlantConfig, device: str) -> dict[str, dict[str, Any]]:
        if config is not self._made_for:
            self._devices = {
                each.name: {
                    tag.name: policy_summary(tag.write)
                    for group in each.poll_groups
                    for tag in group.tags
                    if tag.write is not None
                }
                for each in config.devices
            }
            self._made_for = config
        return self._devices.get(device, {})

    def annotate(
        self, config: PlantConfig, device: str, rows: Sequence[MutableMapping[str, Any]]
    ) -> None:
        """Add ``writable`` and ``write`` (the policy summary, or None) to each tag row."""
        policies = self.of(config, device)
        for row in rows:
            policy = policies.get(row["name"])
            row["writable"] = policy is not None
            row["write"] = policy


class WriteDoor:
    """The console's way to the write gate."""

    def __init__(self) -> None:
        #: The agent's current gate; set by the service wiring (None: writes are off).
        self.gate: Callable[[], WriteGate | None] = lambda: None

    async def write(self, request: web.Request, *, user: str, may_write: bool) -> web.Response:
        """``POST /console/api/write`` for the logged-in ``user`` (CSRF already checked);
        ``may_write``: the user has ``writes: true``."""
        received = time.time_ns()
        ident = f"console-{uuid.uuid4().hex}"
        if not may_write:
            return await self._refuse_user(request, ident, user, received)
        try:
            body = json_object(await request.read()) if request.content_type == JSON else None
        except web.HTTPRequestEntityTooLarge:
            await self._audit_refusal(ident, user, None, "the body is too large", received)
            return json_answer({"error": "too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        problem = _problem(body)
        if body is None or problem:
            await self._audit_refusal(ident, user, body, problem, received)
            return json_answer({"error": "bad request", "reason": problem}, HTTPStatus.BAD_REQUEST)
        command = WriteRequest(
            id=ident,
            channel="console",
            identity=user,
            device=body["device"],
            tag=body["tag"],
            value=body["value"],
            dry_run=body.get("dry_run", False),
            received_at_ns=received,
        )
        gate = self.gate()
        if gate is None:
            result = WriteResult(
                command.id,
                command.device,
                command.tag or "",
                Outcome.REFUSED,
                NOT_ENABLED,
                requested=command.value,
                received_at_ns=received,
                finished_at_ns=time.time_ns(),
            )
        else:
            result = await gate.submit(command)
        return json_answer(result.to_json())

    async def _refuse_user(
        self, request: web.Request, ident: str, user: str, received: int
    ) -> web.Response:
        """A user without ``writes: true``: 403, and the command audited as refused (with
        its device where the body names one)."""
        try:
            body = json_object(await request.read()) if request.content_type == JSON else None
        except web.HTTPRequestEntityTooLarge:
            body = None
        await self._audit_refusal(ident, user, body, may_not_write(user), received)
        return json_answer({"error": "permission"}, HTTPStatus.FORBIDDEN)

    async def _audit_refusal(
        self, ident: str, user: str, body: dict[str, Any] | None, problem: str, received: int
    ) -> None:
        """A body this endpoint refuses, to the gate as a refusal so it is audited (the
        answer stays this endpoint's 400). Without a gate there is no audit log."""
        gate = self.gate()
        if gate is None:
            return
        device = body.get("device") if body is not None else None
        await gate.submit(
            WriteRequest(
                id=ident,
                channel="console",
                identity=user,
                device=device if isinstance(device, str) and 0 < len(device) <= 128 else "",
                received_at_ns=received,
                refusal=problem,
            )
        )


def may_not_write(user: str) -> str:
    """The refusal of a command from a user without the write permission."""
    return (
        f"user {user} may not write: writes: true is not set for this user in service.console.users"
    )


def _problem(body: dict[str, Any] | None) -> str:
    """What is wrong with the form's body, in words ("" when nothing)."""
    if body is None:
        return "the body must be a JSON object"
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return f"unknown field(s): {', '.join(unknown[:5])}"
    for key in ("device", "tag"):
        if not isinstance(body.get(key), str) or not 0 < len(body[key]) <= 128:
            return f"{key} must be a name"
    if not _is_value(body.get("value")):
        return "value must be a number, a text or true/false"
    if not isinstance(body.get("dry_run", False), bool):
        return "dry_run must be true or false"
    return ""


def _is_value(value: object) -> bool:
    if isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_TEXT


__all__ = ["NOT_ENABLED", "WriteDoor", "WritePolicies", "may_not_write", "policy_summary"]
