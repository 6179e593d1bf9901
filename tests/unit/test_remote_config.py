"""Remote configuration's pure parts: keys, the canonical bytes that are signed, the
checks in their order, the version store, the ``remote_config:`` section's rules, the
secrets-in-clear rule, and the order of recording and applying (with a fake apply); the
second review's findings with a fake agent (:class:`Gateway`)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.cli import main
from edge_agent.config import PlantConfig
from edge_agent.config.loader import load_config, parse_config
from edge_agent.errors import ConfigError
from edge_agent.remote_config import files, lockout, rollback
from edge_agent.remote_config.apply import RemoteConfig
from edge_agent.remote_config.document import FORMAT, parse_document, sign_document
from edge_agent.remote_config.keys import (
    KeyProblem,
    key_id,
    keys_by_id,
    parse_private_key,
    parse_public_key,
    private_pem,
    public_line,
    raw_public,
)
from edge_agent.remote_config.secrets import secrets_in_clear
from edge_agent.remote_config.store import (
    Applied,
    StoreError,
    Versions,
    VersionStore,
    merge,
    revoked_after,
)
from edge_agent.remote_config.verify import Refusal, verify
from edge_agent.remote_config.wiring import RemoteConfigChannel
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.reload import ReloadResult

FILE = b"plant: {name: line-7}\r\n# exact bytes: CRLF and all\n"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEYS = keys_by_id([public_line(KEY.public_key())])


def _doc(file: bytes = FILE, version: int = 3, key: Ed25519PrivateKey = KEY) -> dict[str, str]:
    signed = sign_document(
        file, plant="line-7", version=version, key=key, issued_at="2026-03-01T08:00:00Z"
    )
    envelope: dict[str, str] = json.loads(signed)
    return envelope


def _payload(envelope: dict[str, str]) -> bytes:
    return json.dumps(envelope).encode()


def _refusal(payload: bytes, last_version: int = 2) -> Refusal:
    with pytest.raises(Refusal) as caught:
        verify(payload, plant="line-7", keys=KEYS, last_version=last_version)
    return caught.value


# ---------------------------------------------------------------------- keys


def test_a_public_key_has_one_id_however_it_is_written() -> None:
    public = KEY.public_key()
    raw = base64.b64encode(raw_public(public)).decode()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    ids = {key_id(parse_public_key(text)) for text in (raw, public_line(public), pem)}
    assert ids == {key_id(public)}
    assert key_id(public).startswith("ed25519:")
    assert len(key_id(public)) == len("ed25519:") + 16


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not base64!", "expected base64"),
        (base64.b64encode(b"x" * 31).decode(), "neither a raw key"),
        (
            base64.b64encode(
                X25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).decode(),
            "not an Ed25519 key",
        ),
    ],
)
def test_a_key_that_is_not_an_ed25519_public_key_is_refused(text: str, says: str) -> None:
    with pytest.raises(KeyProblem, match=says):
        parse_public_key(text)


def test_a_private_key_reads_from_pem_or_a_base64_seed() -> None:
    seed = base64.b64encode(bytes(range(32))).decode()
    for text in (private_pem(KEY).decode(), seed):
        assert raw_public(parse_private_key(text).public_key()) == raw_public(KEY.public_key())
    with pytest.raises(KeyProblem, match="32"):
        parse_private_key(base64.b64encode(b"short").decode())


# ---------------------------------------------------------------------- the document


def test_the_signature_covers_the_exact_signed_string() -> None:
    envelope = _doc()
    signed = envelope["signed"]
    # Canonical as written by sign_document: sorted keys, no spaces.
    inner = json.loads(signed)
    assert signed == json.dumps(inner, sort_keys=True, separators=(",", ":"))
    assert inner == {
        "format": FORMAT,
        "plant": "line-7",
        "version": 3,
        "sha256": hashlib.sha256(FILE).hexdigest(),
        "issued_at": "2026-03-01T08:00:00Z",
        "key_id": key_id(KEY.public_key()),
    }
    KEY.public_key().verify(base64.b64decode(envelope["signature"]), signed.encode())
    document = parse_document(_payload(envelope))
    assert document.signed == signed.encode()
    assert document.file == FILE  # the exact bytes
    assert document.name == "config/set v3"


def test_a_document_parses_however_its_envelope_is_spaced() -> None:
    """The receiver never re-serialises: any JSON spelling of the same strings verifies."""
    payload = json.dumps(_doc(), indent=7, sort_keys=True).encode()
    assert verify(payload, plant="line-7", keys=KEYS, last_version=0).version == 3


def test_the_signed_string_re_spaced_no_longer_verifies() -> None:
    envelope = _doc()
    envelope["signed"] = json.dumps(json.loads(envelope["signed"]), indent=1)
    assert _refusal(_payload(envelope)).check == "signature"


# ---------------------------------------------------------------------- the order of checks


def test_a_valid_document_passes() -> None:
    document = verify(_payload(_doc()), plant="line-7", keys=KEYS, last_version=2)
    assert (document.version, document.plant, document.file) == (3, "line-7", FILE)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"\xff", "not a JSON document"),
        (b"[]", "not an object"),
        (b'{"signed": "{}", "file": ""}', "not signed"),
        (b'{"signed": "{}", "file": "", "signature": ""}', "not signed"),
        (json.dumps({**_doc(), "extra": 1}).encode(), "unknown member 'extra'"),
        (json.dumps({**_doc(), "signature": "AAAA"}).encode(), "64"),
        (json.dumps({**_doc(), "file": "%%%"}).encode(), "file: not base64"),
    ],
)
def test_what_is_not_a_signed_document_is_refused_at_parse(payload: bytes, says: str) -> None:
    refusal = _refusal(payload)
    assert refusal.check == "parse"
    assert says in refusal.reason


def test_the_signed_part_must_be_complete_and_this_format() -> None:
    def signed_with(**changes: object) -> bytes:
        inner = json.loads(_doc()["signed"])
        inner.update(changes)
        signed = json.dumps(inner)
        return _payload(
            {
                "signed": signed,
                "signature": base64.b64encode(KEY.sign(signed.encode())).decode(),
                "file": base64.b64encode(FILE).decode(),
            }
        )

    assert "format" in _refusal(signed_with(format="edge-agent/write/1")).reason
    assert "whole number" in _refusal(signed_with(version=True)).reason
    assert "whole number" in _refusal(signed_with(version=0)).reason
    assert "hex" in _refusal(signed_with(sha256="ABC")).reason
    assert "ISO 8601" in _refusal(signed_with(issued_at="yesterday")).reason


def test_each_check_in_its_order() -> None:
    # A document failing several checks is refused by the first of them.
    forged = _doc(key=OTHER)  # unknown key ...
    forged["file"] = base64.b64encode(b"other").decode()  # ... and a wrong hash
    assert _refusal(_payload(forged), last_version=9).check == "key"

    other_plant = json.loads(
        sign_document(FILE, plant="line-8", version=1, key=OTHER)  # and an unknown key
    )
    assert _refusal(_payload(other_plant)).check == "plant"

    tampered = _doc()
    inner = json.loads(tampered["signed"])
    inner["version"] = 99  # a replayed document with its version raised
    tampered["signed"] = json.dumps(inner, sort_keys=True, separators=(",", ":"))
    assert _refusal(_payload(tampered)).check == "signature"

    swapped = _doc()
    swapped["file"] = base64.b64encode(FILE + b"x").decode()
    refusal = _refusal(_payload(swapped), last_version=9)
    assert refusal.check == "hash"  # before the version
    assert (refusal.version, refusal.sha256) == (3, hashlib.sha256(FILE).hexdigest())

    assert _refusal(_payload(_doc(version=3)), last_version=3).check == "version"
    assert _refusal(_payload(_doc(version=2)), last_version=3).check == "version"


# ---------------------------------------------------------------------- the store


def test_the_store_keeps_the_versions_across_instances(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "state")
    assert store.load() == Versions()
    saved = Versions(7, Applied(7, "ab" * 32), Applied(None, "cd" * 32))
    store.save(saved)
    assert VersionStore(tmp_path / "state").load() == saved
    assert saved.running_version("ab" * 32) == 7
    assert saved.running_version("ef" * 32) is None  # edited locally since


def test_a_damaged_store_refuses_rather_than_forgets(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    store.path.write_text('{"highest": "7"}')
    with pytest.raises(StoreError, match="refused until it is repaired"):
        store.load()


# ---------------------------------------------------------------------- the plant file


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
  - {name: db, type: influxdb, url: "http://127.0.0.1:8086", bucket: b, org: o, token: t}
remote_config:
  sink: SINK
  public_keys:
    - "KEY"
  rollback_after: 2m
"""


def _plant(sink: str = "cloud", key: str | None = None) -> str:
    return PLANT.replace("SINK", sink).replace("KEY", key or public_line(KEY.public_key()))


def test_remote_config_in_a_plant_file() -> None:
    plant = parse_config(_plant(), "plant.yaml", env={})
    assert plant.remote_config is not None
    assert plant.remote_config.sink == "cloud"
    assert plant.remote_config.rollback_after == 120.0


@pytest.mark.parametrize(
    ("sink", "key", "problem"),
    [
        ("nowhere", None, "plant.yaml:16: remote_config.sink: no sink is named 'nowhere'"),
        ("db", None, "plant.yaml:16: remote_config.sink: sink 'db' is of type influxdb"),
        ("cloud", "AAAA", "plant.yaml:18: remote_config.public_keys[0]: not an Ed25519 public key"),
    ],
)
def test_check_refuses_a_remote_config_that_cannot_work(
    sink: str, key: str | None, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_plant(sink, key), "plant.yaml", env={})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


# ---------------------------------------------------------------------- review findings


def test_a_lone_surrogate_in_the_signed_string_is_refused_at_parse() -> None:
    """Review: a JSON \\ud800 escape in ``signed`` raised UnicodeEncodeError out of
    verify() (no report, "failed part-way") instead of a refusal."""
    envelope = json.loads(
        sign_document(b"plant: {name: line-7}\n", plant="line-7", version=3, key=KEY)
    )
    envelope["signed"] = envelope["signed"].replace('"ed25519:', '"ed25519:\ud800')
    payload = json.dumps(envelope).encode()
    with pytest.raises(Refusal) as caught:
        verify(payload, plant="line-7", keys=KEYS, last_version=0)
    assert caught.value.check == "parse"
    # The same escape written inside the signed JSON (ASCII bytes, a surrogate once read).
    inner = _doc()
    inner["signed"] = inner["signed"].replace('"ed25519:', '"ed25519:\\ud800')
    assert _refusal(_payload(inner)).check == "parse"


def test_sign_does_not_print_a_private_key_given_in_place_of_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: ``--key "$SIGNING_KEY"`` (the key, not its file) repeated the key on
    stderr in the "cannot read" message."""
    seed = base64.b64encode(bytes(range(32))).decode()
    plant = tmp_path / "plant.yaml"
    plant.write_text("plant: {name: line-7}\n")
    code = main(["config", "sign", "--key", seed, "--version", "1", str(plant)])
    out, err = capsys.readouterr()
    assert code == 2
    assert seed not in out + err, err
    assert "the --key file could not be read" in err


def test_a_document_older_than_max_age_is_refused() -> None:
    issued = datetime(2026, 3, 1, 8, 0, tzinfo=UTC).timestamp()
    payload = _payload(_doc())

    def check(now: float) -> None:
        verify(payload, plant="line-7", keys=KEYS, last_version=0, max_age=300, now=now)

    check(issued + 299)
    check(issued - 299)  # a clock a little behind the signer's
    for now in (issued + 301, issued - 301):
        with pytest.raises(Refusal) as caught:
            check(now)
        assert caught.value.check == "age", caught.value
    naive = _doc()
    inner = json.loads(naive["signed"])
    inner["issued_at"] = "2026-03-01T08:00:00"
    naive["signed"] = json.dumps(inner)
    assert "time zone" in _refusal(_payload(naive)).reason


def test_a_revoked_key_signs_nothing_until_a_document_lists_it_again() -> None:
    with pytest.raises(Refusal) as caught:
        verify(
            _payload(_doc()),
            plant="line-7",
            keys=KEYS,
            last_version=0,
            revoked=[key_id(KEY.public_key())],
        )
    assert caught.value.check == "key"
    assert "dropped" in caught.value.reason
    assert revoked_after((), {"a", "b"}, {"b"}) == ("a",)
    assert revoked_after(("a",), {"b"}, {"b"}) == ("a",)  # a rollback re-lists nothing
    assert revoked_after(("a",), {"b"}, {"a", "b"}) == ()  # listed again by a document


@pytest.mark.parametrize(
    ("text", "clear"),
    [
        ('s: {password: "${PW}"}\n', []),
        ('s: {password: "${PW:-}"}\n', []),
        ("s: {password: ''}\n", []),
        ('s: {password: "s3cr\\x33t"}\n', [1]),  # a YAML escape hides nothing
        ('s: {password: "${PW:-fallback}"}\n', [1]),  # a default is written in clear
        ("a: &p literal\ns: {token: *p}\n", [1]),  # an alias: at its anchor's line
        ('s: {url: "https://u:${PW}@h/?token=${T}"}\n', []),
        ('s: {url: "https://u:pw@h/"}\n', [1]),
        ("users:\n  - {name: a, password_hash: $argon2id$x}\n", [2]),  # repr=False field
        ("tags: {password: 1}\n", [1]),
        ("not: [yaml\n", []),  # the loader reports it
    ],
)
def test_a_secret_in_clear_is_found_on_the_yaml_node(text: str, clear: list[int]) -> None:
    found = secrets_in_clear(text, "f")
    assert [int(p.split(":")[1]) for p in found] == clear, found


def test_sign_refuses_a_secret_in_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_TEST_SIGNING_KEY", base64.b64encode(bytes(range(32))).decode())
    plant = tmp_path / "plant.yaml"
    args = ["config", "sign", "--key-env", "EDGE_TEST_SIGNING_KEY", "--version", "1", str(plant)]
    plant.write_text(_plant())  # the InfluxDB sink's token: t
    assert main(args) == 2
    assert "token: a secret written in clear" in capsys.readouterr().err
    plant.write_text(_plant().replace("token: t}", 'token: "${INFLUX_TOKEN}"}'))
    assert main(args) == 0
    assert parse_document(capsys.readouterr().out.encode()).version == 1


async def test_a_version_that_cannot_be_recorded_is_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a document whose version could not be recorded stayed applied, so an
    older one got in next. The version is recorded first; if it cannot be, nothing is
    applied."""
    text = _plant().replace("  - {name: db, type: influxdb", "  # - {name: db")
    text += f"state_dir: {tmp_path / 'state'}\n"
    path = tmp_path / "plant.yaml"
    path.write_text(text)
    config = parse_config(text, str(path), env={})
    applied: list[PlantConfig] = []
    reports: list[bytes] = []

    async def apply(new: PlantConfig) -> ReloadResult:
        applied.append(new)
        return ReloadResult(True)

    def cannot_save(self: VersionStore, versions: Versions) -> None:
        raise StoreError(f"{self.path}: cannot write it: disk full")

    monkeypatch.setattr(VersionStore, "save", cannot_save)
    remote = RemoteConfig(
        path,
        tmp_path / "state",
        config=lambda: config,
        device_states=dict,
        apply=apply,
        report=lambda payload, retain=True: reports.append(payload),
    )
    newer = text.replace("rollback_after: 2m", "rollback_after: 3m").encode()
    await remote.handle(sign_document(newer, plant="line-7", version=5, key=KEY), False)
    assert applied == []
    [report] = [json.loads(r) for r in reports]
    assert report["status"] == "refused"
    assert report["reason"].startswith("store: the version cannot be recorded"), report
    assert path.read_text() == text


def test_a_symlinked_plant_file_has_its_target_replaced(tmp_path: Path) -> None:
    real = tmp_path / "var" / "plant.yaml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "plant.yaml"
    link.symlink_to(real)
    target = files.target_of(link)
    files.write_atomically(target, "v1", b"new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["plant.yaml"]  # no temporary


# ---------------------------------------------------------------------- review 2

A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

GATEWAY_PLANT = """\
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
    text = GATEWAY_PLANT.replace("STATE", str(state_dir)).replace("KEYS\n", listed) + extra
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
            report=lambda payload, retain=True: self.reports.append(json.loads(payload)),
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


# ---------------------------------------------------------------------- review 2, more


async def test_a_replay_of_the_document_being_applied_is_dropped_silently(
    tmp_path: Path,
) -> None:
    """A copy of the document being applied (its version already recorded) arriving
    before the applied report is dropped without a report: a refusal naming the same
    document would reach `config push` before "applied"."""
    state = tmp_path / "state"
    gateway = Gateway(tmp_path, plant_text(state, [A]))
    document = signed(plant_text(state, [A], "# v1\n"), 1, A)
    screened: list[int | None] = []
    apply = gateway.apply

    async def apply_and_replay(new: PlantConfig) -> ReloadResult:
        screened.append(gateway.remote.screen(document, False))
        return await apply(new)

    gateway.remote._apply = apply_and_replay
    await gateway.remote.handle(document, False)
    assert screened == [None]
    assert [r["status"] for r in gateway.reports] == ["applied"]


async def test_a_full_queue_drops_the_lowest_version_never_the_newest() -> None:
    channel = RemoteConfigChannel(queue=2)
    channel.screen = lambda payload, retained: int(payload)
    for version in (b"3", b"1", b"7", b"2"):
        channel._on_message("edge/line-7/config/set", version, False)
    waiting = [channel._documents.get_nowait()[0] for _ in range(channel._documents.qsize())]
    assert waiting == [b"3", b"7"]
    assert channel.dropped == 2


def test_stores_merge_to_the_newer_one() -> None:
    older = Versions(5, Applied(5, "a"), Applied(4, "b"), ("ed25519:old",))
    newer = Versions(9, Applied(9, "c"), Applied(8, "d"), ())
    # A key the newer store trusts again (listed again by a later document) stays trusted.
    assert merge(older, newer) == newer
    assert merge(newer, older) == newer
    same = Versions(9, Applied(9, "c"), Applied(8, "d"), ("ed25519:x",))
    assert merge(newer, same).revoked == ("ed25519:x",)


def test_a_loader_problem_about_a_secret_field_does_not_quote_it() -> None:
    problems = [
        "config/set v1:17: sinks[0].password: unknown tag '!Hunter2secret'",
        "config/set v1:9: devices[0].port: 'x' is not a whole number",
    ]
    shown = lockout.unquoted(problems)
    assert "Hunter2secret" not in shown[0]
    assert shown[0].startswith("config/set v1:17: sinks[0].password: ")
    assert shown[1] == problems[1]


async def test_a_rollback_keeps_revoked_a_key_when_the_file_put_back_has_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other half of the rollback rule: a document signed by B that drops A (stolen)
    and is rolled back keeps A revoked, since B can sign the next document."""
    monkeypatch.setattr(rollback, "LOOK_EVERY_S", 0.01)
    state = tmp_path / "state"
    extra = "  rollback_after: 50ms\n"
    gateway = Gateway(tmp_path, plant_text(state, [A, B], extra))
    gateway.offline_when = _lists_only_b
    await gateway.remote.handle(signed(plant_text(state, [B], extra), 1, B), False)
    assert [r["status"] for r in gateway.reports] == ["applied", "rolled_back"]
    await gateway.remote.handle(signed(plant_text(state, [A], extra), 2, A), False)
    assert gateway.last["reason"].startswith("key:"), gateway.last
