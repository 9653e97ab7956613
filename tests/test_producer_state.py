"""ProducerStateTable.validate and update, rule by rule, as Kafka applies them."""

from __future__ import annotations

import pytest

from minikafka.core.errors import ErrorCode
from minikafka.core.log import PartitionLog
from minikafka.core.producer_state import (
    APPEND,
    NUM_BATCHES_TO_RETAIN,
    Duplicate,
    ProducerStateTable,
    Rejected,
    in_sequence,
)
from minikafka.core.records import MAX_SEQUENCE, NO_SEQUENCE, Record, RecordBatch

PID = 7


def make_batch(
    base_sequence: int, count: int = 1, *, epoch: int = 0, pid: int = PID, ts: int = 0
) -> RecordBatch:
    return RecordBatch(
        records=tuple(Record(value=b"v", timestamp=ts + i) for i in range(count)),
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=base_sequence,
    )


class Partition:
    """A log and its producer state table, appended together as the broker does."""

    def __init__(self) -> None:
        self.log = PartitionLog("t", 0)
        self.table = ProducerStateTable()

    def append(self, batch: RecordBatch) -> RecordBatch:
        stamped = self.log.append(batch)
        self.table.update(stamped)
        return stamped


def rejected(verdict: object) -> ErrorCode:
    assert isinstance(verdict, Rejected), verdict
    assert verdict.message
    return verdict.error


def six_batches() -> tuple[Partition, list[RecordBatch]]:
    """Producer PID at epoch 0 appended sequences 0-1, 2, 3-5, 6, 7-8, 9 (six batches)."""
    partition = Partition()
    sizes = [2, 1, 3, 1, 2, 1]
    stamped = []
    sequence = 0
    for size in sizes:
        stamped.append(partition.append(make_batch(sequence, size)))
        sequence += size
    return partition, stamped


def test_in_sequence_wraps_at_max_sequence() -> None:
    assert in_sequence(4, 5)
    assert not in_sequence(4, 6)
    assert not in_sequence(4, 4)
    assert in_sequence(MAX_SEQUENCE, 0)
    assert not in_sequence(MAX_SEQUENCE, 1)
    assert in_sequence(NO_SEQUENCE, 0)


@pytest.mark.parametrize("age", range(NUM_BATCHES_TO_RETAIN))
def test_retry_of_each_of_the_last_five_batches_is_a_duplicate(age: int) -> None:
    partition, stamped = six_batches()
    original = stamped[-1 - age]
    retry = make_batch(original.base_sequence, original.record_count)
    verdict = partition.table.validate(retry)
    assert isinstance(verdict, Duplicate)
    assert verdict.original.first_offset == original.base_offset
    assert verdict.original.last_offset == original.last_offset
    assert verdict.original.first_sequence == original.base_sequence
    assert verdict.original.last_sequence == original.last_sequence


def test_the_sixth_oldest_batch_is_no_longer_recognised() -> None:
    partition, stamped = six_batches()
    oldest = stamped[0]
    assert len(partition.table.entries[PID].batches) == NUM_BATCHES_TO_RETAIN
    verdict = partition.table.validate(make_batch(oldest.base_sequence, oldest.record_count))
    assert rejected(verdict) is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_retry_with_a_different_sequence_range_is_not_a_duplicate() -> None:
    partition, _ = six_batches()
    # Sequences 3-5 were one batch; 3-4 alone does not match it.
    assert rejected(partition.table.validate(make_batch(3, 2))) is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )


def test_the_next_sequence_is_appended() -> None:
    partition, _ = six_batches()
    assert partition.table.validate(make_batch(10, 4)) is APPEND


@pytest.mark.parametrize("base_sequence", [11, 12, 1_000, 0])
def test_a_gap_or_a_step_back_is_out_of_order(base_sequence: int) -> None:
    partition, _ = six_batches()
    verdict = partition.table.validate(make_batch(base_sequence))
    assert rejected(verdict) is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert rejected(verdict).value == 45


def test_a_new_epoch_must_start_at_sequence_zero() -> None:
    partition, _ = six_batches()
    assert partition.table.validate(make_batch(0, epoch=1)) is APPEND
    assert partition.table.validate(make_batch(0, epoch=5)) is APPEND
    verdict = partition.table.validate(make_batch(3, epoch=1))
    assert rejected(verdict) is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    # Continuing the old epoch's sequence under a new epoch is refused too.
    assert rejected(partition.table.validate(make_batch(10, epoch=1))) is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )


def test_an_older_epoch_is_fenced() -> None:
    partition = Partition()
    partition.append(make_batch(0, 2, epoch=0))
    partition.append(make_batch(0, 1, epoch=3))
    for batch in (make_batch(2, epoch=0), make_batch(0, 2, epoch=0), make_batch(1, epoch=2)):
        verdict = partition.table.validate(batch)
        assert rejected(verdict) is ErrorCode.INVALID_PRODUCER_EPOCH
        assert rejected(verdict).value == 47


def test_sequence_wraps_from_max_to_zero() -> None:
    partition = Partition()
    partition.append(make_batch(MAX_SEQUENCE - 1, 2))  # MAX-1 and MAX
    assert partition.table.entries[PID].last_sequence == MAX_SEQUENCE
    assert partition.table.validate(make_batch(0)) is APPEND
    assert rejected(partition.table.validate(make_batch(1))) is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )
    partition.append(make_batch(0))
    assert partition.table.validate(make_batch(1)) is APPEND


def test_a_batch_straddling_the_wrap() -> None:
    partition = Partition()
    partition.append(make_batch(MAX_SEQUENCE - 2))
    straddling = make_batch(MAX_SEQUENCE - 1, 4)  # MAX-1, MAX, 0, 1
    assert straddling.last_sequence == 1
    assert partition.table.validate(straddling) is APPEND
    stamped = partition.append(straddling)
    assert partition.table.entries[PID].last_sequence == 1

    duplicate = partition.table.validate(straddling)
    assert isinstance(duplicate, Duplicate)
    assert duplicate.original.first_offset == stamped.base_offset == 1
    assert duplicate.original.last_sequence == 1
    assert partition.table.validate(make_batch(2)) is APPEND
    assert rejected(partition.table.validate(make_batch(0))) is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )


def test_out_of_order_message_after_the_wrap_expects_zero() -> None:
    partition = Partition()
    partition.append(make_batch(MAX_SEQUENCE))
    verdict = partition.table.validate(make_batch(5))
    assert isinstance(verdict, Rejected)
    assert verdict.message.endswith("expected 0")


@pytest.mark.parametrize("base_sequence", [0, 1, 42, MAX_SEQUENCE])
@pytest.mark.parametrize("epoch", [0, 9])
def test_with_no_state_any_sequence_is_accepted(base_sequence: int, epoch: int) -> None:
    partition = Partition()
    partition.append(make_batch(0, 3, pid=PID + 1))  # another producer's state does not count
    verdict = partition.table.validate(make_batch(base_sequence, epoch=epoch))
    assert verdict is APPEND


def test_check_sequence_false_accepts_duplicates_gaps_and_bad_epoch_starts() -> None:
    partition, stamped = six_batches()
    table = partition.table
    last = stamped[-1]
    assert table.validate(make_batch(last.base_sequence), check_sequence=False) is APPEND
    assert table.validate(make_batch(50), check_sequence=False) is APPEND
    assert table.validate(make_batch(0), check_sequence=False) is APPEND
    assert table.validate(make_batch(3, epoch=1), check_sequence=False) is APPEND
    # Epoch fencing is a separate safeguard and still applies.
    partition.append(make_batch(0, epoch=2))
    assert rejected(table.validate(make_batch(1, epoch=1), check_sequence=False)) is (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )


def test_check_epoch_false_lets_an_older_epoch_through() -> None:
    partition = Partition()
    partition.append(make_batch(0, 2, epoch=3))
    assert partition.table.validate(make_batch(0, epoch=1), check_epoch=False) is APPEND
    # The sequence rule for a different epoch still holds.
    assert rejected(partition.table.validate(make_batch(4, epoch=1), check_epoch=False)) is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )


def test_update_after_an_epoch_change_clears_the_window() -> None:
    partition, stamped = six_batches()
    new = partition.append(make_batch(0, 2, epoch=1))
    entry = partition.table.entries[PID]
    assert entry.producer_epoch == 1
    assert [(b.first_sequence, b.first_offset) for b in entry.batches] == [(0, new.base_offset)]
    # The epoch-0 batch at sequence 0-1 is gone from the window: its retry is fenced,
    # and the same range under epoch 1 is the new batch, not the old one.
    old = stamped[-1]
    assert rejected(partition.table.validate(make_batch(old.base_sequence))) is (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )
    verdict = partition.table.validate(make_batch(0, 2, epoch=1))
    assert isinstance(verdict, Duplicate)
    assert verdict.original.first_offset == new.base_offset


def test_update_keeps_only_the_last_five_batches_with_their_metadata() -> None:
    partition, stamped = six_batches()
    entry = partition.table.entries[PID]
    assert entry.producer_epoch == 0
    assert entry.last_sequence == 9
    assert [
        (b.first_sequence, b.last_sequence, b.first_offset, b.last_offset) for b in entry.batches
    ] == [(b.base_sequence, b.last_sequence, b.base_offset, b.last_offset) for b in stamped[1:]]
    assert entry.batches[0].timestamp == max(r.timestamp for r in stamped[1].records)


def test_update_ignores_batches_without_a_producer_id() -> None:
    table = ProducerStateTable()
    table.update(RecordBatch(records=(Record(b"x"),), base_offset=0))
    assert table.entries == {}


def test_replaying_the_log_rebuilds_the_same_table() -> None:
    partition = Partition()
    sequence = 0
    for i in range(8):
        partition.append(make_batch(sequence, 1 + i % 3, ts=i * 10))
        sequence += 1 + i % 3
        partition.append(make_batch(i, pid=PID + 1, ts=i * 10 + 5))
    partition.append(RecordBatch(records=(Record(b"plain"),)))  # not idempotent
    partition.append(make_batch(0, 2, epoch=1))
    partition.append(make_batch(2, 1, epoch=1))

    replayed = ProducerStateTable()
    for batch in partition.log.batches():
        replayed.update(batch)

    assert replayed.entries == partition.table.entries
    assert list(replayed.entries) == [PID, PID + 1]
    for pid, entry in partition.table.entries.items():
        assert list(replayed.entries[pid].batches) == list(entry.batches)
        assert replayed.entries[pid].producer_epoch == entry.producer_epoch
    # And the rebuilt table answers a retry exactly as the live one does.
    retry = make_batch(7, pid=PID + 1)
    assert replayed.validate(retry) == partition.table.validate(retry)
    assert isinstance(replayed.validate(retry), Duplicate)
