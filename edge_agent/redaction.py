"""Which values are secrets, and how to keep them out of everything the agent writes.

A secret is a config string held by a field declared ``Field(repr=False)`` (pydantic
already keeps those out of reprs) or named like one (``password``, ``token``,
``secret``, ``api_key``...). Drivers and sinks only have to follow that rule for
their credentials to be redacted from the logs and from config error messages.
A password written into a URL (``https://user:password@host``, ``?token=...``, an
InfluxDB 1.x ``?p=...``) is a secret too, whatever field holds the URL.
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

#: ``scheme://user:password@``: the password is group 2.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)([^/?#@\s]*)@")
#: ``?name=value`` or ``&name=value`` of a URL's query.
_URL_QUERY_PARAMETER = re.compile(r"([?&]([^=&#\s]+)=)([^&#\s]*)")
#: Query parameters holding credentials besides secret-named ones: InfluxDB 1.x's
#: ``?u=user&p=password``.
_PASSWORD_PARAMETERS = frozenset({"p"})

_known: set[str] = set()
#: Longest first, so a secret that contains another is replaced whole.
_ordered: list[str] = []


def is_secret_key(name: str) -> bool:
    """True for field and log keys that hold secrets (``password``, ``influx_token``...)."""
    return bool(_SECRET_KEY.search(name))


def is_secret_location(loc: Sequence[str | int]) -> bool:
    """True when a config error's location ends in a secret field."""
    return bool(loc) and isinstance(loc[-1], str) and is_secret_key(loc[-1])


def _is_secret_parameter(name: str) -> bool:
    return is_secret_key(name) or name in _PASSWORD_PARAMETERS


def url_secrets(text: str) -> set[str]:
    """Passwords and secret query values of the URLs in ``text``."""
    if "://" not in text and "=" not in text:
        return set()
    found = {m.group(2) for m in _URL_USERINFO.finditer(text)}
    found |= {
        m.group(3) for m in _URL_QUERY_PARAMETER.finditer(text) if _is_secret_parameter(m.group(2))
    }
    return found - {""}


def redact_urls(text: str) -> str:
    """``text`` with the credentials of its URLs replaced by ``***``
    (``https://edge:***@influx:8086/?u=edge&p=***``); the user name stays."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)

    def parameter(match: re.Match[str]) -> str:
        if _is_secret_parameter(match.group(2)) and match.group(3):
            return match.group(1) + REDACTED
        return match.group(0)

    return _URL_QUERY_PARAMETER.sub(parameter, text)


def secret_values(model: BaseModel) -> set[str]:
    """Every non-empty string held by a secret field of ``model``, however deep, and
    every credential written into a URL."""
    found: set[str] = set()
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, str) and value and (not info.repr or is_secret_key(name)):
            found.add(value)
        else:
            found |= _secret_values_in(value)
    return found


def _secret_values_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return url_secrets(value)
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
