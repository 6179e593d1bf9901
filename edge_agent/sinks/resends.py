"""Which batches a sink sends a second time: the only source of duplicates, counted.

A send that fails after its messages went out (the connection lost before the broker
confirmed them, a broker that stopped confirming) is not acknowledged: the runner sends
the same batches again from the outbox, to the same broker or, after a failover, to
another node. Whatever of the first try the broker had taken arrives twice.
:class:`Resends` counts those batches (``batches_resent`` in ``/metrics``), so that a
consumer, or a test, can tell duplicates that were announced from ones that were not.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.model import SampleBatch

#: What tells one batch from every other: see :func:`batch_identity`.
BatchIdentity = tuple[str, str, int, tuple[str, ...], tuple[tuple[str, str], ...], str]


def batch_identity(batch: SampleBatch) -> BatchIdentity:
    """What tells ``batch`` apart from every other batch it may be sent beside, as read
    back from the outbox: device, group and time are not enough (the metric batches of
    several families of one unit and window share them, as do the daily and the first
    shift's report of a day; a baseline's announce and its day close share even their
    names). The attributes and the names tell the families and reports apart, the values
    (as text: a NaN read back equals itself) what is left."""
    return (
        batch.device,
        batch.group,
        batch.timestamp_ns,
        tuple(batch.names),
        tuple(sorted(batch.attributes.items())),
        repr(batch.values),
    )


class Resends:
    """Counts the batches of an unconfirmed send that are sent again.

    Costs nothing while sends succeed: identities are taken only of a failed send, and
    looked up only while some are outstanding. Holds at most one send's batches (the
    runner's retry starts with the same first batch and holds every one of the failed
    send, in order, unless the outbox dropped them meanwhile).
    """

    __slots__ = ("_unconfirmed", "count")

    def __init__(self) -> None:
        self.count = 0
        self._unconfirmed: set[BatchIdentity] = set()

    def sending(self, batches: Sequence[SampleBatch]) -> None:
        """``batches`` go out now: count those of the last unconfirmed send."""
        if not self._unconfirmed:
            return
        for batch in batches:
            key = batch_identity(batch)
            if key in self._unconfirmed:
                self._unconfirmed.discard(key)
                self.count += 1

    def unconfirmed(self, batches: Sequence[SampleBatch]) -> None:
        """``batches`` went out (some perhaps only in part) and were not confirmed."""
        self._unconfirmed = {batch_identity(batch) for batch in batches}
