"""The primitives every section of the plant file is built from.

At the bottom of :mod:`edge_agent.config`: it imports nothing of the package, so every
section module (modbus, opcua, mqtt, influx, outbox, service, metrics) can build on it
without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Names end up in MQTT topics and InfluxDB tags: no spaces, slashes, wildcards."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]

#: Shortest poll interval accepted: Modbus RTU at 9600 baud cannot do better anyway.
MIN_INTERVAL_S = 0.01
#: Longest poll interval accepted (one day).
MAX_INTERVAL_S = 86_400.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(value: Any) -> Any:
    """Accept ``1.5``, ``"250ms"``, ``"1s"``, ``"15m"``, ``"1h"``; return seconds as float."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '250ms', '1s', '15m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (examples: 0.5, '250ms', '1s', '15m')")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


#: Validation context the loader passes for a plant file: durations need their unit.
FROM_YAML: dict[str, bool] = {"from_yaml": True}

#: The units a duration may have, as error messages list them.
DURATION_UNITS = "ms, s, m, h, d"


def parse_written_duration(value: Any, info: ValidationInfo) -> Any:
    """A duration as written in a plant file must carry its unit: ``interval: 1000``
    was once read as 1000 s by someone who meant milliseconds. Zero needs none.

    Models built in code (tests, tools) pass no :data:`FROM_YAML` context and keep
    :func:`parse_duration`'s plain seconds.
    """
    context = info.context
    if isinstance(context, dict) and context.get("from_yaml"):
        bare = (
            str(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value.strip()
            if isinstance(value, str) and _BARE_NUMBER.match(value)
            else None
        )
        if bare is not None and float(bare) != 0:
            raise ValueError(
                f"{bare} has no unit: write {bare}ms or {bare}s (units: {DURATION_UNITS})"
            )
    return parse_duration(value)


_BARE_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")

Duration = Annotated[float, BeforeValidator(parse_written_duration)]


def _possible_interval(value: float) -> float:
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise ValueError(
            f"interval {value:g}s is impossible: it must be between "
            f"{MIN_INTERVAL_S * 1000:g}ms and {MAX_INTERVAL_S / 3600:g}h"
        )
    return value


#: A poll group's interval: a duration between :data:`MIN_INTERVAL_S` and :data:`MAX_INTERVAL_S`.
Interval = Annotated[
    float, BeforeValidator(parse_written_duration), AfterValidator(_possible_interval)
]


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
    return value


#: An IANA time zone name (``Asia/Shanghai``), checked against the tz database.
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]


# -- One shared, read-only set of given field names per combination, for the models.
#
# Pydantic keeps, in every model, the set of field names the input gave
# (``model_fields_set``, what ``model_dump(exclude_unset=True)`` reads). A set of five
# names takes 728 bytes, more than the rest of a Modbus tag's model: at 100,000 tags it
# is half of what the config holds. Config models are frozen, and the tags of a plant
# give the same few combinations of names over and over (name, address, type; the same
# plus scale; ...), so every model keeps a reference to one shared set per combination
# instead (:func:`share_field_names`, called from ``Strict.model_post_init``).
#
# A shared set must never change under the models that share it, so it refuses every
# change (TypeError) while reading like any set. A copy is a plain set: pydantic's
# ``model_copy`` copies the set before it adds the updated names, and so does
# ``copy.copy`` of a model.
#
# At most :data:`MAX_SHARED` combinations are kept; past that (a generated file with
# thousands of different key combinations) a model simply keeps its own set.

#: Distinct combinations kept; plant files use a few dozen.
MAX_SHARED = 4096


class SharedFieldNames(set[str]):
    """A set of field names shared by many frozen models: reads like a set, refuses changes."""

    __slots__ = ()

    def _refuse(self) -> NoReturn:
        raise TypeError(
            "the set of given field names is shared by many config models and cannot "
            "change: copy it first (set(model.model_fields_set))"
        )

    def add(self, element: str) -> NoReturn:
        self._refuse()

    def discard(self, element: object) -> NoReturn:
        self._refuse()

    def remove(self, element: str) -> NoReturn:
        self._refuse()

    def pop(self) -> NoReturn:
        self._refuse()

    def clear(self) -> NoReturn:
        self._refuse()

    def update(self, *others: Iterable[str]) -> NoReturn:
        self._refuse()

    def difference_update(self, *others: Iterable[Any]) -> NoReturn:
        self._refuse()

    def intersection_update(self, *others: Iterable[Any]) -> NoReturn:
        self._refuse()

    def symmetric_difference_update(self, other: Iterable[str]) -> NoReturn:
        self._refuse()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]  # never returns: refuses
        self._refuse()

    def __iand__(self, other: Any) -> NoReturn:  # type: ignore[misc]  # never returns: refuses
        self._refuse()

    def __isub__(self, other: Any) -> NoReturn:  # type: ignore[misc]  # never returns: refuses
        self._refuse()

    def __ixor__(self, other: Any) -> NoReturn:  # type: ignore[misc]  # never returns: refuses
        self._refuse()

    def __copy__(self) -> set[str]:
        return set(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> set[str]:
        return set(self)

    def __reduce__(self) -> tuple[type[set[str]], tuple[list[str]]]:
        return set, (list(self),)  # a pickled model gets a plain set of its own


_SHARED: dict[frozenset[str], SharedFieldNames] = {}


def share_field_names(names: set[str]) -> set[str]:
    """The shared set equal to ``names`` (``names`` itself once :data:`MAX_SHARED` are kept).

    Safe from several threads (a reload validates in a worker thread): two threads
    that meet a new combination at once both get the one ``setdefault`` kept.
    """
    key = frozenset(names)
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= MAX_SHARED:
            return names
        shared = _SHARED.setdefault(key, SharedFieldNames(names))
    return shared


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_post_init(self, context: Any, /) -> None:
        """Keep the set of given field names shared with every model given the same
        names (:class:`SharedFieldNames`): half of a tag's memory otherwise."""
        object.__setattr__(
            self, "__pydantic_fields_set__", share_field_names(self.__pydantic_fields_set__)
        )


# The ``plant:`` section: who this agent collects for (names go into topics and tags).
class PlantIdentity(Strict):
    name: Name
    site: str = ""
    timezone: TimeZoneName = "UTC"
