"""The atoms of a Modbus poll group: tags whose address spans overlap, kept compactly.

An atom is the smallest unit a read request may hold (bits of one status word, a
``uint16`` and its bits); most atoms are one tag. The plan
(:class:`~drivers.modbus.planner.AdaptivePlan`) keeps every atom of its group for its
whole life, so they are stored as columns of machine integers (:class:`AtomTable`,
about 20 bytes an atom) and an :class:`Atom` object is made only when one is asked for.
A list of frozen objects with a tuple of positions each took about 220 bytes a tag:
22 MB at 100,000 tags.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from edge_agent.config import ModbusTable, ModbusTag
from edge_agent.errors import ConfigError

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})
"""Tables read bit by bit (function codes 1 and 2); the others are 16-bit registers."""

#: The tables in the order atoms are sorted by (then by start address).
TABLES: tuple[ModbusTable, ...] = ("coil", "discrete_input", "holding", "input")
_TABLE_ORDER: dict[str, int] = {table: n for n, table in enumerate(TABLES)}


@dataclass(frozen=True, slots=True)
class Atom:
    """Tags whose address spans overlap: the smallest unit a request may hold."""

    index: int  # in the AtomTable, which is sorted by (table, start)
    table: ModbusTable
    start: int
    end: int  # inclusive
    positions: tuple[int, ...]


class AtomTable(Sequence[Atom]):
    """The atoms of a group by index, sorted by (table, start), and each tag's atom."""

    __slots__ = ("_atom_of", "_ends", "_members", "_offsets", "_starts", "_tables")

    def __init__(self, atoms: Sequence[tuple[ModbusTable, int, int, Sequence[int]]]) -> None:
        """``atoms``: (table, start, end, positions) of each atom, in order."""
        self._tables = bytes(_TABLE_ORDER[table] for table, _, _, _ in atoms)
        self._starts = array("l", (start for _, start, _, _ in atoms))
        self._ends = array("l", (end for _, _, end, _ in atoms))
        self._members = array("l", (p for _, _, _, members in atoms for p in members))
        self._offsets = array("l", [0])
        for _, _, _, members in atoms:
            self._offsets.append(self._offsets[-1] + len(members))
        self._atom_of = array("l", [-1]) * (max(self._members, default=-1) + 1)
        for index, (_, _, _, members) in enumerate(atoms):
            for position in members:
                self._atom_of[position] = index

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: int) -> Atom:  # type: ignore[override]  # no slices
        if not 0 <= index < len(self._starts):
            raise IndexError(index)
        members = self._members[self._offsets[index] : self._offsets[index + 1]]
        return Atom(
            index,
            TABLES[self._tables[index]],
            self._starts[index],
            self._ends[index],
            tuple(members),
        )

    def __iter__(self) -> Iterator[Atom]:
        return (self[index] for index in range(len(self._starts)))

    def atom_of(self, position: int) -> int:
        """The index of the atom holding the tag at ``position``."""
        index = self._atom_of[position] if 0 <= position < len(self._atom_of) else -1
        if index < 0:
            raise KeyError(position)
        return index


def build_atoms(tags: Sequence[ModbusTag], max_registers: int, max_bits: int) -> AtomTable:
    """Cluster the tags into atoms, sorted by (table, start)."""
    spans: list[tuple[int, int, int, int]] = []  # (table order, start, end, position)
    problems: list[str] = []
    for position, tag in enumerate(tags):
        size = tag.register_count
        if size < 1:
            problems.append(f"tag {tag.name!r}: a string needs a length (registers)")
            continue
        spans.append((_TABLE_ORDER[tag.table], tag.address, tag.address + size - 1, position))
    spans.sort()

    clusters: list[tuple[ModbusTable, int, int, list[int]]] = []
    for _, start, end, position in spans:
        table = tags[position].table
        if clusters and clusters[-1][0] == table and start <= clusters[-1][2]:
            last_table, last_start, last_end, members = clusters[-1]
            members.append(position)
            clusters[-1] = (last_table, last_start, max(last_end, end), members)
        else:
            clusters.append((table, start, end, [position]))

    atoms: list[tuple[ModbusTable, int, int, list[int]]] = []
    for table, start, end, members in clusters:
        limit = max_bits if table in BIT_TABLES else max_registers
        if end - start + 1 > limit:
            names = ", ".join(repr(tags[p].name) for p in members)
            problems.append(
                f"{table} {start}-{end} ({names}) needs {end - start + 1} in one read, "
                f"more than the device's limit of {limit}"
            )
            continue
        atoms.append((table, start, end, members))
    if problems:
        raise ConfigError(problems)
    return AtomTable(atoms)
