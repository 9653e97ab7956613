"""PartitionLog: offsets, lookups, fetch limits, crash truncation and the time index."""

from __future__ import annotations

import pytest

from minikafka.core.log import PartitionLog
from minikafka.core.records import Record, RecordBatch


def make_batch(*values: str, timestamps: tuple[int, ...] | None = None) -> RecordBatch:
    stamps = timestamps if timestamps is not None else (0,) * len(values)
    return RecordBatch(
        records=tuple(
            Record(value=value.encode(), timestamp=ts)
            for value, ts in zip(values, stamps, strict=True)
        )
    )


def three_batches() -> PartitionLog:
    """Offsets 0-2 in batch 0, 3-4 in batch 1, 5 in batch 2; log end offset 6."""
    log = PartitionLog("t", 0)
    log.append(make_batch("a", "b", "c"))
    log.append(make_batch("d", "e"))
    log.append(make_batch("f"))
    return log


def test_append_assigns_offsets_per_batch() -> None:
    log = PartitionLog("t", 0)
    sent = make_batch("a", "b", "c")
    first = log.append(sent)
    second = log.append(make_batch("d", "e"))
    assert sent.base_offset == -1  # the batch the producer built is not modified
    assert (first.base_offset, first.last_offset, first.next_offset) == (0, 2, 3)
    assert (second.base_offset, second.last_offset) == (3, 4)
    assert log.log_end_offset == 5
    assert log.batch_count == 2
    assert [b.base_offset for b in log.batches()] == [0, 3]
    assert [b.base_offset for b in log.batches(1)] == [3]


def test_new_log_is_empty_and_flushed() -> None:
    log = PartitionLog("t", 0)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (0, 0, 0)
    assert not log.unflushed
    assert log.fetch(0) == []
    assert log.batch_index(0) == 0


@pytest.mark.parametrize(
    ("offset", "index"), [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 3), (99, 3)]
)
def test_batch_index_bisects_base_offsets(offset: int, index: int) -> None:
    assert three_batches().batch_index(offset) == index


def test_record_at_finds_the_record_inside_its_batch() -> None:
    log = three_batches()
    assert [log.record_at(offset).value for offset in range(6)] == [
        b"a",
        b"b",
        b"c",
        b"d",
        b"e",
        b"f",
    ]


@pytest.mark.parametrize("offset", [-1, 6, 7])
def test_record_at_outside_the_log_raises_index_error(offset: int) -> None:
    with pytest.raises(IndexError):
        three_batches().record_at(offset)


def test_fetch_returns_whole_batches_from_the_one_holding_the_offset() -> None:
    log = three_batches()
    batches = log.fetch(4)
    assert [b.base_offset for b in batches] == [3, 5]
    # The first batch starts before the offset asked for: the reader skips offset 3.
    assert batches[0].base_offset < 4 <= batches[0].last_offset
    assert [b.base_offset for b in log.fetch(0)] == [0, 3, 5]


def test_fetch_at_the_log_end_returns_nothing() -> None:
    assert three_batches().fetch(6) == []


def test_fetch_returns_at_least_one_batch_even_above_max_bytes() -> None:
    log = three_batches()
    first_size = next(log.batches()).size_bytes
    assert [b.base_offset for b in log.fetch(0, max_bytes=1)] == [0]
    assert [b.base_offset for b in log.fetch(1, max_bytes=0)] == [0]
    assert [b.base_offset for b in log.fetch(0, max_bytes=first_size)] == [0]


def test_fetch_max_bytes_counts_whole_batches() -> None:
    log = three_batches()
    sizes = [b.size_bytes for b in log.batches()]
    assert [b.base_offset for b in log.fetch(0, max_bytes=sizes[0] + sizes[1])] == [0, 3]
    assert [b.base_offset for b in log.fetch(0, max_bytes=sizes[0] + sizes[1] - 1)] == [0]
    assert [b.base_offset for b in log.fetch(0, max_bytes=sum(sizes))] == [0, 3, 5]


def test_fetch_max_records_counts_from_the_offset_asked_for() -> None:
    log = three_batches()
    assert [b.base_offset for b in log.fetch(0, max_records=1)] == [0]
    assert [b.base_offset for b in log.fetch(0, max_records=3)] == [0]
    assert [b.base_offset for b in log.fetch(0, max_records=4)] == [0, 3]
    # From offset 1, batch 0 contributes only 2 records (1 and 2).
    assert [b.base_offset for b in log.fetch(1, max_records=2)] == [0]
    assert [b.base_offset for b in log.fetch(1, max_records=3)] == [0, 3]


def test_fetch_stops_at_upper_bound() -> None:
    log = three_batches()
    assert [b.base_offset for b in log.fetch(0, upper_bound=3)] == [0]
    assert [b.base_offset for b in log.fetch(0, upper_bound=5)] == [0, 3]
    assert log.fetch(0, upper_bound=0) == []
    assert log.fetch(3, upper_bound=3) == []


@pytest.mark.parametrize("offset", [-1, 7, 100])
def test_fetch_outside_start_and_log_end_raises_value_error(offset: int) -> None:
    with pytest.raises(ValueError, match=f"offset {offset} is outside"):
        three_batches().fetch(offset)


def test_flush_moves_the_high_watermark_to_the_log_end() -> None:
    log = PartitionLog("t", 0)
    log.append(make_batch("a"))
    assert log.unflushed
    assert (log.high_watermark, log.log_end_offset) == (0, 1)
    log.flush()
    assert not log.unflushed
    assert log.high_watermark == log.flushed_offset == 1


def test_truncate_to_flushed_loses_exactly_the_unflushed_tail() -> None:
    log = PartitionLog("t", 0)
    log.append(make_batch("a", "b", timestamps=(1, 2)))
    log.append(make_batch("c", timestamps=(3,)))
    log.flush()
    log.append(make_batch("d", "e", timestamps=(50, 60)))
    log.append(make_batch("f", timestamps=(70,)))

    assert log.truncate_to_flushed() == 3
    assert (log.log_end_offset, log.high_watermark, log.batch_count) == (3, 3, 2)
    assert [b.base_offset for b in log.fetch(0)] == [0, 2]
    assert log.offset_for_timestamp(50) == -1  # the time index lost the tail too
    with pytest.raises(IndexError):
        log.record_at(3)

    again = log.append(make_batch("g", timestamps=(80,)))
    assert again.base_offset == 3
    assert log.record_at(3).value == b"g"
    assert log.offset_for_timestamp(50) == 3


def test_truncate_to_flushed_on_a_flushed_log_loses_nothing() -> None:
    log = three_batches()
    log.flush()
    assert log.truncate_to_flushed() == 0
    assert log.log_end_offset == 6
    assert log.batch_count == 3


def test_truncate_to_flushed_on_a_never_flushed_log_empties_it() -> None:
    log = three_batches()
    assert log.truncate_to_flushed() == 6
    assert (log.log_end_offset, log.batch_count) == (0, 0)
    assert log.fetch(0) == []


def test_offset_for_timestamp_finds_the_first_record_at_or_after() -> None:
    log = PartitionLog("t", 0)
    log.append(make_batch("a", "b", "c", timestamps=(10, 20, 30)))  # offsets 0-2
    log.append(make_batch("d", "e", timestamps=(25, 40)))  # offsets 3-4, out of time order
    assert log.offset_for_timestamp(0) == 0
    assert log.offset_for_timestamp(10) == 0
    assert log.offset_for_timestamp(11) == 1
    assert log.offset_for_timestamp(20) == 1
    # 25 and 26: offset 2 (ts 30) comes before offset 3 (ts 25) in the log.
    assert log.offset_for_timestamp(25) == 2
    assert log.offset_for_timestamp(30) == 2
    assert log.offset_for_timestamp(31) == 4
    assert log.offset_for_timestamp(40) == 4
    assert log.offset_for_timestamp(41) == -1


def test_offset_for_timestamp_respects_upper_bound_and_empty_log() -> None:
    assert PartitionLog("t", 0).offset_for_timestamp(0) == -1
    log = PartitionLog("t", 0)
    log.append(make_batch("a", timestamps=(10,)))
    log.append(make_batch("b", timestamps=(20,)))
    assert log.offset_for_timestamp(15) == 1
    assert log.offset_for_timestamp(15, upper_bound=1) == -1
    assert log.offset_for_timestamp(5, upper_bound=1) == 0
