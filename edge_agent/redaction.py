"""Which values are secrets, and how to keep them out of everything the agent writes.

A secret is a config string held by a field declared ``Field(repr=False)`` (pydantic
already keeps those out of reprs) or named like one (``password``, ``token``,
``secret``, ``api_key``...). Drivers and sinks only have to follow that rule for
their credentials to be redacted from the logs and from config error messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

REDACTED = "***"
#: Shorter secrets are not searched for in output text: replacing every "a" or "12"
#: would garble the log. They are still masked wherever they appear under a secret's key.
MIN_SECRET_LENGTH = 4
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?$|secret|token|api_?key|credential", re.I)

_known: set[str] = set()
#: Longest first, so a secret that contains another is replaced whole.
_ordered: list[str] = []


def is_secret_key(name: str) -> bool:
    """True for field and log keys that hold secrets (``password``, ``influx_token``...)."""
    return bool(_SECRET_KEY.search(name))


def is_secret_location(loc: Sequence[str | int]) -> bool:
    """True when a config error's location ends in a secret field."""
    return bool(loc) and isinstance(loc[-1], str) and is_secret_key(loc[-1])


def secret_values(model: BaseModel) -> set[str]:
    """Every non-empty string held by a secret field of ``model``, however deep."""
    found: set[str] = set()
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, str) and value and (not info.repr or is_secret_key(name)):
            found.add(value)
        else:
            found |= _secret_values_in(value)
    return found


def _secret_values_in(value: Any) -> set[str]:
    if isinstance(value, BaseModel):
        return secret_values(value)
    if isinstance(value, list | tuple):
        return {s for item in value for s in _secret_values_in(item)}
    if isinstance(value, dict):
        return {s for item in value.values() for s in _secret_values_in(item)}
    return set()


def register_secrets(values: Iterable[str]) -> int:
    """Redact ``values`` from all output from now on; return how many were too short to."""
    too_short = 0
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            too_short += bool(value)
            continue
        # Also as a JSON string and a Python repr would spell it: a quote or a
        # backslash in a password must not let it through escaped.
        for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            _known.add(form)
        _known.add(repr(value)[1:-1])
    _ordered[:] = sorted(_known, key=len, reverse=True)
    return too_short


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def forget_secrets() -> None:
    """For tests: start over with no registered secrets."""
    _known.clear()
    _ordered.clear()
