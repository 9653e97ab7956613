"""The transaction coordinator: Kafka's transaction states, and the log that makes them durable.

A transactional producer talks to the coordinator to get its producer id and epoch
(InitProducerId), to name each partition before it writes there (AddPartitionsToTxn,
AddOffsetsToTxn), and to end the transaction (EndTxn). Every change of a transaction's
metadata is appended to the internal log ``__transaction_state`` first and applied in memory
second, so after a crash ``load`` rebuilds the coordinator by replaying that log. The decision
to commit or abort is the durable PrepareCommit or PrepareAbort record: once it is written the
producer gets its answer, and the markers that carry the decision to every partition follow
(``MarkerJob``), then a CompleteCommit or CompleteAbort record.

What this module must not know: partition logs other than its own, consumer groups, time or
I/O. It hands marker work to the broker as ``MarkerJob`` values and hears back through
``marker_written``.

Simplified: Kafka spreads transactional ids over 50 partitions of ``__transaction_state`` and
compacts it; here there is one partition, never compacted. The transaction protocol is
Kafka's version 1 (no epoch bump at every EndTxn, KIP-890 part 2), with KIP-890 part 1's
check that a transactional write goes to a partition of the ongoing transaction.
"""

from __future__ import annotations

import enum
import functools
import json
from collections import deque
from collections.abc import Callable, Iterable

import attrs

from minikafka.core.errors import ErrorCode
from minikafka.core.log import PartitionLog
from minikafka.core.records import ControlType, Record, RecordBatch, TopicPartition

__all__ = [
    "LEGAL_PREVIOUS_STATES",
    "TRANSACTION_STATE_TOPIC",
    "MarkerJob",
    "TransactionCoordinator",
    "TransactionMetadata",
    "TransactionState",
    "Transition",
    "is_legal_transition",
]

TRANSACTION_STATE_TOPIC = "__transaction_state"
MAX_PRODUCER_EPOCH = 2**15 - 1
TRANSITIONS_KEPT = 10_000
"""How many recent in-memory transitions the coordinator remembers (for invariants and views)."""


class TransactionState(enum.IntEnum):
    """A transaction's state; the number is the byte Kafka stores in its log."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7
    """Memory only: the epoch was bumped to fence a producer, and an abort follows."""

    @property
    def title(self) -> str:
        """Kafka's spelling: ``PrepareCommit``."""
        return "".join(word.title() for word in self.name.split("_"))


_S = TransactionState
LEGAL_PREVIOUS_STATES: dict[TransactionState, frozenset[TransactionState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}
"""Kafka's ``validPreviousStates``: for each state, the states it may be entered from."""


def is_legal_transition(old: TransactionState | None, new: TransactionState) -> bool:
    """True when Kafka allows a move from ``old`` to ``new`` (``None``: a new transactional id)."""
    if old is None:
        return new is _S.EMPTY
    return old in LEGAL_PREVIOUS_STATES[new]


@attrs.frozen(slots=True, kw_only=True)
class TransactionMetadata:
    """What the coordinator knows of one transactional id (Kafka's ``TransactionMetadata``).

    ``last_producer_epoch`` is the epoch a client held before the bump it asked for itself
    (with ``previous_producer_id``, its producer id, when the bump needed a new id), so that a
    retried InitProducerId gets the same answer instead of a second bump. Both are -1 after a
    bump the client did not ask for (a fresh init or a fence).
    """

    transactional_id: str
    producer_id: int
    producer_epoch: int
    last_producer_epoch: int = -1
    previous_producer_id: int = -1
    timeout_ms: int
    state: TransactionState
    partitions: tuple[TopicPartition, ...] = ()
    start_ms: int = -1
    """When the ongoing transaction began (its first AddPartitionsToTxn), or -1."""
    last_update_ms: int = 0

    @functools.cached_property
    def partition_set(self) -> frozenset[TopicPartition]:
        """The transaction's partitions as a set: a write to any of them is checked against
        it, which a scan of the tuple would make cost as much as the transaction is wide."""
        return frozenset(self.partitions)

    @property
    def is_open(self) -> bool:
        """Ongoing or decided but not complete: the transaction still has work to do."""
        return self.state in (_S.ONGOING, _S.PREPARE_COMMIT, _S.PREPARE_ABORT)

    def to_json(self) -> bytes:
        fields = attrs.asdict(self, recurse=False)
        fields["state"] = int(self.state)
        fields["partitions"] = [[tp.topic, tp.partition] for tp in self.partitions]
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes) -> TransactionMetadata:
        fields = json.loads(value)
        fields["state"] = TransactionState(fields["state"])
        fields["partitions"] = tuple(TopicPartition(t, p) for t, p in fields["partitions"])
        return cls(**fields)


@attrs.frozen(slots=True)
class Transition:
    """One change of a transaction's state in memory, as the coordinator made it."""

    transactional_id: str
    old: TransactionState | None
    new: TransactionState
    producer_epoch: int


@attrs.frozen(slots=True, kw_only=True)
class MarkerJob:
    """Markers still to write for a decided transaction (Kafka's WriteTxnMarkers)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    result: ControlType
    partitions: tuple[TopicPartition, ...]
    coordinator_epoch: int


Answer = tuple[ErrorCode, str | None]
OK: Answer = (ErrorCode.NONE, None)


class TransactionCoordinator:
    """Kafka's transaction coordinator for one broker, over its ``__transaction_state`` log.

    Handlers return an error code and a message (or the new metadata); they never raise for a
    client's mistake and never leave a half-made change: the checks all come before the write.
    ``fence_epochs=False`` is the broken mode of the EPOCH_FENCING safeguard: stale epochs are
    treated as current.
    """

    def __init__(
        self,
        log: PartitionLog,
        *,
        allocate_producer_id: Callable[[], int],
        transaction_max_timeout_ms: int,
        coordinator_epoch: int = 0,
        fence_epochs: bool = True,
    ) -> None:
        self.log = log
        self._allocate_producer_id = allocate_producer_id
        self.transaction_max_timeout_ms = transaction_max_timeout_ms
        self.coordinator_epoch = coordinator_epoch
        self.fence_epochs = fence_epochs
        self.transactions: dict[str, TransactionMetadata] = {}
        self._by_producer_id: dict[int, str] = {}
        self.pending_markers: dict[str, MarkerJob] = {}
        self.transitions: deque[Transition] = deque(maxlen=TRANSITIONS_KEPT)
        self.deadline_ms: int | None = None
        """When (ms) the earliest ongoing transaction times out, so callers can check cheaply."""

    # --- durable changes -----------------------------------------------------------------

    def _write(self, metadata: TransactionMetadata, *, durable: bool = True) -> None:
        """Log the new metadata (flushed, as acks=all), then apply it in memory."""
        previous = self.transactions.get(metadata.transactional_id)
        old = previous.state if previous is not None else None
        if not is_legal_transition(old, metadata.state):
            raise AssertionError(  # a bug in this module, never a client's mistake
                f"illegal transition of {metadata.transactional_id!r}: "
                f"{old.title if old is not None else 'nothing'} -> {metadata.state.title}"
            )
        if durable:
            record = Record(value=metadata.to_json(), key=metadata.transactional_id.encode())
            self.log.append(RecordBatch(records=(record,)))
            self.log.flush()
        self.transactions[metadata.transactional_id] = metadata
        self._by_producer_id[metadata.producer_id] = metadata.transactional_id
        self.transitions.append(
            Transition(metadata.transactional_id, old, metadata.state, metadata.producer_epoch)
        )
        self.deadline_ms = self.next_expiry_ms()

    def load(self, *, roll_forward: bool = True) -> None:
        """Rebuild the coordinator from its log after a crash, and resume unfinished work.

        A transaction found in PrepareCommit or PrepareAbort has its decision on disk: its
        markers are sent again and it completes (Kafka's roll-forward). ``roll_forward=False``
        is the broken mode of the ROLL_FORWARD safeguard: such a transaction is reloaded as
        undecided (Ongoing) and aborted, whatever the producer was told.
        """
        self.transactions = {}
        self._by_producer_id = {}
        self.pending_markers = {}
        for batch in self.log.batches():
            for record in batch.records:
                if record.value is None:
                    continue
                metadata = TransactionMetadata.from_json(record.value)
                self.transactions[metadata.transactional_id] = metadata
                self._by_producer_id[metadata.producer_id] = metadata.transactional_id
        for metadata in list(self.transactions.values()):
            if metadata.state not in (_S.PREPARE_COMMIT, _S.PREPARE_ABORT):
                continue
            if roll_forward:
                self._queue_markers(metadata)
            else:
                undecided = attrs.evolve(metadata, state=_S.ONGOING)
                self.transactions[metadata.transactional_id] = undecided
                self._prepare(undecided, ControlType.ABORT, metadata.last_update_ms)
        self.deadline_ms = self.next_expiry_ms()

    # --- InitProducerId ------------------------------------------------------------------

    def init_producer_id(
        self,
        transactional_id: str,
        *,
        timeout_ms: int,
        producer_id: int,
        producer_epoch: int,
        now_ms: int,
    ) -> tuple[ErrorCode, str | None, TransactionMetadata | None]:
        """Give the transactional id's producer a new epoch, fencing every older instance."""
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST, "the transactional id must not be empty", None
        if not 0 < timeout_ms <= self.transaction_max_timeout_ms:
            return (
                ErrorCode.INVALID_TRANSACTION_TIMEOUT,
                f"transaction timeout {timeout_ms} ms must be positive and at most "
                f"transaction_max_timeout_ms ({self.transaction_max_timeout_ms} ms)",
                None,
            )
        if (producer_id == -1) != (producer_epoch == -1):
            return (
                ErrorCode.INVALID_REQUEST,
                "send both the producer id and the epoch, or neither (-1 and -1)",
                None,
            )
        current = self.transactions.get(transactional_id)
        if current is None:
            fresh = TransactionMetadata(
                transactional_id=transactional_id,
                producer_id=self._allocate_producer_id(),
                producer_epoch=0,
                timeout_ms=timeout_ms,
                state=_S.EMPTY,
                last_update_ms=now_ms,
            )
            self._write(fresh)
            return ErrorCode.NONE, None, fresh
        # Kafka's order: the producer id, then the state, then the epoch.
        from_previous_id = producer_id != -1 and producer_id == current.previous_producer_id
        if producer_id != -1 and producer_id != current.producer_id and not from_previous_id:
            return (
                ErrorCode.PRODUCER_FENCED,
                f"producer id {producer_id} no longer belongs to {transactional_id!r}; "
                "another instance has taken over",
                None,
            )
        if current.state in (_S.PREPARE_COMMIT, _S.PREPARE_ABORT):
            return (
                ErrorCode.CONCURRENT_TRANSACTIONS,
                f"the last transaction of {transactional_id!r} is completing; retry shortly",
                None,
            )
        if current.state is _S.ONGOING:
            # An earlier incarnation left a transaction open: fence it and abort it. The
            # client retries, and the retry bumps the epoch once more.
            self._fence_and_abort(current, now_ms)
            return (
                ErrorCode.CONCURRENT_TRANSACTIONS,
                f"{transactional_id!r} had an open transaction; it is being aborted; retry",
                None,
            )
        if producer_id != -1:
            asked_before = (
                current.previous_producer_id
                if current.previous_producer_id >= 0
                else current.producer_id
            )
            if (producer_id, producer_epoch) == (asked_before, current.last_producer_epoch):
                return ErrorCode.NONE, None, current  # a retry: the same answer, no bump
            stale = from_previous_id or producer_epoch != current.producer_epoch
            if stale and (self.fence_epochs or from_previous_id):
                return (
                    ErrorCode.PRODUCER_FENCED,
                    f"epoch {producer_epoch} of producer {producer_id} is stale: producer "
                    f"{current.producer_id} epoch {current.producer_epoch} is current; "
                    "another instance has taken over",
                    None,
                )
        bumped = self._bump(current, asked_by=producer_epoch if producer_id != -1 else -1)
        ready = attrs.evolve(
            bumped,
            timeout_ms=timeout_ms,
            state=_S.EMPTY,
            partitions=(),
            start_ms=-1,
            last_update_ms=now_ms,
        )
        self._write(ready)
        return ErrorCode.NONE, None, ready

    def _bump(self, metadata: TransactionMetadata, *, asked_by: int) -> TransactionMetadata:
        """The next epoch, or a new producer id when the epoch is exhausted (as Kafka does)."""
        if metadata.producer_epoch >= MAX_PRODUCER_EPOCH - 1:
            return attrs.evolve(
                metadata,
                producer_id=self._allocate_producer_id(),
                producer_epoch=0,
                previous_producer_id=metadata.producer_id if asked_by >= 0 else -1,
                last_producer_epoch=asked_by,
            )
        return attrs.evolve(
            metadata,
            producer_epoch=metadata.producer_epoch + 1,
            previous_producer_id=-1,
            last_producer_epoch=asked_by,
        )

    def _fence_and_abort(self, metadata: TransactionMetadata, now_ms: int) -> None:
        # Simplified: at the last epoch Kafka fences with a new producer id; this keeps it.
        fenced = attrs.evolve(
            metadata,
            producer_epoch=min(metadata.producer_epoch + 1, MAX_PRODUCER_EPOCH),
            last_producer_epoch=-1,
            previous_producer_id=-1,
            state=_S.PREPARE_EPOCH_FENCE,
        )
        self._write(fenced, durable=False)  # memory only, as in Kafka
        self._prepare(fenced, ControlType.ABORT, now_ms)

    # --- the checks every transactional request passes -----------------------------------

    def _check_producer(
        self, transactional_id: str, producer_id: int, producer_epoch: int
    ) -> tuple[ErrorCode, str | None, TransactionMetadata | None]:
        current = self.transactions.get(transactional_id)
        if current is None or current.producer_id != producer_id:
            return (
                ErrorCode.INVALID_PRODUCER_ID_MAPPING,
                f"producer id {producer_id} is not the producer of {transactional_id!r}; "
                "call InitProducerId first",
                None,
            )
        if producer_epoch != current.producer_epoch and (
            self.fence_epochs or producer_epoch > current.producer_epoch
        ):
            return (
                ErrorCode.PRODUCER_FENCED,
                f"epoch {producer_epoch} of producer {producer_id} is not the current epoch "
                f"{current.producer_epoch}: a newer instance has fenced this one",
                None,
            )
        return ErrorCode.NONE, None, current

    # --- AddPartitionsToTxn, AddOffsetsToTxn ---------------------------------------------

    def add_partitions(
        self,
        transactional_id: str,
        *,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
    ) -> Answer:
        """Add partitions to the ongoing transaction, beginning one if none is open."""
        error, message, current = self._check_producer(
            transactional_id, producer_id, producer_epoch
        )
        if current is None:
            return error, message
        if current.state in (_S.PREPARE_COMMIT, _S.PREPARE_ABORT):
            return (
                ErrorCode.CONCURRENT_TRANSACTIONS,
                f"the last transaction of {transactional_id!r} is completing; retry shortly",
            )
        starting = current.state is not _S.ONGOING
        known = () if starting else current.partitions
        known_set = frozenset() if starting else current.partition_set
        new = [tp for tp in dict.fromkeys(partitions) if tp not in known_set]
        if not new:
            return OK  # nothing to add: a retry, or partitions already in the transaction
        self._write(
            attrs.evolve(
                current,
                state=_S.ONGOING,
                partitions=known + tuple(new),
                start_ms=now_ms if starting else current.start_ms,
                last_update_ms=now_ms,
            )
        )
        return OK

    # --- verification of transactional writes (KIP-890 part 1) ---------------------------

    def verify_write(self, producer_id: int, producer_epoch: int, tp: TopicPartition) -> Answer:
        """Is a transactional write of (``producer_id``, ``producer_epoch``) to ``tp`` allowed?"""
        transactional_id = self._by_producer_id.get(producer_id)
        current = self.transactions.get(transactional_id) if transactional_id else None
        if current is None or current.producer_id != producer_id:
            return (
                ErrorCode.INVALID_PRODUCER_ID_MAPPING,
                f"producer id {producer_id} has no transactional id; call InitProducerId first",
            )
        if producer_epoch > current.producer_epoch:
            return (
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"producer {producer_id} wrote with epoch {producer_epoch}, which was never "
                f"issued: epoch {current.producer_epoch} is current",
            )
        if producer_epoch < current.producer_epoch and self.fence_epochs:
            return (
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"producer {producer_id} wrote with epoch {producer_epoch}, but epoch "
                f"{current.producer_epoch} is current: a newer instance has fenced this one",
            )
        if current.state in (_S.PREPARE_COMMIT, _S.PREPARE_ABORT):
            return (
                ErrorCode.CONCURRENT_TRANSACTIONS,
                f"the transaction of producer {producer_id} is completing; retry shortly",
            )
        if current.state is not _S.ONGOING or tp not in current.partition_set:
            return (
                ErrorCode.INVALID_TXN_STATE,
                f"producer {producer_id} wrote to {tp} outside its transaction: add the "
                "partition with AddPartitionsToTxn first",
            )
        return OK

    # --- EndTxn --------------------------------------------------------------------------

    def end_transaction(
        self,
        transactional_id: str,
        *,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        now_ms: int,
    ) -> Answer:
        """Decide the ongoing transaction. The answer is sent once the decision is durable."""
        error, message, current = self._check_producer(
            transactional_id, producer_id, producer_epoch
        )
        if current is None:
            return error, message
        wanted = "commit" if committed else "abort"
        state = current.state
        if state is _S.ONGOING:
            self._prepare(current, ControlType.COMMIT if committed else ControlType.ABORT, now_ms)
            return OK
        done, preparing = (
            (_S.COMPLETE_COMMIT, _S.PREPARE_COMMIT)
            if committed
            else (_S.COMPLETE_ABORT, _S.PREPARE_ABORT)
        )
        if state is done:
            return OK  # a retry of the EndTxn that decided it
        if state is preparing:
            return (
                ErrorCode.CONCURRENT_TRANSACTIONS,
                f"the {wanted} of {transactional_id!r} is writing its markers; retry shortly",
            )
        return (
            ErrorCode.INVALID_TXN_STATE,
            f"cannot {wanted}: the transaction of {transactional_id!r} is {state.title}"
            + (", with nothing to end" if state is _S.EMPTY else ""),
        )

    def _prepare(self, current: TransactionMetadata, result: ControlType, now_ms: int) -> None:
        state = _S.PREPARE_COMMIT if result is ControlType.COMMIT else _S.PREPARE_ABORT
        decided = attrs.evolve(current, state=state, last_update_ms=now_ms)
        self._write(decided)
        self._queue_markers(decided)

    def _queue_markers(self, decided: TransactionMetadata) -> None:
        result = ControlType.COMMIT if decided.state is _S.PREPARE_COMMIT else ControlType.ABORT
        self.pending_markers[decided.transactional_id] = MarkerJob(
            transactional_id=decided.transactional_id,
            producer_id=decided.producer_id,
            producer_epoch=decided.producer_epoch,
            result=result,
            partitions=decided.partitions,
            coordinator_epoch=self.coordinator_epoch,
        )

    def marker_written(self, transactional_id: str, tp: TopicPartition, now_ms: int) -> None:
        """One marker is in place (or cannot be); complete the transaction after the last."""
        job = self.pending_markers.get(transactional_id)
        if job is None:
            return
        # Markers go in the job's order, so the one written is the first: drop it with a
        # slice, not a scan that would make a wide transaction's commit quadratic.
        if job.partitions[:1] == (tp,):
            remaining = job.partitions[1:]
        else:
            remaining = tuple(p for p in job.partitions if p != tp)
        if remaining:
            self.pending_markers[transactional_id] = attrs.evolve(job, partitions=remaining)
            return
        del self.pending_markers[transactional_id]
        current = self.transactions[transactional_id]
        complete = _S.COMPLETE_COMMIT if current.state is _S.PREPARE_COMMIT else _S.COMPLETE_ABORT
        self._write(
            attrs.evolve(current, state=complete, partitions=(), start_ms=-1, last_update_ms=now_ms)
        )

    # --- timeouts ------------------------------------------------------------------------

    def expire(self, now_ms: int) -> list[str]:
        """Abort every ongoing transaction older than its timeout, fencing its producer first.

        Returns the transactional ids aborted. Simplified: Kafka looks every 10 seconds
        (``transaction.abort.timed.out.transaction.cleanup.interval.ms``); this looks whenever
        it is called.
        """
        expired = [
            metadata
            for metadata in self.transactions.values()
            if metadata.state is _S.ONGOING and metadata.start_ms + metadata.timeout_ms < now_ms
        ]
        for metadata in expired:
            self._fence_and_abort(metadata, now_ms)
        return [metadata.transactional_id for metadata in expired]

    def next_expiry_ms(self) -> int | None:
        """When the earliest ongoing transaction times out, or None if none is ongoing."""
        deadlines = [
            metadata.start_ms + metadata.timeout_ms
            for metadata in self.transactions.values()
            if metadata.state is _S.ONGOING
        ]
        return min(deadlines, default=None)

    def transactional_id_of(self, producer_id: int) -> str | None:
        return self._by_producer_id.get(producer_id)
