"""The MQTT command payload (``edge/{plant}/{device}/cmd``): parsed, never trusted.

Pure: bytes in, a :class:`~edge_agent.writes.model.WriteRequest` or a
:class:`CommandRefusal` out, and nothing else ever raised, whatever the bytes (the
tests fuzz it). The checks here are only about the document's shape; every rule of
the policy (signature, age, id reuse, tag, range ...) is the gate's.

Two forms (docs/WRITES.md):

* unsigned: ``{"id", "tag"|"method", "value"|"args", "issued_at", "expires_at"?,
  "dry_run"?}`` (``plant`` and ``device`` may be given; then they must match the topic);
* signed: ``{"command": "<that object as JSON text, with plant and device>",
  "signature": "<hex HMAC-SHA256 of the text's UTF-8 bytes>"}``. The signature covers
  the exact bytes of the text, so nobody has to re-serialise JSON the same way: the
  :class:`~edge_agent.writes.model.SignedForm` carries those bytes to the gate as they
  came. Inside, ``plant`` and ``device`` are required and must equal the topic's, so a
  command signed for one device cannot be replayed to another.

A payload over 16 KiB, not UTF-8 JSON, with a key twice, a NaN or Infinity, an unknown
key, a nested value, or an id outside ``[A-Za-z0-9_.:-]{1,128}`` is refused with the
reason in words.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from edge_agent.writes.model import SignedForm, WriteRequest, WriteValue

#: The largest payload read at all.
MAX_PAYLOAD: Final = 16 * 1024
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: Longest tag, method or argument name taken (the gate then looks it up).
MAX_NAME: Final = 128
#: Most arguments of a method call.
MAX_ARGS: Final = 64
#: Integers beyond this cannot be any tag's value (uint64 is the widest).
MAX_INT: Final = 2**64
#: RFC 3339 date-time: a full date, a time with optional fraction, and Z or an offset.
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: ``plant`` and ``device`` are optional unsigned (the topic says them) and required signed.
_COMMAND_KEYS: Final = frozenset(
    {
        "id",
        "tag",
        "method",
        "value",
        "args",
        "issued_at",
        "expires_at",
        "dry_run",
        "plant",
        "device",
    }
)
_ENVELOPE_KEYS: Final = frozenset({"command", "signature"})


@dataclass(frozen=True, slots=True)
class CommandRefusal:
    """A payload that is not a command document: why, and what of it could be read (for
    the result and the audit record)."""

    reason: str
    #: The command's id when one could be read and is valid; None otherwise.
    id: str | None = None
    #: The tag or method it named, when read ("" otherwise).
    target: str = ""
    method: bool = False


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_command(
    payload: bytes,
    *,
    plant: str,
    device: str,
    received_at_ns: int,
    identity: str = "",
) -> WriteRequest | CommandRefusal:
    """The command ``payload`` (on ``device``'s command topic of ``plant``) carries, or
    why it carries none. Never raises."""
    if len(payload) > MAX_PAYLOAD:
        return CommandRefusal(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD}")
    seen: dict[str, Any] = {}
    try:
        document = _load_object(payload, "the payload")
        if "command" in document or "signature" in document:
            request = _signed(document, plant, device, received_at_ns, identity, seen)
        else:
            seen.update(document)
            _keys(document, _COMMAND_KEYS, "the command")
            request = _request(document, plant, device, received_at_ns, identity, None, seen)
    except _Refused as refused:
        return _refusal(refused.reason, seen)
    return request


def _refusal(reason: str, seen: Mapping[str, Any]) -> CommandRefusal:
    """What is known of a refused command: its id and target if they were readable."""
    raw_id = seen.get("id")
    ident = raw_id if isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id) else None
    for key in ("tag", "method"):
        name = seen.get(key)
        if isinstance(name, str) and 0 < len(name) <= MAX_NAME and _is_text(name):
            return CommandRefusal(reason, ident, name, key == "method")
    return CommandRefusal(reason, ident)


def _signed(
    envelope: dict[str, Any],
    plant: str,
    device: str,
    received_at_ns: int,
    identity: str,
    seen: dict[str, Any],
) -> WriteRequest:
    _keys(envelope, _ENVELOPE_KEYS, "a signed command")
    if set(envelope) != _ENVELOPE_KEYS:
        raise _Refused("a signed command needs both 'command' and 'signature'")
    text, signature = envelope["command"], envelope["signature"]
    if not isinstance(text, str):
        raise _Refused("'command' must be the command as JSON text (a string)")
    if not isinstance(signature, str) or not _HEX64.fullmatch(signature):
        raise _Refused("'signature' must be the HMAC-SHA256 as 64 hexadecimal digits")
    try:
        canonical = text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("the command text is not valid Unicode (a lone surrogate)") from None
    inner = _load_object(canonical, "the signed command text")
    seen.update(inner)
    _keys(inner, _COMMAND_KEYS, "the signed command")
    for key in ("plant", "device"):
        if key not in inner:
            raise _Refused(f"a signed command must name its {key} inside the signed text")
    return _request(
        inner,
        plant,
        device,
        received_at_ns,
        identity,
        SignedForm(canonical, signature.lower()),
        seen,
    )


def _request(
    document: dict[str, Any],
    plant: str,
    device: str,
    received_at_ns: int,
    identity: str,
    signed: SignedForm | None,
    seen: dict[str, Any],
) -> WriteRequest:
    seen.update(document)
    ident = document.get("id")
    if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
        raise _Refused(
            "'id' is missing or not 1-128 characters of letters, digits and _ . : -"
            if ident is None or isinstance(ident, str)
            else "'id' must be a string"
        )
    for key, expected in (("plant", plant), ("device", device)):
        if key in document and document[key] != expected:
            raise _Refused(
                f"the command names {key} {_shown(document[key])} but came on the topic of "
                f"{key} {expected!r}"
            )
    tag, method = _name(document, "tag"), _name(document, "method")
    if (tag is None) == (method is None):
        raise _Refused("a command names exactly one of 'tag' and 'method'")
    value: WriteValue | None = None
    args: dict[str, WriteValue] = {}
    if tag is not None:
        if "args" in document:
            raise _Refused("'args' goes with 'method'; a tag takes 'value'")
        if "value" not in document:
            raise _Refused(f"no 'value' for tag {tag!r}")
        value = _scalar(document["value"], "'value'")
    else:
        if "value" in document:
            raise _Refused("'value' goes with 'tag'; a method takes 'args'")
        args = _args(document.get("args", {}))
    if "issued_at" not in document:
        raise _Refused("'issued_at' is missing (an RFC 3339 time, e.g. 2026-12-05T06:00:00Z)")
    issued = _time(document["issued_at"], "issued_at")
    expires = _time(document["expires_at"], "expires_at") if "expires_at" in document else None
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _Refused("'dry_run' must be true or false")
    return WriteRequest(
        id=ident,
        channel="mqtt",
        identity=identity,
        device=device,
        tag=tag,
        value=value,
        method=method,
        args=args,
        issued_at_ns=issued,
        expires_at_ns=expires,
        dry_run=dry_run,
        signed=signed,
        received_at_ns=received_at_ns,
    )


class _Duplicate(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key given twice is refused (which one counts would depend
    on the reader: a signed text could mean one thing to us and another to its signer)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(f"the key {_shown(key)} is given twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _load_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(f"{what} is not UTF-8 text") from None
    try:
        document = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except _Duplicate as exc:
        raise _Refused(f"{what}: {exc}") from None
    except RecursionError:
        raise _Refused(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer too long
        raise _Refused(f"{what} is not valid JSON: {_clip(str(exc))}") from None
    if not isinstance(document, dict):
        raise _Refused(f"{what} must be a JSON object")
    return document


def _keys(document: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        shown = ", ".join(_shown(key) for key in unknown[:5])
        raise _Refused(f"{what} has unknown key(s) {shown}; allowed: {', '.join(sorted(allowed))}")


def _name(document: Mapping[str, Any], key: str) -> str | None:
    if key not in document:
        return None
    name = document[key]
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not _is_text(name):
        raise _Refused(f"{key!r} must be a name of 1-{MAX_NAME} characters")
    return name


def _scalar(value: Any, what: str) -> WriteValue:
    """A number, a text or true/false; nothing nested, no null."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_INT < value < MAX_INT:
            raise _Refused(f"{what} is a number too large for any tag")
        return value
    if isinstance(value, float):
        return value  # finite: NaN and Infinity are refused by the reader
    if isinstance(value, str):
        if len(value) > MAX_PAYLOAD or not _is_text(value):
            raise _Refused(f"{what} is not valid text")
        return value
    if value is None:
        raise _Refused(f"{what} is null: give a number, a text or true/false")
    raise _Refused(f"{what} must be a number, a text or true/false, not a list or an object")


def _args(value: Any) -> dict[str, WriteValue]:
    if not isinstance(value, dict):
        raise _Refused("'args' must be an object of argument name -> value")
    if len(value) > MAX_ARGS:
        raise _Refused(f"'args' has {len(value)} arguments; at most {MAX_ARGS}")
    args: dict[str, WriteValue] = {}
    for name, each in value.items():
        if not 0 < len(name) <= MAX_NAME or not _is_text(name):
            raise _Refused(f"argument names are 1-{MAX_NAME} characters")
        args[name] = _scalar(each, f"argument {name!r}")
    return args


def _time(value: Any, key: str) -> int:
    """An RFC 3339 time with Z or an offset, as ns since the epoch."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Refused(
            f"{key!r} must be an RFC 3339 time with Z or an offset, e.g. 2026-12-05T06:00:00Z"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if zone in ("Z", "z"):
            tz: timezone = UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz
        )
        delta = moment - _EPOCH
    except (ValueError, OverflowError):
        raise _Refused(f"{key!r} is not a real time: {value}") from None
    nanos = int((fraction or "").ljust(9, "0"))
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + nanos


def _is_text(value: str) -> bool:
    """False for a string with lone surrogates (JSON ``"\\ud800"``): no UTF-8 form."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any) -> str:
    """A value from the payload, quoted and bounded, for a refusal's words."""
    return _clip(json.dumps(value, ensure_ascii=True) if _jsonable(value) else repr(value))


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sign_command(command: Mapping[str, Any], key: bytes) -> bytes:
    """The signed payload of ``command`` (with ``plant`` and ``device`` in it) under
    ``key``: for tests, the docs and the bench; any sender that signs the exact bytes of
    the text it puts in ``command`` does the same."""
    text = json.dumps(command, separators=(",", ":"), allow_nan=False)
    signature = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return json.dumps({"command": text, "signature": signature}).encode("utf-8")
