"""What a command's record may carry out of the agent: no secret, ever.

A record (the audit log's line, the audit topic's message, a command's result) is built
from what a command asked, and a command may name a method argument ``password`` or carry
a text that holds one of the plant's secrets. Every record leaves through :func:`clean`:
keys named like secrets are dropped at any depth, the plant's registered secrets are
redacted in every text, enums become their values and non-finite floats text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from enum import Enum

from edge_agent.redaction import redact

#: The last word of a key that holds a secret (``password``, ``auth_token``, ``api_key``,
#: ``pin``). By the last word, not anywhere in the name: a method argument
#: ``token_count`` or ``bypass`` is what a command set, and the record must say so.
_SECRET_WORD = re.compile(
    r"(?:^|[_\-.])(?:pass(?:word|wd|phrase)?|pwd|secret|token|key|api_?key|credentials?|pin"
    r"|signature|hmac|signed_form|canonical)$",
    re.IGNORECASE,
)


def clean(record: Mapping[str, object]) -> dict[str, object]:
    """``record`` as it may be kept: secret keys dropped, registered secrets redacted,
    enums as their values, non-finite floats as text (JSON has no NaN)."""
    return {str(k): _clean(v) for k, v in record.items() if not _secret(str(k))}


def _secret(key: str) -> bool:
    return bool(_SECRET_WORD.search(key))


def _clean(value: object) -> object:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Enum):
        return _clean(value.value)
    if isinstance(value, Mapping):
        return clean(value)
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes | bytearray):
        return [_clean(item) for item in value]
    # A programming error, not a command's doing: loud, never str() (it could hold a secret).
    raise TypeError(f"audit record: a {type(value).__name__} is not JSON")
