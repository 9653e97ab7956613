"""The async ``Producer``: aiokafka's API over the sans-IO ``ProducerProtocol``, on trio.

``send`` queues a record and returns a ``DeliveryHandle``; a background sender drains the
protocol's requests onto the simulated network, hands back the answers, and resolves the
handles. The decisions (batches, sequence numbers, the in-flight window, retries, epoch bumps)
are all the protocol's; this module adds what needs I/O: metadata for the partitioner, the
transaction coordinator's requests, timeouts, and the application's waiting.

The transactional half follows Kafka's ``TransactionManager``:
- ``start()`` sends InitProducerId with the transactional id (retrying while the coordinator
  answers CONCURRENT_TRANSACTIONS, as it does while it fences an older instance);
- a partition is added with AddPartitionsToTxn before its first batch of the transaction;
- ``send_offsets_to_transaction`` sends AddOffsetsToTxn, then TxnOffsetCommit with the
  consumer's group metadata (KIP-447);
- ``commit_transaction`` flushes, then sends EndTxn; ``abort_transaction`` drops unsent
  records, waits for those in flight, then sends EndTxn(abort);
- PRODUCER_FENCED (or a stale epoch at the coordinator) is fatal: the producer only raises
  ``ProducerFencedError`` from then on; a failed write puts the transaction in an abortable
  state in which only ``abort_transaction`` is allowed.

Simplified: one broker, so there is no FindCoordinator and no leader lookup; the client asks
for metadata once per topic.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from minikafka.client.base import ClientBase, check_settings
from minikafka.client.errors import (
    ClientCrashed,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    UnknownTopicOrPartitionError,
    error_for,
)
from minikafka.core.client_state import (
    BatchDelivered,
    DeliveryReport,
    OutgoingRequest,
    ProducerClientState,
    ProducerProtocol,
    ProducerSettingsError,
)
from minikafka.core.errors import ErrorCode
from minikafka.core.group_member import ConsumerGroupMetadata
from minikafka.core.messages import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    MetadataRequest,
    MetadataResponse,
    OffsetCommitPartition,
    Request,
    Response,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.partitioner import partition_for_key
from minikafka.core.records import Header, Record, RecordMetadata, TopicPartition
from minikafka.sim.network import ConnectionBroken, RequestTimedOut, Ticket

if TYPE_CHECKING:
    from minikafka.client.cluster import Cluster

__all__ = ["PRODUCER_DEFAULTS", "DeliveryHandle", "Producer", "TransactionState"]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "client_id": None,
    "acks": "all",
    "enable_idempotence": True,
    "transactional_id": None,
    "max_in_flight_requests_per_connection": 5,
    "retries": 2**31 - 1,
    "request_timeout": 30.0,
    "delivery_timeout": 120.0,
    "transaction_timeout": 60.0,
    "linger": 0.0,
    "batch_size": 16_384,
    "retry_backoff": 0.1,
    "max_block": 60.0,
    "buffer_memory": 33_554_432,
}
"""Kafka's producer settings and defaults, in snake case; times in seconds."""

# Answers from the transaction coordinator that Kafka's client retries as they are.
_COORDINATOR_RETRIABLE = frozenset(
    {
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
)
INLINE_ROUNDS = 8
"""Rounds of sending in which the sender takes answers that are in at once, per wake-up."""
ADD_PARTITIONS_RETRY_BACKOFF = 0.02
"""Kafka's TransactionManager.ADD_PARTITIONS_RETRY_BACKOFF_MS, in seconds."""
_FENCED = frozenset({ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH})


def _retriable_at_coordinator(response: Any) -> bool:
    """Whether any error in a coordinator's answer is one Kafka's client retries as it is."""
    codes = [getattr(response, "error_code", None)]
    codes += [p.error_code for p in getattr(response, "partitions", ())]
    codes += [r.error_code for r in getattr(response, "results", ())]
    return any(code in _COORDINATOR_RETRIABLE for code in codes)


class TransactionState(enum.Enum):
    """The client-side states of Kafka's ``TransactionManager``."""

    UNINITIALIZED = "UNINITIALIZED"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING_TRANSACTION = "COMMITTING_TRANSACTION"
    ABORTING_TRANSACTION = "ABORTING_TRANSACTION"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"


class DeliveryHandle:
    """What ``send`` returns: await it for the ``RecordMetadata`` (or the error)."""

    __slots__ = ("_batch", "_error", "_event", "_index", "_metadata", "size", "topic_partition")

    def __init__(self, topic_partition: TopicPartition, size: int = 0) -> None:
        self.topic_partition = topic_partition
        self.size = size
        self._metadata: RecordMetadata | None = None
        self._error: BaseException | None = None
        self._event: trio.Event | None = None
        self._batch: BatchDelivered | None = None
        """The acknowledged batch, until the metadata is built from it."""
        self._index = 0

    def done(self) -> bool:
        return self._metadata is not None or self._batch is not None or self._error is not None

    def result(self) -> RecordMetadata:
        """The metadata now; raises the delivery error, or ``IllegalStateError`` if not done."""
        if self._error is not None:
            raise self._error
        if self._metadata is None:
            if self._batch is None:
                raise IllegalStateError("the record is not delivered yet: await the handle")
            self._metadata = self._batch.metadata(self._index)
            self._batch = None
        return self._metadata

    def exception(self) -> BaseException | None:
        return self._error

    def _resolve(self, metadata: RecordMetadata | None, error: BaseException | None) -> None:
        if self.done():
            return
        self._metadata, self._error = metadata, error
        if self._event is not None:
            self._event.set()

    def _delivered(self, batch: BatchDelivered, index: int) -> None:
        """Acknowledged as the ``index``-th record of ``batch``."""
        if self.done():
            return
        self._batch, self._index = batch, index
        if self._event is not None:
            self._event.set()

    async def wait(self) -> RecordMetadata:
        if not self.done():
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        return self.result()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        if self._error is not None:
            return f"<DeliveryHandle {self.topic_partition} failed: {self._error}>"
        if self.done():
            return f"<DeliveryHandle {self.topic_partition}@{self.result().offset}>"
        return f"<DeliveryHandle {self.topic_partition} pending>"


class Producer(ClientBase):
    """An aiokafka-style producer on the simulated cluster (create it with
    ``cluster.producer(**config)``; settings and defaults in ``PRODUCER_DEFAULTS``).

    As in Kafka 3.2 and later, ``acks=0`` or ``acks=1`` without an explicit
    ``enable_idempotence`` turns idempotence off; asking for both raises.
    """

    kind = "producer"

    def __init__(self, cluster: Cluster, **config: Any) -> None:
        check_settings("producer", config, PRODUCER_DEFAULTS)
        settings = {**PRODUCER_DEFAULTS, **config}
        if (
            "enable_idempotence" not in config
            and settings["acks"] in (0, 1)
            and settings["transactional_id"] is None
        ):
            settings["enable_idempotence"] = False  # Kafka's rule for an implicit default
        transactional_id = settings["transactional_id"]
        if transactional_id is not None and not isinstance(transactional_id, str):
            raise ProducerSettingsError(
                f"transactional_id must be a string, not {transactional_id!r}"
            )
        if transactional_id is not None and not settings["enable_idempotence"]:
            raise ProducerSettingsError(
                "a transactional producer must be idempotent: drop enable_idempotence=False"
            )
        for name in ("transaction_timeout", "max_block", "request_timeout"):
            if not settings[name] > 0:
                raise ProducerSettingsError(f"{name} must be a positive number of seconds")
        delivery, linger = settings["delivery_timeout"], settings["linger"]
        if (
            "delivery_timeout" in config
            and delivery is not None
            and isinstance(linger, int | float)
            and delivery < linger + settings["request_timeout"]
        ):
            raise ProducerSettingsError(
                f"delivery_timeout ({delivery}s) must be at least linger + request_timeout "
                f"({linger}s + {settings['request_timeout']}s), as in Kafka: a record must be "
                "allowed one full request. Raise delivery_timeout or lower request_timeout"
            )
        # The protocol checks the remaining settings; only a producer that passes takes a
        # default name, so a refused one leaves the next one named producer-1, producer-2 ...
        protocol = ProducerProtocol(
            client_id=settings["client_id"] or "producer",
            acks=settings["acks"],
            enable_idempotence=settings["enable_idempotence"],
            max_in_flight_requests_per_connection=settings["max_in_flight_requests_per_connection"],
            retries=settings["retries"],
            request_timeout=settings["request_timeout"],
            delivery_timeout=settings["delivery_timeout"],
            linger=settings["linger"],
            batch_size=settings["batch_size"],
            retry_backoff=settings["retry_backoff"],
            transactional=transactional_id is not None,
        )
        client_id = settings["client_id"] or cluster.client_id("producer")
        protocol.client_id = client_id
        super().__init__(cluster, client_id)
        self.transactional_id: str | None = transactional_id
        self.settings = settings
        self._protocol = protocol
        self._request_timeout: float = settings["request_timeout"]
        self._backoff: float = settings["retry_backoff"]
        self._max_block: float = settings["max_block"]
        self.transaction_state = (
            TransactionState.UNINITIALIZED if transactional_id else TransactionState.READY
        )
        self._fatal: KafkaError | None = None
        self._handles: dict[int, DeliveryHandle] = {}
        self._buffered = 0
        """Bytes of records sent but not yet acknowledged or failed (Kafka's buffer.memory)."""
        self._partition_counts: dict[str, int] = {}
        self._partitions: dict[tuple[str, int], TopicPartition] = {}
        self._sticky: dict[str, tuple[int, int]] = {}
        self._rng = cluster.rng(f"{client_id}/partitioner")
        self._wakeup = trio.Event()
        self._progress = trio.Event()
        self._seen_generation = 0
        self._backoff_until = 0.0
        self._sender_sleep: trio.CancelScope | None = None
        """The sender's wait for work, while it waits: ``send`` may move its deadline up."""
        # The tickets of the requests in flight, by correlation id: to tell an answer that
        # overtook an older one from answers that came together.
        self._tickets: dict[int, Ticket] = {}
        # The transaction: partitions written to but not yet added, and whether the
        # coordinator knows of it (only then does it need an EndTxn).
        self._to_add: set[TopicPartition] = set()
        self._adding = False
        self._transaction_started = False

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; a transactional producer also gets its producer id and epoch."""
        await self._connect()
        if self.transactional_id is not None:
            with self._guard():
                await self._init_transactions()

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Deliver what is queued, abort an open transaction, and disconnect.

        A close in a cancelled task (an ``async with`` block whose task trio cancels) still
        runs, shielded, for at most ``delivery_timeout`` plus one ``request_timeout``, and the
        producer is disconnected in any case. Records still unacknowledged then fail.
        """
        if self.closed:
            return
        limit = (self.settings["delivery_timeout"] or self._request_timeout) + self._request_timeout
        try:
            shielded = trio.CancelScope(shield=True, deadline=trio.current_time() + limit)
            with shielded, self._guard():
                if self.transaction_state in (
                    TransactionState.IN_TRANSACTION,
                    TransactionState.ABORTABLE_ERROR,
                    TransactionState.ABORTING_TRANSACTION,
                ):
                    await self.abort_transaction()
                elif self._fatal is None:
                    await self._wait_for_deliveries()
        except (KafkaError, ClientCrashed, IllegalStateError):
            pass  # closing anyway; the error was (or will be) raised where it happened
        finally:
            if not self.closed:
                self._network.note("close", self.client_id)
                self._disconnect(crashed=False)
                error = KafkaTimeoutError(
                    f"{self.client_id} closed before the record was acknowledged"
                )
                for handle in self._handles.values():
                    handle._resolve(None, error)
                self._handles.clear()
                self._buffered = 0
                self._progress.set()

    def _on_crash(self) -> None:
        error = ClientCrashed(f"{self.client_id} crashed before the record was acknowledged")
        for handle in self._handles.values():
            handle._resolve(None, error)
        self._handles.clear()
        self._buffered = 0
        self._progress.set()

    def _start_background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._sender, nursery)

    # --- sending ------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[Header] | tuple[Header, ...] | None = None,
    ) -> DeliveryHandle:
        """Queue a record; returns once it is queued, with a handle to await for its metadata."""
        # The fast path: when nothing can make the send wait (the client runs, no pause is in
        # force, the topic's partitions are known, the buffer has room), the record is queued
        # at once, without the cancel scope that guards an await. Most sends take it; the
        # guard alone cost about half of each send in the profile.
        prepared = None
        count = self._partition_counts.get(topic)
        if count is not None and self.running and not self._network.pausing():
            now = self._network.now()
            prepared = self._prepare(topic, value, key, partition, headers, count, now)
            if self._buffered + prepared[2] <= self.settings["buffer_memory"]:
                return self._queue(*prepared, now)
        with self._guard():
            if prepared is None:
                await self._network.wait_if_paused(self.client_id)
                self._check_record(value, key)
                count = await self._partitions_for(topic)
                prepared = self._prepare(
                    topic, value, key, partition, headers, count, self._network.now()
                )
            await self._wait_for_buffer(prepared[2])
            return self._queue(*prepared, self._network.now())

    def _check_record(self, value: bytes | None, key: bytes | None) -> None:
        self._check_can_send()
        for name, data in (("value", value), ("key", key)):
            if data is not None and not isinstance(data, bytes):
                raise TypeError(
                    f"{name} must be bytes or None, not {type(data).__name__} "
                    "(encode it first, for example with .encode() or json.dumps().encode())"
                )

    def _prepare(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        headers: list[Header] | tuple[Header, ...] | None,
        count: int,
        now: float,
    ) -> tuple[TopicPartition, Record, int]:
        """Check a record, choose its partition and build it: (partition, record, size)."""
        self._check_record(value, key)
        if partition is None:
            partition = self._choose_partition(topic, key, count)
        elif not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has partitions 0 to {count - 1}, not {partition}"
            )
        tp = self._partitions.get((topic, partition))
        if tp is None:  # one TopicPartition per partition, not one per record
            tp = self._partitions[topic, partition] = TopicPartition(topic, partition)
        record = Record(value, key, tuple(headers or ()), timestamp=int(now * 1000))
        return tp, record, record.size_bytes

    def _queue(self, tp: TopicPartition, record: Record, size: int, now: float) -> DeliveryHandle:
        """Hand a prepared record to the protocol's accumulator."""
        wake = False
        if self._is_transactional and not self._protocol_allows(tp) and tp not in self._to_add:
            self._to_add.add(tp)
            wake = True  # the sender adds it; later records for it wait for that, not wake it
        number = self._protocol.send(tp, record, now=now, size=size)
        handle = DeliveryHandle(tp, size)
        self._handles[number] = handle
        self._buffered += size
        topic = tp.topic
        if topic in self._sticky:
            chosen, so_far = self._sticky[topic]
            self._sticky[topic] = (chosen, so_far + size)
        if wake or self._protocol.send_needs_poll:
            due = self._protocol.send_due_at
            asleep = self._sender_sleep
            if not wake and due is not None and asleep is not None:
                # A new batch that lingers: the sleeping sender need only wake by the time it
                # is due. Moving its deadline up costs no pass of trio's scheduler; waking it
                # would cost one, for nothing to send yet.
                asleep.deadline = min(asleep.deadline, self._network.at(due))
            else:
                self._wake()
        # Else the record joined a lingering batch the sender knows of.
        return handle

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[Header] | tuple[Header, ...] | None = None,
    ) -> RecordMetadata:
        """``send``, then wait for the record's metadata (or raise its error)."""
        handle = await self.send(topic, value, key=key, partition=partition, headers=headers)
        with self._guard():
            return await handle

    async def flush(self) -> None:
        """Send everything queued now, and wait until each record is acknowledged or failed."""
        with self._guard():
            await self._wait_for_deliveries()

    # --- transactions -------------------------------------------------------------------

    def begin_transaction(self) -> None:
        """Open a transaction: what is sent until the commit or abort belongs to it."""
        self._check_running()
        self._check_transactional("begin_transaction()")
        state = self.transaction_state
        if state is not TransactionState.READY:
            raise IllegalStateError(self._wrong_state("begin_transaction()"))
        self.transaction_state = TransactionState.IN_TRANSACTION
        self._network.note("txn", self.client_id, "begin")

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, int],
        group_id_or_metadata: str | ConsumerGroupMetadata,
    ) -> None:
        """Commit consumer offsets as part of the transaction (next offsets to read).

        Pass ``consumer.group_metadata()`` so that the group coordinator can refuse a zombie
        that lost its partitions (KIP-447); a bare group id skips that check.
        """
        with self._guard():
            self._check_transactional("send_offsets_to_transaction()")
            if self.transaction_state is not TransactionState.IN_TRANSACTION:
                raise IllegalStateError(self._wrong_state("send_offsets_to_transaction()"))
            metadata = (
                group_id_or_metadata
                if isinstance(group_id_or_metadata, ConsumerGroupMetadata)
                else ConsumerGroupMetadata(group_id_or_metadata)
            )
            entries = []
            for tp, offset in sorted(offsets.items()):
                if not isinstance(offset, int) or offset < 0:
                    raise ValueError(f"the offset for {tp} must be an integer >= 0, not {offset!r}")
                entries.append(OffsetCommitPartition(tp.topic, tp.partition, offset))
            transactional_id = self._require_id()
            added = await self._coordinator_call(
                lambda: AddOffsetsToTxnRequest(
                    transactional_id=transactional_id,
                    producer_id=self._protocol.producer_id,
                    producer_epoch=self._protocol.producer_epoch,
                    group_id=metadata.group_id,
                )
            )
            assert isinstance(added, AddOffsetsToTxnResponse)
            self._check_coordinator_answer(added.error_code, added.error_message, abortable=True)
            self._transaction_started = True
            answer = await self._coordinator_call(
                lambda: TxnOffsetCommitRequest(
                    transactional_id=transactional_id,
                    group_id=metadata.group_id,
                    producer_id=self._protocol.producer_id,
                    producer_epoch=self._protocol.producer_epoch,
                    generation_id=metadata.generation_id,
                    member_id=metadata.member_id,
                    group_instance_id=metadata.group_instance_id,
                    partitions=tuple(entries),
                ),
            )
            assert isinstance(answer, TxnOffsetCommitResponse)
            for result in answer.partitions:
                self._check_coordinator_answer(
                    result.error_code, result.error_message, abortable=True
                )
            self._network.note(
                "txn",
                self.client_id,
                "offsets "
                + ", ".join(f"{e.topic}-{e.partition}:{e.committed_offset}" for e in entries),
            )

    async def commit_transaction(self) -> None:
        """Deliver the transaction's records, then commit it (EndTxn). All or nothing."""
        with self._guard():
            self._check_transactional("commit_transaction()")
            state = self.transaction_state
            if state is TransactionState.ABORTABLE_ERROR:
                raise self._abortable_error("commit_transaction()")
            if state not in (
                TransactionState.IN_TRANSACTION,
                TransactionState.COMMITTING_TRANSACTION,
            ):
                raise IllegalStateError(self._wrong_state("commit_transaction()"))
            await self._wait_for_deliveries()
            if self._fatal is not None:
                raise self._fatal
            if self.transaction_state is TransactionState.ABORTABLE_ERROR:
                raise self._abortable_error("commit_transaction()")
            self.transaction_state = TransactionState.COMMITTING_TRANSACTION
            await self._end_transaction(committed=True)

    async def abort_transaction(self) -> None:
        """Abort the transaction: read_committed consumers never see its records."""
        with self._guard():
            self._check_transactional("abort_transaction()")
            if self.transaction_state not in (
                TransactionState.IN_TRANSACTION,
                TransactionState.ABORTABLE_ERROR,
                TransactionState.ABORTING_TRANSACTION,
            ):
                raise IllegalStateError(self._wrong_state("abort_transaction()"))
            self.transaction_state = TransactionState.ABORTING_TRANSACTION
            self._protocol.abort_unsent("the transaction was aborted before this record was sent")
            self._to_add.clear()
            self._deliver_reports()
            await self._wait_for_deliveries(flush=False)
            if self._fatal is not None:
                raise self._fatal
            await self._end_transaction(committed=False)
            if self._protocol.reinit_needed:
                await self._init_transactions(bump=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Producer]:
        """``begin_transaction()``; commit when the block ends, abort if it raises."""
        self.begin_transaction()
        try:
            yield self
        except BaseException:
            if not self.closed and self.transaction_state in (
                TransactionState.IN_TRANSACTION,
                TransactionState.ABORTABLE_ERROR,
            ):
                # The original error says more; an error of the abort returns on the next call.
                with contextlib.suppress(KafkaError):
                    await self.abort_transaction()
            raise
        await self.commit_transaction()

    # --- inspection ---------------------------------------------------------------------

    @property
    def producer_id(self) -> int:
        return self._protocol.producer_id

    @property
    def producer_epoch(self) -> int:
        return self._protocol.producer_epoch

    @property
    def protocol(self) -> ProducerProtocol:
        """The sans-IO state this producer wraps (for pictures and tests)."""
        return self._protocol

    # --- internals: checks ------------------------------------------------------------------

    @property
    def _is_transactional(self) -> bool:
        return self.transactional_id is not None

    def _require_id(self) -> str:
        assert self.transactional_id is not None
        return self.transactional_id

    def _check_transactional(self, call: str) -> None:
        if self.transactional_id is None:
            raise IllegalStateError(
                f"{call} needs a transactional producer: create it with "
                "cluster.producer(transactional_id=...)"
            )
        if self._fatal is not None:
            raise self._fatal

    def _wrong_state(self, call: str) -> str:
        state = self.transaction_state
        advice = {
            TransactionState.READY: "call begin_transaction() first",
            TransactionState.IN_TRANSACTION: (
                "a transaction is already open: commit_transaction() or abort_transaction() it"
            ),
            TransactionState.COMMITTING_TRANSACTION: "the commit is in progress: retry it",
            TransactionState.ABORTING_TRANSACTION: "the abort is in progress: retry it",
            TransactionState.ABORTABLE_ERROR: "the transaction failed: abort_transaction()",
            TransactionState.UNINITIALIZED: "start the producer first",
        }.get(state, "create a new producer")
        return f"{call} is not allowed in state {state.name}; {advice}"

    def _abortable_error(self, call: str) -> KafkaError:
        code, message = self._protocol.abortable_error or (
            ErrorCode.TRANSACTION_ABORTABLE,
            "the transaction failed",
        )
        return error_for(
            code,
            f"{message}. The transaction cannot commit: call abort_transaction() "
            f"(then you may retry the work in a new transaction); {call} was refused",
        )

    def _check_can_send(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._protocol.state is ProducerClientState.FATAL_ERROR:
            raise self._fatal_from_protocol()
        if not self._is_transactional:
            return
        state = self.transaction_state
        if state is TransactionState.ABORTABLE_ERROR:
            raise self._abortable_error("send()")
        if state is not TransactionState.IN_TRANSACTION:
            raise IllegalStateError(
                f"a transactional producer sends only inside a transaction (state "
                f"{state.name}): call begin_transaction() first, or use "
                "`async with producer.transaction():`"
            )

    def _fatal_from_protocol(self) -> KafkaError:
        code, message = self._protocol.fatal_error or (ErrorCode.UNKNOWN_SERVER_ERROR, "")
        self._set_fatal(code, message)
        assert self._fatal is not None
        return self._fatal

    def _set_fatal(self, code: ErrorCode, message: str | None) -> None:
        if self._fatal is None:
            if code in _FENCED:
                self._fatal = ProducerFencedError(
                    (message or "the producer was fenced")
                    + ". Either a newer producer with the same transactional id took over, or "
                    "the coordinator aborted the transaction after transaction_timeout and "
                    "bumped the epoch; this producer can only be closed",
                    code=ErrorCode.PRODUCER_FENCED,
                )
            else:
                self._fatal = error_for(code, (message or "") + "; create a new producer")
            self._network.note("fatal", self.client_id, str(self._fatal))
        self.transaction_state = TransactionState.FATAL_ERROR

    def _check_coordinator_answer(
        self, code: ErrorCode, message: str | None, *, abortable: bool
    ) -> None:
        if code is ErrorCode.NONE:
            return
        if code in _FENCED:
            self._set_fatal(code, message)
            assert self._fatal is not None
            raise self._fatal
        if abortable and self.transaction_state is TransactionState.IN_TRANSACTION:
            self.transaction_state = TransactionState.ABORTABLE_ERROR
            if self._protocol.abortable_error is None:
                self._protocol.abortable_error = (code, message or code.name)
        raise error_for(code, message)

    # --- internals: the coordinator ---------------------------------------------------------

    async def _coordinator_call(
        self,
        make: Callable[[], Request],
        *,
        backoff_after: Callable[[Any], float | None] | None = None,
    ) -> Any:
        """Send a transaction-coordinator request until it is not answered by a retriable
        error, ``retry_backoff`` apart (or what ``backoff_after`` chooses for an answer);
        the request is rebuilt each time, so it carries the current epoch."""
        return await self._request(
            make,
            timeout=self._request_timeout,
            deadline=self._network.now() + self._max_block,
            backoff=self._backoff,
            retry_if=_retriable_at_coordinator,
            backoff_after=backoff_after,
            limit=f"max_block={self._max_block}s",
        )

    async def _init_transactions(self, *, bump: bool = False) -> None:
        transactional_id = self._require_id()
        timeout_ms = int(self.settings["transaction_timeout"] * 1000)
        response = await self._coordinator_call(
            lambda: InitProducerIdRequest(
                transactional_id=transactional_id,
                transaction_timeout_ms=timeout_ms,
                producer_id=self._protocol.producer_id if bump else -1,
                producer_epoch=self._protocol.producer_epoch if bump else -1,
            )
        )
        assert isinstance(response, InitProducerIdResponse)
        if response.error_code is not ErrorCode.NONE:
            self._set_fatal(response.error_code, response.error_message)
            assert self._fatal is not None
            raise self._fatal
        self._protocol.set_producer_id(response.producer_id, response.producer_epoch)
        self.transaction_state = TransactionState.READY
        self._network.note(
            "txn",
            self.client_id,
            f"producer id {response.producer_id}, epoch {response.producer_epoch}",
            api="InitProducerId",
        )

    async def _end_transaction(self, *, committed: bool) -> None:
        word = "commit" if committed else "abort"
        if self._transaction_started:
            transactional_id = self._require_id()
            response = await self._coordinator_call(
                lambda: EndTxnRequest(
                    transactional_id=transactional_id,
                    producer_id=self._protocol.producer_id,
                    producer_epoch=self._protocol.producer_epoch,
                    committed=committed,
                )
            )
            assert isinstance(response, EndTxnResponse)
            code, message = response.error_code, response.error_message
            if code in _FENCED or code is ErrorCode.INVALID_TXN_STATE:
                # Kafka's client treats both as fatal for EndTxn: the coordinator no longer
                # holds the transaction this producer believes in.
                self._set_fatal(code, message)
                assert self._fatal is not None
                raise self._fatal
            if code is not ErrorCode.NONE:
                if committed:  # only an abort can end this transaction now
                    self.transaction_state = TransactionState.ABORTABLE_ERROR
                    if self._protocol.abortable_error is None:
                        self._protocol.abortable_error = (code, message or code.name)
                raise error_for(code, message)
        self._transaction_started = False
        self._protocol.clear_abortable_error()
        self.transaction_state = TransactionState.READY
        self._network.note("txn", self.client_id, word)

    def _protocol_allows(self, tp: TopicPartition) -> bool:
        drainable = self._protocol.drainable
        return drainable is None or tp in drainable

    async def _add_partitions(self) -> None:
        """AddPartitionsToTxn for the partitions written to since the last one (sender task)."""
        self._adding = True
        try:
            partitions = tuple(sorted(self._to_add))
            transactional_id = self._require_id()
            first = not self._protocol.drainable

            def backoff_after(response: Any) -> float | None:
                # The transaction's first partitions answered CONCURRENT_TRANSACTIONS: the
                # previous transaction's markers are still being written, which takes
                # moments, so Kafka retries after 20 ms instead of retry_backoff.
                concurrent = any(
                    r.error_code is ErrorCode.CONCURRENT_TRANSACTIONS for r in response.results
                )
                return ADD_PARTITIONS_RETRY_BACKOFF if first and concurrent else None

            try:
                response = await self._coordinator_call(
                    lambda: AddPartitionsToTxnRequest(
                        transactional_id=transactional_id,
                        producer_id=self._protocol.producer_id,
                        producer_epoch=self._protocol.producer_epoch,
                        partitions=partitions,
                    ),
                    backoff_after=backoff_after,
                )
            except KafkaError as error:
                self._abort_pending(partitions, error.code, str(error))
                return
            assert isinstance(response, AddPartitionsToTxnResponse)
            failed = [r for r in response.results if r.error_code is not ErrorCode.NONE]
            if failed:
                code, message = failed[0].error_code, failed[0].error_message
                if code in _FENCED:
                    self._set_fatal(code, message)
                self._abort_pending(partitions, code, message or code.name)
                return
            drainable = self._protocol.drainable
            assert drainable is not None
            drainable.update(partitions)
            self._to_add.difference_update(partitions)
            self._transaction_started = True
            self._network.note("txn", self.client_id, "added " + ", ".join(map(str, partitions)))
        finally:
            self._adding = False
            self._wake()
            self._progress.set()  # ``_to_add`` changed: a flush waiting on it checks again

    def _abort_pending(
        self, partitions: tuple[TopicPartition, ...], code: ErrorCode, message: str
    ) -> None:
        """Partitions that could not be added: their records fail, the transaction must abort."""
        if self.transaction_state is TransactionState.IN_TRANSACTION:
            self.transaction_state = TransactionState.ABORTABLE_ERROR
        if self._protocol.abortable_error is None:
            self._protocol.abortable_error = (code, message)
        self._to_add.difference_update(partitions)
        self._protocol.abort_unsent(f"AddPartitionsToTxn failed: {message}", error=code)
        self._deliver_reports()

    # --- internals: the sender --------------------------------------------------------------

    def _wake(self) -> None:
        self._wakeup.set()

    async def _sender(self, nursery: trio.Nursery) -> None:
        """Turn the protocol's decisions into requests, forever (until close or crash)."""
        while True:
            # A fresh event before the work, not after it: no wake-up is lost in between.
            self._wakeup = trio.Event()
            await self._network.wait_if_paused(self.client_id)  # a paused process sends nothing
            now = self._network.now()
            if now < self._backoff_until:
                await trio.sleep_until(self._network.at(self._backoff_until))
                continue
            if self._to_add and not self._adding:
                nursery.start_soon(self._add_partitions)
            # Answers taken at once may let more requests go (unless one failed: then the
            # backoff comes first). A few rounds at most, then the next pass of trio's
            # scheduler: answers that keep coming back at once (a retry without backoff)
            # must not keep every other task from running.
            for _ in range(INLINE_ROUNDS):
                if not (self._send_ready(nursery) and self._backoff_until <= now):
                    break
            else:
                self._wake()
            self._deliver_reports()
            deadline = self._protocol.next_deadline()
            when = self._network.at(deadline) if deadline is not None else float("inf")
            if self._backoff_until > now:  # a request failed above: try again after the backoff
                when = min(when, self._network.at(self._backoff_until))
            with trio.move_on_at(when) as sleep:
                self._sender_sleep = sleep
                try:
                    await self._wakeup.wait()
                finally:
                    self._sender_sleep = None

    def _send_ready(self, nursery: trio.Nursery) -> bool:
        """Send what the protocol has ready; returns whether an answer came back at once (it
        may have let more requests go)."""
        outgoing = self._protocol.poll(self._network.now())
        if self._protocol.connection_generation != self._seen_generation:
            # The protocol gave up on requests that timed out: close the connection, as
            # Kafka's NetworkClient does, so their late answers are dropped.
            self._seen_generation = self._protocol.connection_generation
            self._network.disconnect(self.client_id)
        taken = False
        for request in outgoing:
            # Put on the wire here, in the protocol's order: tasks started together run in an
            # order trio chooses, and the broker would see sequence numbers out of order.
            try:
                ticket = self._network.send(self.client_id, request.request)
                if ticket is None:  # acks=0: no answer comes
                    continue
                # The answer is often in already (no fault held the request back). With no
                # older request waiting for its answer to be taken, take it here: a task for
                # it would cost two passes of trio's scheduler, one to run and one to wake
                # the sender again.
                response = None if self._tickets else self._network.answered(ticket)
            except ConnectionBroken:
                self._request_failed(request)
                continue
            if response is not None:
                self._take_response(request, response)
                taken = True
            else:
                self._tickets[request.correlation_id] = ticket
                nursery.start_soon(self._await_response, request, ticket)
        return taken

    async def _await_response(self, outgoing: OutgoingRequest, ticket: Ticket) -> None:
        """Hand the answer to a request the sender sent (or its failure) to the protocol."""
        try:
            response = await self._network.wait(ticket, timeout=None)
        except (RequestTimedOut, ConnectionBroken):
            self._tickets.pop(outgoing.correlation_id, None)
            self._request_failed(outgoing)
        else:
            # Answers that arrived at one instant wake their tasks in an order trio chooses:
            # let the older requests whose answers are in go first, so that only an answer
            # that truly overtook a lost one counts as out of order.
            while self._older_answered(outgoing.correlation_id):
                await trio.lowlevel.checkpoint()
            self._tickets.pop(outgoing.correlation_id, None)
            self._take_response(outgoing, response)
        self._deliver_reports()
        self._wake()

    def _take_response(self, outgoing: OutgoingRequest, response: Response) -> None:
        if self._protocol.answered_out_of_order(outgoing.correlation_id):
            # An answer overtook an older request's: that answer was lost on the way. Kafka
            # closes the connection then, and every request in flight is retried with its
            # sequence numbers; accepting this answer instead would let newer batches pile up
            # behind the lost one until its retry falls out of the broker's window.
            self._network.disconnect(self.client_id)
            self._request_failed(outgoing)
        else:
            now = self._network.now()
            self._protocol.on_response(outgoing.correlation_id, response, now=now)

    def _older_answered(self, correlation_id: int) -> bool:
        """Whether an older request still in flight has its answer (or its failure) in and
        waits only for its task to take it."""
        return any(
            older < correlation_id and ticket.done.is_set()
            for older, ticket in self._tickets.items()
        )

    def _request_failed(self, outgoing: OutgoingRequest) -> None:
        """The connection broke under a request: everything in flight on it failed."""
        now = self._network.now()
        if self._protocol.is_in_flight(outgoing.correlation_id):
            self._protocol.on_disconnect(now=now)
            self._seen_generation = self._protocol.connection_generation
            self._backoff_until = now + self._backoff

    def _deliver_reports(self) -> None:
        reports = self._protocol.take_outcomes()
        for report in reports:
            if isinstance(report, BatchDelivered):
                self._delivered(report)
            else:
                self._resolve(report)
        if self._protocol.state is ProducerClientState.FATAL_ERROR and self._fatal is None:
            self._fatal_from_protocol()
        if (
            self._protocol.abortable_error is not None
            and self.transaction_state is TransactionState.IN_TRANSACTION
        ):
            self.transaction_state = TransactionState.ABORTABLE_ERROR
        if reports:
            self._progress.set()

    def _delivered(self, batch: BatchDelivered) -> None:
        """Resolve the handles of an acknowledged batch; each builds its metadata only when
        asked (most are never awaited one by one)."""
        handles = self._handles
        for index, number in enumerate(batch.handles):
            handle = handles.pop(number, None)
            if handle is not None:
                self._buffered -= handle.size
                handle._delivered(batch, index)

    def _resolve(self, report: DeliveryReport) -> None:
        handle = self._handles.pop(report.handle, None)
        if handle is None:
            return
        self._buffered -= handle.size
        if report.ok:
            handle._resolve(report.metadata, None)
        else:
            assert report.error is not None
            if report.error in _FENCED and self._fatal is not None:
                handle._resolve(None, self._fatal)
            else:
                handle._resolve(None, error_for(report.error, report.message))

    async def _wait_for_buffer(self, size: int) -> None:
        """Block while the records in flight fill ``buffer_memory``, as Kafka's send does,
        for at most ``max_block`` seconds."""
        limit = self.settings["buffer_memory"]
        if size > limit:
            raise ValueError(
                f"a record of {size} bytes does not fit in buffer_memory={limit}; "
                "raise buffer_memory or send a smaller record"
            )
        if self._buffered + size <= limit:
            return
        deadline = self._network.now() + self._max_block
        with trio.move_on_at(self._network.at(deadline)):
            while self._handles and self._buffered + size > limit:
                self._protocol.flush()
                self._wake()
                self._progress = trio.Event()
                await self._progress.wait()
        if self._buffered + size > limit:
            raise KafkaTimeoutError(
                f"the producer's buffer (buffer_memory={limit} bytes) stayed full for "
                f"max_block={self._max_block}s: the broker does not acknowledge fast enough"
            )

    async def _wait_for_deliveries(self, *, flush: bool = True) -> None:
        """Wait until every record sent so far is acknowledged or failed, and no
        AddPartitionsToTxn is out (its answer decides whether the transaction started)."""
        while self._handles or self._to_add or self._adding:
            if flush:
                self._protocol.flush()
            self._wake()
            self._progress = trio.Event()
            await self._progress.wait()

    # --- internals: partitions ----------------------------------------------------------

    async def _partitions_for(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is not None:
            return count
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"a topic is a non-empty string, not {topic!r}")
        response = await self._request(
            MetadataRequest(topics=(topic,)),
            timeout=self._request_timeout,
            deadline=self._network.now() + self._max_block,
            backoff=self._backoff,
        )
        assert isinstance(response, MetadataResponse)
        (found,) = response.topics
        if found.error_code is not ErrorCode.NONE or not found.partitions:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} does not exist and the broker did not create it; create it "
                "with cluster.create_topic(...) or open the cluster with "
                "auto_create_topics_enable=True"
            )
        self._partition_counts[topic] = count = len(found.partitions)
        return count

    def _choose_partition(self, topic: str, key: bytes | None, count: int) -> int:
        """Kafka's built-in partitioner: murmur2 of the key; without a key, stick to one
        partition until about ``batch_size`` bytes went to it, then pick another (KIP-794)."""
        if key is not None:
            return partition_for_key(key, count)
        current = self._sticky.get(topic)
        if current is None or current[1] >= self._protocol.batch_size:
            choices = [p for p in range(count) if current is None or p != current[0]] or [0]
            current = (self._rng.choice(choices), 0)
            self._sticky[topic] = current
        return current[0]
