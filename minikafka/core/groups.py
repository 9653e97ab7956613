"""The group coordinator's offsets: committed offsets, and transactional ones waiting for a marker.

A consumer group's progress is the offset it committed for each partition. Plain commits
(OffsetCommit) are current at once. Offsets sent inside a transaction (TxnOffsetCommit) are
*pending*: they become current only when the transaction's COMMIT marker reaches the offsets
log, and an ABORT marker drops them (Kafka's ``pendingTransactionalOffsets``). That is what
makes "the output and the consumed offsets commit together" true.

Everything is written to the internal log ``__consumer_offsets`` before memory changes, and
``load`` rebuilds the offsets by replaying it: plain records are current, transactional ones
pending, and each marker settles its producer's pending offsets.

What this module must not know: the transaction coordinator, partition logs other than its
own, time or I/O. Membership and generations come with the next layer of groups.

Simplified: Kafka spreads groups over 50 partitions of ``__consumer_offsets``; here there is
one, never compacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import attrs

from minikafka.core.errors import ErrorCode
from minikafka.core.log import PartitionLog
from minikafka.core.messages import (
    OffsetCommitPartition,
    OffsetCommitPartitionResponse,
    OffsetFetchPartitionResponse,
)
from minikafka.core.records import ControlType, Record, RecordBatch, TopicPartition

__all__ = [
    "OFFSETS_TOPIC",
    "OFFSETS_TP",
    "OFFSET_METADATA_MAX_BYTES",
    "GroupCoordinator",
    "OffsetAndMetadata",
]

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_TP = TopicPartition(OFFSETS_TOPIC, 0)
OFFSET_METADATA_MAX_BYTES = 4096
"""Kafka's ``offset.metadata.max.bytes``."""


@attrs.frozen(slots=True)
class OffsetAndMetadata:
    """A committed offset, and where its record sits in the offsets log (to order commits)."""

    offset: int
    metadata: str | None
    commit_timestamp_ms: int
    log_offset: int


def _key(group_id: str, tp: TopicPartition) -> bytes:
    return json.dumps([group_id, tp.topic, tp.partition]).encode()


def _value(offset: int, metadata: str | None, now_ms: int) -> bytes:
    return json.dumps({"offset": offset, "metadata": metadata, "timestamp": now_ms}).encode()


class GroupCoordinator:
    """Committed and pending offsets of every group, over the ``__consumer_offsets`` log.

    ``pending_offsets=False`` is the broken mode of the PENDING_TXN_OFFSETS safeguard:
    transactional offsets are current as soon as they are written, and an abort keeps them.
    """

    def __init__(
        self,
        log: PartitionLog,
        *,
        partition_exists: Callable[[TopicPartition], bool],
        pending_offsets: bool = True,
    ) -> None:
        self.log = log
        self._partition_exists = partition_exists
        self.pending_offsets = pending_offsets
        self.committed: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        # group -> producer id -> offsets waiting for that producer's marker
        self.pending: dict[str, dict[int, dict[TopicPartition, OffsetAndMetadata]]] = {}

    # --- validation ------------------------------------------------------------------------

    def check_commit(
        self, group_id: str, partitions: Iterable[OffsetCommitPartition]
    ) -> tuple[ErrorCode, str | None, list[OffsetCommitPartitionResponse]]:
        """Refusals per partition; a request with any refusal writes nothing.

        Simplified: Kafka commits the partitions it can and fails only the others.
        """
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, "the group id must not be empty", []
        refused = []
        for wanted in partitions:
            tp = TopicPartition(wanted.topic, wanted.partition)
            problem: tuple[ErrorCode, str] | None = None
            if not self._partition_exists(tp):
                problem = (
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    f"there is no partition {tp} to commit an offset for",
                )
            elif wanted.committed_offset < 0:
                problem = (
                    ErrorCode.INVALID_REQUEST,
                    f"offset {wanted.committed_offset} for {tp} is negative; commit the next "
                    "offset to consume, 0 or more",
                )
            elif (
                wanted.committed_metadata is not None
                and len(wanted.committed_metadata.encode()) > OFFSET_METADATA_MAX_BYTES
            ):
                problem = (
                    ErrorCode.OFFSET_METADATA_TOO_LARGE,
                    f"offset metadata for {tp} is over {OFFSET_METADATA_MAX_BYTES} bytes",
                )
            if problem is not None:
                refused.append(
                    OffsetCommitPartitionResponse(
                        wanted.topic, wanted.partition, problem[0], error_message=problem[1]
                    )
                )
        if refused:
            return refused[0].error_code, refused[0].error_message, refused
        return ErrorCode.NONE, None, []

    # --- writes ----------------------------------------------------------------------------

    def commit(
        self, group_id: str, partitions: tuple[OffsetCommitPartition, ...], now_ms: int
    ) -> None:
        """Write plain offset commits (already checked); they are current at once."""
        batch = self._append(group_id, partitions, now_ms, producer=None)
        for position, wanted in enumerate(partitions):
            tp = TopicPartition(wanted.topic, wanted.partition)
            self.committed.setdefault(group_id, {})[tp] = OffsetAndMetadata(
                wanted.committed_offset,
                wanted.committed_metadata,
                now_ms,
                batch.base_offset + position,
            )

    def commit_transactional(
        self,
        group_id: str,
        partitions: tuple[OffsetCommitPartition, ...],
        now_ms: int,
        *,
        producer_id: int,
        producer_epoch: int,
    ) -> RecordBatch:
        """Write offsets inside a transaction (already checked); pending until the marker."""
        batch = self._append(group_id, partitions, now_ms, producer=(producer_id, producer_epoch))
        for position, record in enumerate(batch.records):
            tp, offset = self._decode(record, batch.base_offset + position)
            self._hold(group_id, producer_id, tp, offset)
        return batch

    def _append(
        self,
        group_id: str,
        partitions: tuple[OffsetCommitPartition, ...],
        now_ms: int,
        *,
        producer: tuple[int, int] | None,
    ) -> RecordBatch:
        records = tuple(
            Record(
                value=_value(p.committed_offset, p.committed_metadata, now_ms),
                key=_key(group_id, TopicPartition(p.topic, p.partition)),
                timestamp=now_ms,
            )
            for p in partitions
        )
        if producer is None:
            batch = RecordBatch(records=records)
        else:
            batch = RecordBatch(
                records=records,
                producer_id=producer[0],
                producer_epoch=producer[1],
                is_transactional=True,
            )
        stamped = self.log.append(batch)
        self.log.flush()
        return stamped

    def _hold(
        self, group_id: str, producer_id: int, tp: TopicPartition, offset: OffsetAndMetadata
    ) -> None:
        if self.pending_offsets:
            self.pending.setdefault(group_id, {}).setdefault(producer_id, {})[tp] = offset
        else:
            self.committed.setdefault(group_id, {})[tp] = offset

    @staticmethod
    def _decode(record: Record, log_offset: int) -> tuple[TopicPartition, OffsetAndMetadata]:
        assert record.key is not None and record.value is not None
        _, topic, partition = json.loads(record.key)
        value = json.loads(record.value)
        return TopicPartition(topic, partition), OffsetAndMetadata(
            value["offset"], value["metadata"], value["timestamp"], log_offset
        )

    def complete_transaction(self, producer_id: int, result: ControlType) -> None:
        """The marker of ``producer_id`` reached the offsets log: settle its pending offsets.

        On COMMIT each pending offset becomes current unless a later commit already replaced
        it; on ABORT they are dropped (Kafka's ``replayEndTransactionMarker``).
        """
        for group_id in list(self.pending):
            offsets = self.pending[group_id].pop(producer_id, None)
            if not self.pending[group_id]:
                del self.pending[group_id]
            if offsets is None or result is not ControlType.COMMIT:
                continue
            committed = self.committed.setdefault(group_id, {})
            for tp, offset in offsets.items():
                existing = committed.get(tp)
                if existing is None or existing.log_offset < offset.log_offset:
                    committed[tp] = offset

    def load(self) -> None:
        """Rebuild committed and pending offsets by replaying the offsets log."""
        self.committed = {}
        self.pending = {}
        for batch in self.log.batches():
            if batch.is_control:
                control_type = batch.control_type
                if control_type is not None:
                    self.complete_transaction(batch.producer_id, control_type)
                continue
            for position, record in enumerate(batch.records):
                if record.key is None:
                    continue
                group_id = json.loads(record.key)[0]
                tp, offset = self._decode(record, batch.base_offset + position)
                if batch.is_transactional:
                    self._hold(group_id, batch.producer_id, tp, offset)
                else:
                    self.committed.setdefault(group_id, {})[tp] = offset

    # --- reads -----------------------------------------------------------------------------

    def has_pending(self, group_id: str, tp: TopicPartition) -> bool:
        return any(tp in offsets for offsets in self.pending.get(group_id, {}).values())

    def fetch(
        self, group_id: str, partitions: tuple[TopicPartition, ...] | None, require_stable: bool
    ) -> list[OffsetFetchPartitionResponse]:
        committed = self.committed.get(group_id, {})
        wanted = sorted(committed) if partitions is None else list(partitions)
        results = []
        for tp in wanted:
            if require_stable and self.has_pending(group_id, tp):
                results.append(
                    OffsetFetchPartitionResponse(
                        tp.topic,
                        tp.partition,
                        error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT,
                        error_message=f"a transaction has offsets for {tp} waiting for its "
                        "marker; ask again shortly",
                    )
                )
                continue
            found = committed.get(tp)
            if found is None:
                results.append(OffsetFetchPartitionResponse(tp.topic, tp.partition))
            else:
                results.append(
                    OffsetFetchPartitionResponse(
                        tp.topic, tp.partition, found.offset, found.metadata
                    )
                )
        return results
