"""What a consumer may show from a fetch: Kafka's client-side filter for aborted transactions.

A read_committed fetch stops at the last stable offset, but below it the log still holds the
batches of aborted transactions: the broker does not remove them, it lists them
(``aborted_transactions``: producer id and first offset) and each client skips them. This
module is that client code, once, so every consumer filters the same way (Kafka's
``CompletedFetch``):

- aborted entries wait in a queue ordered by first offset;
- before each batch that has a producer id, entries starting at or below the batch's last
  offset move to a set of aborted producer ids;
- a transactional batch whose producer is in that set is skipped;
- that producer's ABORT marker takes it out of the set again;
- control batches are never shown, but the position moves past them, so offsets seen by a
  consumer have gaps.

With read_uncommitted only control batches are dropped. Pure functions: no broker, no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import attrs

from minikafka.core.messages import AbortedTransaction, IsolationLevel
from minikafka.core.records import ControlType, Record, RecordBatch

__all__ = ["ConsumedRecord", "Visible", "visible_batches", "visible_records"]

_FIRST_OFFSET = operator.attrgetter("first_offset")
_NO_OFFSET = 2**63
"""Past any offset: no aborted transaction is waiting to begin."""


@attrs.frozen(slots=True)
class ConsumedRecord:
    """A record as a consumer receives it: with the offset it sits at."""

    offset: int
    record: Record


@attrs.frozen(slots=True)
class Visible:
    """What a fetch shows, and the position to fetch from next.

    The records come as slices of whole batches, each with the offset of its first record:
    the filter decides per batch and allocates nothing per record. ``records`` pairs each
    record with its offset, for readers that want them one by one.
    """

    slices: tuple[tuple[int, tuple[Record, ...]], ...]
    """(offset of the first record, the records), in log order."""
    next_offset: int

    @property
    def count(self) -> int:
        """How many records the fetch shows."""
        return sum(len(records) for _, records in self.slices)

    @property
    def records(self) -> tuple[ConsumedRecord, ...]:
        return tuple(
            ConsumedRecord(first + position, record)
            for first, records in self.slices
            for position, record in enumerate(records)
        )


def visible_batches(
    batches: Iterable[RecordBatch],
    aborted_transactions: Iterable[AbortedTransaction],
    isolation_level: IsolationLevel = IsolationLevel.READ_COMMITTED,
) -> list[RecordBatch]:
    """The data batches a consumer may show, in log order (control batches never are)."""
    if isolation_level is not IsolationLevel.READ_COMMITTED:
        return [batch for batch in batches if not batch.is_control]
    # Aborted entries by first offset; ``start`` is where the next one begins. (Kafka keeps
    # a priority queue; a sorted list read front to back is the same order.)
    pending = sorted(aborted_transactions, key=_FIRST_OFFSET)
    taken = 0
    start = pending[0].first_offset if pending else _NO_OFFSET
    aborted_producers: set[int] = set()
    # Producers with an aborted transaction in the fetched range: the batches of any other
    # are shown (unless they are markers) without the rules below.
    suspects = {entry.producer_id for entry in pending}
    shown = []
    # This loop runs for every batch that every read_committed consumer reads: it works per
    # batch, never per record, and spells the batch's properties out inline.
    for batch in batches:
        producer_id = batch.producer_id
        if producer_id not in suspects:
            if not batch.is_control:
                shown.append(batch)
            continue
        if start < batch.base_offset + len(batch.records):
            last_offset = batch.base_offset + len(batch.records) - 1
            while start <= last_offset:
                aborted_producers.add(pending[taken].producer_id)
                taken += 1
                start = pending[taken].first_offset if taken < len(pending) else _NO_OFFSET
        if batch.is_control:
            # Only an ABORT marker of an aborted producer changes anything.
            if producer_id in aborted_producers and batch.control_type is ControlType.ABORT:
                aborted_producers.discard(producer_id)
        elif not (batch.is_transactional and producer_id in aborted_producers):
            shown.append(batch)
    return shown


def visible_records(
    batches: Iterable[RecordBatch],
    aborted_transactions: Iterable[AbortedTransaction],
    fetch_offset: int,
    isolation_level: IsolationLevel = IsolationLevel.READ_COMMITTED,
) -> Visible:
    """The records at or after ``fetch_offset`` that a consumer shows, and its next position.

    Batches stay whole on the wire, so the first may start before ``fetch_offset``; records
    below it are skipped. The next position is past the last batch fetched, markers and
    skipped batches included.
    """
    batches = batches if isinstance(batches, Sequence) else list(batches)
    shown = visible_batches(batches, aborted_transactions, isolation_level)
    skip = 0  # batches wholly below fetch_offset
    while skip < len(shown) and shown[skip].next_offset <= fetch_offset:
        skip += 1
    slices = [(batch.base_offset, batch.records) for batch in shown[skip:]]
    if slices and slices[0][0] < fetch_offset:  # the first batch, partly read before
        first, records = slices[0]
        slices[0] = (fetch_offset, records[fetch_offset - first :])
    next_offset = max(fetch_offset, batches[-1].next_offset) if batches else fetch_offset
    return Visible(tuple(slices), next_offset)
