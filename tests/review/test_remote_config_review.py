"""Review of signed remote configuration (issue 19 part 3): each test shows one problem
found in the merged code and fails until it is fixed.

The end-to-end ones run the real agent under its supervisor against a real mosquitto
and the demo simulators (tests/remote_config_support.py), as
tests/integration/test_remote_config.py does; the file-system faults are made with real
directories in the way of the files the agent writes, not with mocks.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.cli import main
from edge_agent.remote_config.cli import _close, _connect
from edge_agent.remote_config.document import sign_document
from edge_agent.remote_config.keys import keys_by_id, public_line
from edge_agent.remote_config.verify import Refusal, verify
from edge_agent.runtime.source_runner import DeviceState
from simulators.serve import serve_profile
from tests.plant import demo_profile
from tests.remote_config_support import PLANT, broker_args, plant_text, push, running_agent
from tests.servers import Mosquitto, free_port
from tests.service_support import wait_for

BASE = ("line-meter", "compressor-1")
ADDED = "compressor-meter"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


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
    ) -> str:
        return plant_text(
            self.ports,
            self.broker.port,
            devices,
            keys or [self.key],
            rollback_after=rollback_after,
            edits=edits,
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
        made = Setup(mosquitto, ports, tmp_path / "plant.yaml", tmp_path / "state", KEY)
        made.path.write_text(made.text())
        yield made


# ---------------------------------------------------------------------- rollback and keys


@pytest.mark.integration
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


# ---------------------------------------------------------------------- store and files


@pytest.mark.integration
async def test_a_document_whose_version_cannot_be_recorded_lets_no_older_one_in(
    setup: Setup,
) -> None:
    """apply.py:_commit: when the version store cannot be written the document stays
    applied and only a warning is reported; the highest version on disk stays the old
    one, so an OLDER document (version 3 after 5) is applied next."""
    setup.state.mkdir(parents=True, exist_ok=True)
    # A directory where the store's temporary file goes: load works, save fails.
    (setup.state / ".remote-config.json.new.tmp").mkdir()
    async with running_agent(setup.path) as supervisor:
        newer = await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 5))
        assert newer["status"] == "applied", newer
        older = await push(setup.broker.port, setup.sign(setup.text(), 3))
        assert older["status"] == "refused", older
        assert [s.device for s in supervisor.agent.sources] == [*BASE, ADDED]


@pytest.mark.integration
async def test_a_document_reported_applied_is_the_plant_file(setup: Setup) -> None:
    """apply.py:_commit: when the plant file cannot be written (here: its last known
    good cannot be copied) the document keeps running and is reported "applied"; the
    file on disk is the previous one, so the next start silently runs the old config
    while the version store says the new one runs."""
    (setup.path.parent / ".plant.yaml.last-good.new.tmp").mkdir()
    new_text = setup.text((*BASE, ADDED))
    async with running_agent(setup.path) as supervisor:
        answer = await push(setup.broker.port, setup.sign(new_text, 1))
        running = [s.device for s in supervisor.agent.sources]
    if answer["status"] == "applied" or running == [*BASE, ADDED]:
        assert setup.path.read_bytes() == new_text.encode(), (answer, running)


@pytest.mark.integration
async def test_a_document_whose_file_cannot_be_written_leaves_no_temporary_file(
    setup: Setup,
) -> None:
    """apply.py:126: ``temp = None`` is set after _commit even when the rename did not
    happen, so the pushed file stays beside the plant file as .plant.yaml.v1.tmp."""
    (setup.path.parent / ".plant.yaml.last-good.new.tmp").mkdir()
    async with running_agent(setup.path):
        await push(setup.broker.port, setup.sign(setup.text((*BASE, ADDED)), 1))
    assert sorted(p.name for p in setup.path.parent.glob(".plant.yaml.v*.tmp")) == []


# ---------------------------------------------------------------------- a reload at the same time


@pytest.mark.integration
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


# ---------------------------------------------------------------------- secrets


@pytest.mark.integration
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


@pytest.mark.integration
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


# ---------------------------------------------------------------------- parse and CLI


def test_a_lone_surrogate_in_the_signed_string_is_refused_at_parse() -> None:
    """document.py:126: ``signed_text.encode("utf-8")`` raises UnicodeEncodeError for a
    JSON \\ud800 escape in ``signed``; verify() lets it out instead of refusing, so an
    unsigned message from anyone ends in "failed part-way" with no report."""
    envelope = json.loads(
        sign_document(b"plant: {name: line-7}\n", plant="line-7", version=3, key=KEY)
    )
    envelope["signed"] = envelope["signed"].replace('"ed25519:', '"ed25519:\ud800')
    payload = json.dumps(envelope).encode()
    keys = keys_by_id([public_line(KEY.public_key())])
    with pytest.raises(Refusal) as caught:
        verify(payload, plant="line-7", keys=keys, last_version=0)
    assert caught.value.check == "parse"


def test_sign_does_not_print_a_private_key_given_in_place_of_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys.py:load_private_key: ``--key`` takes a file; given the key itself by mistake
    (``--key "$SIGNING_KEY"``), the error message repeats it on stderr ("{path}: cannot
    read the private key: [Errno 2] ... '<the key>'"), into the terminal or the CI log."""
    seed = base64.b64encode(bytes(range(32))).decode()
    plant = tmp_path / "plant.yaml"
    plant.write_text("plant: {name: line-7}\n")
    code = main(["config", "sign", "--key", seed, "--version", "1", str(plant)])
    out, err = capsys.readouterr()
    assert code == 2
    assert seed not in out + err, err


# ---------------------------------------------------------------------- replays


@pytest.mark.integration
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


@pytest.mark.integration
async def test_a_retained_document_is_refused_also_when_the_agent_is_connected(
    setup: Setup,
) -> None:
    """docs/REMOTE_CONFIG.md, check 1: a retained document is refused ("it would come
    back at every connection"). The agent knows only the retain flag of the delivery,
    which MQTT 3.1.1 clears for a subscription that already exists: a document
    published retained while the agent is connected is applied, stays on the broker,
    and at every later connection the agent reports "refused" over its own "applied"."""
    payload = setup.sign(setup.text((*BASE, ADDED)), 1)
    reports: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    def on_message(topic: str, data: bytes, retained: bool) -> None:
        if not retained:
            reports.put_nowait(json.loads(data))

    async with running_agent(setup.path):
        connection = await _connect(broker_args(setup.broker.port), on_message)
        try:
            await connection.subscribe([(f"edge/{PLANT}/config/state", 1)], within=10)
            await connection.publish(
                [(f"edge/{PLANT}/config/set", payload)], qos=1, retain=True, idle_timeout=10
            )
            async with asyncio.timeout(20):
                answer = await reports.get()
        finally:
            await _close(connection)
    assert answer["status"] == "refused", answer
