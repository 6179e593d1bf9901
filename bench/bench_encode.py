"""How long the wire formats take per value: MQTT JSON, InfluxDB line protocol and
Sparkplug B DDATA, and what rounding the values at the source (edge_agent/rounding.py)
costs and saves.

Run from the repository root: ``python -m bench.bench_encode``. A 500-tag batch in the
mix of types of ``bench_codec`` (float32 read as Python floats, scaled integers,
64-bit floats, counters, an enum label and status bits), every value good, as a poll
of a typical group delivers it. Each sink's fast path is timed beside its general
path (a dict per value for JSON, a Python step per value for line protocol), which
is what both were before the fast paths and what they still do for the rare batch
that needs it (NaN, bad values, per-value timestamps). The fast paths get a new value
list per call, as from a poll, so each pays for the value text itself, except in
"both sinks", where the second reuses the first's. Sparkplug DDATA goes to a device
born from the same tags (scaled numbers Double, the enum label String, float32 Float),
the reused-message fast path beside the general path (a new Payload, one sample at a
time, as for a batch with a bad value); ``admit`` is the per-batch check the sink runs
before it, ``see`` the live tap's (every batch collected: a polled group's, and OPC UA
change batches of 10 tags, each a different subset). Best of 15 interleaved rounds.

The values are rounded as the drivers deliver them (float32 as their shortest decimal,
scaled integers exact in decimal); ``--unrounded`` encodes them as they were before
(17-digit float32, ``12.100000000000001``), so the two runs show what shorter numbers
save in the sinks. The rounding itself is timed per value it applies to: the float32
of a block (``shortest_float32``: values 0-500 and float32 counters 1e6-1e9, whose
midpoints are short decimals; beside it its list path, without numpy and orjson), a
scaled integer (``DecimalScale``) beside the bare float arithmetic it replaced, and a
whole 500-tag block decode of bench_codec's mix.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import struct
import timeit
from collections.abc import Callable

from bench.bench_codec import MIX, make_tags
from drivers.modbus.compiler import DecoderCache
from drivers.modbus.planner import AdaptivePlan
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.rounding import (
    DecimalScale,
    shortest_float32_compiled,
    shortest_float32_listwise,
)
from edge_agent.sinks import line_protocol, payload
from edge_agent.sinks.sparkplug import ddata
from edge_agent.sinks.sparkplug.metric_table import AliasAllocator, DeviceTable


def _float32(x: float) -> float:
    """``x`` as a float32 register holds it, read back as a Python float (17 digits)."""
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def _short32(x: float) -> float:
    """``x`` as a float32 register holds it, as the driver hands it over (shortest)."""
    return shortest_float32_listwise([_float32(x)])[0]


def typical_values(rng: random.Random, rounded: bool = True) -> list[Callable[[], Value]]:
    """One generator per entry of ``bench_codec.MIX``, in its order; ``rounded``: as
    the drivers deliver them now, else as they did before rounding."""
    f32 = _short32 if rounded else _float32
    tenth = DecimalScale(0.1) if rounded else (lambda raw: raw * 0.1)
    hundredth = DecimalScale(0.01) if rounded else (lambda raw: raw * 0.01)
    return [
        lambda: f32(rng.uniform(0, 500)),
        lambda: f32(rng.uniform(0, 500)),
        lambda: (
            float(f"{f32(rng.uniform(0, 5e5)) * 0.001:.9g}")
            if rounded
            else f32(rng.uniform(0, 5e5)) * 0.001
        ),
        lambda: rng.randrange(65535),
        lambda: tenth(rng.randrange(-3000, 3000)),
        lambda: rng.randrange(65535),
        lambda: hundredth(rng.randrange(1 << 32)),
        lambda: rng.randrange(-(1 << 31), 1 << 31),
        lambda: rng.uniform(0, 1e6),
        lambda: rng.choice(["off", "idle", "run", "fault"]),
        lambda: rng.random() < 0.5,
        lambda: rng.random() < 0.5,
    ]


def make_batch(tags: int, seed: int = 1, rounded: bool = True) -> SampleBatch:
    makers = typical_values(random.Random(seed), rounded)
    names = tuple(f"line3_cnc07_tag_{i:04d}" for i in range(tags))
    values = [makers[i % len(makers)]() for i in range(tags)]
    return SampleBatch(
        "cnc-07",
        "fast",
        1_795_719_601_000_000_000,
        names,
        values,
        [Quality.GOOD] * tags,
        [""] * tags,
    )


def sparkplug_table(batch: SampleBatch) -> DeviceTable:
    """The Sparkplug device of ``batch``, born from the tags of bench_codec's mix."""
    infos = []
    for i, name in enumerate(batch.names):
        value_type, options = MIX[i % len(MIX)]
        enum = options.get("enum")
        scale = options.get("scale", 1.0)
        infos.append(
            TagInfo(
                batch.device,
                batch.group,
                name,
                value_type,
                enum if isinstance(enum, dict) else None,
                1.0,
                scale=float(scale) if isinstance(scale, int | float) else 1.0,
            )
        )
    table = DeviceTable.from_device(DeviceInfo.of(batch.device, "modbus", infos), AliasAllocator())
    if table.admit(batch):
        raise SystemExit("the bench batch does not fit its Sparkplug device: fix the bench")
    return table


def _change_batch(batch: SampleBatch, rng: random.Random) -> SampleBatch:
    """Ten of ``batch``'s samples, as an OPC UA subscription hands over the tags that
    changed (a names list of its own, per-value timestamps)."""
    picked = sorted(rng.sample(range(len(batch)), 10))
    return SampleBatch(
        batch.device,
        "sub",
        batch.timestamp_ns,
        [batch.names[i] for i in picked],
        [batch.values[i] for i in picked],
        [batch.qualities[i] for i in picked],
        [batch.reasons[i] for i in picked],
        [batch.timestamp_ns] * 10,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--number", type=int, default=100, help="encodings per round")
    parser.add_argument(
        "--unrounded", action="store_true", help="encode values as decoded before rounding"
    )
    args = parser.parse_args()
    shortest_float32_compiled([0.0] * 4)  # the decoders round as an agent past its start
    batch = make_batch(args.tags, rounded=not args.unrounded)
    prefix = line_protocol.line_prefix("cnc", {"plant": "plant-a", "device": "cnc-07"})
    keys, quality_keys = line_protocol.field_keys(batch.names, None)
    every = range(len(batch))
    table = sparkplug_table(batch)

    def fresh() -> SampleBatch:
        """The batch with a new value list, as every poll makes: the shared value text
        (edge_agent/sinks/value_text.py) is not cached for it yet."""
        return dataclasses.replace(batch, values=batch.values.copy())

    def both_sinks() -> None:
        polled = fresh()
        payload.encode_batch(polled, "p", "s")
        line_protocol.batch_lines(polled, prefix, keys, quality_keys, 1)

    cases: dict[str, Callable[[], object]] = {
        "MQTT JSON, fast path (encode_batch)": lambda: payload.encode_batch(fresh(), "p", "s"),
        "MQTT JSON, general path (a dict per value)": lambda: payload.encode_document(
            payload._header(batch, "p", "s"), batch
        ),
        "line protocol, fast path (batch_lines)": lambda: line_protocol.batch_lines(
            fresh(), prefix, keys, quality_keys, 1
        ),
        "line protocol, general path (per value)": lambda: line_protocol._line(
            batch, every, prefix, keys, quality_keys
        ),
        "Sparkplug DDATA, fast path (encode_data)": lambda: ddata.encode_data(
            table, fresh(), 1, False
        ),
        "Sparkplug DDATA, general path (per value)": lambda: ddata._general(
            table, table.plan(batch), batch, 1, 0, 0, False
        ),
        "Sparkplug admit (the check before DDATA)": lambda: table.admit(fresh()),
        "both sinks, fast paths (value text shared)": both_sinks,
        "C json encoder on the bare value list": lambda: payload._ENCODER.encode(batch.values),
        "a fresh batch (the copy above)": fresh,
    }
    per_value = dict.fromkeys(cases, len(batch))
    rng = random.Random(2)
    floats = [_float32(rng.uniform(0, 500)) for _ in range(args.tags // 4)]
    counters = [_float32(rng.uniform(1e6, 1e9)) for _ in range(args.tags // 4)]
    raws = [rng.randrange(65535) for _ in range(args.tags)]
    tenth = DecimalScale(0.1)
    tags = make_tags(args.tags, lambda i: MIX[i % len(MIX)])
    decoders = DecoderCache(tags)
    blocks = [
        (decoders[r].decode, [rng.randrange(0x4000) for _ in range(r.count)])
        for r in AdaptivePlan(tags, max_registers=125).requests
    ]
    out: list[Value] = [None] * len(tags)
    qualities, reasons = [Quality.BAD] * len(tags), [""] * len(tags)

    def decode_all() -> None:
        for decode, registers in blocks:
            decode(registers, out, qualities, reasons)

    rounding: dict[str, tuple[Callable[[], object], int]] = {
        "float32 shortest decimal (numpy + orjson)": (
            lambda: shortest_float32_compiled(floats),
            len(floats),
        ),
        "float32 shortest decimal, counters 1e6-1e9": (
            lambda: shortest_float32_compiled(counters),
            len(counters),
        ),
        "float32 shortest decimal, list path (before)": (
            lambda: shortest_float32_listwise(floats),
            len(floats),
        ),
        "scaled integer, exact (DecimalScale 0.1)": (lambda: [tenth(r) for r in raws], len(raws)),
        "scaled integer, float arithmetic (before)": (
            lambda: [r * 0.1 + 0.0 for r in raws],
            len(raws),
        ),
        "decode 500 tags of bench_codec's mix": (decode_all, len(tags)),
    }
    # The live tap (DeviceTable.see, every batch collected): a polled group's batch, and
    # OPC UA change batches naming 10 of the tags each (a different subset every time).
    changes = [_change_batch(batch, rng) for _ in range(400)]
    next_change = itertools.cycle(changes).__next__
    rounding["Sparkplug see, a polled group (live tap)"] = (lambda: table.see(batch), len(batch))
    rounding["Sparkplug see, change batches of 10 tags"] = (
        lambda: table.see(next_change()),
        10,
    )
    for name, (case, count) in rounding.items():
        cases[name] = case
        per_value[name] = count
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(15):  # interleaved, so a busy moment of the machine hits every case alike
        for name, case in cases.items():
            seconds = timeit.timeit(case, number=args.number)
            best[name] = min(best[name], seconds / args.number / per_value[name] * 1e9)
    for name, ns in best.items():
        print(f"{name:<45} {ns:7.1f} ns/value")


if __name__ == "__main__":
    main()
