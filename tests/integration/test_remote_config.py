"""Signed remote configuration end to end: a real mosquitto, the real agent under its
supervisor, the demo simulators; documents pushed on ``edge/demo-plant/config/set``.

A signed document is applied like a reload (the added device polls, the unchanged one
keeps its runner), written atomically over the plant file with the previous kept as
last known good, and reported retained on ``config/state``. Every forgery, replay or
invalid document is refused: the plant file, the running config and the version store
stay as they were, and the report says why.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.remote_config.cli import _close, _connect, _retained
from edge_agent.remote_config.document import sign_document
from edge_agent.remote_config.files import last_good_path
from edge_agent.remote_config.keys import parse_private_key, public_line
from edge_agent.runtime.source_runner import DeviceState
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import ROOT, demo_profile
from tests.remote_config_support import PLANT, broker_args, plant_text, push, running_agent
from tests.servers import Mosquitto, free_port
from tests.service_support import wait_for

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]

BASE = ("line-meter", "compressor-1")
ADDED = "compressor-meter"


@dataclass
class Setup:
    broker: Mosquitto
    ports: dict[str, int]
    path: Path
    state: Path
    key: Ed25519PrivateKey

    def text(
        self,
        devices: tuple[str, ...] = BASE,
        *,
        keys: list[Ed25519PrivateKey] | None = None,
        rollback_after: str | None = None,
        edits: dict[str, str] | None = None,
        remote_config: bool = True,
    ) -> str:
        return plant_text(
            self.ports,
            self.broker.port,
            devices,
            keys or [self.key],
            rollback_after=rollback_after,
            edits=edits,
            remote_config=remote_config,
        )

    def sign(self, text: str, version: int, key: Ed25519PrivateKey | None = None) -> bytes:
        return sign_document(text.encode(), plant=PLANT, version=version, key=key or self.key)


@pytest.fixture
async def setup(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Setup]:
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        made = Setup(
            mosquitto,
            ports,
            tmp_path / "plant.yaml",
            tmp_path / "state",
            Ed25519PrivateKey.generate(),
        )
        made.path.write_text(made.text())
        yield made


async def test_a_signed_document_is_applied_written_and_reported(
    setup: Setup, subscriber_factory: SubscriberFactory
) -> None:
    before = setup.path.read_bytes()
    new_text = setup.text((*BASE, ADDED))
    async with running_agent(setup.path) as supervisor:
        agent = supervisor.agent
        await wait_for(
            lambda: agent.device_states().get("line-meter") is DeviceState.ONLINE,
            15,
            "line-meter online",
        )
        kept = next(s for s in agent.sources if s.device == "line-meter")
        answer = await push(setup.broker.port, setup.sign(new_text, 1))
        assert answer["status"] == "applied", answer
        assert answer["version"] == 1
        assert answer["running_version"] == 1
        assert answer["sha256"] == hashlib.sha256(new_text.encode()).hexdigest()
        assert answer["problems"] == []
        # The new config runs: the added device polls, the unchanged one kept its runner.
        assert [s.device for s in agent.sources] == [*BASE, ADDED]
        assert next(s for s in agent.sources if s.device == "line-meter") is kept
        await wait_for(
            lambda: agent.device_states().get(ADDED) is DeviceState.ONLINE, 15, "added device"
        )
        # On disk: the new file exactly, the previous as last known good, no temp file.
        assert setup.path.read_bytes() == new_text.encode()
        assert last_good_path(setup.path).read_bytes() == before
        assert sorted(p.name for p in setup.path.parent.glob(".*.tmp")) == []
        stored = json.loads((setup.state / "remote-config.json").read_text())
        assert stored["highest"] == 1
        assert stored["running"]["version"] == 1
    # Retained: a consumer that connects later reads it.
    sub = await subscriber_factory(setup.broker.port, f"edge/{PLANT}/config/state")
    [report] = await sub.wait_count(1)
    assert report.retain
    assert json.loads(report.payload)["status"] == "applied"


def _unsigned(setup: Setup, text: str) -> bytes:
    doc = json.loads(setup.sign(text, 5))
    del doc["signature"]
    return json.dumps(doc).encode()


def _bad_signature(setup: Setup, text: str) -> bytes:
    doc = json.loads(setup.sign(text, 5))
    signature = bytearray(base64.b64decode(doc["signature"]))
    signature[0] ^= 1
    doc["signature"] = base64.b64encode(bytes(signature)).decode()
    return json.dumps(doc).encode()


def _unknown_key(setup: Setup, text: str) -> bytes:
    return setup.sign(text, 5, Ed25519PrivateKey.generate())


def _other_plant(setup: Setup, text: str) -> bytes:
    return sign_document(text.encode(), plant="other-plant", version=5, key=setup.key)


def _hash_mismatch(setup: Setup, text: str) -> bytes:
    doc = json.loads(setup.sign(text, 5))
    doc["file"] = base64.b64encode(
        text.replace("interval: 1s", "interval: 2s", 1).encode()
    ).decode()
    return json.dumps(doc).encode()


def _fails_validation(setup: Setup, text: str) -> bytes:
    return setup.sign(text.replace("unit_id: 2", "unit_idd: 2", 1), 5)


def _removes_remote_config(setup: Setup, text: str) -> bytes:
    return setup.sign(setup.text((*BASE, ADDED), remote_config=False), 5)


def _secret_in_clear(setup: Setup, text: str) -> bytes:
    return setup.sign(
        text.replace("keepalive: 5}", "keepalive: 5, username: u, password: s3cr3t-value}"), 5
    )


@pytest.mark.parametrize(
    ("make", "check", "says"),
    [
        (_unsigned, "parse", "not signed"),
        (_bad_signature, "signature", "does not verify"),
        (_unknown_key, "key", "not in remote_config.public_keys"),
        (_other_plant, "plant", "for plant 'other-plant'"),
        (_hash_mismatch, "hash", "SHA-256"),
        (_fails_validation, "validation", "fails the checks"),
        (_removes_remote_config, "lockout", "no remote_config"),
        (_secret_in_clear, "secrets", "writes a secret"),
    ],
    ids=lambda v: v.__name__.lstrip("_") if callable(v) else None,
)
async def test_a_document_is_refused_and_changes_nothing(
    setup: Setup, make: Callable[[Setup, str], bytes], check: str, says: str
) -> None:
    before = setup.path.read_bytes()
    new_text = setup.text((*BASE, ADDED))
    async with running_agent(setup.path) as supervisor:
        config = supervisor.agent.config
        answer = await push(setup.broker.port, make(setup, new_text))
        assert answer["status"] == "refused", answer
        assert answer["reason"].startswith(f"{check}: "), answer
        assert says in answer["reason"], answer
        assert answer["running_version"] is None
        assert supervisor.agent.config is config
        assert [s.device for s in supervisor.agent.sources] == list(BASE)
    assert setup.path.read_bytes() == before
    assert not last_good_path(setup.path).exists()
    assert not (setup.state / "remote-config.json").exists()
    assert sorted(p.name for p in setup.path.parent.glob(".*.tmp")) == []
    if check == "validation":
        # The problems name the pushed file and its line, as edge-agent check does.
        [problem] = [p for p in answer["problems"] if "unit_idd" in p]
        line = 1 + new_text.split("\n").index(
            next(text for text in new_text.split("\n") if "unit_id: 2" in text)
        )
        assert problem.startswith(f"config/set v5:{line}: "), problem
        assert all(p.startswith("config/set v5:") for p in answer["problems"])


async def test_an_older_version_and_a_replay_are_refused_also_after_a_restart(
    setup: Setup,
) -> None:
    second = setup.text((*BASE, ADDED))
    async with running_agent(setup.path):
        assert (await push(setup.broker.port, setup.sign(second, 3)))["status"] == "applied"
        older = await push(setup.broker.port, setup.sign(setup.text(), 2))
        assert older["status"] == "refused"
        assert older["reason"].startswith("version: version 2 is not newer than version 3")
        replay = await push(setup.broker.port, setup.sign(second, 3))
        assert replay["status"] == "refused"
        assert replay["reason"].startswith("version: ")
        assert replay["running_version"] == 3
    applied = setup.path.read_bytes()
    async with running_agent(setup.path) as supervisor:
        replay = await push(setup.broker.port, setup.sign(second, 3))
        assert replay["status"] == "refused", replay
        assert replay["reason"].startswith("version: version 3 is not newer than version 3")
        assert replay["running_version"] == 3
        assert [s.device for s in supervisor.agent.sources] == [*BASE, ADDED]
    assert setup.path.read_bytes() == applied


async def test_keys_rotate_as_docs_remote_config_md_says(setup: Setup) -> None:
    """Old key signs a file listing both; the new key signs; the new key drops the old;
    the old key is then refused."""
    new_key = Ed25519PrivateKey.generate()
    both = setup.text(keys=[setup.key, new_key])
    only_new = setup.text((*BASE, ADDED), keys=[new_key])
    async with running_agent(setup.path) as supervisor:
        port = setup.broker.port
        assert (await push(port, setup.sign(both, 1, setup.key)))["status"] == "applied"
        assert (await push(port, setup.sign(both, 2, new_key)))["status"] == "applied"
        assert (await push(port, setup.sign(only_new, 3, new_key)))["status"] == "applied"
        old = await push(port, setup.sign(setup.text(keys=[setup.key]), 4, setup.key))
        assert old["status"] == "refused"
        assert old["reason"].startswith("key: ")
        assert [s.device for s in supervisor.agent.sources] == [*BASE, ADDED]
    assert setup.path.read_bytes() == only_new.encode()


async def test_devices_that_do_not_come_back_roll_the_document_back(
    setup: Setup, subscriber_factory: SubscriberFactory
) -> None:
    setup.path.write_text(setup.text(rollback_after="2s"))
    before = setup.path.read_bytes()
    broken = setup.text(
        rollback_after="2s",
        edits={f"port: {setup.ports['utility']}}}": f"port: {free_port()}}}"},
    )
    async with running_agent(setup.path) as supervisor:
        agent = supervisor.agent
        await wait_for(
            lambda: all(agent.device_states().get(d) is DeviceState.ONLINE for d in BASE),
            15,
            "devices online",
        )
        sub = await subscriber_factory(setup.broker.port, f"edge/{PLANT}/config/state")
        applied = await push(setup.broker.port, setup.sign(broken, 1))
        assert applied["status"] == "applied", applied
        assert setup.path.read_bytes() == broken.encode()

        def reports() -> list[dict[str, object]]:
            return [json.loads(m.payload) for m in sub.messages]

        await sub.wait_until(
            lambda: any(r["status"] == "rolled_back" for r in reports()), "rollback", within=20
        )
        [rolled] = [r for r in reports() if r["status"] == "rolled_back"]
        assert rolled["version"] == 1
        assert rolled["devices_not_back"] == ["compressor-1"]
        assert rolled["running_version"] is None  # the local file it started from
        assert agent.config.devices[1].connection.port == setup.ports["utility"]  # type: ignore[union-attr]
        await wait_for(
            lambda: agent.device_states().get("compressor-1") is DeviceState.ONLINE,
            15,
            "compressor-1 back on the last known good",
        )
    assert setup.path.read_bytes() == before
    stored = json.loads((setup.state / "remote-config.json").read_text())
    assert stored["highest"] == 1  # the document undone cannot come back either


async def _cli(cwd: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent",
        "config",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_makes_a_key_signs_pushes_and_reads_the_status(
    setup: Setup, tmp_path: Path
) -> None:
    """keygen, sign (refusing a file that fails check), push (0 applied, 1 refused with
    the problems), status: the commands an operator runs."""
    code, out, err = await _cli(tmp_path, "keygen", "--out", "k.pem")
    assert code == 0, err
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in out
    key = parse_private_key((tmp_path / "k.pem").read_text())
    assert public_line(key.public_key()) in out
    setup.path.write_text(setup.text(keys=[key]))
    bad = tmp_path / "bad.yaml"
    bad.write_text(setup.text((*BASE, ADDED), keys=[key]).replace("unit_id: 2", "unit_idd: 2"))
    code, out, err = await _cli(tmp_path, "sign", "--key", "k.pem", "--version", "1", str(bad))
    assert code == 2
    assert "unknown key 'unit_idd'" in err
    assert out == ""
    good = tmp_path / "good.yaml"
    good.write_text(setup.text((*BASE, ADDED), keys=[key]))
    code, out, err = await _cli(tmp_path, "sign", "--key", "k.pem", "--version", "1", str(good))
    assert code == 0, err
    (tmp_path / "doc.json").write_text(out)
    (tmp_path / "bad.json").write_bytes(
        sign_document(bad.read_bytes(), plant=PLANT, version=2, key=key)
    )
    broker = ["--broker", f"127.0.0.1:{setup.broker.port}", "--plant", PLANT]
    async with running_agent(setup.path):
        code, out, err = await _cli(tmp_path, "push", *broker, "doc.json")
        assert code == 0, (out, err)
        assert out.startswith("applied: version 1; running version 1")
        code, out, err = await _cli(tmp_path, "push", *broker, "bad.json")
        assert code == 1, (out, err)
        assert out.startswith("refused: version 2; running version 1; validation: ")
        assert "  config/set v2:" in out
        assert "unit_idd" in out
        code, out, err = await _cli(tmp_path, "status", *broker)
        assert code == 0, err
        assert out.startswith("refused: version 2; running version 1")
    code, out, err = await _cli(tmp_path, "push", *broker, "--timeout", "1", "doc.json")
    assert code == 2
    assert "no answer" in err


# ---------------------------------------------------------------------- review findings
# (issue 19 review: each of these failed before its fix)


async def test_a_rollback_does_not_trust_again_a_key_the_document_removed(
    setup: Setup,
) -> None:
    """docs/REMOTE_CONFIG.md: "If a private key is lost or stolen, sign a document with
    another listed key that drops it". When that document is rolled back (a device did
    not come back), apply.py:_roll_back reloads the last known good as it is, its
    public_keys included: the stolen key signs again."""
    stolen, kept = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    setup.path.write_text(setup.text(keys=[stolen, kept], rollback_after="1s"))
    drops_stolen = setup.text(
        keys=[kept],
        rollback_after="1s",
        edits={f"port: {setup.ports['utility']}}}": f"port: {free_port()}}}"},
    )
    async with running_agent(setup.path) as supervisor:
        agent = supervisor.agent
        await wait_for(
            lambda: all(agent.device_states().get(d) is DeviceState.ONLINE for d in BASE),
            15,
            "devices online",
        )
        applied = await push(setup.broker.port, setup.sign(drops_stolen, 1, kept))
        assert applied["status"] == "applied", applied
        # The rollback runs inside the document's handling: wait for it to be done.
        await wait_for(
            lambda: agent.config.devices[1].connection.port == setup.ports["utility"],  # type: ignore[union-attr]
            20,
            "the rollback",
        )
        forged = await push(
            setup.broker.port, setup.sign(setup.text((*BASE, ADDED), keys=[stolen]), 2, stolen)
        )
        assert forged["status"] == "refused", forged
        assert [s.device for s in agent.sources] == list(BASE)


async def test_a_document_whose_version_cannot_be_recorded_lets_no_older_one_in(
    setup: Setup,
) -> None:
    """Review: when the version store could not be written the document stayed applied
    and an OLDER one (3 after 5) got in next. The version is now recorded before the
    document is applied (a store that cannot be written refuses it: the unit test
    test_a_version_that_cannot_be_recorded_is_not_applied), and something left in the
    way of a temporary file (here a directory) no longer stops the write: temporary
    files get a new name each time."""
    setup.state.mkdir(parents=True, exist_ok=True)
    # A directory where the store's temporary file goes: load works, save fails.
    (setup.state / ".remote-config.json.new.tmp").mkdir()
    async with running_agent(setup.path) as supervisor:
        newer = await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 5))
        assert newer["status"] == "applied", newer
        older = await push(setup.broker.port, setup.sign(setup.text(), 3))
        assert older["status"] == "refused", older
        assert [s.device for s in supervisor.agent.sources] == [*BASE, ADDED]


async def test_a_document_reported_applied_is_the_plant_file(setup: Setup) -> None:
    """Review: when the plant file could not be written the document kept running and
    was reported "applied" while the file on disk was the previous one. Now the
    previous config is put back and the document refused (see
    test_a_plant_file_that_cannot_be_written_refuses_the_document); here, something in
    the way of a temporary file no longer stops the write."""
    (setup.path.parent / ".plant.yaml.last-good.new.tmp").mkdir()
    new_text = setup.text((*BASE, ADDED))
    async with running_agent(setup.path) as supervisor:
        answer = await push(setup.broker.port, setup.sign(new_text, 1))
        running = [s.device for s in supervisor.agent.sources]
    if answer["status"] == "applied" or running == [*BASE, ADDED]:
        assert setup.path.read_bytes() == new_text.encode(), (answer, running)


async def test_a_document_whose_file_cannot_be_written_leaves_no_temporary_file(
    setup: Setup,
) -> None:
    """Review: the pushed file stayed beside the plant file (.plant.yaml.v1.tmp) when
    the rename did not happen; now every temporary file is removed when a write fails."""
    (setup.path.parent / ".plant.yaml.last-good.new.tmp").mkdir()
    async with running_agent(setup.path):
        await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 1))
    assert sorted(p.name for p in setup.path.parent.glob(".plant.yaml.v*.tmp")) == []


async def test_a_reload_during_a_document_does_not_put_the_old_file_back_under_it(
    setup: Setup,
) -> None:
    """A SIGHUP reload and a document are serialised only by Agent.reconfiguring; the
    reload loads the plant file before the document's rename and applies it after: the
    old config (its keys too) runs while the file, the version store and the report say
    the document does."""
    new_text = setup.text((*BASE, ADDED))
    async with running_agent(setup.path) as supervisor:
        agent = supervisor.agent
        assert supervisor.remote is not None
        _, remote = supervisor.remote
        lock = agent.reconfiguring

        def waiting() -> int:
            # A private member: which of the two waits first is the point of the test.
            return len(lock._waiters or ())

        await lock.acquire()
        try:
            document = asyncio.create_task(remote.handle(setup.sign(new_text, 1), False))
            await wait_for(lambda: waiting() == 1, 15, "the document waiting to apply")
            reload = asyncio.create_task(supervisor.reload())
            await wait_for(lambda: waiting() == 2, 15, "the reload waiting to apply")
        finally:
            lock.release()
        await document
        await reload
        assert setup.path.read_bytes() == new_text.encode()
        assert remote.running_version() == 1
        assert [s.device for s in agent.sources] == [*BASE, ADDED]


async def test_a_secret_written_with_a_yaml_escape_is_refused(setup: Setup) -> None:
    """docs/REMOTE_CONFIG.md step 8: "the value of every password, token or key must
    come from ${VAR}". apply.py:_lock_out only looks for the value's bytes in the file,
    so a password in clear written with a YAML escape (\\x33 for 3) is applied."""
    text = setup.text((*BASE, ADDED)).replace(
        "keepalive: 5}", 'keepalive: 5, username: u, password: "s3cr\\x33t-value"}'
    )
    async with running_agent(setup.path):
        answer = await push(setup.broker.port, setup.sign(text, 1))
    assert answer["status"] == "refused", answer
    assert answer["reason"].startswith("secrets: "), answer


async def test_a_password_from_the_environment_is_not_taken_for_one_in_clear(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply.py:172: a secret that comes from ${VAR} (as the doc asks) but whose value
    also occurs anywhere in the file (here the password "cloud", the sink's name) makes
    every document "write a secret in clear": the agent can no longer be configured."""
    monkeypatch.setenv("EDGE_REVIEW_MQTT_PASSWORD", "cloud")
    with_env = (
        "keepalive: 5}",
        'keepalive: 5, username: u, password: "${EDGE_REVIEW_MQTT_PASSWORD}"}',
    )
    setup.path.write_text(setup.text().replace(*with_env))
    text = setup.text((*BASE, ADDED)).replace(*with_env)
    async with running_agent(setup.path):
        answer = await push(setup.broker.port, setup.sign(text, 1))
    assert answer["status"] == "applied", answer


async def test_a_document_that_moves_state_dir_opens_no_window_for_a_replay(
    setup: Setup, tmp_path: Path
) -> None:
    """The version store lives in state_dir (store.py), which a document may change
    (it takes effect at the next start). After that start the store is read from the
    new, empty directory: highest is 0 and every document signed before, captured from
    the broker by anyone, is applied again ("a restart opens no window for a replay")."""
    first = setup.text((*BASE, ADDED))
    moved = setup.text(
        (*BASE, ADDED),
        edits={"state_dir: ${EDGE_AGENT_STATE:-./state}": f"state_dir: {tmp_path / 'moved'}"},
    )
    captured = setup.sign(first, 1)
    async with running_agent(setup.path):
        assert (await push(setup.broker.port, captured))["status"] == "applied"
        answer = await push(setup.broker.port, setup.sign(moved, 2))
        assert answer["status"] == "applied", answer
        assert "state_dir" in answer["takes_effect_at_next_start"], answer
    async with running_agent(setup.path):
        replay = await push(setup.broker.port, captured)
        assert replay["status"] == "refused", replay


async def test_a_plant_file_that_cannot_be_written_refuses_the_document(setup: Setup) -> None:
    """The plant file's place taken by a directory once the agent runs: the document is
    applied, cannot be written, the previous config is put back and the document is
    refused; nothing is left behind and the state never says applied."""
    async with running_agent(setup.path) as supervisor:
        setup.path.unlink()
        setup.path.mkdir()
        answer = await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 1))
        assert answer["status"] == "refused", answer
        assert "cannot be written" in answer["reason"], answer
        assert [s.device for s in supervisor.agent.sources] == list(BASE)
    assert [p.name for p in setup.path.parent.glob(".plant.yaml.*")] == []


async def test_a_retained_copy_of_an_applied_document_does_not_replace_its_report(
    setup: Setup,
) -> None:
    """Review: a document published retained while the agent is connected arrives
    without the retain flag (MQTT 3.1.1 clears it on a live subscription) and cannot be
    told from a live one, so it is applied (its age and version are checked like any
    other's). At every later connection its retained copy comes back: it is ignored,
    and the report of the running version stays "applied". (The reviewer's test
    expected "refused" for the first delivery; no content tells it apart: see
    docs/REMOTE_CONFIG.md.)"""
    payload = setup.sign(setup.text((*BASE, ADDED)), 1)
    connection = await _connect(broker_args(setup.broker.port), lambda *_: None)
    try:
        async with running_agent(setup.path) as supervisor:
            await connection.publish(
                [(f"edge/{PLANT}/config/set", payload)], qos=1, retain=True, idle_timeout=10
            )
            await wait_for(
                lambda: (
                    supervisor.remote is not None and (supervisor.remote[1].running_version() == 1)
                ),
                20,
                "the document applied",
            )
        async with running_agent(setup.path) as supervisor:
            assert supervisor.remote is not None
            _, remote = supervisor.remote
            await wait_for(lambda: remote.ignored == 1, 20, "the retained copy ignored")
        answer = await _retained(broker_args(setup.broker.port))
        assert answer is not None
        assert answer["status"] == "applied", answer
        assert answer["running_version"] == 1, answer
    finally:
        # Leave no retained document for the next test's agent.
        await connection.publish(
            [(f"edge/{PLANT}/config/set", b"")], qos=1, retain=True, idle_timeout=10
        )
        await _close(connection)


async def test_every_signed_document_is_audited_and_junk_replaces_no_report(
    setup: Setup, subscriber_factory: SubscriberFactory
) -> None:
    """The audit trail (state_dir/audit/config.jsonl) holds each signed document taken
    (``accepted``, with the key that signed it, before anything changed) and each retained
    report; an unsigned message is answered without retain and recorded nowhere, so the
    retained report (what ``config status`` reads) still says what became of the last
    signed document."""
    second = setup.text((*BASE, ADDED))
    async with running_agent(setup.path):
        assert (await push(setup.broker.port, setup.sign(second, 3)))["status"] == "applied"
        older = await push(setup.broker.port, setup.sign(setup.text(), 2))
        assert older["status"] == "refused"
        junk = await push(setup.broker.port, _unsigned(setup, second))
        assert junk["status"] == "refused"
        assert junk["reason"].startswith("parse: ")
    sub = await subscriber_factory(setup.broker.port, f"edge/{PLANT}/config/state")
    [retained] = await sub.wait_count(1)
    assert retained.retain
    assert json.loads(retained.payload)["reason"] == older["reason"]

    records = [
        json.loads(line)
        for line in (setup.state / "audit" / "config.jsonl").read_text().splitlines()
    ]
    assert [(r["event"], r["version"]) for r in records] == [
        ("accepted", 3),
        ("applied", 3),
        ("refused", 2),
    ]
    assert records[0]["key_id"].startswith("ed25519:")
    assert records[0]["sha256"] == hashlib.sha256(second.encode()).hexdigest()
    assert records[2]["reason"] == older["reason"]
    code, out, err = await _cli(setup.path.parent, "audit", "-c", str(setup.path))
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == ["accepted", "applied", "refused"]


async def test_a_document_that_cannot_be_audited_is_not_applied(setup: Setup) -> None:
    before = setup.path.read_bytes()
    setup.state.mkdir(parents=True)
    (setup.state / "audit").write_text("not a directory")  # the audit log cannot be made
    async with running_agent(setup.path) as supervisor:
        answer = await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 1))
        assert answer["status"] == "refused", answer
        assert answer["reason"].startswith("audit: the audit log cannot be written"), answer
        assert [s.device for s in supervisor.agent.sources] == list(BASE)
    assert setup.path.read_bytes() == before
