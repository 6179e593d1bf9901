"""The bodies of the console's commissioning requests, checked before anything is sent.

Pure: no I/O and no protocol code. A body is JSON with known keys of the right types
(pydantic, strict: ``true`` is no unit id, ``"1"`` no address); what the values mean
together (a table, an address span, a count a read can hold, a target URL) is checked by
the tools' own rules in :mod:`drivers.modbus.tools`, the same as on the command line, in
:mod:`edge_agent.console.commissioning`. Every refusal is a :class:`BadRequest`: a
sentence a plant engineer understands, and the field at fault for the form to mark.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: Seconds one request may wait for its answer (the command line allows 60: a page
#: should not hang that long, and the agent holds its one commissioning slot meanwhile).
MAX_TIMEOUT_S: Final = 10.0
#: Scales a probe may try at once, and candidates it may list.
MAX_SCALES: Final = 8
MAX_TOP: Final = 50
#: A request body larger than this is no commissioning request.
MAX_BODY_BYTES: Final = 4096

Target = Annotated[str, Field(min_length=1, max_length=300)]
Timeout = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]


class BadRequest(ValueError):
    """A body the console cannot act on; nothing was sent to any device."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field

    def document(self) -> dict[str, str | None]:
        return {"error": str(self), "field": self.field or None}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


B = TypeVar("B", bound=_Body)


class ReadBody(_Body):
    """``POST /console/api/commission/read``: the form of ``edge-agent read``."""

    target: Target
    unit: int = 1
    table: str = "holding"
    address: int
    count: int | None = None
    type: str | None = None
    byte_order: str | None = None
    scale: float = 1.0
    timeout: Timeout = 1.0


class ProbeBody(_Body):
    """``POST /console/api/commission/probe``: the form of ``edge-agent probe --expect``."""

    target: Target
    unit: int = 1
    table: str = "holding"
    address: int
    expect: tuple[float, float]
    count: int = 4
    scales: list[float] = Field(
        default=[1.0, 0.1, 0.01, 0.001], min_length=1, max_length=MAX_SCALES
    )
    top: int = Field(default=8, ge=1, le=MAX_TOP)
    timeout: Timeout = 1.0

    @field_validator("scales")
    @classmethod
    def _no_zero_scale(cls, scales: list[float]) -> list[float]:
        if any(s == 0 or not math.isfinite(s) for s in scales):
            raise ValueError("scales are numbers other than 0, e.g. [1, 0.1, 0.01]")
        return scales

    @property
    def low(self) -> float:
        return min(self.expect)

    @property
    def high(self) -> float:
        return max(self.expect)


class OnceBody(_Body):
    """``POST /console/api/commission/once``: one device of the running config."""

    device: str = Field(min_length=1, max_length=200)


def parse_body(model: type[B], body: bytes) -> B:
    """``body`` as ``model``; :class:`BadRequest` with the first problem otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the request is {len(body)} bytes: at most {MAX_BODY_BYTES}")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _words(exc) from None


def _words(exc: ValidationError) -> BadRequest:
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    kind = error["type"]
    if kind == "json_invalid":
        return BadRequest(f"the request is not JSON ({error['msg']})")
    if not loc:
        return BadRequest("the request is not a JSON object of the form's fields")
    if kind == "extra_forbidden":
        return BadRequest(f"unknown field {field!r}", field)
    if kind == "missing" and len(loc) == 1:
        return BadRequest(f"{field} is needed", field)
    if field == "expect":
        return BadRequest("expect is a range [LOW, HIGH] of two numbers, e.g. [220, 240]", field)
    message = error["msg"].removeprefix("Value error, ")
    return BadRequest(f"{field}: {message[:1].lower()}{message[1:]}", field)


_FLAG: Final = re.compile(r"--([a-z][a-z-]*)")


def form_words(message: str) -> str:
    """A command-line tool's message in the form's words: ``--byte-order`` is the
    field ``byte_order``, ``--address 70000`` the field ``address``."""
    return _FLAG.sub(lambda m: m[1].replace("-", "_"), message)
