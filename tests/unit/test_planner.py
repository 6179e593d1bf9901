"""Request planning: coalescing, limits, and learning a device's holes from exception 2.

The device is a pure function of the request: it refuses (ILLEGAL DATA ADDRESS)
any read that covers an unimplemented address (a *hole*) or crosses a *cut*
(a block boundary some devices will not read across).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.modbus.planner import AdaptivePlan, Poll, ReadRequest
from edge_agent.config import ModbusDeviceConfig, ModbusTable, ModbusTag, ModbusType
from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class FakeDevice:
    holes: frozenset[tuple[str, int]] = frozenset()
    cuts: frozenset[tuple[str, int]] = frozenset()  # (table, c): no read holds both c-1 and c
    log: list[ReadRequest] = field(default_factory=list, compare=False)

    def accepts(self, table: str, start: int, end: int) -> bool:
        return not any((table, a) in self.holes for a in range(start, end + 1)) and not any(
            (table, c) in self.cuts for c in range(start + 1, end + 1)
        )

    def read(self, request: ReadRequest) -> bool:
        self.log.append(request)
        return self.accepts(request.table, request.start, request.end)


def run_poll(plan: AdaptivePlan, device: FakeDevice) -> tuple[Poll, list[int]]:
    """The driver's loop; returns the poll and the positions read successfully."""
    read: list[int] = []
    poll = plan.poll()
    for request in poll:
        if device.read(request):
            poll.accepted(request)
            read.extend(request.positions)
        else:
            poll.refused(request)
    return poll, read


def tag(
    address: int, type_: ModbusType = "uint16", table: ModbusTable = "holding", **kw: object
) -> ModbusTag:
    if type_ == "bool" and table in ("holding", "input") and "bit" not in kw:
        kw["bit"] = 0
    return ModbusTag.model_validate(
        {
            "name": f"t{address}_{kw.get('bit', '')}",
            "address": address,
            "type": type_,
            "table": table,
            **kw,
        }
    )


def spans(requests: Iterable[ReadRequest]) -> list[tuple[str, int, int]]:
    return [(r.table, r.start, r.end) for r in requests]


# --------------------------------------------------------------------------- coalescing


def test_contiguous_tags_make_one_request_and_describe_it() -> None:
    tags = [tag(a, "float32") for a in range(0, 24, 2)] + [tag(24, "string", length=34)]
    plan = AdaptivePlan(tags)
    assert spans(plan.requests) == [("holding", 0, 57)]
    assert plan.describe() == ["holding 0-57 (58 registers, 13 tags)"]
    assert plan.requests[0].positions == tuple(range(13))


def test_gap_up_to_max_gap_is_bridged_and_beyond_is_not() -> None:
    tags = [tag(0), tag(5), tag(11)]  # gaps of 4 and 5 unused registers
    assert spans(AdaptivePlan(tags, max_gap=5).requests) == [("holding", 0, 11)]
    assert spans(AdaptivePlan(tags, max_gap=4).requests) == [("holding", 0, 5), ("holding", 11, 11)]
    assert spans(AdaptivePlan(tags, max_gap=0).requests) == [
        ("holding", 0, 0),
        ("holding", 5, 5),
        ("holding", 11, 11),
    ]


def test_read_limits_split_requests() -> None:
    tags = [tag(a, "float32") for a in range(0, 300, 2)]
    plan = AdaptivePlan(tags)
    assert spans(plan.requests) == [
        ("holding", 0, 123),
        ("holding", 124, 247),
        ("holding", 248, 299),
    ]
    small = AdaptivePlan(tags[:10], max_registers=8)
    assert [r.count for r in small.requests] == [8, 8, 4]
    coils = [tag(a, "bool", "coil") for a in range(4100)]
    assert [r.count for r in AdaptivePlan(coils).requests] == [2000, 2000, 100]
    assert [r.count for r in AdaptivePlan(coils, max_bits=1000).requests] == [1000] * 4 + [100]


def test_bits_share_their_register_and_overlap_the_status_word() -> None:
    tags = [
        tag(7, "bool", bit=3),
        tag(7),
        tag(7, "bool", bit=0),
        tag(8, "int16"),
        tag(6, "bool", bit=15),
    ]
    plan = AdaptivePlan(tags, max_registers=2)
    # 6 and 7 fit one read of 2 registers; the bits of 7 never split from 7.
    assert spans(plan.requests) == [("holding", 6, 7), ("holding", 8, 8)]
    assert plan.requests[0].positions == (4, 0, 1, 2)
    assert plan.describe() == ["holding 6-7 (2 registers, 4 tags)", "holding 8 (1 register, 1 tag)"]


def test_tables_are_planned_apart_in_a_fixed_order() -> None:
    tags = [
        tag(0, table="input"),
        tag(0),
        tag(1, "bool", "coil"),
        tag(0, "bool", "discrete_input"),
        tag(1),
    ]
    plan = AdaptivePlan(tags)
    assert spans(plan.requests) == [
        ("coil", 1, 1),
        ("discrete_input", 0, 0),
        ("holding", 0, 1),
        ("input", 0, 0),
    ]
    assert plan.describe()[0] == "coil 1 (1 bit, 1 tag)"


def test_for_device_uses_the_device_limits() -> None:
    device = ModbusDeviceConfig.model_validate(
        {
            "name": "d",
            "driver": "modbus",
            "connection": {"transport": "tcp", "host": "h"},
            "max_registers_per_read": 4,
            "max_gap": 0,
            "poll_groups": [{"interval": 1, "tags": [{"name": "a", "address": 0}]}],
        }
    )
    tags = [tag(a) for a in (0, 1, 2, 3, 4, 6)]
    plan = AdaptivePlan.for_device(tags, device)
    assert spans(plan.requests) == [("holding", 0, 3), ("holding", 4, 4), ("holding", 6, 6)]


def test_a_tag_larger_than_one_read_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs 4 in one read, more than the device's limit of 2"):
        AdaptivePlan([tag(0, "float64")], max_registers=2)


# --------------------------------------------------------------------------- learning


def test_hole_in_a_gap_is_learned_as_a_barrier_and_every_tag_is_still_read() -> None:
    tags = [tag(a) for a in [*range(10), *range(12, 21)]]
    device = FakeDevice(holes=frozenset({("holding", 10)}))
    plan = AdaptivePlan(tags)
    assert spans(plan.requests) == [("holding", 0, 20)]

    poll, read = run_poll(plan, device)
    assert sorted(read) == list(range(19))  # nothing lost while learning
    assert poll.refused_positions == []
    assert poll.refusals == 4
    assert poll.issued == 9
    assert plan.barriers == (("holding", 9, 12),)
    assert spans(plan.requests) == [("holding", 0, 9), ("holding", 12, 20)]

    poll, read = run_poll(plan, device)
    assert (poll.issued, poll.refusals, sorted(read)) == (2, 0, list(range(19)))


def test_refused_tag_is_left_out_and_reported_bad_every_poll() -> None:
    tags = [tag(0), tag(1), tag(2, "float32"), tag(4), tag(5)]
    device = FakeDevice(holes=frozenset({("holding", 3)}))  # second half of the float
    plan = AdaptivePlan(tags, reprobe_after=0)
    poll, read = run_poll(plan, device)
    assert sorted(read) == [0, 1, 3, 4]
    assert poll.refused_positions == [2]
    assert plan.invalid_positions == (2,)
    assert spans(plan.requests) == [("holding", 0, 1), ("holding", 4, 5)]
    assert plan.describe() == [
        "holding 0-1 (2 registers, 2 tags)",
        "holding 4-5 (2 registers, 2 tags)",
        "holding 2-3 (2 registers, 1 tag): refused by the device (exception code 2), not read",
    ]
    for _ in range(5):
        poll, read = run_poll(plan, device)
        assert (poll.refusals, poll.refused_positions, sorted(read)) == (0, [2], [0, 1, 3, 4])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refused_tags_are_probed_on_a_time_basis_and_recover() -> None:
    tags = [tag(0), tag(1), tag(2)]
    broken = FakeDevice(holes=frozenset({("holding", 1)}))
    clock = FakeClock()
    plan = AdaptivePlan(tags, reprobe_after=60.0, clock=clock)
    refusals = []
    for _ in range(7):  # a poll every 25 s: probes when 60 s have passed since learning
        refusals.append(run_poll(plan, broken)[0].refusals)
        clock.now += 25.0
    # poll 1 learns (refused 0-2, then 0 ok, 1-2 refused, 1 refused, 2 ok); at +75 s and
    # +150 s the refused tag is read on its own once.
    assert refusals == [3, 0, 0, 1, 0, 0, 1]
    fixed = FakeDevice()
    clock.now += 60.0
    poll, read = run_poll(plan, fixed)  # probes and succeeds
    assert (poll.refusals, poll.refused_positions, sorted(read)) == (0, [], [0, 1, 2])
    assert plan.invalid_positions == ()
    # No barrier was learned (the refused tag explained every refusal): one read again.
    assert spans(plan.requests) == [("holding", 0, 2)]
    assert plan.barriers == ()


def test_a_slow_poll_probes_its_holes_every_poll_not_every_hundred() -> None:
    """B5: at a 1 min interval, 100 polls were 100 minutes of blank tags."""
    tags = [tag(0), tag(1), tag(2)]
    clock = FakeClock()
    plan = AdaptivePlan(tags, clock=clock)  # default: 60 s
    run_poll(plan, FakeDevice(holes=frozenset({("holding", 1)})))
    assert plan.invalid_positions == (1,)
    clock.now += 60.0
    _, read = run_poll(plan, FakeDevice())
    assert sorted(read) == [0, 1, 2]


def test_device_refusing_everything_is_a_state_not_a_map_of_holes() -> None:
    """B5: a device answering exception 2 to everything for a while (booting, a gateway
    glitch) is read again by the first poll after it recovers."""
    tags = [tag(a) for a in range(40)]
    glitch = FakeDevice(holes=frozenset(("holding", a) for a in range(40)))
    plan = AdaptivePlan(tags, reprobe_after=0)
    poll, read = run_poll(plan, glitch)
    assert read == []
    assert poll.issued == 2 * 40 - 1  # learning tried every split once
    assert sorted(poll.refused_positions) == list(range(40))
    assert plan.refusing_everything
    assert plan.invalid_positions == ()
    assert spans(plan.requests) == [("holding", 0, 39)]
    for _ in range(3):  # while it lasts: the plan as it was, no splitting
        poll, _ = run_poll(plan, glitch)
        assert (poll.issued, len(poll.refused_positions)) == (1, 40)
    poll, read = run_poll(plan, FakeDevice())
    assert (poll.issued, sorted(read)) == (1, list(range(40)))
    assert not plan.refusing_everything


def test_known_holes_survive_a_glitch_that_refused_everything() -> None:
    tags = [tag(0), tag(1), tag(2)]
    plan = AdaptivePlan(tags, reprobe_after=0)
    hole = FakeDevice(holes=frozenset({("holding", 1)}))
    run_poll(plan, hole)
    assert plan.invalid_positions == (1,)
    run_poll(plan, FakeDevice(holes=frozenset(("holding", a) for a in range(3))))
    assert plan.refusing_everything
    assert plan.invalid_positions == (1,)
    poll, read = run_poll(plan, hole)
    assert (poll.refusals, sorted(read)) == (0, [0, 2])
    assert not plan.refusing_everything


def test_cut_between_adjacent_tags_is_learned() -> None:
    tags = [tag(a) for a in range(8)]
    device = FakeDevice(cuts=frozenset({("holding", 5)}))
    plan = AdaptivePlan(tags)
    run_poll(plan, device)
    assert plan.barriers == (("holding", 4, 5),)
    assert spans(plan.requests) == [("holding", 0, 4), ("holding", 5, 7)]


def test_timeouts_teach_nothing_and_the_poll_moves_on() -> None:
    plan = AdaptivePlan([tag(0), tag(1), tag(50)], max_gap=0)
    poll = plan.poll()
    issued = list(poll)  # the driver timed out on every read and reported nothing
    assert spans(issued) == [("holding", 0, 1), ("holding", 50, 50)]
    assert spans(plan.requests) == spans(issued)


def test_reporting_a_request_twice_or_one_not_issued_is_an_error() -> None:
    plan = AdaptivePlan([tag(0), tag(1)])
    poll = plan.poll()
    request = next(poll)
    poll.accepted(request)
    with pytest.raises(ValueError, match="not awaiting"):
        poll.refused(request)
    with pytest.raises(ValueError, match="not awaiting"):
        plan.poll().accepted(ReadRequest("holding", 0, 1, (0,)))


# --------------------------------------------------------------------------- properties

_SIZES: dict[str, int] = {"uint16": 1, "bool": 1, "int32": 2, "float64": 4, "string": 3}


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[ModbusTag], FakeDevice, int, int, int]:
    """Random tags in two tables, random holes and cuts, random limits."""
    tags: list[ModbusTag] = []
    for n in range(draw(st.integers(1, 40))):
        table = draw(st.sampled_from(["holding", "coil"]))
        address = draw(st.integers(0, 120))
        if table == "coil":
            tags.append(ModbusTag(name=f"t{n}", table="coil", address=address, type="bool"))
            continue
        type_ = draw(st.sampled_from(sorted(_SIZES)))
        extra: dict[str, object] = {}
        if type_ == "bool":
            extra["bit"] = draw(st.integers(0, 15))
        if type_ == "string":
            extra["length"] = 3
        tags.append(
            ModbusTag.model_validate({"name": f"t{n}", "address": address, "type": type_, **extra})
        )
    addresses = st.tuples(st.sampled_from(["holding", "coil"]), st.integers(0, 125))
    device = FakeDevice(
        holes=frozenset(draw(st.lists(addresses, max_size=12))),
        cuts=frozenset(draw(st.lists(addresses, max_size=4))),
    )
    max_registers = draw(st.integers(4, 125))
    max_bits = draw(st.integers(1, 200))
    max_gap = draw(st.integers(0, 20))
    return tags, device, max_registers, max_bits, max_gap


def _atoms(tags: Sequence[ModbusTag]) -> list[tuple[str, int, int, list[int]]]:
    """Overlapping spans clustered, written independently of the planner."""
    order = {"coil": 0, "holding": 2}
    items = sorted(
        (order[t.table], t.address, t.address + t.register_count - 1, p) for p, t in enumerate(tags)
    )
    atoms: list[tuple[str, int, int, list[int]]] = []
    for _, start, end, p in items:
        table = tags[p].table
        if atoms and atoms[-1][0] == table and start <= atoms[-1][2]:
            t, s, e, ps = atoms[-1]
            atoms[-1] = (t, s, max(e, end), [*ps, p])
        else:
            atoms.append((table, start, end, [p]))
    return atoms


def _oracle(
    atoms: list[tuple[str, int, int, list[int]]],
    device: FakeDevice,
    limits: dict[str, int],
    max_gap: int,
) -> list[tuple[str, int, int]]:
    """Greedy plan by someone who can ask the device before every merge."""
    out: list[tuple[str, int, int]] = []
    group: tuple[str, int, int] | None = None
    for table, start, end, _ in atoms:
        if not device.accepts(table, start, end):
            if group:
                out.append(group)
            group = None
            continue
        if group and (
            group[0] == table
            and start - group[2] - 1 <= max_gap
            and end - group[1] + 1 <= limits[table]
            and device.accepts(table, group[1], end)
        ):
            group = (table, group[1], end)
            continue
        if group:
            out.append(group)
        group = (table, start, end)
    if group:
        out.append(group)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_learning_converges_to_the_oracle_plan_within_bounds(
    layout: tuple[list[ModbusTag], FakeDevice, int, int, int],
) -> None:
    tags, device, max_registers, max_bits, max_gap = layout
    try:
        plan = AdaptivePlan(
            tags, max_registers=max_registers, max_bits=max_bits, max_gap=max_gap, reprobe_after=0
        )
    except ConfigError:
        assume(False)  # overlapping tags chained beyond one read: the config is refused
        raise
    atoms = _atoms(tags)
    refused_alone = {p for t, s, e, ps in atoms if not device.accepts(t, s, e) for p in ps}
    everything = set(range(len(tags)))
    if refused_alone == everything:
        # Nothing can be read: a device state, not holes (see the glitch tests above).
        for _ in range(2):
            poll, read = run_poll(plan, device)
            assert read == []
            assert set(poll.refused_positions) == everything
        assert plan.refusing_everything
        assert plan.invalid_positions == ()
        return

    total_refusals = 0
    polls = 0
    while True:
        polls += 1
        assert polls <= 2 * len(atoms) + 2, "learning does not converge"
        poll, read = run_poll(plan, device)
        # Every poll, even while learning: each valid tag read exactly once, the rest refused.
        assert sorted(read) == sorted(everything - refused_alone)
        assert set(poll.refused_positions) == refused_alone
        assert poll.issued <= 2 * len(atoms)
        total_refusals += poll.refusals
        if poll.refusals == 0:
            break

    facts = len(plan.barriers) + sum(1 for a in atoms if a[3][0] in refused_alone)
    assert polls - 1 <= facts  # each poll with a refusal learns something new
    depth = max(1, len(atoms) - 1).bit_length()
    assert total_refusals <= facts * (depth + 1)

    # Learned: no request spans a hole, and the plan is the oracle's plan.
    assert all(device.accepts(r.table, r.start, r.end) for r in plan.requests)
    limits = {"holding": max_registers, "coil": max_bits}
    assert spans(plan.requests) == _oracle(atoms, device, limits, max_gap)
    assert set(plan.invalid_positions) == refused_alone
    poll, read = run_poll(plan, device)
    assert (poll.refusals, poll.issued) == (0, len(plan.requests))


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_coalescing_respects_limits_and_is_maximal(
    layout: tuple[list[ModbusTag], FakeDevice, int, int, int],
) -> None:
    tags, _, max_registers, max_bits, max_gap = layout
    try:
        plan = AdaptivePlan(tags, max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
    except ConfigError:
        assume(False)
        raise
    limits = {"holding": max_registers, "coil": max_bits}
    requests = plan.requests
    covered = [p for r in requests for p in r.positions]
    assert sorted(covered) == list(range(len(tags)))  # every tag exactly once
    for r in requests:
        assert r.count <= limits[r.table]
        for p in r.positions:
            assert (
                r.start <= tags[p].address <= tags[p].address + tags[p].register_count - 1 <= r.end
            )
        starts = sorted({tags[p].address for p in r.positions})
        assert r.start == starts[0]
    for a, b in itertools.pairwise(requests):
        if a.table == b.table:
            # The greedy plan only starts a new read when merging would break a rule.
            assert (
                b.start - a.end - 1 > max_gap
                or b.start + _first_atom_size(tags, b) - a.start > limits[a.table]
            )


def _first_atom_size(tags: Sequence[ModbusTag], request: ReadRequest) -> int:
    first = _atoms([tags[p] for p in request.positions])[0]
    return first[2] - first[1] + 1
