"""Ed25519 keys for signed plant files: parse the public ones a plant file lists, name
each by a short id, load a private one from a file or the environment.

A public key may be written three ways, all one line or a PEM block: the base64 of its
raw 32 bytes, the base64 of its DER SubjectPublicKeyInfo (``MCowBQYDK2VwAyEA...``, what
``edge-agent config keygen`` prints and ``openssl pkey -pubout`` wraps in PEM), or that
PEM. Its id is ``ed25519:`` and the first 16 hex digits of the SHA-256 of the raw 32
bytes: the same key has the same id however it is written.

A private key is a PEM PKCS#8 file (``keygen`` writes one, mode 0600) or the same PEM,
or the base64 of the raw 32-byte seed, in an environment variable. Never on a command
line (``ps`` shows it to every user), never printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RAW_KEY_BYTES = 32


class KeyProblem(ValueError):
    """A key that cannot be used, with a reason a person can act on."""


def parse_public_key(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key written as ``text``; KeyProblem saying why not."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
            raise KeyProblem(f"not a PEM public key: {exc}") from None
        return _ed25519(key)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem(
            "not a public key: expected base64 (44 or 60 characters) or a PEM block"
        ) from None
    if len(raw) == RAW_KEY_BYTES:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem(
            f"not an Ed25519 public key: {len(raw)} bytes that are neither a raw key "
            "(32 bytes) nor a DER public key"
        ) from None
    return _ed25519(key)


def _ed25519(key: object) -> Ed25519PublicKey:
    if not isinstance(key, Ed25519PublicKey):
        kind = type(key).__name__.lstrip("_").removesuffix("PublicKey")
        raise KeyProblem(f"not an Ed25519 key but a key of type {kind}")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """``ed25519:`` + 16 hex digits: how a document names the key that signed it."""
    return "ed25519:" + hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_line(key: Ed25519PublicKey) -> str:
    """The one-line form for ``remote_config.public_keys`` (base64 DER, as openssl has it)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def keys_by_id(texts: list[str]) -> dict[str, Ed25519PublicKey]:
    """The listed keys by id; a key that does not parse is left out (``check`` refuses
    a plant file with one, so the running config has none)."""
    found: dict[str, Ed25519PublicKey] = {}
    for text in texts:
        try:
            key = parse_public_key(text)
        except KeyProblem:
            continue
        found[key_id(key)] = key
    return found


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to a new file ``path``, readable by its owner only (0600 from the
    first byte: created with that mode, never chmod-ed after). Refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(private_pem(key))
        file.flush()
        os.fsync(file.fileno())


def parse_private_key(text: str) -> Ed25519PrivateKey:
    """A private key from PEM PKCS#8 text or the base64 of its raw 32-byte seed."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError):
            # The reason may quote the key's text: not repeated.
            raise KeyProblem("not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyProblem("not an Ed25519 private key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem("not a private key: expected PEM or the base64 of 32 bytes") from None
    if len(raw) != RAW_KEY_BYTES:
        raise KeyProblem(f"not a private key: {len(raw)} bytes, an Ed25519 seed has 32")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_private_key(*, path: str | None, env_name: str | None) -> Ed25519PrivateKey:
    """From the file ``path`` or the environment variable ``env_name`` (exactly one)."""
    if (path is None) == (env_name is None):
        raise KeyProblem("give the private key as a file (--key) or an environment variable")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            # Never the argument itself: it may be the key, given in place of its file
            # (--key "$SIGNING_KEY"), and would land in a terminal or a CI log.
            raise KeyProblem(
                f"the --key file could not be read ({exc.strerror or type(exc).__name__}); "
                "--key takes the key's file, --key-env the name of a variable holding it"
            ) from None
        except UnicodeDecodeError:
            raise KeyProblem("the --key file is not a PEM private key (not text)") from None
        return parse_private_key(text)
    assert env_name is not None
    value = os.environ.get(env_name)
    if not value:
        raise KeyProblem(f"the environment variable {env_name} is not set")
    return parse_private_key(value)
