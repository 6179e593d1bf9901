"""Base of every profile and parameter model, and the value types models report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Same rule as the agent's config: names end up in topics and tags."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]

Value = bool | int | float | str
"""What a model quantity reads as."""

ValueKind = Literal["bool", "int", "float", "str"]


class Strict(BaseModel):
    """Unknown keys are errors and instances are immutable: a typo must not pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Quantity:
    """One value a model can serve: its kind, unit of measure and meaning."""

    kind: ValueKind
    unit: str
    doc: str
