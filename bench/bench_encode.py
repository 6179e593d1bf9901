"""How long the two wire formats take per value: MQTT JSON and InfluxDB line protocol.

Run from the repository root: ``python -m bench.bench_encode``. A 500-tag batch in the
mix of types of ``bench_codec`` (float32 read as Python floats, scaled integers,
64-bit floats, counters, an enum label and status bits), every value good, as a poll
of a typical group delivers it. Each sink's fast path is timed beside its general
path (a dict per value for JSON, a Python step per value for line protocol), which
is what both were before the fast paths and what they still do for the rare batch
that needs it (NaN, bad values, per-value timestamps). The fast paths get a new value
list per call, as from a poll, so each pays for the value text itself, except in
"both sinks", where the second reuses the first's. Best of 15 interleaved rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import struct
import timeit
from collections.abc import Callable

from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks import line_protocol, payload


def _float32(x: float) -> float:
    """``x`` as a float32 register holds it, read back as a Python float (17 digits)."""
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def typical_values(rng: random.Random) -> list[Callable[[], Value]]:
    """One generator per entry of ``bench_codec.MIX``, in its order."""
    return [
        lambda: _float32(rng.uniform(0, 500)),
        lambda: _float32(rng.uniform(0, 500)),
        lambda: _float32(rng.uniform(0, 5e5)) * 0.001,
        lambda: rng.randrange(65535),
        lambda: rng.randrange(-3000, 3000) * 0.1,
        lambda: rng.randrange(65535),
        lambda: rng.randrange(1 << 32) * 0.01,
        lambda: rng.randrange(-(1 << 31), 1 << 31),
        lambda: rng.uniform(0, 1e6),
        lambda: rng.choice(["off", "idle", "run", "fault"]),
        lambda: rng.random() < 0.5,
        lambda: rng.random() < 0.5,
    ]


def make_batch(tags: int, seed: int = 1) -> SampleBatch:
    makers = typical_values(random.Random(seed))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--number", type=int, default=100, help="encodings per round")
    args = parser.parse_args()
    batch = make_batch(args.tags)
    prefix = line_protocol.line_prefix("cnc", {"plant": "plant-a", "device": "cnc-07"})
    keys, quality_keys = line_protocol.field_keys(batch.names, None)
    every = range(len(batch))

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
        "both sinks, fast paths (value text shared)": both_sinks,
        "C json encoder on the bare value list": lambda: payload._ENCODER.encode(batch.values),
        "a fresh batch (the copy above)": fresh,
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(15):  # interleaved, so a busy moment of the machine hits every case alike
        for name, case in cases.items():
            seconds = timeit.timeit(case, number=args.number)
            best[name] = min(best[name], seconds / args.number / len(batch) * 1e9)
    for name, ns in best.items():
        print(f"{name:<45} {ns:7.1f} ns/value")


if __name__ == "__main__":
    main()
