"""The console's write endpoint over real HTTP (``POST /console/api/write``): a logged-in
user with ``writes: true`` and the CSRF token, or no write at all; the request handed to
the gate (the stand-in of tests/writes_support.py) as channel console with the user's name,
a bad body too (as a refusal, so it is audited); the device page told which tags are
writable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from edge_agent.console.writes import NOT_ENABLED
from edge_agent.writes.audit import AuditLog, audit_directory
from edge_agent.writes.model import WriteRequest
from tests.console_support import (
    PASSWORD,
    PASSWORD_HASH,
    RunningConsole,
    console_yaml,
    running_console,
)
from tests.writes_support import RecordingGate

pytestmark = pytest.mark.integration

#: cnc-1's alarm_code (a holding register) made writable from the console and MQTT.
WRITABLE = {
    "{name: alarm_code, address: 2, type: uint16}": (
        "{name: alarm_code, address: 2, type: uint16, "
        "write: {channels: [console, mqtt], min: 0, max: 100, step: 1}}"
    )
}
USERS = console_yaml(
    "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "', writes: true}, "
    "{name: bob, password_hash: '" + PASSWORD_HASH + "'}]}"
)
BODY = {"device": "cnc-1", "tag": "alarm_code", "value": 7, "dry_run": True}
BOB_MAY_NOT = (
    "user bob may not write: writes: true is not set for this user in service.console.users"
)


async def _csrf(client: ClientSession) -> str:
    async with client.get("/console/api/session") as response:
        return str((await response.json())["csrf"])


async def _login(client: ClientSession, user: str) -> str:
    async with client.post(
        "/console/api/login",
        json={"user": user, "password": PASSWORD},
        headers={"X-CSRF-Token": await _csrf(client)},
    ) as response:
        assert response.status == 200
    return await _csrf(client)


async def _write(client: ClientSession, csrf: str | None, body: Any) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    async with client.post("/console/api/write", json=body, headers=headers) as response:
        return response.status, await response.json()


def _door(running: RunningConsole) -> Any:
    health = running.supervisor.health
    assert health is not None
    assert health.console is not None
    return health.console.writes


async def test_a_user_with_writes_sends_through_the_gate(tmp_path: Path) -> None:
    async with running_console(tmp_path, USERS, replace=WRITABLE) as running:
        gate = RecordingGate()
        own_gate = _door(running).gate
        async with running.session() as alice:
            csrf = await _login(alice, "alice")
            async with alice.get("/console/api/session") as response:
                assert "write" in (await response.json())["permissions"]
            # The agent's own gate (the plant has a writable tag): its dry run passes.
            status, result = await _write(alice, csrf, BODY)
            assert (status, result["outcome"]) == (200, "dry_run"), result
            # No gate: refused in words, nothing sent anywhere.
            _door(running).gate = lambda: None
            status, result = await _write(alice, csrf, BODY)
            assert status == 200
            assert (result["outcome"], result["reason"]) == ("refused", NOT_ENABLED)
            _door(running).gate = lambda: gate
            status, result = await _write(alice, csrf, BODY)
            assert status == 200
            assert (result["outcome"], result["tag"], result["device"]) == (
                "dry_run",
                "alarm_code",
                "cnc-1",
            )
            status, result = await _write(alice, csrf, {**BODY, "dry_run": False, "value": 8})
            assert (status, result["outcome"], result["read_back"]) == (200, "applied", 8)
            first, second = gate.requests
            assert first == WriteRequest(
                id=first.id,
                channel="console",
                identity="alice",
                device="cnc-1",
                tag="alarm_code",
                value=7,
                dry_run=True,
                received_at_ns=first.received_at_ns,
            )
            assert first.id.startswith("console-")
            assert first.id != second.id
            assert (second.value, second.dry_run) == (8, False)
            # Without the CSRF token: refused before the gate.
            status, answer = await _write(alice, None, BODY)
            assert (status, answer) == (403, {"error": "csrf"})
            for bad, words in (
                ({**BODY, "value": [1]}, "value must be"),
                ({**BODY, "value": None}, "value must be"),
                ({**BODY, "extra": 1}, "unknown field"),
                ({**BODY, "device": ""}, "device must be a name"),
                ({**BODY, "dry_run": "yes"}, "dry_run must be"),
                ([1, 2], "JSON object"),
            ):
                status, answer = await _write(alice, csrf, bad)
                assert status == 400, bad
                assert words in answer["reason"]
                # ... and audited: to the gate as a refusal with the user's name, the
                # same words (once answered 400 and never audited; review of issue 18).
                refused = gate.requests[-1]
                assert (refused.channel, refused.identity) == ("console", "alice")
                assert refused.refusal == answer["reason"]
                assert (refused.tag, refused.value) == (None, None)
                assert refused.device == (
                    "cnc-1" if isinstance(bad, dict) and bad["device"] else ""
                )
            assert len(gate.requests) == 2 + 6
            async with alice.get("/console/api/device/cnc-1") as response:
                rows = {row["name"]: row for row in (await response.json())["tags"]}
            assert rows["alarm_code"]["writable"] is True
            assert rows["alarm_code"]["write"]["console"] is True
            assert (rows["alarm_code"]["write"]["min"], rows["alarm_code"]["write"]["max"]) == (
                0,
                100,
            )
            assert rows["state"]["writable"] is False
            assert rows["state"]["write"] is None
        async with running.session() as bob:
            csrf = await _login(bob, "bob")
            status, answer = await _write(bob, csrf, BODY)
            assert (status, answer) == (403, {"error": "permission"})
            # ... and audited: bob is somebody, and he sent a command (a trial of issue
            # 18: once answered 403 with no audit record and no log line).
            refused = gate.requests[-1]
            assert refused == WriteRequest(
                id=refused.id,
                channel="console",
                identity="bob",
                device="cnc-1",
                received_at_ns=refused.received_at_ns,
                refusal=BOB_MAY_NOT,
            )
            assert refused.id.startswith("console-")
            assert len(gate.requests) == 2 + 6 + 1
            # Through the agent's own gate: in the audit log, refused, bob's name.
            _door(running).gate = own_gate
            status, answer = await _write(bob, csrf, [1])  # even a body that is no command
            assert (status, answer) == (403, {"error": "permission"})
        records = AuditLog(audit_directory(running.agent.config.state_dir), 10**6, 1).read()
        last = list(records)[-1]
        assert (last["channel"], last["identity"], last["outcome"], last["reason"]) == (
            "console",
            "bob",
            "refused",
            BOB_MAY_NOT,
        )
        _door(running).gate = lambda: gate
        async with running.session() as nobody:
            status, answer = await _write(nobody, await _csrf(nobody), BODY)
            assert status == 401
        # Not logged in: nobody we know, refused before the write code, not audited.
        assert len(gate.requests) == 2 + 6 + 1


async def test_a_loopback_console_without_users_never_writes(tmp_path: Path) -> None:
    async with running_console(tmp_path, replace=WRITABLE) as running:
        gate = RecordingGate()
        _door(running).gate = lambda: gate
        async with running.session() as client:
            csrf = await _csrf(client)
            async with client.get("/console/api/device/cnc-1") as response:
                assert response.status == 200  # looking needs no login here
            status, answer = await _write(client, csrf, BODY)
            assert (status, answer) == (403, {"error": "permission"})
        assert gate.requests == []
