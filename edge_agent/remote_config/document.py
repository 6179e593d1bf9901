"""The config document on ``edge/{plant}/config/set``: its envelope and the exact bytes
that are signed.

The envelope is one JSON object with exactly three members::

    {
      "signed": "{\"format\":\"edge-agent/config-set/1\",\"issued_at\":\"2026-03-01T08:00:00Z\",
                 \"key_id\":\"ed25519:3f0c...\",\"plant\":\"line-7\",\"sha256\":\"9b1d...\",
                 \"version\":12}",
      "signature": "<base64 of the 64-byte Ed25519 signature>",
      "file": "<base64 of the plant file, exactly as written>"
    }

The signature covers the UTF-8 bytes of the ``signed`` string, exactly as they arrive
(the way signed write commands are treated, edge_agent/writes/command_json.py): the
receiver never re-serialises anything, so no two JSON libraries have to agree on a
canonical form. ``signed`` is itself a JSON object with exactly the members above:
``format`` (this format and purpose: a signature made for anything else never verifies
as a config document), ``plant``, ``version`` (an integer from 1, strictly increasing),
``sha256`` (64 lower-case hex digits of the plant file's bytes), ``issued_at`` (ISO 8601
with its time zone: the agent refuses a document older than ``remote_config.max_age``;
the version decides the order) and ``key_id`` (which public key,
:func:`edge_agent.remote_config.keys.key_id`). The file travels beside it in base64
(its exact bytes: line ends, encoding) and is bound to the signature by its hash.
:func:`sign_document` writes this form: sorted keys, no spaces, ASCII.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.config.reading import DEFAULT_LIMITS
from edge_agent.remote_config.keys import key_id

FORMAT: Final = "edge-agent/config-set/1"
ENVELOPE_KEYS: Final = frozenset({"signed", "signature", "file"})
SIGNED_KEYS: Final = frozenset({"format", "plant", "version", "sha256", "issued_at", "key_id"})
#: A plant file may be 32 MiB (config.reading.LoadLimits); in base64, plus the rest.
MAX_DOCUMENT_BYTES: Final = DEFAULT_LIMITS.max_bytes * 4 // 3 + 64 * 1024
SIGNATURE_BYTES: Final = 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DocumentError(ValueError):
    """A payload that is not a config document; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """A parsed document, not yet verified: every field is as the sender wrote it."""

    #: The exact bytes the signature covers (the ``signed`` string, UTF-8).
    signed: bytes
    signature: bytes
    #: The plant file's exact bytes.
    file: bytes
    plant: str
    version: int
    sha256: str
    issued_at: str
    #: ``issued_at`` in seconds since the epoch.
    issued: float
    key_id: str
    #: SHA-256 (hex) of the signature: names this very document in the state report
    #: (``config push`` waits for the report about its own document, no other).
    digest: str

    @property
    def name(self) -> str:
        """How problems name the pushed file: ``config/set v12``."""
        return f"config/set v{self.version}"


def parse_document(payload: bytes) -> ConfigDocument:
    """The document in ``payload``; :class:`DocumentError` saying what is missing or wrong."""
    if len(payload) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"the document is {len(payload)} bytes, more than a plant file may be")
    try:
        envelope = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DocumentError(f"not a JSON document: {exc}") from None
    if not isinstance(envelope, dict):
        raise DocumentError("not a config document: the JSON is not an object")
    if "signature" not in envelope or envelope.get("signature") in ("", None):
        raise DocumentError("not signed: the document has no signature")
    _exact_keys(envelope, ENVELOPE_KEYS, "the document")
    signed_text, signature_text, file_text = (
        _string(envelope, name, "the document") for name in ("signed", "signature", "file")
    )
    signature = _base64(signature_text, "signature")
    if len(signature) != SIGNATURE_BYTES:
        raise DocumentError(f"signature: {len(signature)} bytes, an Ed25519 signature has 64")
    try:
        signed = signed_text.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON \ud800 escape: a string no UTF-8 bytes spell, so nothing was signed.
        raise DocumentError("signed: not text (a lone surrogate escape)") from None
    try:
        inner = json.loads(signed_text)
    except ValueError as exc:
        raise DocumentError(f"signed: not JSON: {exc}") from None
    if not isinstance(inner, dict):
        raise DocumentError("signed: not a JSON object")
    _exact_keys(inner, SIGNED_KEYS, "signed")
    if inner["format"] != FORMAT:
        raise DocumentError(f"signed.format: {inner['format']!r} is not {FORMAT!r}")
    version = inner["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DocumentError(f"signed.version: {version!r} is not a whole number from 1")
    sha256 = _string(inner, "sha256", "signed")
    if not _HEX64.match(sha256):
        raise DocumentError("signed.sha256: not 64 lower-case hex digits")
    issued_at = _string(inner, "issued_at", "signed")
    try:
        issued = datetime.fromisoformat(issued_at)
    except ValueError:
        raise DocumentError(f"signed.issued_at: {issued_at!r} is not an ISO 8601 time") from None
    if issued.utcoffset() is None:
        raise DocumentError(
            f"signed.issued_at: {issued_at!r} names no time zone (write it in UTC: ...Z)"
        )
    return ConfigDocument(
        signed=signed,
        signature=signature,
        file=_base64(file_text, "file"),
        plant=_string(inner, "plant", "signed"),
        version=version,
        sha256=sha256,
        issued_at=issued_at,
        issued=issued.timestamp(),
        key_id=_string(inner, "key_id", "signed"),
        digest=hashlib.sha256(signature).hexdigest(),
    )


def _exact_keys(mapping: dict[str, Any], expected: frozenset[str], where: str) -> None:
    missing = sorted(expected - mapping.keys())
    unknown = sorted(mapping.keys() - expected)
    if missing:
        raise DocumentError(f"{where}: missing {', '.join(missing)}")
    if unknown:
        raise DocumentError(f"{where}: unknown member {', '.join(map(repr, unknown))}")


def _string(mapping: dict[str, Any], name: str, where: str) -> str:
    value = mapping[name]
    if not isinstance(value, str):
        raise DocumentError(f"{where}: {name} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError(f"{where}: {name} is not text (a lone surrogate escape)") from None
    return value


def _base64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentError(f"{name}: not base64") from None


def sign_document(
    file: bytes,
    *,
    plant: str,
    version: int,
    key: Ed25519PrivateKey,
    issued_at: str | None = None,
) -> bytes:
    """The envelope for ``file`` (exact bytes), signed by ``key``: what ``config sign``
    prints and ``config push`` publishes."""
    inner = {
        "format": FORMAT,
        "plant": plant,
        "version": version,
        "sha256": hashlib.sha256(file).hexdigest(),
        "issued_at": issued_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "key_id": key_id(key.public_key()),
    }
    signed = json.dumps(inner, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    envelope = {
        "signed": signed,
        "signature": base64.b64encode(key.sign(signed.encode("utf-8"))).decode("ascii"),
        "file": base64.b64encode(file).decode("ascii"),
    }
    return json.dumps(envelope, indent=2).encode("utf-8") + b"\n"
