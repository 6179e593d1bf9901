"""Second review of signed remote configuration (issue 19 part 3, after merge c88c79a).

Each test states a problem the review found; each fails on the reviewed code. Pure units
with a fake ``apply`` (as tests/unit/test_remote_config.py does): the agent's own
:class:`RemoteConfig` and :class:`RemoteConfigChannel`, the plant file on disk, the
version store in a temporary state directory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.config import PlantConfig
from edge_agent.config.loader import load_config
from edge_agent.remote_config import rollback
from edge_agent.remote_config.apply import RemoteConfig
from edge_agent.remote_config.document import parse_document, sign_document
from edge_agent.remote_config.keys import key_id, public_line
from edge_agent.remote_config.store import Applied, Versions, VersionStore
from edge_agent.remote_config.wiring import RemoteConfigChannel
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.reload import ReloadResult

A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

PLANT = """\
plant: {name: line-7}
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 5020}
    unit_id: 1
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, table: holding, address: 0, type: float32}
sinks:
  - {name: cloud, type: mqtt, host: 127.0.0.1}
state_dir: STATE
remote_config:
  sink: cloud
  public_keys:
KEYS
"""


def plant_text(
    state_dir: Path, keys: list[Ed25519PrivateKey], extra: str = "", devices_ok: bool = True
) -> str:
    listed = "".join(f'    - "{public_line(k.public_key())}"\n' for k in keys)
    text = PLANT.replace("STATE", str(state_dir)).replace("KEYS\n", listed) + extra
    if not devices_ok:
        text = text.replace("interval: 1s", "interval: sometimes")
    return text


def signed(text: str, version: int, key: Ed25519PrivateKey) -> bytes:
    return sign_document(text.encode(), plant="line-7", version=version, key=key)


class Gateway:
    """One plant file run by a fake agent: ``apply`` makes the config current (or
    refuses when told to); the device ``meter`` is online unless a config says not."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.path = tmp_path / "plant.yaml"
        self.path.write_text(text)
        self.current: PlantConfig = load_config(self.path, {})
        self.reports: list[dict[str, Any]] = []
        self.refuse_apply: Callable[[PlantConfig], bool] = lambda new: False
        self.offline_when: Callable[[PlantConfig], bool] = lambda new: False
        self.remote = RemoteConfig(
            self.path,
            self.current.state_dir,
            config=lambda: self.current,
            device_states=self.states,
            apply=self.apply,
            report=lambda payload: self.reports.append(json.loads(payload)),
        )

    def states(self) -> dict[str, DeviceState]:
        offline = self.offline_when(self.current)
        return {"meter": DeviceState.OFFLINE if offline else DeviceState.ONLINE}

    async def apply(self, new: PlantConfig) -> ReloadResult:
        if self.refuse_apply(new):
            return ReloadResult(False, ["sinks.cloud.tls: cannot load certificates"])
        self.current = new
        return ReloadResult(True)

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1]


def _lists_only_b(new: PlantConfig) -> bool:
    settings = new.remote_config
    return settings is not None and settings.public_keys == [public_line(B.public_key())]


# ---------------------------------------------------------------------- lock-outs


async def test_a_refused_document_revokes_no_key(tmp_path: Path) -> None:
    """apply.py:249-257: the keys a document drops are recorded as revoked BEFORE it is
    applied, and stay revoked when the reload then cannot be built (a TLS file missing
    on the gateway) or the file cannot be written. The document is refused, the old
    file runs on, listing only key A, and A is revoked: no key can sign anything any
    more (an honest one-step rotation A -> B with a typo in a path locks the gateway
    out; the docs promise "nothing changes" on a refusal)."""
    state = tmp_path / "state"
    gateway = Gateway(tmp_path, plant_text(state, [A]))
    gateway.refuse_apply = _lists_only_b  # the rotated file cannot be built here
    await gateway.remote.handle(signed(plant_text(state, [B]), 1, A), False)
    assert gateway.last["status"] == "refused"
    assert gateway.last["reason"].startswith("apply:"), gateway.last

    # The operator fixes the path and pushes again, signed by A (the key that runs).
    gateway.refuse_apply = lambda new: False
    await gateway.remote.handle(signed(plant_text(state, [A, B]), 2, A), False)
    assert gateway.last["status"] == "applied", gateway.last


async def test_a_rollback_leaves_a_key_that_can_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply.py:432-437 (store.revoked_after): a document signed by A that lists only B
    (a rotation in one step, which the agent accepts) revokes A. When the devices do
    not come back, the rollback puts back the file listing only A and keeps A revoked:
    B is not listed, A is revoked, and no document can be applied any more, neither
    the fixed one signed by B nor one signed by A. The lock-out rule ("a document that
    would leave no key is refused, so a rotation cannot lock the agent out") is
    defeated by the rollback meant to save the gateway."""
    monkeypatch.setattr(rollback, "LOOK_EVERY_S", 0.01)
    state = tmp_path / "state"
    extra = "  rollback_after: 50ms\n"
    gateway = Gateway(tmp_path, plant_text(state, [A], extra))
    gateway.offline_when = _lists_only_b  # the new file breaks the meter
    await gateway.remote.handle(signed(plant_text(state, [B], extra), 1, A), False)
    assert [r["status"] for r in gateway.reports] == ["applied", "rolled_back"]

    fixed = plant_text(state, [A, B], extra)
    for version, key in ((2, B), (3, A)):
        await gateway.remote.handle(signed(fixed, version, key), False)
        if gateway.last["status"] == "applied":
            return
    pytest.fail(f"no key can sign after the rollback: {gateway.reports[-2:]}")


# ---------------------------------------------------------------------- reports that lie


@pytest.mark.parametrize("tamper", ["plant", "key_id", "file"])
async def test_a_forged_copy_does_not_get_the_real_document_reported_refused(
    tmp_path: Path, tamper: str
) -> None:
    """verify.py:68-101 / document.py:142: a report names its document by the SHA-256 of
    the signature alone, and a refusal carries that name even when the signature was
    never checked (plant, key) or the file is not the signed one (hash). Anyone who may
    publish on config/set copies the signature of a document in flight into a forged
    envelope: the forged copy is refused at once (screening), its report names the real
    document, and `config push` (which takes the first report naming its document)
    prints "refused" and exits 1 while the real document is applied a moment later."""
    state = tmp_path / "state"
    gateway = Gateway(tmp_path, plant_text(state, [A]))
    real = signed(plant_text(state, [A], "# v1\n"), 1, A)
    digest = parse_document(real).digest

    forged = json.loads(real)
    if tamper == "file":
        forged["file"] = base64.b64encode(b"plant: {name: line-7}\n").decode()
    else:
        inner = json.loads(forged["signed"])
        inner[tamper] = "line-8" if tamper == "plant" else key_id(B.public_key())
        forged["signed"] = json.dumps(inner, sort_keys=True, separators=(",", ":"))

    assert gateway.remote.screen(real, False)  # queued: waits for its turn
    assert not gateway.remote.screen(json.dumps(forged).encode(), False)  # refused now
    await gateway.remote.handle(real, False)
    assert gateway.last["status"] == "applied"
    about_real = [r["status"] for r in gateway.reports if r["document"] == digest]
    assert about_real[0] == "applied", about_real  # what `config push` prints


# ---------------------------------------------------------------------- blocking documents


async def test_replays_of_a_refused_document_cannot_crowd_out_the_fixed_one(
    tmp_path: Path,
) -> None:
    """apply.py:135-153, wiring.py:561-573: a signed document refused at validation
    does not use its version up, so it passes screening again and again for max_age
    (5 min by default, up to 7 days): anyone who saw it on config/set replays it and
    fills the four places of the queue, each copy costing a temporary file and a full
    parse, and the operator's fixed document, signed a minute later, is dropped
    ("a flood of junk cannot push out a real document")."""
    state = tmp_path / "state"
    gateway = Gateway(tmp_path, plant_text(state, [A]))
    broken = signed(plant_text(state, [A], devices_ok=False), 1, A)
    await gateway.remote.handle(broken, False)
    assert gateway.last["status"] == "refused"
    assert gateway.last["reason"].startswith("validation:"), gateway.last

    channel = RemoteConfigChannel()
    channel.screen = gateway.remote.screen
    topic = "edge/line-7/config/set"
    for _ in range(10):  # the replays
        channel._on_message(topic, broken, False)
    fixed = signed(plant_text(state, [A], "# fixed\n"), 2, A)
    channel._on_message(topic, fixed, False)
    waiting = [channel._documents.get_nowait()[0] for _ in range(channel._documents.qsize())]
    assert fixed in waiting, f"the fixed document was dropped ({channel.dropped} dropped)"


async def test_a_document_fresh_on_arrival_is_not_refused_as_stale_after_its_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply.py:158-164: the age is checked again when the document's turn comes. A
    document waits for the one before it and for its rollback watch (rollback_after may
    be up to 24 h, max_age is 5 min by default and check accepts any pair): a document
    pushed fresh during a 10-minute watch is refused "age: ... a stale copy" when its
    turn comes, though it was 1 s old when it arrived."""
    state = tmp_path / "state"
    extra = "  rollback_after: 10m\n"
    gateway = Gateway(tmp_path, plant_text(state, [A], extra))
    document = signed(plant_text(state, [A], extra + "# v1\n"), 1, A)
    issued = parse_document(document).issued
    clock = SimpleNamespace(time=lambda: issued + 1)
    monkeypatch.setattr("edge_agent.remote_config.verify.time", clock)
    assert gateway.remote.screen(document, False)  # on arrival: 1 s old, queued

    clock.time = lambda: issued + 301  # its turn, after the watch of the one before
    await gateway.remote.handle(document, False)
    assert gateway.last["status"] == "applied", gateway.last["reason"]


# ---------------------------------------------------------------------- the store


async def test_a_reload_back_to_an_old_state_dir_keeps_the_newer_store(tmp_path: Path) -> None:
    """apply.py:116-126: the store is carried over to a new state_dir only when the new
    directory has none. A state_dir moved away by a document (which wrote the store to
    both directories) and later moved back by a local edit (SIGHUP) finds its old store
    there, and that stale store wins: versions applied since are open to a replay and a
    key revoked since (a stolen one) is trusted again."""
    first, second = tmp_path / "first", tmp_path / "second"
    VersionStore(first).save(Versions(highest=5))  # written when v5 moved state_dir away
    revoked = key_id(B.public_key())
    VersionStore(second).save(Versions(9, Applied(9, None), Applied(8, None), (revoked,)))
    gateway = Gateway(tmp_path, plant_text(second, [A, B]))
    moved = tmp_path / "moved.yaml"
    moved.write_text(plant_text(first, [A, B]))
    gateway.current = load_config(moved, {})  # a SIGHUP reload moved state_dir back
    versions = gateway.remote.store.load()
    assert versions.highest == 9, versions
    assert revoked in versions.revoked, versions


# ---------------------------------------------------------------------- secrets


@pytest.mark.parametrize("written", ["*Hunter2secret", "!Hunter2secret"])
async def test_a_refused_document_does_not_publish_the_password_it_wrote_in_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    """apply.py:237-245 before 368-376: validation runs before the secrets-in-clear rule,
    and a password written in clear that YAML reads as an alias or a tag (generated
    passwords start with * or ! often enough) fails validation with a problem that
    quotes it ("alias *Hunter2secret has no anchor", "unknown tag '!Hunter2secret'").
    The redaction knows nothing of a value that never came from the environment, so the
    password goes out in the retained config/state report (readable by every client
    that may subscribe to it) and into the log. ``config sign`` runs the check first
    and refuses such a file, but any other signer may not (the format invites them)."""
    state = tmp_path / "state"
    gateway = Gateway(tmp_path, plant_text(state, [A]))
    text = plant_text(state, [A]).replace(
        "{name: cloud, type: mqtt, host: 127.0.0.1}\n",
        f"name: cloud\n    type: mqtt\n    host: 127.0.0.1\n    username: u\n"
        f"    password: {written}\n",
    )
    await gateway.remote.handle(signed(text, 1, A), False)
    assert gateway.last["status"] == "refused"
    published = json.dumps(gateway.last)
    assert "Hunter2secret" not in published, gateway.last["problems"]
    assert "Hunter2secret" not in capsys.readouterr().out
