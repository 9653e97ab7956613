"""Records and record batches: the unit the log stores and the producer retries.

A batch is what Kafka's RecordBatch v2 header describes: the producer id, the epoch and the
base sequence belong to the batch, not to each record, so the broker checks and stores whole
batches. These classes are plain values (frozen attrs); they know nothing of logs or brokers.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "MAX_SEQUENCE",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "ControlType",
    "Header",
    "Record",
    "RecordBatch",
    "RecordMetadata",
    "TopicPartition",
    "add_sequence",
    "control_batch",
]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
MAX_SEQUENCE = 2**31 - 1
"""Sequences are Kafka int32s: after ``MAX_SEQUENCE`` comes 0."""

# Bytes a record and a batch take besides their keys, values and headers. Kafka's v2 batch
# header is 61 bytes; a record's own framing is a few varints, counted here as a flat 8.
BATCH_OVERHEAD_BYTES = 61
RECORD_OVERHEAD_BYTES = 8

Header = tuple[str, bytes | None]


def add_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment``, wrapping past ``MAX_SEQUENCE`` to 0 as Kafka does."""
    return (sequence + increment) % (MAX_SEQUENCE + 1)


class ControlType(enum.IntEnum):
    """What a control record marks, as Kafka's ``ControlRecordType`` numbers it."""

    ABORT = 0
    COMMIT = 1


@attrs.frozen(slots=True)
class Record:
    """One key-value record. ``timestamp`` is in milliseconds, as in Kafka."""

    value: bytes | None
    key: bytes | None = None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0

    @property
    def size_bytes(self) -> int:
        """What the record weighs against fetch and batch size limits."""
        size = RECORD_OVERHEAD_BYTES
        if self.key is not None:
            size += len(self.key)
        if self.value is not None:
            size += len(self.value)
        for name, value in self.headers:
            size += len(name) + (len(value) if value is not None else 0)
        return size


@attrs.frozen(slots=True, kw_only=True)
class RecordBatch:
    """A batch of records from one producer for one partition.

    ``base_offset`` is -1 in a produce request; the log stamps the offset it assigns, as
    Kafka's leader rewrites baseOffset. ``base_sequence`` is the sequence of the first
    record; the batch covers ``base_sequence`` to ``last_sequence``. A producer that is not
    idempotent sends ``producer_id``, ``producer_epoch`` and ``base_sequence`` as -1.
    """

    records: tuple[Record, ...]
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    base_sequence: int = NO_SEQUENCE
    is_transactional: bool = False
    is_control: bool = False
    base_offset: int = -1

    @property
    def record_count(self) -> int:
        return len(self.records)

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.records) - 1

    @property
    def next_offset(self) -> int:
        """The offset after this batch: the log end offset once it is the last batch."""
        return self.base_offset + len(self.records)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record, wrapping as Kafka's ``incrementSequence`` does."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return add_sequence(self.base_sequence, len(self.records) - 1)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def size_bytes(self) -> int:
        return BATCH_OVERHEAD_BYTES + sum([record.size_bytes for record in self.records])

    @property
    def max_timestamp(self) -> int:
        """The latest record timestamp in the batch (0 for an empty batch)."""
        records = self.records
        if len(records) == 1:  # the common case, without building a list
            return records[0].timestamp
        return max([record.timestamp for record in records], default=0)

    def at_offset(self, base_offset: int) -> RecordBatch:
        """This batch stamped with ``base_offset``, as the log stores it."""
        # Built field by field: attrs.evolve looks the fields up on every call, which was a
        # sixth of an append in the profile.
        return RecordBatch(
            records=self.records,
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=self.base_sequence,
            is_transactional=self.is_transactional,
            is_control=self.is_control,
            base_offset=base_offset,
        )

    @property
    def control_type(self) -> ControlType | None:
        """COMMIT or ABORT for a control batch (its record's key says which), else None."""
        if not self.is_control or not self.records:
            return None
        key = self.records[0].key
        if key is None or len(key) != 4:
            return None
        # A table lookup: readers ask this of every marker they pass.
        return _CONTROL_TYPES.get(key[2:4])


_CONTROL_TYPES = {kind.to_bytes(2, "big"): kind for kind in ControlType}
"""A control record key's type field (bytes 2 and 3, big-endian) to its ControlType."""


def control_batch(
    control_type: ControlType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int = 0,
    timestamp: int = 0,
) -> RecordBatch:
    """A transaction marker: a control batch with one record, keyed as Kafka keys it.

    The key is version 0 and the control type as two big-endian int16s; the value is
    version 0 and the coordinator epoch (int16, int32), as in ``EndTransactionMarker``.
    """
    key = (0).to_bytes(2, "big") + int(control_type).to_bytes(2, "big")
    value = (0).to_bytes(2, "big") + coordinator_epoch.to_bytes(4, "big", signed=True)
    return RecordBatch(
        records=(Record(value=value, key=key, timestamp=timestamp),),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
    )


@attrs.frozen(slots=True, order=True)
class TopicPartition:
    """A partition of a topic, as clients name it."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@attrs.frozen(slots=True)
class RecordMetadata:
    """Where an acknowledged record landed. ``offset`` is -1 when acks=0 gives no answer."""

    topic: str
    partition: int
    offset: int
    timestamp: int


@attrs.frozen(slots=True)
class ConsumerRecord:
    """A record as a consumer's poll returns it: where it sits, and what it holds."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)
