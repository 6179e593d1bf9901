"""How long decoding takes per value: 500 mixed tags in 125-register blocks.

Run from the repository root: ``python -m bench.bench_codec`` (or
``python bench/bench_codec.py``). Prints nanoseconds per decoded value for a mixed
poll group and for two extremes, so that a change to the codec's hot path shows up
as a number, not a feeling. The target is well under 1 µs per value on a gateway.

Float32 are rounded on the compiled path (numpy + orjson), as in an agent past its first
seconds (edge_agent/rounding.py); ``--list-path`` keeps the list path of its start.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from drivers.modbus.compiler import DecoderCache
from drivers.modbus.planner import AdaptivePlan
from edge_agent.config import ModbusTag
from edge_agent.model import Quality, Value
from edge_agent.rounding import COMPILED_FROM, shortest_float32_compiled

# (type, extra fields) in the proportions of a typical energy-meter / PLC poll group.
MIX: list[tuple[str, dict[str, object]]] = [
    ("float32", {}),
    ("float32", {"byte_order": "CDAB"}),
    ("float32", {"scale": 0.001}),
    ("uint16", {}),
    ("int16", {"scale": 0.1}),
    ("uint16", {"sentinel": 65535}),
    ("uint32", {"byte_order": "CDAB", "scale": 0.01}),
    ("int32", {}),
    ("float64", {}),
    ("uint16", {"enum": {0: "off", 1: "idle", 2: "run", 3: "fault"}}),
    ("bool", {"bit": 0}),
    ("bool", {"bit": 5}),
]
SIZE = {"float32": 2, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float64": 4, "bool": 0}


def make_tags(n: int, pick: Callable[[int], tuple[str, dict[str, object]]]) -> list[ModbusTag]:
    """``n`` tags packed end to end; bools take bits of the register before them."""
    tags: list[ModbusTag] = []
    address = 0
    for i in range(n):
        type_, extra = pick(i)
        if type_ == "bool":
            at = max(address - 1, 0)
        else:
            at = address
            address += SIZE[type_]
        spec = {"name": f"t{i}", "address": at, "type": type_, **extra}
        tags.append(ModbusTag.model_validate(spec))
    return tags


def bench(name: str, tags: Sequence[ModbusTag], repeat: int, high: int = 0x4000) -> float:
    """Best-of-5 ns per value; registers are random below ``high`` (the pessimistic
    default makes most enum values unknown, so those take the UNCERTAIN path)."""
    plan = AdaptivePlan(tags, max_registers=125)
    decoders = DecoderCache(tags)
    rng = random.Random(1)
    jobs = [
        (decoders[r].decode, [rng.randrange(high) for _ in range(r.count)]) for r in plan.requests
    ]
    n = len(tags)
    values: list[Value] = [None] * n
    qualities = [Quality.BAD] * n
    reasons = [""] * n
    best = float("inf")
    for _ in range(5):  # best of 5 runs: the least disturbed by the rest of the machine
        started = time.perf_counter_ns()
        for _ in range(repeat):
            for decode, data in jobs:
                decode(data, values, qualities, reasons)
        best = min(best, (time.perf_counter_ns() - started) / (repeat * n))
    print(f"{name:<34} {n:>4} tags in {len(jobs):>2} reads: {best:7.1f} ns/value")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument(
        "--list-path", action="store_true", help="round float32 without numpy and orjson"
    )
    args = parser.parse_args()
    if not args.list_path:
        shortest_float32_compiled([0.0] * COMPILED_FROM)  # loads it for shortest_float32
    bench("mixed types", make_tags(args.tags, lambda i: MIX[i % len(MIX)]), args.repeat)
    bench("uint16 only (slice copies)", make_tags(args.tags, lambda i: ("uint16", {})), args.repeat)
    bench("float32 only (NaN checks)", make_tags(args.tags, lambda i: ("float32", {})), args.repeat)
    enum: dict[str, object] = {"enum": {0: "off", 1: "idle", 2: "run", 3: "fault"}}
    enums = make_tags(args.tags, lambda i: ("uint16", enum))
    bench("uint16 enum, known labels", enums, args.repeat, high=4)
    bench("uint16 enum, unknown values", enums, args.repeat)


if __name__ == "__main__":
    main()
