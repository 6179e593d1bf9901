"""Whether a config document may be applied: the checks, in their order.

1. **parse**: a JSON envelope of this format, signed (:mod:`.document`);
2. **plant**: written for this plant (a document for another plant is refused);
3. **key**: signed by a key this agent knows (``remote_config.public_keys``);
4. **signature**: the Ed25519 signature verifies over the exact signed bytes;
5. **hash**: the file's SHA-256 is the signed one (the file is what was signed);
6. **age**: signed (``issued_at``) no longer ago than ``remote_config.max_age`` (nor
   that far in the future): a retained or captured copy cannot be applied later;
7. **version**: newer than the last version applied (kept in the state directory, so
   a restart opens no window for a replay).

The first failing check refuses the document with a plain reason. Validation like
``edge-agent check`` and the lock-out rules come after, on the file itself
(:mod:`.apply`). Every check is cheap: a forged document costs one signature check.

A refusal names the document (``document``, the SHA-256 of its signature) only once
checks 4 and 5 passed: before that, the envelope may be a forged copy carrying a real
document's signature, and a report naming the real document would tell ``config push``
that it was refused. Its version and hash are shown once the signature verified.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.remote_config.document import ConfigDocument, DocumentError, parse_document


@dataclass
class Refusal(Exception):
    """A document that is not applied: which check refused it and why."""

    #: parse, plant, key, signature, hash, age, version, validation, lockout, secrets,
    #: store, apply.
    check: str
    reason: str
    #: ``file:line`` problems of a document that failed validation (else empty).
    problems: tuple[str, ...] = field(default=())
    version: int | None = None
    sha256: str | None = None
    #: SHA-256 of the document's signature (the document's own name in the report);
    #: None unless the signature and the file's hash were verified.
    document: str | None = None

    def __str__(self) -> str:
        return f"{self.check}: {self.reason}"


def verify(
    payload: bytes,
    *,
    plant: str,
    keys: Mapping[str, Ed25519PublicKey],
    last_version: int,
    max_age: float | None = None,
    now: float | None = None,
    revoked: Collection[str] = (),
) -> ConfigDocument:
    """The document in ``payload`` if it passes every check; else :class:`Refusal`.
    ``max_age`` None: no age check (``config push``'s own look at a file)."""
    try:
        document = parse_document(payload)
    except DocumentError as exc:
        raise Refusal("parse", str(exc)) from None
    return verify_document(
        document,
        plant=plant,
        keys=keys,
        last_version=last_version,
        max_age=max_age,
        now=now,
        revoked=revoked,
    )


def verify_document(
    document: ConfigDocument,
    *,
    plant: str,
    keys: Mapping[str, Ed25519PublicKey],
    last_version: int,
    max_age: float | None = None,
    now: float | None = None,
    revoked: Collection[str] = (),
) -> ConfigDocument:
    """Checks 2 to 7 on a parsed document (:func:`verify`)."""

    def refuse(check: str, reason: str) -> Refusal:
        # Not verified yet: nothing of the envelope names a document.
        return Refusal(check, reason)

    def refuse_verified(check: str, reason: str) -> Refusal:
        return Refusal(
            check,
            reason,
            version=document.version,
            sha256=document.sha256,
            document=document.digest,
        )

    if document.plant != plant:
        raise refuse(
            "plant", f"the document is for plant {document.plant!r}; this agent is {plant!r}"
        )
    if document.key_id in revoked:
        raise refuse(
            "key",
            f"signed by key {document.key_id}, which an applied document dropped (revoked: "
            "only a document signed by a trusted key that lists it again trusts it again)",
        )
    key = keys.get(document.key_id)
    if key is None:
        raise refuse(
            "key",
            f"signed by key {document.key_id}, which is not in remote_config.public_keys",
        )
    try:
        key.verify(document.signature, document.signed)
    except InvalidSignature:
        raise refuse(
            "signature", f"the signature does not verify with key {document.key_id}"
        ) from None
    actual = hashlib.sha256(document.file).hexdigest()
    if not hmac.compare_digest(actual, document.sha256):
        # The signed part is genuine (its version and hash may be shown); the envelope is
        # not: it must not name the document.
        raise Refusal(
            "hash",
            f"the file's SHA-256 is {actual}, the signed one {document.sha256}",
            version=document.version,
            sha256=document.sha256,
        )
    if max_age is not None:
        age = (time.time() if now is None else now) - document.issued
        if abs(age) > max_age:
            when = "ago" if age > 0 else "in the future"
            raise refuse_verified(
                "age",
                f"issued_at {document.issued_at} is {abs(age):.0f} s {when}, more than "
                f"remote_config.max_age ({max_age:g} s): a stale copy (retained, or "
                "captured), or a clock out of sync; sign it again",
            )
    if document.version <= last_version:
        raise refuse_verified(
            "version",
            f"version {document.version} is not newer than version {last_version}, the last "
            "applied (an older document, or a replay)",
        )
    return document
