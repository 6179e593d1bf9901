"""Request planning for one Modbus poll group: few reads, and learning where the holes are.

Pure: no I/O, no pymodbus. The driver asks an :class:`AdaptivePlan` for a
:class:`Poll`, iterates it, reads each :class:`ReadRequest` and reports the outcome;
the plan learns from the answers and the next poll needs no failed request.

Coalescing
    A round trip costs far more than a few extra registers, so tags of one table are
    sorted by address and merged greedily while the unused registers (or bits)
    between two neighbours stay within ``max_gap`` and the read stays within the
    device's ``max_registers_per_read`` / ``max_bits_per_read``. Tags whose spans
    overlap (bits of one status word, a ``uint16`` and its bits) form one *atom* that
    is never split: a request always covers whole atoms.

Learning holes (exception code 2, ILLEGAL DATA ADDRESS)
    Many devices refuse a read that covers any address they do not implement, so a
    coalesced read across an unimplemented gap fails although every tag in it is
    fine. When a request with several atoms is refused, the poll bisects it at an
    atom boundary and queues both halves at once. From the answers the plan learns:

    * a *barrier*: both halves were accepted but their union was refused, so the
      gap between them must never be spanned again;
    * an *invalid atom*: a single atom was refused on its own. It is not read any
      more (its samples are bad, ``exception code 2``) and, as it holds an address
      the device refuses, no request spans it either.

    Every refused request of several atoms ends in at least one new fact, and a fact
    is never forgotten (invalid atoms excepted, see below), so the refusals over the
    life of a plan are bounded by ``facts × (depth + 1)`` with ``depth`` =
    ⌈log2(atoms in the request)⌉, and one poll issues at most ``2k - 1`` requests
    for a planned request of ``k`` atoms. There is no retry loop to livelock in.
    Once the holes are known the plan is the greedy plan over the valid atoms that
    respects them, which is the plan an oracle knowing the holes would make.

Re-probing
    An invalid atom may become valid (a module plugged in, a device reconfigured, a
    glitch over). Every ``reprobe_after`` seconds (default 60; 0 disables), whatever
    the poll interval, each invalid atom is read once on its own: one refused request
    per invalid atom, then quiet again. Barriers are not re-probed: a gap the device
    refused stays avoided for the life of the plan (recreate the plan to forget
    them), which costs at worst one extra request per poll.

A device that refuses everything
    When a poll ends with every request refused and none accepted, the device is
    refusing the whole group (booting, a configuration being loaded, a gateway
    glitch): a device state, not a map of holes. The invalid atoms that poll learned
    are forgotten, and until a read is accepted again each poll reads the plan as it
    was, without splitting: k refused requests a poll, and the first poll after the
    device recovers reads everything again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from drivers.modbus.atoms import BIT_TABLES, Atom, build_atoms
from edge_agent.config import ModbusDeviceConfig, ModbusTable, ModbusTag

#: Default seconds between two probes of the tags a device refused.
DEFAULT_REPROBE_AFTER_S = 60.0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers (or bits) of ``table`` from ``start``.

    ``positions`` are the indexes, in the poll group (and so in its
    :class:`~edge_agent.model.SampleBatch`), of the tags this read covers, in
    address order. Hashable, so the driver can key compiled decoders by request.
    """

    table: ModbusTable
    start: int
    count: int
    positions: tuple[int, ...]

    @property
    def end(self) -> int:
        """Last address read (inclusive)."""
        return self.start + self.count - 1

    @property
    def reads_bits(self) -> bool:
        """True for coils and discrete inputs (the response carries ``bits``)."""
        return self.table in BIT_TABLES

    def describe(self) -> str:
        """One line for ``edge-agent check``, e.g. ``holding 0-57 (58 registers, 12 tags)``."""
        where = f"{self.start}" if self.count == 1 else f"{self.start}-{self.end}"
        unit = "bit" if self.reads_bits else "register"
        return (
            f"{self.table} {where} ({_plural(self.count, unit)}, "
            f"{_plural(len(self.positions), 'tag')})"
        )


def _request(atoms: Sequence[Atom]) -> ReadRequest:
    first, last = atoms[0], atoms[-1]
    positions = tuple(p for atom in atoms for p in atom.positions)
    return ReadRequest(first.table, first.start, last.end - first.start + 1, positions)


class AdaptivePlan:
    """The reads of one poll group, and what the device has taught us about its holes.

    Create one per poll group and keep it for the life of the driver; call
    :meth:`poll` once per poll. Not thread-safe (one poll at a time, like the
    connection it plans for).
    """

    def __init__(
        self,
        tags: Sequence[ModbusTag],
        *,
        max_registers: int = 125,
        max_bits: int = 2000,
        max_gap: int = 16,
        reprobe_after: float = DEFAULT_REPROBE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_registers < 1 or max_bits < 1 or max_gap < 0 or reprobe_after < 0:
            raise ValueError("limits must be >= 1, max_gap and reprobe_after >= 0")
        self._max_registers = max_registers
        self._max_bits = max_bits
        self._max_gap = max_gap
        self._reprobe_after = reprobe_after
        self._clock = clock
        self._atoms = build_atoms(tags, max_registers, max_bits)
        self._invalid: set[int] = set()  # atom indexes refused on their own
        self._barrier_before: set[int] = set()  # atom indexes no request may reach back over
        #: When the invalid atoms are next read on their own (clock time).
        self._probe_at = 0.0
        #: The last complete poll was refused from end to end (see the module doc).
        self.refusing_everything = False
        self._requests: tuple[ReadRequest, ...] = ()
        self._dirty = True

    @classmethod
    def for_device(
        cls,
        tags: Sequence[ModbusTag],
        device: ModbusDeviceConfig,
        *,
        reprobe_after: float = DEFAULT_REPROBE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> AdaptivePlan:
        """A plan using the device's read limits and ``max_gap``."""
        return cls(
            tags,
            max_registers=device.max_registers_per_read,
            max_bits=device.max_bits_per_read,
            max_gap=device.max_gap,
            reprobe_after=reprobe_after,
            clock=clock,
        )

    # ------------------------------------------------------------------ queries

    @property
    def requests(self) -> tuple[ReadRequest, ...]:
        """The reads a poll starts with, given everything learned so far."""
        if self._dirty:
            self._requests = self._coalesce()
            self._dirty = False
        return self._requests

    @property
    def invalid_positions(self) -> tuple[int, ...]:
        """Positions of the tags the device refused (sorted); they are not read."""
        return tuple(sorted(p for i in self._invalid for p in self._atoms[i].positions))

    @property
    def barriers(self) -> tuple[tuple[ModbusTable, int, int], ...]:
        """Learned gaps ``(table, last address before, first address after)``, sorted."""
        found = []
        for index in sorted(self._barrier_before):
            before, after = self._atoms[index - 1], self._atoms[index]
            found.append((after.table, before.end, after.start))
        return tuple(found)

    def describe(self) -> list[str]:
        """Lines for ``edge-agent check``: one per read, then one per refused tag group."""
        lines = [request.describe() for request in self.requests]
        for index in sorted(self._invalid):
            refused = _request([self._atoms[index]]).describe()
            lines.append(f"{refused}: refused by the device (exception code 2), not read")
        return lines

    # ------------------------------------------------------------------ polling

    def poll(self) -> Poll:
        """Start a poll: iterate the result, read each request, report the outcome."""
        if self.refusing_everything:
            return Poll(self, self.requests, self.invalid_positions, learn=False)
        probe = bool(self._invalid) and bool(self._reprobe_after)
        probe = probe and self._clock() >= self._probe_at
        probes = []
        if probe:
            probes = [_request([self._atoms[i]]) for i in sorted(self._invalid)]
            self._probe_at = self._clock() + self._reprobe_after
        skipped = () if probe else self.invalid_positions
        return Poll(self, [*self.requests, *probes], skipped)

    def _finished(self, poll: Poll, invalid_before: frozenset[int]) -> None:
        """A poll read all its requests: was the whole group refused?"""
        if poll.accepted_count:
            self.refusing_everything = False
        elif poll.refusals:
            self.refusing_everything = True
            if self._invalid != invalid_before:
                # Refused from end to end: a device state, not holes. Forget this poll's.
                self._invalid = set(invalid_before)
                self._dirty = True

    def _atoms_in(self, request: ReadRequest) -> list[Atom]:
        indexes = sorted({self._atoms.atom_of(p) for p in request.positions})
        return [self._atoms[i] for i in indexes]

    def _split(self, request: ReadRequest) -> tuple[ReadRequest, ReadRequest, int] | None:
        """Halves of a refused request and the atom the right half starts with, or None
        when the request holds a single atom, which is then learned as invalid."""
        atoms = self._atoms_in(request)
        if len(atoms) == 1:
            if atoms[0].index not in self._invalid:
                if not self._invalid:
                    self._probe_at = self._clock() + self._reprobe_after
                self._invalid.add(atoms[0].index)
                self._dirty = True
            return None
        middle = len(atoms) // 2
        return _request(atoms[:middle]), _request(atoms[middle:]), atoms[middle].index

    def _learn_barrier(self, atom_index: int) -> None:
        if atom_index not in self._barrier_before:
            self._barrier_before.add(atom_index)
            self._dirty = True

    def _learn_valid(self, request: ReadRequest) -> None:
        """An accepted read clears its atoms of suspicion (a successful re-probe)."""
        if not self._invalid:  # the steady state: nothing to clear, skip the lookup
            return
        for atom in self._atoms_in(request):
            if atom.index in self._invalid:
                self._invalid.discard(atom.index)
                self._dirty = True

    def _coalesce(self) -> tuple[ReadRequest, ...]:
        """Greedy merge in address order; optimal for this interval problem."""
        requests: list[ReadRequest] = []
        group: list[Atom] = []
        for atom in self._atoms:
            if atom.index in self._invalid:
                # A refused atom holds a refused address: nothing may span it.
                if group:
                    requests.append(_request(group))
                group = []
                continue
            if group:
                first = group[0]
                limit = self._max_bits if atom.table in BIT_TABLES else self._max_registers
                if (
                    atom.table != first.table
                    or atom.index in self._barrier_before
                    or atom.start - group[-1].end - 1 > self._max_gap
                    or atom.end - first.start + 1 > limit
                ):
                    requests.append(_request(group))
                    group = []
            group.append(atom)
        if group:
            requests.append(_request(group))
        return tuple(requests)


class Poll:
    """The reads of one poll, as a work list that grows when the device refuses one.

    Iterate it; for each request, read it and call exactly one of :meth:`accepted`
    (then decode the data) or :meth:`refused` (exception code 2). Other failures
    (timeout, other exception codes) need no report: they teach nothing about holes.
    After the loop, :attr:`refused_positions` lists the tags to mark bad with
    ``exception_reason(2)``. Iterating to the end tells the plan the poll is complete
    (how it learns that a device refuses everything); a loop left by an exception
    does not.
    """

    __slots__ = (
        "_done",
        "_invalid_before",
        "_learn",
        "_plan",
        "_queue",
        "_refused_positions",
        "_sibling",
        "_succeeded",
        "_waiting",
        "accepted_count",
        "issued",
        "refusals",
    )

    def __init__(
        self,
        plan: AdaptivePlan,
        requests: Sequence[ReadRequest],
        skipped: Sequence[int],
        *,
        learn: bool = True,
    ) -> None:
        self._plan = plan
        self._learn = learn
        self._invalid_before = frozenset(plan._invalid)  # noqa: SLF001 - its own plan
        self._done = False
        self._queue: deque[ReadRequest] = deque(requests)
        self._waiting: set[ReadRequest] = set()  # issued, outcome not reported yet
        self._sibling: dict[ReadRequest, tuple[ReadRequest, int]] = {}
        self._succeeded: set[ReadRequest] = set()
        self._refused_positions: list[int] = list(skipped)
        self.issued = 0  # requests handed out so far (metrics, tests)
        self.refusals = 0  # requests reported refused so far
        self.accepted_count = 0

    def __iter__(self) -> Iterator[ReadRequest]:
        return self

    def __next__(self) -> ReadRequest:
        if not self._queue:
            # The end of a complete poll (a read that raised never gets here).
            if not self._done:
                self._done = True
                self._plan._finished(self, self._invalid_before)  # noqa: SLF001 - as above
            raise StopIteration
        request = self._queue.popleft()
        self._waiting.add(request)
        self.issued += 1
        return request

    def accepted(self, request: ReadRequest) -> None:
        """The device answered ``request`` with data."""
        self._take(request)
        self.accepted_count += 1
        self._plan._learn_valid(request)  # noqa: SLF001 - a poll reports to its own plan
        self._succeeded.add(request)
        pair = self._sibling.get(request)
        if pair is not None and pair[0] in self._succeeded:
            self._plan._learn_barrier(pair[1])  # noqa: SLF001 - as above

    def refused(self, request: ReadRequest) -> None:
        """The device answered ``request`` with exception code 2 (ILLEGAL DATA ADDRESS).

        Queues the two halves to be read next, or, for a single atom, records its
        tags as refused. Each call strictly shrinks what is left to try.
        """
        self._take(request)
        self.refusals += 1
        if not self._learn:  # the device refuses everything: nothing to learn from it
            self._refused_positions.extend(request.positions)
            return
        halves = self._plan._split(request)  # noqa: SLF001 - as above
        if halves is None:
            self._refused_positions.extend(request.positions)
            return
        left, right, right_first_atom = halves
        self._sibling[left] = (right, right_first_atom)
        self._sibling[right] = (left, right_first_atom)
        self._queue.appendleft(right)
        self._queue.appendleft(left)

    @property
    def refused_positions(self) -> list[int]:
        """Tags refused with exception code 2 in this poll, or not read because of it."""
        return self._refused_positions

    def _take(self, request: ReadRequest) -> None:
        try:
            self._waiting.remove(request)
        except KeyError:
            raise ValueError(f"{request} is not awaiting an outcome in this poll") from None
