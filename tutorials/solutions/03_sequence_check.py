"""Exercise 3, a reference solution: Kafka's five rules, in Kafka's order."""

from __future__ import annotations

from minikafka.core.errors import ErrorCode
from minikafka.core.producer_state import (
    APPEND,
    Append,
    Duplicate,
    ProducerStateEntry,
    Rejected,
    in_sequence,
)
from minikafka.core.records import RecordBatch, add_sequence


def check(entry: ProducerStateEntry | None, batch: RecordBatch) -> Append | Duplicate | Rejected:
    # 5. No state for this producer (new, expired or lost): accept any sequence (KIP-360).
    if entry is None:
        return APPEND
    # 1. A retry of one of the last five batches: the same epoch and the same sequence range.
    if batch.producer_epoch == entry.producer_epoch:
        for cached in entry.batches:
            if (cached.first_sequence, cached.last_sequence) == (
                batch.base_sequence,
                batch.last_sequence,
            ):
                return Duplicate(cached)
    # 2. An older epoch: a zombie, fenced by a newer instance.
    if batch.producer_epoch < entry.producer_epoch:
        return Rejected(
            ErrorCode.INVALID_PRODUCER_EPOCH,
            f"epoch {batch.producer_epoch} is older than the current epoch {entry.producer_epoch}",
        )
    # 3. A new epoch starts its sequences at 0.
    if batch.producer_epoch > entry.producer_epoch:
        if batch.base_sequence != 0:
            return Rejected(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"a new epoch {batch.producer_epoch} must start at sequence 0, "
                f"not {batch.base_sequence}",
            )
        return APPEND
    # 4. The same epoch continues right after the last sequence (2**31 - 1 is followed by 0).
    if not in_sequence(entry.last_sequence, batch.base_sequence):
        return Rejected(
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            f"expected sequence {add_sequence(entry.last_sequence, 1)}, got {batch.base_sequence}",
        )
    return APPEND
