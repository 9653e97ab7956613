"""The partition log: whole batches at increasing offsets, and the marks that move over them.

What this module must not know: producer state, the coordinator, time or I/O. It stores batches
as they come, answers reads, and knows which part of itself a crash cannot take away. Like
Kafka's log it also keeps the two transaction indexes a reader needs: where each open
transaction begins (so the last stable offset is known) and the aborted transactions (Kafka's
``.txnindex``). Both follow from the batches alone: a transactional batch opens its producer's
transaction, a marker (control batch) closes it.

One broker stands for a whole replica set here. What Kafka calls "replicated to the ISR" is
"flushed" here: the high watermark is the flushed offset, so a consumer never reads a record
that a crash can still take back, exactly as Kafka's consumers never read above the HW.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import attrs

from minikafka.core.messages import AbortedTransaction
from minikafka.core.records import ControlType, Record, RecordBatch

__all__ = ["AbortedTxn", "PartitionLog"]


@attrs.frozen(slots=True)
class AbortedTxn:
    """An entry of the aborted-transaction index, as Kafka's ``AbortedTxn`` holds it.

    ``last_offset`` is the offset of the ABORT marker; ``last_stable_offset`` is the offset
    below which nothing was undecided when the marker was written. It lets a lookup stop early.
    """

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


@attrs.define(eq=False)
class PartitionLog:
    """One partition's log: batches by base offset, a log end offset, a high watermark.

    Offsets are found by bisecting the batch base offsets; a fetch costs what it returns.
    Simplified: no segments and no retention, so the log start offset stays 0.
    """

    topic: str
    partition: int
    _batches: list[RecordBatch] = attrs.Factory(list)
    _base_offsets: list[int] = attrs.Factory(list)
    # Bytes of the log up to the end of each batch (running sums), so the bytes of any run of
    # batches is one subtraction and a byte limit is one bisect.
    _byte_ends: list[int] = attrs.Factory(list)
    # Running maximum of batch timestamps, so a lookup by time is a bisect (Kafka's time index).
    _max_timestamps: list[int] = attrs.Factory(list)
    log_end_offset: int = 0
    flushed_offset: int = 0
    log_start_offset: int = 0
    # Producer id -> first offset of its open transaction here (Kafka's ``ongoingTxns``).
    open_transactions: dict[int, int] = attrs.Factory(dict)
    # Aborted transactions in marker order, so by ``last_offset`` (Kafka's ``.txnindex``).
    _aborted: list[AbortedTxn] = attrs.Factory(list)
    _aborted_last_offsets: list[int] = attrs.Factory(list)
    # The same entries as a fetch response carries them, made once here rather than on every
    # read_committed fetch (that was a third of a fetch's cost).
    _aborted_wire: list[AbortedTransaction] = attrs.Factory(list)

    @property
    def high_watermark(self) -> int:
        """The offset below which every record is durable, and so readable by consumers."""
        return self.flushed_offset

    @property
    def last_stable_offset(self) -> int:
        """The offset below which every transaction is decided: what read_committed may read.

        The lower of the high watermark and the first offset of the earliest open transaction.
        """
        if not self.open_transactions:
            return self.flushed_offset
        return min(self.flushed_offset, min(self.open_transactions.values()))

    def _begin_transaction(self, producer_id: int, first_offset: int) -> None:
        """Note that ``producer_id`` opened a transaction here at ``first_offset``."""
        self.open_transactions.setdefault(producer_id, first_offset)

    def _end_transaction(self, producer_id: int, marker_offset: int, *, aborted: bool) -> None:
        """Close ``producer_id``'s open transaction with the marker at ``marker_offset``.

        An aborted transaction goes into the aborted index; a marker that closes nothing
        (the producer had no open transaction here) changes no index.
        """
        first_offset = self.open_transactions.pop(producer_id, None)
        if first_offset is None or not aborted:
            return
        others = min(self.open_transactions.values(), default=marker_offset + 1)
        self._aborted.append(
            AbortedTxn(producer_id, first_offset, marker_offset, min(others, marker_offset + 1))
        )
        self._aborted_last_offsets.append(marker_offset)
        self._aborted_wire.append(AbortedTransaction(producer_id, first_offset))

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions that overlap ``[fetch_offset, upper_bound)``.

        Kafka's ``collectAbortedTxns``: a bisect to the first entry whose marker is at or after
        ``fetch_offset``, then forward until an entry shows nothing later can start below
        ``upper_bound``.
        """
        return [self._aborted[index] for index in self._overlapping(fetch_offset, upper_bound)]

    def aborted_for_fetch(
        self, fetch_offset: int, upper_bound: int
    ) -> tuple[AbortedTransaction, ...]:
        """``aborted_transactions``, as a fetch response lists them."""
        wire = self._aborted_wire
        return tuple([wire[index] for index in self._overlapping(fetch_offset, upper_bound)])

    def _overlapping(self, fetch_offset: int, upper_bound: int) -> list[int]:
        found = []
        index = bisect.bisect_left(self._aborted_last_offsets, fetch_offset)
        while index < len(self._aborted):
            entry = self._aborted[index]
            if entry.first_offset < upper_bound:
                found.append(index)
            if entry.last_stable_offset >= upper_bound:
                break
            index += 1
        return found

    @property
    def aborted_index(self) -> tuple[AbortedTxn, ...]:
        return tuple(self._aborted)

    @property
    def batch_count(self) -> int:
        return len(self._batches)

    def append(
        self,
        batch: RecordBatch,
        *,
        size_bytes: int | None = None,
        max_timestamp: int | None = None,
    ) -> RecordBatch:
        """Append a whole batch at the log end and return it stamped with its base offset.

        ``size_bytes`` and ``max_timestamp`` save walking the batch's records again when the
        caller already has."""
        stamped = batch.at_offset(self.log_end_offset)
        self._batches.append(stamped)
        self._base_offsets.append(self.log_end_offset)
        size = batch.size_bytes if size_bytes is None else size_bytes
        self._byte_ends.append(self._byte_ends[-1] + size if self._byte_ends else size)
        batch_max = batch.max_timestamp if max_timestamp is None else max_timestamp
        timestamps = self._max_timestamps
        timestamps.append(
            batch_max if not timestamps or batch_max > timestamps[-1] else timestamps[-1]
        )
        self.log_end_offset += len(batch.records)
        if batch.is_transactional:
            self._index_transaction(stamped)
        return stamped

    def _index_transaction(self, batch: RecordBatch) -> None:
        if not batch.is_control:
            self._begin_transaction(batch.producer_id, batch.base_offset)
        else:
            aborted = batch.control_type is ControlType.ABORT
            self._end_transaction(batch.producer_id, batch.base_offset, aborted=aborted)

    def _reindex_transactions(self) -> None:
        self.open_transactions = {}
        self._aborted = []
        self._aborted_last_offsets = []
        self._aborted_wire = []
        for batch in self._batches:
            if batch.is_transactional:
                self._index_transaction(batch)

    def flush(self) -> None:
        """Make everything appended so far durable; the high watermark moves to the log end."""
        self.flushed_offset = self.log_end_offset

    @property
    def unflushed(self) -> bool:
        return self.flushed_offset < self.log_end_offset

    def truncate_to_flushed(self) -> int:
        """Drop the batches a crash takes with it (those not flushed). Returns records lost."""
        lost = self.log_end_offset - self.flushed_offset
        while self._base_offsets and self._base_offsets[-1] >= self.flushed_offset:
            self._batches.pop()
            self._base_offsets.pop()
            self._byte_ends.pop()
            self._max_timestamps.pop()
        self.log_end_offset = self.flushed_offset
        self._reindex_transactions()
        return lost

    def batch_index(self, offset: int) -> int:
        """Index of the batch holding ``offset``; ``batch_count`` at or past the log end."""
        if offset >= self.log_end_offset:
            return len(self._batches)
        return max(bisect.bisect_right(self._base_offsets, offset) - 1, 0)

    def fetch(
        self,
        offset: int,
        *,
        upper_bound: int | None = None,
        max_bytes: int | None = None,
        max_records: int | None = None,
        min_one_batch: bool = True,
    ) -> list[RecordBatch]:
        """Whole batches holding ``offset`` and what follows, below ``upper_bound``.

        The first batch may start before ``offset``: batches stay whole and the reader skips
        records below the offset it asked for, as Kafka's consumer does. At least one batch
        is returned even if it is larger than ``max_bytes`` (KIP-74), so a reader never
        stalls, unless ``min_one_batch`` is False. ``offset`` must lie between the log start
        offset and the log end offset.
        """
        if not self.log_start_offset <= offset <= self.log_end_offset:
            raise ValueError(
                f"offset {offset} is outside the log of {self.topic}-{self.partition} "
                f"[{self.log_start_offset}, {self.log_end_offset}]"
            )
        bound = self.log_end_offset if upper_bound is None else upper_bound
        # No loop over records, and none over batches for the bounds: the end comes from a
        # bisect of the base offsets, and the byte limit from a bisect of the running sums.
        start = index = self.batch_index(offset)
        end = bisect.bisect_left(self._base_offsets, bound, lo=index)
        if max_bytes is not None:
            before = self._byte_ends[start - 1] if start else 0
            index = bisect.bisect_right(self._byte_ends, before + max_bytes, lo=start, hi=end)
            if index == start and min_one_batch and index < end:
                index += 1  # KIP-74: one batch even if it is larger than max_bytes
            end = index
        if max_records is not None:
            # Up to the batch holding the last record wanted, offset + max_records - 1.
            last = offset + max(max_records, 1) - 1
            end = min(end, max(bisect.bisect_right(self._base_offsets, last), start + 1))
        return self._batches[start:end]

    def fetched_bytes(self, batches: list[RecordBatch]) -> int:
        """The size in bytes of batches as ``fetch`` returned them, without a record walk."""
        if not batches:
            return 0
        first = self.batch_index(batches[0].base_offset)
        last = first + len(batches) - 1
        return self._byte_ends[last] - (self._byte_ends[first - 1] if first else 0)

    def offset_for_timestamp(self, timestamp: int, *, upper_bound: int | None = None) -> int:
        """The first offset whose record timestamp is at least ``timestamp``, or -1."""
        index = bisect.bisect_left(self._max_timestamps, timestamp)
        bound = self.log_end_offset if upper_bound is None else upper_bound
        if index >= len(self._batches) or self._base_offsets[index] >= bound:
            return -1
        batch = self._batches[index]
        for position, record in enumerate(batch.records):
            if record.timestamp >= timestamp:
                return batch.base_offset + position
        return -1  # pragma: no cover - the running maximum guarantees a hit above

    def record_at(self, offset: int) -> Record:
        """The record stored at ``offset`` (for inspection and tests)."""
        if not self.log_start_offset <= offset < self.log_end_offset:
            raise IndexError(f"no record at offset {offset} in {self.topic}-{self.partition}")
        batch = self._batches[self.batch_index(offset)]
        return batch.records[offset - batch.base_offset]

    def batches(self, start_index: int = 0) -> Iterator[RecordBatch]:
        """The stored batches in offset order, from ``start_index`` (replay and rendering)."""
        for index in range(start_index, len(self._batches)):
            yield self._batches[index]
