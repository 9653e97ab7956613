"""The broker: routes typed requests to logs and producer state, and models a crash.

Rules for everything in ``core/``:

1. The core never reads a clock, sleeps or does I/O. Time arrives as ``now`` (seconds, the
   simulated clock of the layer above); whatever must happen later is the caller's to drive.
2. Durable state (topic metadata, the flushed part of each log, the internal logs
   ``__transaction_state`` and ``__consumer_offsets``, the producer id block) is kept apart
   from volatile state (producer state tables, the coordinators' memory, markers not yet
   written, the unflushed tail, the id counter). ``crash()`` drops the volatile part;
   ``recover()`` rebuilds it from the durable part, by replaying the logs, as Kafka does.
   That is the whole crash model.
3. Work that Kafka does in the background happens in ``tick(now)``: flushing, aborting
   timed-out transactions, group deadlines (session and rebalance timeouts), and writing
   transaction markers. ``handle`` does the time-based
   part first (flush and timeouts), but only ``tick`` writes markers, as Kafka's coordinator
   sends them after it answered EndTxn. Until then the transaction is PrepareCommit or
   PrepareAbort, and its producer's next requests get CONCURRENT_TRANSACTIONS. The layer
   above calls ``tick`` whenever time passes.
4. Bad input never raises: it gets a Kafka error code and a message that says what was wrong,
   and a refused request changes nothing. One refusal acts, as in Kafka: an InitProducerId
   that finds a transaction left open by an earlier instance fences and aborts it, and answers
   CONCURRENT_TRANSACTIONS so that the caller retries.
5. Iterate only in insertion or sorted order, so the same requests give the same state.
6. Some answers wait, as in Kafka's purgatory: a JoinGroup is answered when the rebalance
   completes, a SyncGroup when the leader's assignment arrives. ``handle`` then returns None,
   and the answer comes later from ``take_delayed_responses()``, paired with its request.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from minikafka.core.config import BrokerConfig, Safeguard
from minikafka.core.errors import ErrorCode
from minikafka.core.groups import OFFSETS_TOPIC, OFFSETS_TP, GroupCoordinator, GroupSnapshot
from minikafka.core.log import PartitionLog
from minikafka.core.messages import (
    ACKS_ALL,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    AbortedTransaction,
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResult,
    BrokerMetadata,
    CoordinatorType,
    CreatableTopic,
    CreatableTopicResult,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    EndTxnRequest,
    EndTxnResponse,
    FetchPartitionResponse,
    FetchRequest,
    FetchResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    IsolationLevel,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListOffsetsPartitionResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    OffsetCommitPartitionResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    PartitionMetadata,
    ProducePartitionData,
    ProducePartitionResponse,
    ProduceRequest,
    ProduceResponse,
    Request,
    Response,
    SyncGroupRequest,
    SyncGroupResponse,
    TopicMetadata,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.producer_state import (
    Append,
    BatchMetadata,
    Duplicate,
    ProducerStateTable,
    Rejected,
)
from minikafka.core.records import (
    MAX_SEQUENCE,
    ControlType,
    RecordBatch,
    TopicPartition,
    control_batch,
)
from minikafka.core.transactions import (
    TRANSACTION_STATE_TOPIC,
    MarkerJob,
    TransactionCoordinator,
    TransactionMetadata,
)

__all__ = ["Broker", "BrokerSnapshot", "MarkerWritten", "PartitionSnapshot", "ProducerSnapshot"]


@attrs.frozen(slots=True)
class MarkerWritten:
    """One transaction marker the broker's background work wrote (for traces)."""

    transactional_id: str
    result: ControlType
    partition: TopicPartition


PRODUCER_ID_BLOCK_SIZE = 1000
"""Kafka hands out producer ids in blocks of 1000, reserving each block durably first."""
MAX_PRODUCER_ID = 2**63 - 1
MAX_PRODUCER_EPOCH = 2**15 - 1
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")

TopicPartitionKey = tuple[str, int]


@attrs.frozen
class ProducerSnapshot:
    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    batches: tuple[BatchMetadata, ...]


@attrs.frozen
class PartitionSnapshot:
    topic: str
    partition: int
    log_end_offset: int
    high_watermark: int
    last_stable_offset: int
    batches: tuple[RecordBatch, ...]


@attrs.frozen
class BrokerSnapshot:
    """Everything the broker holds, as values: for invariants, rendering and equality checks."""

    running: bool
    partitions: tuple[PartitionSnapshot, ...]
    producers: tuple[ProducerSnapshot, ...]
    next_producer_id: int
    producer_id_block_end: int
    transactions: tuple[TransactionMetadata, ...] = ()
    pending_markers: tuple[MarkerJob, ...] = ()
    committed_offsets: tuple[tuple[str, TopicPartition, int], ...] = ()
    """(group, partition, offset) for every committed offset."""
    pending_offsets: tuple[tuple[str, int, TopicPartition, int], ...] = ()
    """(group, producer id, partition, offset) for transactional offsets awaiting a marker."""
    groups: tuple[GroupSnapshot, ...] = ()


@attrs.define(eq=False)
class _Disk:
    """What survives a crash. Logs are truncated to their flushed offset on the way down."""

    topics: dict[str, list[PartitionLog]] = attrs.Factory(dict)
    producer_id_block_end: int = 0
    transaction_log: PartitionLog = attrs.Factory(lambda: PartitionLog(TRANSACTION_STATE_TOPIC, 0))
    offsets_log: PartitionLog = attrs.Factory(lambda: PartitionLog(OFFSETS_TOPIC, 0))
    coordinator_epoch: int = 0


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a topic name (Kafka's rules), or None if it can."""
    if not name:
        return "a topic name cannot be empty"
    if name in (".", ".."):
        return f"a topic cannot be named {name!r}"
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"a topic name has at most {MAX_TOPIC_NAME_LENGTH} characters, not {len(name)}"
    if not _LEGAL_TOPIC_NAME.fullmatch(name):
        return f"topic name {name!r} may only use ASCII letters, digits, '.', '_' and '-'"
    if name.startswith("__"):
        return f"topic names starting with '__' are reserved for internal topics ({name!r})"
    return None


class Broker:
    """A single Kafka broker as a pure state machine: ``handle(request, now=...)``.

    ``crash()`` takes it down, losing volatile state and the unflushed log tail;
    ``recover()`` brings it back with producer state, transactions and offsets rebuilt from
    the logs. It is also the transaction coordinator and the group coordinator.
    """

    def __init__(self, config: BrokerConfig | None = None, *, node_id: int = 0) -> None:
        self.config = config if config is not None else BrokerConfig()
        self.node_id = node_id
        self._disk = _Disk()
        self.running = True
        self._producer_states: dict[TopicPartitionKey, ProducerStateTable] = {}
        self._next_producer_id = 0
        # Logs with an unflushed tail, and when (seconds) the oldest unflushed append came.
        self._dirty: dict[TopicPartitionKey, float] = {}
        # Read on every produce request, so looked up once (the config is frozen).
        self._flush_interval_s = self.config.log_flush_interval_ms / 1000
        self._check_sequence = self.config.enabled(Safeguard.PRODUCER_DEDUP)
        self._check_epoch = self.config.enabled(Safeguard.EPOCH_FENCING)
        self._lso_check = self.config.enabled(Safeguard.LAST_STABLE_OFFSET)
        self.transaction_coordinator = self._new_transaction_coordinator()
        self.group_coordinator = self._new_group_coordinator()
        self._handlers: dict[type[Any], Callable[[Any, float], Response | None]] = {
            ProduceRequest: self._handle_produce,
            FetchRequest: self._handle_fetch,
            ListOffsetsRequest: self._handle_list_offsets,
            MetadataRequest: self._handle_metadata,
            CreateTopicsRequest: self._handle_create_topics,
            InitProducerIdRequest: self._handle_init_producer_id,
            OffsetCommitRequest: self._handle_offset_commit,
            OffsetFetchRequest: self._handle_offset_fetch,
            AddPartitionsToTxnRequest: self._handle_add_partitions_to_txn,
            AddOffsetsToTxnRequest: self._handle_add_offsets_to_txn,
            EndTxnRequest: self._handle_end_txn,
            TxnOffsetCommitRequest: self._handle_txn_offset_commit,
            FindCoordinatorRequest: self._handle_find_coordinator,
            JoinGroupRequest: self._handle_join_group,
            SyncGroupRequest: self._handle_sync_group,
            HeartbeatRequest: self._handle_heartbeat,
            LeaveGroupRequest: self._handle_leave_group,
            DeleteGroupsRequest: self._handle_delete_groups,
        }

    def _new_transaction_coordinator(self) -> TransactionCoordinator:
        return TransactionCoordinator(
            self._disk.transaction_log,
            allocate_producer_id=self._allocate_producer_id,
            transaction_max_timeout_ms=self.config.transaction_max_timeout_ms,
            coordinator_epoch=self._disk.coordinator_epoch,
            fence_epochs=self.config.enabled(Safeguard.EPOCH_FENCING),
        )

    def _new_group_coordinator(self) -> GroupCoordinator:
        return GroupCoordinator(
            self._disk.offsets_log,
            partition_exists=lambda tp: self._log(tp.topic, tp.partition) is not None,
            pending_offsets=self.config.enabled(Safeguard.PENDING_TXN_OFFSETS),
            generation_fencing=self.config.enabled(Safeguard.GENERATION_FENCING),
            min_session_timeout_ms=self.config.group_min_session_timeout_ms,
            max_session_timeout_ms=self.config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms=self.config.group_initial_rebalance_delay_ms,
            coordinator_epoch=self._disk.coordinator_epoch,
        )

    # --- the one entry point -------------------------------------------------------------

    def handle(self, request: Request, *, now: float) -> Response | None:
        """Answer one request at time ``now`` (seconds).

        Returns None for a Produce with acks=0, and for a JoinGroup or SyncGroup whose answer
        is held (rule 6: it comes later from ``take_delayed_responses``).
        """
        handler = self._handlers.get(type(request))
        if handler is None:
            raise TypeError(
                f"Broker.handle takes a request from minikafka.core.messages, "
                f"not {type(request).__name__}"
            )
        if not self.running:
            return request.error_response(
                ErrorCode.BROKER_NOT_AVAILABLE, "the broker is down; call recover() first"
            )
        # Background work first, but only when some is due: a log's flush (the oldest dirty
        # log comes first in ``_dirty``, as entries are added in time order) or a timeout.
        # Checking the oldest entry alone keeps this O(1) on every request.
        dirty = self._dirty
        if (
            dirty and now - next(iter(dirty.values())) >= self._flush_interval_s
        ) or self._deadline_passed(now):
            self.tick(now, marker_limit=0)
        response = handler(request, now)
        if response is None and isinstance(request, JoinGroupRequest | SyncGroupRequest):
            # The request may have completed its own wait (a leader's SyncGroup does).
            outbox = self.group_coordinator.outbox
            for position, (held, answer) in enumerate(outbox):
                if held is request:
                    del outbox[position]
                    return answer
        return response

    def _deadline_passed(self, now: float) -> bool:
        now_ms = now * 1000
        for deadline_ms in (
            self.transaction_coordinator.deadline_ms,
            self.group_coordinator.deadline_ms,
        ):
            if deadline_ms is not None and now_ms >= deadline_ms:
                return True
        return False

    def take_delayed_responses(self) -> list[tuple[Request, Response]]:
        """Answers to held JoinGroup and SyncGroup requests that are now ready, oldest first.

        Each comes with the request it answers (the same object that was handled). Call this
        after ``handle`` and ``tick``: a request, a timeout or a departure can complete other
        members' waits. A crash drops held requests unanswered, as it drops connections.
        """
        if not self.running:
            return []
        return self.group_coordinator.take_delayed_responses()

    def inspect(
        self, request: FetchRequest | ListOffsetsRequest | OffsetFetchRequest, *, now: float
    ) -> FetchResponse | ListOffsetsResponse | OffsetFetchResponse:
        """Answer a read as ``handle`` would, but without letting time pass.

        No background work runs first (no flush, no timeout, no marker), so an invariant or a
        picture can look at the broker without changing what happens next.
        """
        if not isinstance(request, FetchRequest | ListOffsetsRequest | OffsetFetchRequest):
            raise TypeError(
                f"inspect answers Fetch, ListOffsets and OffsetFetch, not {type(request).__name__}"
            )
        if not self.running:
            return request.error_response(
                ErrorCode.BROKER_NOT_AVAILABLE, "the broker is down; call recover() first"
            )
        handler = self._handlers[type(request)]
        response = handler(request, now)
        assert isinstance(response, FetchResponse | ListOffsetsResponse | OffsetFetchResponse)
        return response

    def tick(self, now: float, *, marker_limit: int | None = None) -> list[MarkerWritten]:
        """Let time pass and do the background work due by ``now``.

        Flushes logs whose unflushed tail is older than the flush interval, aborts
        transactions past their timeout (fencing their producers), and writes pending
        transaction markers, completing each transaction after its last marker.
        ``marker_limit`` writes at most that many markers (to stage a crash between them).
        Returns the markers written.
        """
        if not self.running:
            return []
        interval_s = self.config.log_flush_interval_ms / 1000
        for key, since in list(self._dirty.items()):
            if now - since >= interval_s:
                self.log(*key).flush()
                del self._dirty[key]
        now_ms = int(now * 1000)
        coordinator = self.transaction_coordinator
        if coordinator.deadline_ms is not None and now_ms > coordinator.deadline_ms:
            coordinator.expire(now_ms)
        groups = self.group_coordinator
        if groups.deadline_ms is not None and now_ms >= groups.deadline_ms:
            groups.expire(now_ms)
        return self.write_markers(now, limit=marker_limit)

    def next_tick(self, now: float) -> float | None:
        """The earliest time (seconds) at which ``tick`` has work, or None if it has none
        until a request makes some: ``now`` when markers are pending, else the first flush
        or timeout due. A driver may call ``tick`` only then, instead of at every interval."""
        if not self.running:
            return None
        if self.transaction_coordinator.pending_markers:
            return now
        due: list[float] = []
        interval_s = self.config.log_flush_interval_ms / 1000
        due.extend(since + interval_s for since in self._dirty.values())
        deadline_ms = self.transaction_coordinator.deadline_ms
        if deadline_ms is not None:
            due.append((deadline_ms + 1) / 1000)  # tick expires transactions strictly after
        deadline_ms = self.group_coordinator.deadline_ms
        if deadline_ms is not None:
            due.append(deadline_ms / 1000)
        return min(due, default=None)

    def write_markers(self, now: float, *, limit: int | None = None) -> list[MarkerWritten]:
        """Write pending transaction markers (at most ``limit``); returns those appended (a
        marker that would close nothing is skipped, and not returned)."""
        coordinator = self.transaction_coordinator
        now_ms = int(now * 1000)
        done = 0
        written: list[MarkerWritten] = []
        while coordinator.pending_markers and (limit is None or done < limit):
            job = next(iter(coordinator.pending_markers.values()))
            assert job.partitions, "a decided transaction always has partitions"
            tp = job.partitions[0]
            appended = self._write_marker(job, tp, now_ms)
            coordinator.marker_written(job.transactional_id, tp, now_ms)
            done += 1
            if appended:
                written.append(MarkerWritten(job.transactional_id, job.result, tp))
        return written

    def _write_marker(self, job: MarkerJob, tp: TopicPartition, now_ms: int) -> bool:
        """Append one marker to ``tp`` (Kafka's WriteTxnMarkers at the partition leader).

        The marker closes the producer's open transaction there and carries its epoch, so it
        also fences older epochs. A marker with a stale epoch is dropped, as Kafka cancels it.
        The coordinator epoch rides in the marker, as in Kafka, but is not checked: with one
        coordinator, whose pending markers die with it, no stale coordinator can send one.
        Simplified: Kafka appends a marker even when it closes nothing; here a marker of the
        same epoch that would close nothing is skipped, so writing a marker twice is harmless
        and leaves no trace. Returns whether a marker was appended.
        """
        log = self._disk.offsets_log if tp == OFFSETS_TP else self._log(tp.topic, tp.partition)
        if log is None:
            return False
        table = self.producer_state(tp.topic, tp.partition)
        entry = table.entries.get(job.producer_id)
        if entry is not None:
            if job.producer_epoch < entry.producer_epoch and self.config.enabled(
                Safeguard.EPOCH_FENCING
            ):
                return False
            if (
                job.producer_epoch == entry.producer_epoch
                and job.producer_id not in log.open_transactions
            ):
                return False
        marker = control_batch(
            job.result,
            producer_id=job.producer_id,
            producer_epoch=job.producer_epoch,
            coordinator_epoch=job.coordinator_epoch,
            timestamp=now_ms,
        )
        stamped = log.append(marker)
        log.flush()
        self._dirty.pop((tp.topic, tp.partition), None)
        table.update(stamped)
        if tp == OFFSETS_TP:
            self.group_coordinator.complete_transaction(job.producer_id, job.result)
        return True

    # --- crash and recovery --------------------------------------------------------------

    def crash(self) -> int:
        """Stop at once: drop volatile state and every unflushed record. Returns records lost.

        Crashing a broker that is already down does nothing.
        """
        if not self.running:
            return 0
        self.running = False
        lost = 0
        for logs in self._disk.topics.values():
            for log in logs:
                lost += log.truncate_to_flushed()
        self._producer_states = {}
        self._dirty = {}
        self._next_producer_id = 0
        self.transaction_coordinator = self._new_transaction_coordinator()
        self.group_coordinator = self._new_group_coordinator()
        return lost

    def recover(self) -> None:
        """Start again from disk: rebuild producer state, transactions and offsets by replay.

        The coordinator then resumes what the crash interrupted: a transaction found in
        PrepareCommit or PrepareAbort gets its markers and completes (roll-forward).
        """
        if self.running:
            raise RuntimeError("recover() brings back a crashed broker; call crash() first")
        for log in [*self.logs(), self._disk.offsets_log]:
            table = ProducerStateTable()
            for batch in log.batches():
                table.update(batch)
            self._producer_states[(log.topic, log.partition)] = table
        # Never reuse an id: continue after the last block reserved on disk.
        self._next_producer_id = self._disk.producer_id_block_end
        # A new coordinator epoch, as a newly elected coordinator has.
        self._disk.coordinator_epoch += 1
        self.transaction_coordinator = self._new_transaction_coordinator()
        self.transaction_coordinator.load(roll_forward=self.config.enabled(Safeguard.ROLL_FORWARD))
        self.group_coordinator = self._new_group_coordinator()
        self.group_coordinator.load()
        self.running = True

    def restart(self) -> int:
        """``crash()`` then ``recover()``. Returns the number of records the crash lost."""
        lost = self.crash()
        self.recover()
        return lost

    # --- inspection ----------------------------------------------------------------------

    def topics(self) -> dict[str, int]:
        """Topic names and their partition counts, in creation order."""
        return {name: len(logs) for name, logs in self._disk.topics.items()}

    def log(self, topic: str, partition: int) -> PartitionLog:
        """The log of one partition (for inspection; requests are the way to change it)."""
        log = self._log(topic, partition)
        if log is None:
            raise KeyError(f"no partition {topic}-{partition}; create the topic first")
        return log

    def logs(self) -> Iterator[PartitionLog]:
        for logs in self._disk.topics.values():
            yield from logs

    def internal_log(self, name: str) -> PartitionLog:
        """The log of an internal topic: ``__transaction_state`` or ``__consumer_offsets``."""
        if name == TRANSACTION_STATE_TOPIC:
            return self._disk.transaction_log
        if name == OFFSETS_TOPIC:
            return self._disk.offsets_log
        raise KeyError(
            f"no internal topic {name!r}; use {TRANSACTION_STATE_TOPIC!r} or {OFFSETS_TOPIC!r}"
        )

    def producer_state(self, topic: str, partition: int) -> ProducerStateTable:
        table = self._producer_states.get((topic, partition))
        if table is None:
            table = self._producer_states[topic, partition] = ProducerStateTable()
        return table

    def snapshot(self) -> BrokerSnapshot:
        """The broker's whole state as values. Costs a walk over every log: not a hot path."""
        partitions = tuple(
            PartitionSnapshot(
                log.topic,
                log.partition,
                log.log_end_offset,
                log.high_watermark,
                log.last_stable_offset,
                tuple(log.batches()),
            )
            for log in self.logs()
        )
        producers = tuple(
            ProducerSnapshot(topic, partition, pid, entry.producer_epoch, tuple(entry.batches))
            for (topic, partition), table in self._producer_states.items()
            for pid, entry in table.entries.items()
        )
        return BrokerSnapshot(
            running=self.running,
            partitions=partitions,
            producers=producers,
            next_producer_id=self._next_producer_id,
            producer_id_block_end=self._disk.producer_id_block_end,
            transactions=tuple(self.transaction_coordinator.transactions.values()),
            pending_markers=tuple(self.transaction_coordinator.pending_markers.values()),
            committed_offsets=tuple(
                (group, tp, offset.offset)
                for group, offsets in self.group_coordinator.committed.items()
                for tp, offset in offsets.items()
            ),
            pending_offsets=tuple(
                (group, pid, tp, offset.offset)
                for group, by_pid in self.group_coordinator.pending.items()
                for pid, offsets in by_pid.items()
                for tp, offset in offsets.items()
            ),
            groups=self.group_coordinator.snapshot(),
        )

    def create_topic(self, name: str, partitions: int = 1, *, now: float = 0.0) -> None:
        """Create a topic, raising ``ValueError`` with the broker's message if it cannot."""
        response = self._handle_create_topics(
            CreateTopicsRequest(topics=(CreatableTopic(name, partitions),)), now
        )
        result = response.topics[0]
        if result.error_code is not ErrorCode.NONE:
            raise ValueError(f"{result.error_code.name}: {result.error_message}")

    # --- handlers ------------------------------------------------------------------------

    def _log(self, topic: str, partition: int) -> PartitionLog | None:
        logs = self._disk.topics.get(topic)
        if logs is None or not 0 <= partition < len(logs):
            return None
        return logs[partition]

    @staticmethod
    def _unknown_partition(topic: str, partition: int) -> str:
        return f"this broker has no partition {topic}-{partition}; create the topic first"

    def _handle_produce(self, request: ProduceRequest, now: float) -> ProduceResponse | None:
        if request.acks not in (0, 1, ACKS_ALL):
            return request.error_response(
                ErrorCode.INVALID_REQUIRED_ACKS,
                f"acks must be 0, 1 or -1 (all), not {request.acks}",
            )
        now_ms = int(now * 1000)
        results = [
            self._produce_one(data, request.acks, now, now_ms) for data in request.partitions
        ]
        if request.acks == 0:
            return None
        return ProduceResponse(tuple(results))

    def _produce_one(
        self, data: ProducePartitionData, acks: int, now: float, now_ms: int
    ) -> ProducePartitionResponse:
        topic, partition, batch = data.topic, data.partition, data.batch
        log = self._log(topic, partition)
        if log is None:
            return ProducePartitionResponse(
                topic,
                partition,
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                error_message=self._unknown_partition(topic, partition),
            )
        size = batch.size_bytes
        problem = self._batch_problem(batch, size)
        if problem is not None:
            error, message = problem
            return ProducePartitionResponse(topic, partition, error, error_message=message)
        key = (topic, partition)
        refusal = self._transaction_problem(batch, log)
        if refusal is not None:
            return ProducePartitionResponse(topic, partition, refusal[0], error_message=refusal[1])
        table = None
        if batch.producer_id >= 0:
            table = self.producer_state(topic, partition)
            plug_in = self.config.sequence_check
            if plug_in is not None:  # a classroom exercise's own check
                entry = table.entries.get(batch.producer_id)
                # A copy: a plug-in under construction must not be able to corrupt the state.
                verdict = plug_in(None if entry is None else copy.deepcopy(entry), batch)
                if not isinstance(verdict, Append | Duplicate | Rejected):
                    raise TypeError(
                        f"sequence_check returned {verdict!r}; return APPEND, "
                        "Duplicate(original) or Rejected(error, message)"
                    )
            else:
                verdict = table.validate(
                    batch, check_sequence=self._check_sequence, check_epoch=self._check_epoch
                )
            if isinstance(verdict, Duplicate):
                # A retry of an appended batch: success, with the offset it got the first time.
                return ProducePartitionResponse(
                    topic,
                    partition,
                    base_offset=verdict.original.first_offset,
                    log_start_offset=log.log_start_offset,
                )
            if isinstance(verdict, Rejected):
                return ProducePartitionResponse(
                    topic, partition, verdict.error, error_message=verdict.message
                )
        max_timestamp = batch.max_timestamp  # one walk of the records, for the log and the table
        stamped = log.append(batch, size_bytes=size, max_timestamp=max_timestamp)
        if table is not None:
            table.update(stamped, max_timestamp=max_timestamp)
        if acks == ACKS_ALL:
            log.flush()
            self._dirty.pop(key, None)
        elif key not in self._dirty:
            self._dirty[key] = now
        return ProducePartitionResponse(
            topic, partition, base_offset=stamped.base_offset, log_start_offset=log.log_start_offset
        )

    def _transaction_problem(
        self, batch: RecordBatch, log: PartitionLog
    ) -> tuple[ErrorCode, str] | None:
        """A transactional write must go to a partition of the producer's ongoing transaction,
        with the current epoch (KIP-890 part 1); a plain write may not interleave with one."""
        if batch.is_transactional:
            error, message = self.transaction_coordinator.verify_write(
                batch.producer_id,
                batch.producer_epoch,
                TopicPartition(log.topic, log.partition),
            )
            if error is not ErrorCode.NONE:
                return error, message or error.name
        elif batch.producer_id >= 0 and batch.producer_id in log.open_transactions:
            return (
                ErrorCode.INVALID_TXN_STATE,
                f"producer {batch.producer_id} sent a non-transactional batch to "
                f"{log.topic}-{log.partition} while its transaction there is open",
            )
        return None

    def _batch_problem(self, batch: RecordBatch, size: int) -> tuple[ErrorCode, str] | None:
        if not batch.records:
            return ErrorCode.INVALID_RECORD, "a batch must hold at least one record"
        if batch.is_control:
            return ErrorCode.INVALID_RECORD, "clients may not write control batches (markers)"
        if batch.is_transactional and batch.producer_id < 0:
            return (
                ErrorCode.INVALID_RECORD,
                "a transactional batch needs the producer id from InitProducerId",
            )
        if batch.producer_id < -1 or batch.producer_id > MAX_PRODUCER_ID:
            return ErrorCode.INVALID_RECORD, f"invalid producer id {batch.producer_id}"
        if batch.producer_id >= 0:
            if not 0 <= batch.producer_epoch <= MAX_PRODUCER_EPOCH:
                return (
                    ErrorCode.INVALID_RECORD,
                    f"producer epoch must be between 0 and {MAX_PRODUCER_EPOCH}, "
                    f"not {batch.producer_epoch}",
                )
            if not 0 <= batch.base_sequence <= MAX_SEQUENCE:
                return (
                    ErrorCode.INVALID_RECORD,
                    f"base sequence must be between 0 and {MAX_SEQUENCE}, "
                    f"not {batch.base_sequence}",
                )
        if size > self.config.message_max_bytes:
            return (
                ErrorCode.MESSAGE_TOO_LARGE,
                f"the batch is {size} bytes; message_max_bytes is {self.config.message_max_bytes}",
            )
        return None

    def _stable_offset(self, log: PartitionLog) -> int:
        """The last stable offset; without the LAST_STABLE_OFFSET safeguard, the HW."""
        plug_in = self.config.stable_offset
        if plug_in is not None:  # a classroom exercise's own rule
            return plug_in(log.high_watermark, tuple(sorted(log.open_transactions.values())))
        return log.last_stable_offset if self._lso_check else log.high_watermark

    def _handle_fetch(self, request: FetchRequest, now: float) -> FetchResponse:
        if request.max_bytes < 0:
            return request.error_response(
                ErrorCode.INVALID_REQUEST, f"max_bytes must be 0 or more, not {request.max_bytes}"
            )
        remaining = request.max_bytes
        returned_data = False
        results = []
        for wanted in request.partitions:
            topic, partition, offset = wanted.topic, wanted.partition, wanted.fetch_offset
            log = self._log(topic, partition)
            if log is None:
                results.append(
                    FetchPartitionResponse(
                        topic=topic,
                        partition=partition,
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        error_message=self._unknown_partition(topic, partition),
                    )
                )
                continue
            stable = self._stable_offset(log)
            answer = functools.partial(
                FetchPartitionResponse,
                topic=topic,
                partition=partition,
                high_watermark=log.high_watermark,
                last_stable_offset=stable,
                log_start_offset=log.log_start_offset,
            )
            if wanted.partition_max_bytes <= 0:
                results.append(
                    answer(
                        error_code=ErrorCode.INVALID_FETCH_SIZE,
                        error_message="partition_max_bytes must be positive, "
                        f"not {wanted.partition_max_bytes}",
                    )
                )
                continue
            if not log.log_start_offset <= offset <= log.log_end_offset:
                results.append(
                    answer(
                        error_code=ErrorCode.OFFSET_OUT_OF_RANGE,
                        error_message=f"fetch offset {offset} is outside "
                        f"[{log.log_start_offset}, {log.log_end_offset}] of {topic}-{partition}",
                    )
                )
                continue
            read_committed = request.isolation_level is IsolationLevel.READ_COMMITTED
            upper_bound = stable if read_committed else log.high_watermark
            batches: list[RecordBatch] = []
            aborted: tuple[AbortedTransaction, ...] = ()
            if offset < upper_bound:
                # KIP-74: only the first partition that returns data may exceed the limits.
                batches = log.fetch(
                    offset,
                    upper_bound=upper_bound,
                    max_bytes=min(wanted.partition_max_bytes, max(remaining, 0)),
                    min_one_batch=not returned_data,
                )
                remaining -= log.fetched_bytes(batches)
                returned_data = returned_data or bool(batches)
                if read_committed and batches and self._lso_check:
                    aborted = log.aborted_for_fetch(offset, batches[-1].next_offset)
            results.append(answer(batches=tuple(batches), aborted_transactions=aborted))
        return FetchResponse(tuple(results))

    def _handle_list_offsets(self, request: ListOffsetsRequest, now: float) -> ListOffsetsResponse:
        # read_committed sees the log up to the last stable offset, the rest up to the HW.
        if request.isolation_level is IsolationLevel.READ_COMMITTED:
            bound = self._stable_offset
        else:

            def bound(log: PartitionLog) -> int:
                return log.high_watermark

        results = []
        for wanted in request.partitions:
            topic, partition, timestamp = wanted.topic, wanted.partition, wanted.timestamp
            log = self._log(topic, partition)
            if log is None:
                results.append(
                    ListOffsetsPartitionResponse(
                        topic,
                        partition,
                        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        error_message=self._unknown_partition(topic, partition),
                    )
                )
            elif timestamp == EARLIEST_TIMESTAMP:
                results.append(
                    ListOffsetsPartitionResponse(topic, partition, offset=log.log_start_offset)
                )
            elif timestamp == LATEST_TIMESTAMP:
                results.append(ListOffsetsPartitionResponse(topic, partition, offset=bound(log)))
            elif timestamp >= 0:
                found = log.offset_for_timestamp(timestamp, upper_bound=bound(log))
                found_ts = log.record_at(found).timestamp if found >= 0 else -1
                results.append(
                    ListOffsetsPartitionResponse(topic, partition, timestamp=found_ts, offset=found)
                )
            else:
                results.append(
                    ListOffsetsPartitionResponse(
                        topic,
                        partition,
                        ErrorCode.INVALID_REQUEST,
                        error_message=f"timestamp {timestamp} is not supported: use -1 "
                        "(latest), -2 (earliest) or a time in milliseconds",
                    )
                )
        return ListOffsetsResponse(tuple(results))

    def _topic_metadata(self, name: str) -> TopicMetadata:
        logs = self._disk.topics[name]
        return TopicMetadata(
            name=name,
            partitions=tuple(PartitionMetadata(log.partition, self.node_id) for log in logs),
        )

    def _handle_metadata(self, request: MetadataRequest, now: float) -> MetadataResponse:
        names = list(self._disk.topics) if request.topics is None else list(request.topics)
        topics = []
        for name in names:
            if name in self._disk.topics:
                topics.append(self._topic_metadata(name))
                continue
            problem = topic_name_problem(name)
            if problem is not None:
                topics.append(
                    TopicMetadata(
                        name=name,
                        error_code=ErrorCode.INVALID_TOPIC_EXCEPTION,
                        error_message=problem,
                    )
                )
            elif request.allow_auto_topic_creation and self.config.auto_create_topics_enable:
                # Simplified: Kafka first answers LEADER_NOT_AVAILABLE for a topic it has just
                # auto-created; with one broker the leader exists at once.
                self._create(name, self.config.num_partitions)
                topics.append(self._topic_metadata(name))
            else:
                topics.append(
                    TopicMetadata(
                        name=name,
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        error_message=f"topic {name!r} does not exist and auto-creation is off",
                    )
                )
        return MetadataResponse(
            brokers=(BrokerMetadata(self.node_id, "minikafka", 9092),),
            topics=tuple(topics),
            controller_id=self.node_id,
        )

    def _create(self, name: str, num_partitions: int) -> None:
        self._disk.topics[name] = [PartitionLog(name, p) for p in range(num_partitions)]

    def _handle_create_topics(
        self, request: CreateTopicsRequest, now: float
    ) -> CreateTopicsResponse:
        counts: dict[str, int] = {}
        for topic in request.topics:
            counts[topic.name] = counts.get(topic.name, 0) + 1
        results = []
        for topic in request.topics:
            result = self._create_one(topic, counts[topic.name] > 1, request.validate_only)
            results.append(result)
        return CreateTopicsResponse(tuple(results))

    def _create_one(
        self, topic: CreatableTopic, repeated: bool, validate_only: bool
    ) -> CreatableTopicResult:
        name = topic.name
        partitions = (
            self.config.num_partitions if topic.num_partitions == -1 else topic.num_partitions
        )

        def refuse(error: ErrorCode, message: str) -> CreatableTopicResult:
            return CreatableTopicResult(name, error, error_message=message)

        if repeated:
            return refuse(
                ErrorCode.INVALID_REQUEST, f"topic {name!r} is named twice in one request"
            )
        problem = topic_name_problem(name)
        if problem is not None:
            return refuse(ErrorCode.INVALID_TOPIC_EXCEPTION, problem)
        if name in self._disk.topics:
            return refuse(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if not 1 <= partitions <= self.config.max_partitions_per_topic:
            return refuse(
                ErrorCode.INVALID_PARTITIONS,
                f"a topic needs between 1 and {self.config.max_partitions_per_topic} "
                f"partitions, not {topic.num_partitions}",
            )
        if topic.replication_factor not in (-1, 1):
            return refuse(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"this cluster has one broker, so the replication factor must be 1, "
                f"not {topic.replication_factor}",
            )
        if not validate_only:
            self._create(name, partitions)
        return CreatableTopicResult(name, num_partitions=partitions)

    def _handle_init_producer_id(
        self, request: InitProducerIdRequest, now: float
    ) -> InitProducerIdResponse:
        if request.transactional_id is None:
            # Kafka ignores any producer id and epoch sent without a transactional id.
            return InitProducerIdResponse(
                producer_id=self._allocate_producer_id(), producer_epoch=0
            )
        error, message, metadata = self.transaction_coordinator.init_producer_id(
            request.transactional_id,
            timeout_ms=request.transaction_timeout_ms,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
            now_ms=int(now * 1000),
        )
        if metadata is None:
            return request.error_response(error, message or error.name)
        return InitProducerIdResponse(
            producer_id=metadata.producer_id, producer_epoch=metadata.producer_epoch
        )

    def _handle_add_partitions_to_txn(
        self, request: AddPartitionsToTxnRequest, now: float
    ) -> AddPartitionsToTxnResponse:
        if not request.partitions:
            return request.error_response(ErrorCode.INVALID_REQUEST, "no partitions to add")
        unknown = [tp for tp in request.partitions if self._log(tp.topic, tp.partition) is None]
        if unknown:
            # Kafka's answer: the unknown ones fail, the others were not attempted.
            return AddPartitionsToTxnResponse(
                tuple(
                    AddPartitionsToTxnResult(
                        tp.topic,
                        tp.partition,
                        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                        error_message=self._unknown_partition(tp.topic, tp.partition),
                    )
                    if tp in unknown
                    else AddPartitionsToTxnResult(
                        tp.topic,
                        tp.partition,
                        ErrorCode.OPERATION_NOT_ATTEMPTED,
                        error_message="not added, because another partition in the request "
                        "does not exist",
                    )
                    for tp in request.partitions
                )
            )
        error, message = self.transaction_coordinator.add_partitions(
            request.transactional_id,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
            partitions=request.partitions,
            now_ms=int(now * 1000),
        )
        if error is not ErrorCode.NONE:
            return request.error_response(error, message or error.name)
        return AddPartitionsToTxnResponse(
            tuple(AddPartitionsToTxnResult(tp.topic, tp.partition) for tp in request.partitions)
        )

    def _handle_add_offsets_to_txn(
        self, request: AddOffsetsToTxnRequest, now: float
    ) -> AddOffsetsToTxnResponse:
        if not request.group_id:
            return request.error_response(
                ErrorCode.INVALID_GROUP_ID, "the group id must not be empty"
            )
        error, message = self.transaction_coordinator.add_partitions(
            request.transactional_id,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
            partitions=(OFFSETS_TP,),
            now_ms=int(now * 1000),
        )
        return AddOffsetsToTxnResponse(error_code=error, error_message=message)

    def _handle_end_txn(self, request: EndTxnRequest, now: float) -> EndTxnResponse:
        error, message = self.transaction_coordinator.end_transaction(
            request.transactional_id,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
            committed=request.committed,
            now_ms=int(now * 1000),
        )
        return EndTxnResponse(error_code=error, error_message=message)

    def _handle_offset_commit(
        self, request: OffsetCommitRequest, now: float
    ) -> OffsetCommitResponse:
        error, message, refused = self.group_coordinator.check_commit(
            request.group_id,
            request.partitions,
            generation_id=request.generation_id,
            member_id=request.member_id,
            group_instance_id=request.group_instance_id,
        )
        if error is not ErrorCode.NONE:
            return OffsetCommitResponse(self._refused_commit(request, error, message, refused))
        self.group_coordinator.commit(request.group_id, request.partitions, int(now * 1000))
        return OffsetCommitResponse(
            tuple(OffsetCommitPartitionResponse(p.topic, p.partition) for p in request.partitions)
        )

    @staticmethod
    def _refused_commit(
        request: OffsetCommitRequest | TxnOffsetCommitRequest,
        error: ErrorCode,
        message: str | None,
        refused: list[OffsetCommitPartitionResponse],
    ) -> tuple[OffsetCommitPartitionResponse, ...]:
        """Refuse a whole commit: the partitions at fault say why, the others were not tried."""
        if not refused:
            return request.error_response(error, message or error.name).partitions
        at_fault = {(r.topic, r.partition): r for r in refused}
        return tuple(
            at_fault.get(
                (p.topic, p.partition),
                OffsetCommitPartitionResponse(
                    p.topic,
                    p.partition,
                    ErrorCode.OPERATION_NOT_ATTEMPTED,
                    error_message="not committed, because another partition in the request "
                    "was refused",
                ),
            )
            for p in request.partitions
        )

    def _handle_offset_fetch(self, request: OffsetFetchRequest, now: float) -> OffsetFetchResponse:
        if not request.group_id:
            return request.error_response(
                ErrorCode.INVALID_GROUP_ID, "the group id must not be empty"
            )
        return OffsetFetchResponse(
            partitions=tuple(
                self.group_coordinator.fetch(
                    request.group_id, request.partitions, request.require_stable
                )
            )
        )

    def _handle_txn_offset_commit(
        self, request: TxnOffsetCommitRequest, now: float
    ) -> TxnOffsetCommitResponse:
        groups = self.group_coordinator
        error, message, refused = groups.check_commit(
            request.group_id,
            request.partitions,
            generation_id=request.generation_id,
            member_id=request.member_id,
            group_instance_id=request.group_instance_id,
            transactional=True,
        )
        if error is ErrorCode.NONE:
            coordinator = self.transaction_coordinator
            if coordinator.transactional_id_of(request.producer_id) != request.transactional_id:
                error, message = (
                    ErrorCode.INVALID_PRODUCER_ID_MAPPING,
                    f"producer id {request.producer_id} is not the producer of "
                    f"{request.transactional_id!r}",
                )
            else:
                error, message = coordinator.verify_write(
                    request.producer_id, request.producer_epoch, OFFSETS_TP
                )
                if error is ErrorCode.INVALID_PRODUCER_EPOCH:
                    error = ErrorCode.PRODUCER_FENCED  # the group coordinator's word for it
                elif error is ErrorCode.INVALID_TXN_STATE:
                    message = (
                        f"producer {request.producer_id} sent offsets outside its transaction: "
                        "call AddOffsetsToTxn for the group first"
                    )
        if error is not ErrorCode.NONE:
            return TxnOffsetCommitResponse(self._refused_commit(request, error, message, refused))
        batch = groups.commit_transactional(
            request.group_id,
            request.partitions,
            int(now * 1000),
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
        )
        self.producer_state(OFFSETS_TOPIC, 0).update(batch)
        return TxnOffsetCommitResponse(
            tuple(OffsetCommitPartitionResponse(p.topic, p.partition) for p in request.partitions)
        )

    def _handle_find_coordinator(
        self, request: FindCoordinatorRequest, now: float
    ) -> FindCoordinatorResponse:
        if not request.key:
            kind = "group id" if request.key_type is CoordinatorType.GROUP else "transactional id"
            return request.error_response(ErrorCode.INVALID_REQUEST, f"the {kind} is empty")
        # One broker coordinates everything; Kafka would hash the key to a partition's leader.
        return FindCoordinatorResponse(node_id=self.node_id, host="minikafka", port=9092)

    def _handle_join_group(self, request: JoinGroupRequest, now: float) -> JoinGroupResponse | None:
        return self.group_coordinator.join_group(request, int(now * 1000))

    def _handle_sync_group(self, request: SyncGroupRequest, now: float) -> SyncGroupResponse | None:
        return self.group_coordinator.sync_group(request, int(now * 1000))

    def _handle_heartbeat(self, request: HeartbeatRequest, now: float) -> HeartbeatResponse:
        return self.group_coordinator.heartbeat(request, int(now * 1000))

    def _handle_leave_group(self, request: LeaveGroupRequest, now: float) -> LeaveGroupResponse:
        return self.group_coordinator.leave_group(request, int(now * 1000))

    def _handle_delete_groups(
        self, request: DeleteGroupsRequest, now: float
    ) -> DeleteGroupsResponse:
        if not request.group_ids:
            return DeleteGroupsResponse(())
        return self.group_coordinator.delete_groups(request, int(now * 1000))

    def _allocate_producer_id(self) -> int:
        if self._next_producer_id >= self._disk.producer_id_block_end:
            # Reserve the next block on disk before handing out any id from it.
            self._disk.producer_id_block_end = self._next_producer_id + PRODUCER_ID_BLOCK_SIZE
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        return producer_id
