"""The producer's protocol logic, sans-IO: batching, sequence numbers, in-flight window, retries.

This is the part of Kafka's Java producer (``RecordAccumulator``, ``Sender`` and the idempotent
half of ``TransactionManager``) that decides what to send and what to do with each answer. It
never sends anything itself: ``poll(now)`` returns the requests to send, ``on_response`` and
``on_disconnect`` take what came back, and ``take_reports()`` hands out delivery reports.
Hypothesis machines drive it synchronously; the trio ``Producer`` wraps the same object, so the
logic is written and tested once.

The rules it follows (those of Kafka's idempotent producer):
- a batch gets its sequence number when it is first drained, and keeps it on every retry;
- at most ``max_in_flight_requests_per_connection`` requests are in flight, one batch per
  partition each, so with idempotence every retry is within the broker's 5-batch window;
- a retry is sent only once it is the first unacknowledged batch of its partition, and nothing
  new is drained for that partition while a retry waits;
- a request timeout or a lost connection fails every in-flight request (Kafka disconnects), and
  their batches are retried with the same sequence numbers;
- OUT_OF_ORDER_SEQUENCE_NUMBER is retried while an earlier batch is unresolved; for the batch
  right after the last acknowledged one it means a real gap, and the producer bumps its epoch.
- a retry waits ``retry_backoff`` (Kafka's retry.backoff.ms) after the failure.

A transactional producer (``transactional=True``) differs where Kafka's does: its producer id
comes from outside (``set_producer_id``, after the InitProducerId that the transaction layer
sends), it drains only partitions already added to the transaction (``drainable``), its batches
carry the transactional flag, and a sequence gap, a stale epoch or a batch that fails for good
does not bump the epoch locally: it sets ``abortable_error``, and only an abort gets out of it.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque

import attrs

from minikafka.core.config import ConfigError
from minikafka.core.errors import ErrorCode
from minikafka.core.messages import (
    ACKS_ALL,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProducePartitionData,
    ProduceRequest,
    ProduceResponse,
    Request,
    Response,
)
from minikafka.core.records import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    Record,
    RecordBatch,
    RecordMetadata,
    TopicPartition,
    add_sequence,
)

__all__ = [
    "BatchDelivered",
    "DeliveryReport",
    "OutgoingRequest",
    "ProducerClientState",
    "ProducerProtocol",
    "ProducerSettingsError",
]

MAX_PRODUCER_EPOCH = 2**15 - 1


class ProducerSettingsError(ConfigError):
    """A producer setting, or a mix of settings, that cannot work; the message says why."""


class ProducerClientState(enum.Enum):
    """The states of Kafka's ``TransactionManager`` that an idempotent producer uses."""

    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    FATAL_ERROR = "FATAL_ERROR"


@attrs.frozen(slots=True)
class OutgoingRequest:
    """A request for the network, with the correlation id its response must carry."""

    correlation_id: int
    request: Request


@attrs.frozen(slots=True)
class DeliveryReport:
    """The outcome of one ``send``: metadata on success, an error code otherwise."""

    handle: int
    topic_partition: TopicPartition
    metadata: RecordMetadata | None
    error: ErrorCode | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class BatchDelivered:
    """A whole batch acknowledged: the handles of its records, in order, from ``base_offset``
    (-1 if the broker did not say). One entry per batch, not a report per record: the
    client builds a record's ``RecordMetadata`` only if someone asks for it."""

    topic_partition: TopicPartition
    base_offset: int
    handles: list[int]
    records: list[Record]

    def metadata(self, index: int) -> RecordMetadata:
        """The metadata of the batch's ``index``-th record."""
        tp = self.topic_partition
        offset = self.base_offset + index if self.base_offset >= 0 else -1
        return RecordMetadata(tp.topic, tp.partition, offset, self.records[index].timestamp)

    def reports(self) -> list[DeliveryReport]:
        return [
            DeliveryReport(handle, self.topic_partition, self.metadata(index))
            for index, handle in enumerate(self.handles)
        ]


@attrs.define(eq=False, slots=True)
class _Batch:
    """A batch in the producer: open for appends, then sequenced, sent, retried, acked."""

    tp: TopicPartition
    created: float
    records: list[Record] = attrs.Factory(list)
    handles: list[int] = attrs.Factory(list)
    size_bytes: int = 0
    sent: RecordBatch | None = None
    in_flight: int | None = None
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def base_sequence(self) -> int:
        return self.sent.base_sequence if self.sent is not None else NO_SEQUENCE

    @property
    def last_sequence(self) -> int:
        return self.sent.last_sequence if self.sent is not None else NO_SEQUENCE


@attrs.define(eq=False, slots=True)
class _PartitionQueue:
    """One partition's batches: ``unsent`` not yet sequenced, ``unacked`` in sequence order."""

    unsent: deque[_Batch] = attrs.Factory(deque)
    unacked: list[_Batch] = attrs.Factory(list)
    next_sequence: int = 0
    last_acked_sequence: int = NO_SEQUENCE


@attrs.define(eq=False, slots=True)
class _InFlight:
    sent_at: float
    request: Request
    batches: dict[TopicPartition, _Batch]


class ProducerProtocol:
    """An aiokafka-style producer's decisions, without I/O. Times are seconds.

    Settings are Kafka's, in snake case: ``acks`` (0, 1 or "all"), ``enable_idempotence``
    (default True), ``max_in_flight_requests_per_connection`` (5), ``retries`` (effectively
    unbounded), ``request_timeout`` (30 s), ``delivery_timeout`` (120 s; None waits forever),
    ``linger`` (0 s), ``batch_size`` (16384 bytes) and ``retry_backoff`` (0 s here, so that a
    machine driving it needs no clock; the trio ``Producer`` uses Kafka's 0.1 s).
    """

    def __init__(
        self,
        *,
        client_id: str = "producer-1",
        acks: int | str = "all",
        enable_idempotence: bool = True,
        max_in_flight_requests_per_connection: int = 5,
        retries: int = 2**31 - 1,
        request_timeout: float = 30.0,
        delivery_timeout: float | None = 120.0,
        linger: float = 0.0,
        batch_size: int = 16_384,
        retry_backoff: float = 0.0,
        transactional: bool = False,
    ) -> None:
        acks_wire = {"all": ACKS_ALL, -1: ACKS_ALL, 0: 0, 1: 1}.get(acks)
        if acks_wire is None:
            raise ProducerSettingsError(f'acks must be 0, 1 or "all", not {acks!r}')
        if enable_idempotence and acks_wire != ACKS_ALL:
            # A transactional producer cannot drop idempotence, so that advice would go round
            # in a circle: tell it the one way out.
            way_out = (
                'Set acks="all" (or leave it out).'
                if transactional
                else 'Set acks="all" or enable_idempotence=False.'
            )
            raise ProducerSettingsError(
                f"an {'transactional' if transactional else 'idempotent'} producer needs "
                f'acks="all" (got acks={acks!r}): the broker can only deduplicate retries of '
                f"writes it acknowledged. {way_out}"
            )
        if not max_in_flight_requests_per_connection >= 1:
            raise ProducerSettingsError("max_in_flight_requests_per_connection must be at least 1")
        if enable_idempotence and max_in_flight_requests_per_connection > 5:
            raise ProducerSettingsError(
                "an idempotent producer allows at most 5 requests in flight, because the broker "
                f"remembers only the last 5 batches (got {max_in_flight_requests_per_connection})"
            )
        if retries < 0:
            raise ProducerSettingsError(f"retries must be 0 or more, not {retries}")
        if request_timeout <= 0:
            raise ProducerSettingsError(f"request_timeout must be positive, not {request_timeout}")
        if delivery_timeout is not None and delivery_timeout <= 0:
            raise ProducerSettingsError(
                f"delivery_timeout must be positive or None, not {delivery_timeout}"
            )
        if linger < 0:
            raise ProducerSettingsError(f"linger must be 0 or more, not {linger}")
        if batch_size <= 0:
            raise ProducerSettingsError(f"batch_size must be positive, not {batch_size}")
        if retry_backoff < 0:
            raise ProducerSettingsError(f"retry_backoff must be 0 or more, not {retry_backoff}")
        if transactional and not enable_idempotence:
            raise ProducerSettingsError(
                "a transactional producer is idempotent: leave enable_idempotence=True"
            )
        self.client_id = client_id
        self.acks = acks_wire
        self.enable_idempotence = enable_idempotence
        self.max_in_flight = max_in_flight_requests_per_connection
        self.retries = retries
        self.request_timeout = request_timeout
        self.delivery_timeout = delivery_timeout
        self.linger = linger
        self.batch_size = batch_size
        self.retry_backoff = retry_backoff
        self.transactional = transactional
        self.drainable: set[TopicPartition] | None = set() if transactional else None
        """Partitions it may send to (those added to the transaction); None means all."""
        self.abortable_error: tuple[ErrorCode, str] | None = None
        """Why the current transaction can only be aborted (transactional producers only)."""
        self.reinit_needed = False
        """The sequence state is unsure: after the abort, bump the epoch with InitProducerId."""
        self._now = 0.0

        self.state = (
            ProducerClientState.UNINITIALIZED
            if enable_idempotence and not transactional
            else ProducerClientState.READY
        )
        self.producer_id = NO_PRODUCER_ID
        self.producer_epoch = NO_PRODUCER_EPOCH
        self.fatal_error: tuple[ErrorCode, str] | None = None
        self._queues: dict[TopicPartition, _PartitionQueue] = {}
        self._in_flight: dict[int, _InFlight] = {}
        self._correlation_ids = itertools.count(1)
        self._handles = itertools.count(1)
        self._reports: list[DeliveryReport | BatchDelivered] = []
        self._epoch_bump_needed = False
        self._flushing = False
        self.send_needs_poll = True
        """Whether the last ``send`` may have given ``poll`` something to do now, or a new
        deadline."""
        self.send_due_at: float | None = None
        """When the last ``send`` started a batch that lingers: the time it is due. ``poll``
        has nothing new to do before then; only ``next_deadline`` may have moved up."""
        self.connection_generation = 0
        """Grows each time the producer gives up on its connection: the next request needs a
        new one, and answers that still arrive on the old one are ignored."""

    # --- what the application calls -------------------------------------------------------

    def send(
        self, tp: TopicPartition, record: Record, *, now: float, size: int | None = None
    ) -> int:
        """Queue a record for ``tp``; returns the handle its ``DeliveryReport`` will carry.
        ``size`` saves measuring the record again when the caller already has."""
        if self.state is ProducerClientState.FATAL_ERROR:
            error, message = self.fatal_error or (ErrorCode.UNKNOWN_SERVER_ERROR, "")
            raise RuntimeError(
                f"the producer failed for good ({error.name}: {message}); create a new one"
            )
        self._now = now
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = _PartitionQueue()
        if size is None:
            size = record.size_bytes
        batch = queue.unsent[-1] if queue.unsent else None
        if batch is None or (batch.records and batch.size_bytes + size > self.batch_size):
            batch = _Batch(tp, created=now)
            queue.unsent.append(batch)
        handle = next(self._handles)
        batch.records.append(record)
        batch.handles.append(handle)
        batch.size_bytes += size
        # Whether ``poll`` may now have more to do, or a new deadline: a record that joins a
        # lingering batch that is not full changes neither, and the sender can sleep on.
        lingers = self.linger > 0 and batch.size_bytes < self.batch_size and not self._flushing
        self.send_needs_poll = not lingers or len(batch.records) == 1
        # A new batch alone in its queue only brings a deadline; one started behind a batch
        # that filled up makes that batch ready to go now (Kafka wakes its sender then too).
        alone = len(queue.unsent) == 1
        self.send_due_at = (
            batch.created + self.linger if lingers and alone and len(batch.records) == 1 else None
        )
        return handle

    def flush(self) -> None:
        """Send every queued batch now, without waiting for ``linger``."""
        self._flushing = True

    def take_reports(self) -> list[DeliveryReport]:
        """The delivery reports produced since the last call, in the order they happened."""
        reports: list[DeliveryReport] = []
        for outcome in self.take_outcomes():
            if isinstance(outcome, BatchDelivered):
                reports.extend(outcome.reports())
            else:
                reports.append(outcome)
        return reports

    def take_outcomes(self) -> list[DeliveryReport | BatchDelivered]:
        """As ``take_reports``, with each acknowledged batch as one ``BatchDelivered``."""
        outcomes, self._reports = self._reports, []
        return outcomes

    def set_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        """A transactional producer's id and epoch, from the InitProducerId the caller sent."""
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.reinit_needed = False
        self._resequence_all()

    def abort_unsent(
        self, message: str, *, error: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR
    ) -> None:
        """Fail every batch not yet sent with ``error`` (an abort drops them, and so does a
        failed AddPartitionsToTxn, whose error the records carry); retries still go out."""
        for queue in self._queues.values():
            for batch in list(queue.unsent):
                self._fail(batch, error, message)

    def clear_abortable_error(self) -> None:
        """The transaction was aborted: the next one starts clean."""
        self.abortable_error = None
        if self.drainable is not None:
            self.drainable.clear()

    def is_in_flight(self, correlation_id: int) -> bool:
        return correlation_id in self._in_flight

    def answered_out_of_order(self, correlation_id: int) -> bool:
        """Whether an older request is still unanswered: on one connection answers come in
        order, so the older one's answer was lost (Kafka's NetworkClient then disconnects)."""
        # In-flight requests are kept in the order they were sent: the first is the oldest.
        return correlation_id in self._in_flight and next(iter(self._in_flight)) < correlation_id

    @property
    def in_flight_count(self) -> int:
        return len(self._in_flight)

    @property
    def pending_count(self) -> int:
        """Records sent but not yet reported (queued, in flight or waiting for a retry)."""
        return sum(
            len(batch.records)
            for queue in self._queues.values()
            for batch in itertools.chain(queue.unsent, queue.unacked)
        )

    # --- what the I/O layer calls -------------------------------------------------------

    def poll(self, now: float) -> list[OutgoingRequest]:
        """Apply timeouts, then return the requests to send now (possibly none)."""
        self._now = now
        self._expire_requests(now)
        self._expire_batches(now)
        if self.state is ProducerClientState.FATAL_ERROR:
            return []
        if self.state is ProducerClientState.UNINITIALIZED:
            return [self._register(now, InitProducerIdRequest(), {})]
        if self.state is ProducerClientState.INITIALIZING:
            return []
        if self._epoch_bump_needed:
            if self._in_flight:
                return []
            if not self._bump_epoch():  # the epoch is exhausted: ask for a new producer id
                return [self._register(now, InitProducerIdRequest(), {})]
        requests = []
        while len(self._in_flight) < self.max_in_flight:
            drained = self._drain(now)
            if not drained:
                break
            request = ProduceRequest(
                partitions=tuple(
                    ProducePartitionData(tp.topic, tp.partition, b.sent)
                    for tp, b in drained.items()
                    if b.sent is not None
                ),
                acks=self.acks,
                timeout_ms=int(self.request_timeout * 1000),
            )
            for batch in drained.values():
                batch.attempts += 1
            if self.acks == 0:
                requests.append(OutgoingRequest(next(self._correlation_ids), request))
                for batch in drained.values():
                    self._complete(batch, base_offset=-1)
            else:
                requests.append(self._register(now, request, drained))
        if not any(queue.unsent for queue in self._queues.values()):
            self._flushing = False
        return requests

    def next_deadline(self) -> float | None:
        """The earliest time at which ``poll`` has something to do because time passed."""
        deadlines = [flight.sent_at + self.request_timeout for flight in self._in_flight.values()]
        for queue in self._queues.values():
            if queue.unsent and self.linger > 0:
                deadlines.append(queue.unsent[0].created + self.linger)
            for batch in queue.unacked:
                if batch.in_flight is None and batch.retry_at > self._now:
                    deadlines.append(batch.retry_at)
            if self.delivery_timeout is not None:
                for batch in itertools.chain(queue.unsent, queue.unacked):
                    if batch.in_flight is None:
                        deadlines.append(batch.created + self.delivery_timeout)
        # A deadline already past is one ``poll`` could not act on (the in-flight window is
        # full): the next answer, not the clock, unblocks it.
        return min((d for d in deadlines if d > self._now), default=None)

    def on_response(self, correlation_id: int, response: Response, *, now: float) -> None:
        """Take a response. One for a request no longer in flight (late or doubled) is ignored."""
        self._now = now
        flight = self._in_flight.pop(correlation_id, None)
        if flight is None:
            return
        if isinstance(response, InitProducerIdResponse):
            self._on_init_producer_id(response)
        elif isinstance(response, ProduceResponse):
            for result in response.partitions:
                tp = TopicPartition(result.topic, result.partition)
                batch = flight.batches.pop(tp, None)
                if batch is None:
                    continue
                batch.in_flight = None
                self._on_batch_result(
                    batch, result.error_code, result.base_offset, result.error_message
                )
            for batch in flight.batches.values():  # partitions the response left out
                batch.in_flight = None
                self._retry_or_fail(batch, ErrorCode.UNKNOWN_SERVER_ERROR, "no answer for batch")

    def on_disconnect(self, *, now: float) -> None:
        """The connection broke: every in-flight request failed, outcome unknown."""
        self._now = now
        self.connection_generation += 1
        for correlation_id in list(self._in_flight):
            self._fail_request(
                correlation_id, ErrorCode.NETWORK_EXCEPTION, "the connection to the broker broke"
            )

    # --- internals ------------------------------------------------------------------------

    def _register(
        self, now: float, request: Request, batches: dict[TopicPartition, _Batch]
    ) -> OutgoingRequest:
        correlation_id = next(self._correlation_ids)
        self._in_flight[correlation_id] = _InFlight(now, request, dict(batches))
        for batch in batches.values():
            batch.in_flight = correlation_id
        if isinstance(request, InitProducerIdRequest):
            self.state = ProducerClientState.INITIALIZING
        return OutgoingRequest(correlation_id, request)

    def _drain(self, now: float) -> dict[TopicPartition, _Batch]:
        """Pick at most one batch per partition for the next request (Kafka's drain rules)."""
        drained: dict[TopicPartition, _Batch] = {}
        for tp, queue in self._queues.items():
            if self.drainable is not None and tp not in self.drainable:
                continue
            batch = self._next_batch(queue, now)
            if batch is not None:
                drained[tp] = batch
        return drained

    def _next_batch(self, queue: _PartitionQueue, now: float) -> _Batch | None:
        waiting = [batch for batch in queue.unacked if batch.in_flight is None]
        if waiting:
            if self.enable_idempotence and queue.unacked[0].in_flight is not None:
                return None  # a retry goes only once it is the first unacknowledged batch
            if waiting[0].retry_at > now:
                return None  # retry.backoff.ms
            return waiting[0]
        if not queue.unsent:
            return None
        batch = queue.unsent[0]
        ready = (
            len(queue.unsent) > 1
            or self._flushing
            or now - batch.created >= self.linger
            or batch.size_bytes >= self.batch_size
        )
        if not ready:
            return None
        queue.unsent.popleft()
        self._sequence(batch, queue)
        if self.acks != 0:
            queue.unacked.append(batch)
        return batch

    def _sequence(self, batch: _Batch, queue: _PartitionQueue) -> None:
        base_sequence = NO_SEQUENCE
        if self.enable_idempotence:
            base_sequence = queue.next_sequence
            queue.next_sequence = add_sequence(base_sequence, len(batch.records))
        batch.sent = RecordBatch(
            records=tuple(batch.records),
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=base_sequence,
            is_transactional=self.transactional,
        )

    def _on_init_producer_id(self, response: InitProducerIdResponse) -> None:
        if response.error_code is ErrorCode.NONE:
            self.producer_id = response.producer_id
            self.producer_epoch = response.producer_epoch
            self._resequence_all()
            self.state = ProducerClientState.READY
        elif response.error_code.is_retriable:
            self.state = ProducerClientState.UNINITIALIZED
        else:
            self._fatal(response.error_code, response.error_message or "InitProducerId failed")

    def _on_batch_result(
        self, batch: _Batch, error: ErrorCode, base_offset: int, message: str | None
    ) -> None:
        queue = self._queues[batch.tp]
        if error is ErrorCode.NONE:
            if self.enable_idempotence:
                queue.last_acked_sequence = max(queue.last_acked_sequence, batch.last_sequence)
            self._complete(batch, base_offset=base_offset)
        elif error is ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
            self._complete(batch, base_offset=-1)  # legacy brokers: success, offset unknown
        elif error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and self.enable_idempotence:
            if batch.base_sequence == add_sequence(queue.last_acked_sequence, 1) or (
                queue.last_acked_sequence == NO_SEQUENCE and batch.base_sequence == 0
            ):
                # The batch right after the last acknowledged one is out of order: the broker
                # lost what it had acknowledged. Start a new epoch at sequence 0.
                if self.transactional:
                    self._abortable(batch, error, message or "a sequence gap")
                    return
                self._epoch_bump_needed = True
            self._retry_or_fail(batch, error, message)
        elif error is ErrorCode.PRODUCER_FENCED or (
            error is ErrorCode.INVALID_PRODUCER_EPOCH and not self.transactional
        ):
            self._fatal(error, message or "the producer was fenced")
        elif self.transactional and not error.is_retriable:
            self._abortable(batch, error, message or f"the write failed with {error.name}")
        else:
            self._retry_or_fail(batch, error, message)

    def _retry_or_fail(self, batch: _Batch, error: ErrorCode, message: str | None) -> None:
        retriable = error.is_retriable or error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        if retriable and batch.attempts <= self.retries:
            batch.retry_at = self._now + self.retry_backoff
            return  # stays in ``unacked`` with no request: drained again as a retry
        self._fail(batch, error, message or f"delivery failed with {error.name}")

    def _fail_request(self, correlation_id: int, error: ErrorCode, message: str) -> None:
        flight = self._in_flight.pop(correlation_id)
        if isinstance(flight.request, InitProducerIdRequest):
            self.state = ProducerClientState.UNINITIALIZED
        for batch in flight.batches.values():
            batch.in_flight = None
            self._retry_or_fail(batch, error, message)

    def _expire_requests(self, now: float) -> None:
        timed_out = any(
            now - flight.sent_at >= self.request_timeout for flight in self._in_flight.values()
        )
        if timed_out:  # Kafka closes the connection, failing everything in flight on it
            self.connection_generation += 1
            for correlation_id in list(self._in_flight):
                self._fail_request(
                    correlation_id,
                    ErrorCode.REQUEST_TIMED_OUT,
                    f"no response within request_timeout={self.request_timeout}s",
                )

    def _expire_batches(self, now: float) -> None:
        if self.delivery_timeout is None:
            return
        for queue in self._queues.values():
            for batch in list(itertools.chain(queue.unsent, queue.unacked)):
                if batch.in_flight is None and now - batch.created >= self.delivery_timeout:
                    self._fail(
                        batch,
                        ErrorCode.REQUEST_TIMED_OUT,
                        f"not acknowledged within delivery_timeout={self.delivery_timeout}s",
                    )

    def _complete(self, batch: _Batch, *, base_offset: int) -> None:
        self._remove(batch)
        self._reports.append(BatchDelivered(batch.tp, base_offset, batch.handles, batch.records))

    def _fail(self, batch: _Batch, error: ErrorCode, message: str) -> None:
        if self.transactional and self.abortable_error is None:
            # Any record of a transaction that fails, sent or not (one that expired while its
            # partition was being added), makes the transaction abort-only, as in Kafka: a
            # commit must never leave out a record the application sent in it.
            self.abortable_error = (error, message)
        if (
            batch.sent is not None
            and self.enable_idempotence
            and batch in self._queues[batch.tp].unacked
        ):
            # Simplified: its sequence will never be acknowledged, so rather than renumber the
            # batches behind it (as Kafka does) the producer starts a new epoch.
            if self.transactional:
                self.reinit_needed = True
            else:
                self._epoch_bump_needed = True
        self._remove(batch)
        for handle in batch.handles:
            self._reports.append(DeliveryReport(handle, batch.tp, None, error, message))

    def _remove(self, batch: _Batch) -> None:
        queue = self._queues[batch.tp]
        if batch in queue.unacked:
            queue.unacked.remove(batch)
        elif batch in queue.unsent:
            queue.unsent.remove(batch)

    def _abortable(self, batch: _Batch, error: ErrorCode, message: str) -> None:
        """The transaction cannot commit: this batch fails, and so will the commit."""
        if self.abortable_error is None:
            self.abortable_error = (error, message)
        self._fail(batch, error, message)

    def _fatal(self, error: ErrorCode, message: str) -> None:
        self.state = ProducerClientState.FATAL_ERROR
        self.fatal_error = (error, message)
        # Every batch is reported once: answers to requests still in flight are ignored.
        self._in_flight.clear()
        for queue in self._queues.values():
            for batch in list(itertools.chain(queue.unacked, queue.unsent)):
                self._fail(batch, error, message)

    def _bump_epoch(self) -> bool:
        """Start a new epoch locally; False when the epoch is exhausted and a new id is needed."""
        self._epoch_bump_needed = False
        if self.producer_epoch >= MAX_PRODUCER_EPOCH:
            self.state = ProducerClientState.UNINITIALIZED
            return False
        self.producer_epoch += 1
        self._resequence_all()
        return True

    def _resequence_all(self) -> None:
        """Renumber every unacknowledged batch from 0 under the current producer id and epoch."""
        for queue in self._queues.values():
            queue.next_sequence = 0
            queue.last_acked_sequence = NO_SEQUENCE
            for batch in queue.unacked:
                self._sequence(batch, queue)
