"""One shared, read-only set of given field names per combination, for the config models.

Pydantic keeps, in every model, the set of field names the input gave
(``model_fields_set``, what ``model_dump(exclude_unset=True)`` reads). A set of five
names takes 728 bytes, more than the rest of a Modbus tag's model: at 100,000 tags it
is half of what the config holds. Config models are frozen, and the tags of a plant
give the same few combinations of names over and over (name, address, type; the same
plus scale; ...), so every model keeps a reference to one shared set per combination
instead (:func:`share_field_names`, called from ``Strict.model_post_init``).

A shared set must never change under the models that share it, so it refuses every
change (TypeError) while reading like any set. A copy is a plain set: pydantic's
``model_copy`` copies the set before it adds the updated names, and so does
``copy.copy`` of a model.

At most :data:`MAX_SHARED` combinations are kept; past that (a generated file with
thousands of different key combinations) a model simply keeps its own set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

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
