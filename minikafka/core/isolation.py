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

import heapq
from collections.abc import Iterable

import attrs

from minikafka.core.messages import AbortedTransaction, IsolationLevel
from minikafka.core.records import ControlType, Record, RecordBatch

__all__ = ["ConsumedRecord", "Visible", "visible_batches", "visible_records"]


@attrs.frozen(slots=True)
class ConsumedRecord:
    """A record as a consumer receives it: with the offset it sits at."""

    offset: int
    record: Record


@attrs.frozen(slots=True)
class Visible:
    """What a fetch shows: the records, and the position to fetch from next."""

    records: tuple[ConsumedRecord, ...]
    next_offset: int


def visible_batches(
    batches: Iterable[RecordBatch],
    aborted_transactions: Iterable[AbortedTransaction],
    isolation_level: IsolationLevel = IsolationLevel.READ_COMMITTED,
) -> list[RecordBatch]:
    """The data batches a consumer may show, in log order (control batches never are)."""
    read_committed = isolation_level is IsolationLevel.READ_COMMITTED
    pending = [(entry.first_offset, entry.producer_id) for entry in aborted_transactions]
    heapq.heapify(pending)
    aborted_producers: set[int] = set()
    shown = []
    for batch in batches:
        if read_committed and batch.has_producer_id:
            while pending and pending[0][0] <= batch.last_offset:
                aborted_producers.add(heapq.heappop(pending)[1])
            if batch.is_control:
                if batch.control_type is ControlType.ABORT:
                    aborted_producers.discard(batch.producer_id)
                continue
            if batch.is_transactional and batch.producer_id in aborted_producers:
                continue
        if not batch.is_control:
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
    batches = list(batches)
    records = []
    for batch in visible_batches(batches, aborted_transactions, isolation_level):
        for position, record in enumerate(batch.records):
            offset = batch.base_offset + position
            if offset >= fetch_offset:
                records.append(ConsumedRecord(offset, record))
    next_offset = max(fetch_offset, batches[-1].next_offset) if batches else fetch_offset
    return Visible(tuple(records), next_offset)
