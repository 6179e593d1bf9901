"""Remote configuration's pure parts: keys, the canonical bytes that are signed, the
checks in their order, the version store, the ``remote_config:`` section's rules, the
secrets-in-clear rule, and the order of recording and applying (with a fake apply)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge_agent.cli import main
from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.errors import ConfigError
from edge_agent.remote_config import files
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
    revoked_after,
)
from edge_agent.remote_config.verify import Refusal, verify
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
        report=reports.append,
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
