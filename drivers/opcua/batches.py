"""DataValues of one poll group -> :class:`~edge_agent.model.SampleBatch` (parallel lists).

Read mode: one DataValue per tag, in tag order; the batch reuses the group's names
tuple unless an array tag expands into elements (``name[0]``, ``name[1]``...), in
which case the expanded names are cached per array shape.

Subscribe mode: notifications arrive in order, several per tag when the tag changed
more than once since the last hand-over (queue size > 1, or two publishing cycles
between reads). They are split into rounds, so that each batch names a tag at most
once (a batch is a map from name to value for every consumer) and no change is lost:
round k holds the k-th change of every tag that changed at least k+1 times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from asyncua import ua

from drivers.opcua.convert import FLOAT, PLAIN_TYPES, datetime_ns, decode
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.rounding import shortest_float32

_GOOD = Quality.GOOD
_BAD = Quality.BAD

#: Most distinct array shapes whose expanded names a group keeps.
_NAME_CACHE_SIZE = 64


class GroupAssembler:
    """Builds the batches of one poll group; per-tag enum maps decide the conversion."""

    def __init__(
        self,
        device: str,
        group: str,
        names: tuple[str, ...],
        *,
        use_source: bool,
        max_array_lengths: Sequence[int] = (),
    ) -> None:
        self.device = device
        self.group = group
        self.names = names
        self.use_source = use_source
        #: Per tag: the enum map (from the server or the config), or None.
        self.enums: list[Mapping[int, str] | None] = [None] * len(names)
        #: Per tag: most elements an array may have (0: any).
        self.max_lengths: list[int] = list(max_array_lengths) or [0] * len(names)
        self._expanded: dict[tuple[tuple[int, int], ...], tuple[str, ...]] = {}

    # ----------------------------------------------------------------- read mode

    def read_batch(
        self,
        timestamp_ns: int,
        results: Sequence[ua.DataValue | None],
        missing: Sequence[str],
    ) -> SampleBatch:
        """One batch from a bulk read; ``results[i] is None`` means tag i was not read
        and ``missing[i]`` says why (unresolved node, refused item)."""
        count = len(self.names)
        values: list[Value] = [None] * count
        qualities = [_BAD] * count
        reasons = list(missing)
        stamps = [timestamp_ns] * count
        enums = self.enums
        use_source = self.use_source
        arrays: list[tuple[int, list[tuple[Value, Quality, str]]]] = []
        floats: list[int] = []  # good Float (float32) scalars, rounded together below
        float_values: list[float] = []
        plain = PLAIN_TYPES
        for i, data in enumerate(results):
            if data is None:
                continue
            status = data.StatusCode
            variant = data.Value
            raw = variant.Value if variant is not None else None
            if (status is None or status.value == 0) and type(raw) in plain and enums[i] is None:
                values[i] = raw
                qualities[i] = _GOOD
                reasons[i] = ""
                if type(raw) is float and variant is not None and variant.VariantType is FLOAT:
                    floats.append(i)
                    float_values.append(raw)
            else:
                converted, qualities[i], reasons[i] = decode(data, enums[i], self.max_lengths[i])
                if type(converted) is list:
                    arrays.append((i, converted))
                else:
                    values[i] = converted  # type: ignore[assignment]
            moment = (
                (data.SourceTimestamp or data.ServerTimestamp)
                if use_source
                else (data.ServerTimestamp or data.SourceTimestamp)
            )
            if moment is not None:
                stamps[i] = datetime_ns(moment)
        if floats:
            for i, value in zip(floats, shortest_float32(float_values), strict=True):
                values[i] = value
        if arrays:
            return self._expand(timestamp_ns, values, qualities, reasons, stamps, arrays)
        return SampleBatch(
            self.device, self.group, timestamp_ns, self.names, values, qualities, reasons, stamps
        )

    def _expand(
        self,
        timestamp_ns: int,
        values: list[Value],
        qualities: list[Quality],
        reasons: list[str],
        stamps: list[int],
        arrays: list[tuple[int, list[tuple[Value, Quality, str]]]],
    ) -> SampleBatch:
        shape = tuple((i, len(elements)) for i, elements in arrays)
        names = self._expanded.get(shape)
        if names is None:
            lengths = dict(shape)
            expanded: list[str] = []
            for i, name in enumerate(self.names):
                if i in lengths:
                    expanded.extend(f"{name}[{k}]" for k in range(lengths[i]))
                else:
                    expanded.append(name)
            names = tuple(expanded)
            if len(self._expanded) >= _NAME_CACHE_SIZE:
                self._expanded.clear()
            self._expanded[shape] = names
        by_index = dict(arrays)
        out_values: list[Value] = []
        out_qualities: list[Quality] = []
        out_reasons: list[str] = []
        out_stamps: list[int] = []
        for i in range(len(self.names)):
            elements = by_index.get(i)
            if elements is None:
                out_values.append(values[i])
                out_qualities.append(qualities[i])
                out_reasons.append(reasons[i])
                out_stamps.append(stamps[i])
                continue
            for value, quality, reason in elements:
                out_values.append(value)
                out_qualities.append(max(quality, qualities[i]))
                out_reasons.append(reason or reasons[i])
                out_stamps.append(stamps[i])
        return SampleBatch(
            self.device,
            self.group,
            timestamp_ns,
            names,
            out_values,
            out_qualities,
            out_reasons,
            out_stamps,
        )

    # ------------------------------------------------------------ subscribe mode

    def change_batches(
        self,
        timestamp_ns: int,
        changes: Sequence[tuple[int, ua.DataValue]],
        refused: Sequence[tuple[int, str]] = (),
    ) -> list[SampleBatch]:
        """Batches for the data changes received since the last hand-over, in rounds.

        ``refused`` are tags whose monitored item could not be created, reported bad
        once (in the first round) with the server's reason.
        """
        rounds: list[_Round] = []
        seen: dict[int, int] = {}
        for position, reason in refused:
            self._round(rounds, seen, position).add(
                self.names[position], None, _BAD, reason, timestamp_ns
            )
        enums = self.enums
        use_source = self.use_source
        plain = PLAIN_TYPES
        names = self.names
        # Good Float (float32) scalars: where they sit, rounded together after the loop.
        floats: list[tuple[list[Value], int]] = []
        float_values: list[float] = []
        for position, data in changes:
            target = self._round(rounds, seen, position)
            moment = (
                (data.SourceTimestamp or data.ServerTimestamp)
                if use_source
                else (data.ServerTimestamp or data.SourceTimestamp)
            )
            stamp = datetime_ns(moment) if moment is not None else timestamp_ns
            status = data.StatusCode
            variant = data.Value
            raw = variant.Value if variant is not None else None
            if (
                (status is None or status.value == 0)
                and type(raw) in plain
                and enums[position] is None
            ):
                if type(raw) is float and variant is not None and variant.VariantType is FLOAT:
                    floats.append((target.values, len(target.values)))
                    float_values.append(raw)
                target.add(names[position], raw, _GOOD, "", stamp)
                continue
            converted, quality, reason = decode(data, enums[position], self.max_lengths[position])
            if type(converted) is list:
                for k, (value, element_quality, element_reason) in enumerate(converted):
                    target.add(
                        f"{names[position]}[{k}]",
                        value,
                        max(quality, element_quality),
                        element_reason or reason,
                        stamp,
                    )
            else:
                target.add(names[position], converted, quality, reason, stamp)  # type: ignore[arg-type]
        for (values, index), value in zip(floats, shortest_float32(float_values), strict=True):
            values[index] = value
        return [
            SampleBatch(
                self.device,
                self.group,
                timestamp_ns,
                r.names,
                r.values,
                r.qualities,
                r.reasons,
                r.stamps,
            )
            for r in rounds
        ]

    @staticmethod
    def _round(rounds: list[_Round], seen: dict[int, int], position: int) -> _Round:
        index = seen.get(position, 0)
        seen[position] = index + 1
        if index == len(rounds):
            rounds.append(_Round())
        return rounds[index]


class _Round:
    __slots__ = ("names", "qualities", "reasons", "stamps", "values")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.values: list[Value] = []
        self.qualities: list[Quality] = []
        self.reasons: list[str] = []
        self.stamps: list[int] = []

    def add(self, name: str, value: Value, quality: Quality, reason: str, stamp: int) -> None:
        self.names.append(name)
        self.values.append(value)
        self.qualities.append(quality)
        self.reasons.append(reason)
        self.stamps.append(stamp)
