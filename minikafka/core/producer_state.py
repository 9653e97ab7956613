"""What a partition remembers about each producer, and the check every idempotent batch passes.

For each producer id that wrote to a partition, the broker keeps the epoch and the metadata of
the last five batches (Kafka's ``ProducerStateEntry``). That window is what turns a retry into
"already have it, here is the original offset" instead of a second copy. The state is
volatile: after a crash the broker rebuilds it by replaying the log (``update`` for every
batch), which is why deduplication survives a restart.

This module must not know about requests, responses or time. ``validate`` is pure: it says
append, duplicate or reject, and the caller acts on that.
"""

from __future__ import annotations

from collections import deque

import attrs

from minikafka.core.errors import ErrorCode
from minikafka.core.records import (
    MAX_SEQUENCE,
    NO_PRODUCER_EPOCH,
    NO_SEQUENCE,
    RecordBatch,
    add_sequence,
)

__all__ = [
    "APPEND",
    "NUM_BATCHES_TO_RETAIN",
    "Append",
    "BatchMetadata",
    "Duplicate",
    "ProducerStateEntry",
    "ProducerStateTable",
    "Rejected",
    "Validation",
    "in_sequence",
]

NUM_BATCHES_TO_RETAIN = 5
"""Kafka's window: as many batches as ``max_in_flight_requests_per_connection`` allows."""


def in_sequence(last_sequence: int, next_sequence: int) -> bool:
    """True when ``next_sequence`` directly follows ``last_sequence`` (with the int32 wrap)."""
    return next_sequence == last_sequence + 1 or (
        next_sequence == 0 and last_sequence == MAX_SEQUENCE
    )


@attrs.frozen(slots=True)
class BatchMetadata:
    """What the broker keeps of an appended batch to recognise its retry."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    timestamp: int


@attrs.define(slots=True)
class ProducerStateEntry:
    """One producer's state on one partition: its epoch and its last five batches."""

    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = attrs.Factory(lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    # The first offset of this producer's open transaction here (used from transactions on).
    current_txn_first_offset: int | None = None

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else NO_SEQUENCE

    def find_duplicate(self, batch: RecordBatch) -> BatchMetadata | None:
        """The cached batch with the same epoch and sequence range, if there is one."""
        if batch.producer_epoch != self.producer_epoch:
            return None
        first, last = batch.base_sequence, batch.last_sequence
        for cached in self.batches:
            if cached.first_sequence == first and cached.last_sequence == last:
                return cached
        return None


@attrs.frozen(slots=True)
class Append:
    """The batch is new and in order: append it."""


@attrs.frozen(slots=True)
class Duplicate:
    """The batch was appended before: answer success with the original offset."""

    original: BatchMetadata


@attrs.frozen(slots=True)
class Rejected:
    """The batch is refused with a Kafka error code and a message saying why."""

    error: ErrorCode
    message: str


APPEND = Append()
Validation = Append | Duplicate | Rejected


@attrs.define(eq=False)
class ProducerStateTable:
    """All producers' state on one partition (Kafka's ``ProducerStateManager``)."""

    entries: dict[int, ProducerStateEntry] = attrs.Factory(dict)

    def validate(
        self, batch: RecordBatch, *, check_sequence: bool = True, check_epoch: bool = True
    ) -> Validation:
        """Check an idempotent batch the way Kafka's leader does, in Kafka's order.

        1. A retry of one of the last five batches (same epoch, same sequence range) is a
           duplicate. 2. An older epoch is refused (INVALID_PRODUCER_EPOCH). 3. A new epoch
           must start at sequence 0. 4. The same epoch must continue at the last sequence + 1.
        5. With no state for the producer, any sequence is accepted (KIP-360).
        ``check_sequence=False`` switches off 1, 3 and 4 (the PRODUCER_DEDUP safeguard);
        ``check_epoch=False`` switches off 2 (EPOCH_FENCING).
        """
        entry = self.entries.get(batch.producer_id)
        if entry is None:
            return APPEND
        if check_sequence:
            original = entry.find_duplicate(batch)
            if original is not None:
                return Duplicate(original)
        if check_epoch and batch.producer_epoch < entry.producer_epoch:
            return Rejected(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"producer {batch.producer_id} wrote with epoch {batch.producer_epoch}, but "
                f"epoch {entry.producer_epoch} is current: a newer instance has taken over",
            )
        if not check_sequence:
            return APPEND
        if batch.producer_epoch != entry.producer_epoch:
            if batch.base_sequence != 0 and entry.producer_epoch != NO_PRODUCER_EPOCH:
                return Rejected(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"producer {batch.producer_id} started epoch {batch.producer_epoch} at "
                    f"sequence {batch.base_sequence}; a new epoch must start at 0",
                )
            return APPEND
        if not in_sequence(entry.last_sequence, batch.base_sequence):
            return Rejected(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"producer {batch.producer_id} epoch {batch.producer_epoch} sent sequence "
                f"{batch.base_sequence}, but the last appended sequence is "
                f"{entry.last_sequence}: expected {add_sequence(entry.last_sequence, 1)}",
            )
        return APPEND

    def update(self, batch: RecordBatch, *, max_timestamp: int | None = None) -> None:
        """Record an appended batch (stamped with its offset); also used to replay the log.
        ``max_timestamp`` saves walking the batch's records again when the caller already has."""
        if batch.producer_id < 0:
            return
        entry = self.entries.get(batch.producer_id)
        if entry is None:
            entry = self.entries[batch.producer_id] = ProducerStateEntry(batch.producer_id)
        if batch.producer_epoch != entry.producer_epoch:
            entry.producer_epoch = batch.producer_epoch
            entry.batches.clear()
        if batch.is_control:
            entry.current_txn_first_offset = None
            return
        if batch.is_transactional and entry.current_txn_first_offset is None:
            entry.current_txn_first_offset = batch.base_offset
        if batch.base_sequence == NO_SEQUENCE:
            return
        entry.batches.append(
            BatchMetadata(
                batch.base_sequence,
                batch.last_sequence,
                batch.base_offset,
                batch.last_offset,
                batch.max_timestamp if max_timestamp is None else max_timestamp,
            )
        )
