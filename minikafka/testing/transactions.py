"""Hypothesis state machines for transactions: atomic commit, and the fencing of zombies.

The machines play transactional producers against a ``Broker`` at the level of Kafka's
requests: InitProducerId, AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit and
EndTxn. Each transaction gets a tag (``T1``, ``T2``...), written into its records
(``T1.1``, ``T1.2``...) and into the metadata of the offsets it commits, so every record and
every offset in the logs can be traced back to its transaction.

Every request crosses a network that may deliver it, lose it, lose its response, or deliver
it twice; a request without an answer is retried, unchanged, before the producer does
anything else. Other failures are rules too: a producer restarts (a new instance with the
same transactional id, which fences the old one), the broker crashes and recovers at any step
(also between a decision and its markers), markers are written one at a time, and time jumps
past the transaction timeout. In ``FencingMachine`` the old instances stay alive as zombies
and keep sending with their old epochs.

The oracle reads the logs themselves: a transactional record is *committed* or *aborted* by
the next marker of its producer in its partition, and *open* until then. Invariants, checked
after every step:

- ``atomicity``: no transaction has records (or offsets) committed in one place and aborted in
  another; once its markers are all written, it is committed everywhere or nowhere; a commit
  the coordinator acknowledged is never aborted, an acknowledged abort never commits;
- ``read_committed``: a read_committed fetch returns exactly the committed and
  non-transactional records below the last stable offset: never an aborted, open or control
  record, and no committed one missing;
- ``last_stable_offset``: it never exceeds the high watermark and never goes back;
- ``offsets``: the group's offsets are those of the latest commit whose transaction committed
  (pending ones are not current), and require_stable refuses partitions with pending offsets;
- ``coordinator``: every transition the coordinator made is legal, and only decided
  transactions have markers pending.
Checked at each exchange: once an epoch is bumped, no request with an older epoch succeeds,
and a retry of a request that already succeeded (EndTxn, InitProducerId with its producer id
and epoch, AddPartitionsToTxn, Produce) changes nothing in the broker. At the end,
``teardown`` lets every retry through, times out what is left open, and checks that every
transaction ended and the last stable offset caught up with the high watermark.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar, NoReturn

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from minikafka.core import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    Broker,
    ControlType,
    EndTxnRequest,
    ErrorCode,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    IsolationLevel,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetFetchRequest,
    OffsetFetchResponse,
    ProducePartitionData,
    ProduceRequest,
    ProduceResponse,
    Record,
    RecordBatch,
    Safeguard,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from minikafka.core.groups import OFFSETS_TOPIC
from minikafka.core.isolation import visible_records
from minikafka.core.log import PartitionLog
from minikafka.core.messages import Response, error_codes
from minikafka.core.transactions import (
    TRANSACTION_STATE_TOPIC,
    TransactionMetadata,
    TransactionState,
    is_legal_transition,
)
from minikafka.testing.controls import Breakable
from minikafka.testing.dedup import FATES
from minikafka.testing.story import LogRow, StoryLine, TransactionRow

__all__ = [
    "AtomicCommitMachine",
    "Fate",
    "FencingMachine",
    "TransactionMachine",
    "TxnClient",
]

TOPIC = "payments"
PARTITIONS = 2
INPUT_TOPIC = "orders"
GROUP = "ledger"
TIMEOUT_MS = 60_000
HEAL_ROUNDS_MAX = 50
TXN_FATES = (*FATES, "crash after", "delay")
"""What the network does with a request. "crash after": the broker handles it, then crashes
and recovers before the response leaves. "delay": a copy is held up in the network, to arrive
later, when the producer has long retried and moved on (``deliver_late``); only requests
in ``LATE_SAFE`` are held up, the others are lost instead."""
LATE_MAX = 3
LATE_SAFE = (ProduceRequest, AddPartitionsToTxnRequest, AddOffsetsToTxnRequest)
"""The requests that may arrive late. Under Kafka's transaction protocol version 1, which
minikafka follows, a late EndTxn or TxnOffsetCommit from one transaction can land in the next
one of the same producer (same id, same epoch: KAFKA-17754, fixed by KIP-890 part 2's epoch
bump at every commit). The machines hold those back, and a unit test shows the anomaly."""
EVENTS = ("marker", "broker crash", "producer restart", "1s", "61s")

TxnRequest = (
    InitProducerIdRequest
    | AddPartitionsToTxnRequest
    | ProduceRequest
    | AddOffsetsToTxnRequest
    | TxnOffsetCommitRequest
    | EndTxnRequest
)


def what_of(data: ProducePartitionData) -> str:
    return ", ".join((record.value or b"").decode() for record in data.batch.records)


Fated = tuple[int, RecordBatch, Record, str]
"""A data record of a log: its offset, its batch, the record and its fate."""
LogVersion = tuple[PartitionLog, RecordBatch | None, int, int]


def log_version(log: PartitionLog) -> LogVersion:
    """What a log holds, in a few fields: a log only grows, or loses its unflushed tail in a
    crash, so its last batch (the object), its end and its flushed offset tell it apart."""
    count = log.batch_count
    last = next(log.batches(count - 1), None) if count else None
    return (log, last, log.log_end_offset, log.flushed_offset)


class Fate:
    """What the log says of a record: decided by its producer's next marker."""

    COMMITTED = "committed"
    ABORTED = "aborted"
    OPEN = "open"
    PLAIN = "plain"
    """Not transactional: visible once below the high watermark."""


@attrs.define
class Pending:
    """A request sent without an answer: the producer retries it before anything else."""

    request: TxnRequest
    succeeded: bool
    """The broker handled it successfully and only the response was lost."""


@attrs.define
class TxnClient:
    """What one producer instance knows: its id and epoch, and its open transaction."""

    name: str
    transactional_id: str
    producer_id: int = -1
    producer_epoch: int = -1
    fenced: bool = False
    """Told it is fenced (or its producer id is unknown): it may only restart."""
    abortable: bool = False
    """A write was refused: the transaction may only be aborted."""
    tag: str | None = None
    partitions: list[TopicPartition] = attrs.Factory(list)
    offsets_added: bool = False
    sequences: dict[TopicPartition, int] = attrs.Factory(dict)
    records: int = 0
    pending: Pending | None = None

    @property
    def ready(self) -> bool:
        return self.producer_id >= 0 and not self.fenced and self.pending is None


class TransactionMachine(Breakable, RuleBasedStateMachine):
    """Transactional producers, a broker and a lossy network; see the module docstring."""

    transactional_ids: ClassVar[tuple[str, ...]] = ("tx-a", "tx-b")
    max_instances: ClassVar[int] = 2
    """Live producer instances at most (zombies included)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.broker = Broker(self.broker_config)
        self.clients: list[TxnClient] = []
        self.story: list[StoryLine] = []
        self.phase = "setup"
        self._tags = itertools.count(1)
        self._incarnations: dict[str, int] = {}
        self._plain_commits = 0
        self._fates_memo: dict[tuple[str, int], tuple[LogVersion, list[Fated]]] = {}
        self._read_checked: dict[tuple[str, int], tuple[LogVersion, object]] = {}
        """The version of each data log whose reads the last check found right, with the
        broker incarnation's transaction coordinator."""
        self.late: list[tuple[TxnClient, TxnRequest, str]] = []
        """Copies of requests held up in the network: sender, request, description."""
        self.tag_owner: dict[str, str] = {}
        """Transaction tag -> transactional id."""
        self.acknowledged: dict[str, bool] = {}
        """Tags whose EndTxn was acknowledged, and whether it was a commit."""
        self._lso_seen: dict[int, int] = {}
        self._decisions_read = 0
        self._decided: dict[str, TransactionState] = {}
        self.failed = False
        self.failure: str | None = None

    # --- set-up ----------------------------------------------------------------------------

    @initialize()
    def setup(self) -> None:
        self.broker.create_topic(TOPIC, PARTITIONS)
        self.broker.create_topic(INPUT_TOPIC, 1)
        names = ", ".join(self.transactional_ids)
        self.say(
            f"topic {TOPIC!r} with {PARTITIONS} partitions; group {GROUP!r} consumes "
            f"{INPUT_TOPIC!r}; transactional ids {names}"
        )
        for transactional_id in self.transactional_ids:
            self._init(self._new_instance(transactional_id), "deliver")
        self.phase = "step"

    def _new_instance(self, transactional_id: str) -> TxnClient:
        incarnation = self._incarnations.get(transactional_id, -1) + 1
        self._incarnations[transactional_id] = incarnation
        name = transactional_id + "'" * incarnation
        client = TxnClient(name, transactional_id)
        self.clients.append(client)
        return client

    # --- rules: the producers --------------------------------------------------------------

    @precondition(lambda self: any(c.ready and not c.abortable for c in self.clients))
    @rule(
        client=st.integers(0, 3),
        partition=st.integers(0, PARTITIONS - 1),
        records=st.integers(1, 2),
        fate=st.sampled_from(TXN_FATES),
    )
    def send(self, client: int, partition: int, records: int, fate: str) -> None:
        """Write records in the transaction, adding the partition to it first if need be.

        The fate is the Produce request's; AddPartitionsToTxn gets through (its own faults
        are the same as any other request's, and would only make counterexamples longer).
        """
        chosen = self._pick(client, lambda c: c.ready and not c.abortable)
        tp = TopicPartition(TOPIC, partition)
        if chosen.tag is None:
            self._begin(chosen)
        if tp not in chosen.partitions:
            add = AddPartitionsToTxnRequest(
                transactional_id=chosen.transactional_id,
                producer_id=chosen.producer_id,
                producer_epoch=chosen.producer_epoch,
                partitions=(tp,),
            )
            self._exchange(chosen, add, "deliver")
            if not chosen.ready or tp not in chosen.partitions:
                return
        assert chosen.tag is not None
        self._exchange(chosen, self._produce_request(chosen, tp, chosen.tag, records), fate)

    @precondition(lambda self: any(c.ready and not c.abortable for c in self.clients))
    @rule(client=st.integers(0, 3), fate=st.sampled_from(TXN_FATES))
    def send_offsets(self, client: int, fate: str) -> None:
        """Kafka's ``send_offsets_to_transaction``: AddOffsetsToTxn, then TxnOffsetCommit.

        The fate is the TxnOffsetCommit's; AddOffsetsToTxn gets through.
        """
        chosen = self._pick(client, lambda c: c.ready and not c.abortable)
        if chosen.tag is None:
            self._begin(chosen)
        if not chosen.offsets_added:
            add = AddOffsetsToTxnRequest(
                transactional_id=chosen.transactional_id,
                producer_id=chosen.producer_id,
                producer_epoch=chosen.producer_epoch,
                group_id=GROUP,
            )
            self._exchange(chosen, add, "deliver")
            if not chosen.ready or not chosen.offsets_added:
                return
        assert chosen.tag is not None
        request = TxnOffsetCommitRequest(
            transactional_id=chosen.transactional_id,
            group_id=GROUP,
            producer_id=chosen.producer_id,
            producer_epoch=chosen.producer_epoch,
            partitions=(OffsetCommitPartition(INPUT_TOPIC, 0, int(chosen.tag[1:]), chosen.tag),),
        )
        self._exchange(chosen, request, fate)

    @precondition(lambda self: any(c.ready and c.tag is not None for c in self.clients))
    @rule(client=st.integers(0, 3), commit=st.booleans(), fate=st.sampled_from(TXN_FATES))
    def end(self, client: int, commit: bool, fate: str) -> None:
        chosen = self._pick(client, lambda c: c.ready and c.tag is not None)
        commit = commit and not chosen.abortable
        if not chosen.partitions and not chosen.offsets_added:
            # Nothing was added: Kafka's producer ends such a transaction without a request.
            self.say(f"{chosen.name} ends its empty transaction {chosen.tag} locally")
            self._end_locally(chosen)
            return
        request = EndTxnRequest(
            transactional_id=chosen.transactional_id,
            producer_id=chosen.producer_id,
            producer_epoch=chosen.producer_epoch,
            committed=commit,
        )
        self._exchange(chosen, request, fate)

    @rule()
    def plain_commit(self) -> None:
        """A consumer outside any transaction commits an offset for the group (OffsetCommit)."""
        self._plain_commits += 1
        tag = f"P{self._plain_commits}"
        request = OffsetCommitRequest(
            group_id=GROUP,
            partitions=(OffsetCommitPartition(INPUT_TOPIC, 0, 100 + self._plain_commits, tag),),
        )
        response = self.broker.handle(request, now=self.now)
        assert response is not None
        offset = 100 + self._plain_commits
        self.say(
            f"a plain OffsetCommit of {INPUT_TOPIC}-0 -> {offset} ({tag}): "
            f"{self._outcome(response)}"
        )

    @precondition(lambda self: bool(self.late))
    @rule(pick=st.integers(0, LATE_MAX - 1))
    def deliver_late(self, pick: int) -> None:
        """A request held up in the network arrives at last; nobody waits for its answer."""
        client, request, what = self.late.pop(pick % len(self.late))
        self.broker.tick(self.now, marker_limit=0)
        epoch_then = self._current_epoch(client)
        ends_before = {log.partition: log.log_end_offset for log in self._data_logs()}
        response = self.broker.handle(request, now=self.now)
        assert response is not None
        ok = self._succeeded(response)
        self.say(f"late copy of {what} arrives: {self._outcome(response)}")
        self._check_epoch(client, request, ok, epoch_then)
        if ok and isinstance(request, ProduceRequest):
            self._check_write_in_transaction(client, request, ends_before)

    def _check_write_in_transaction(
        self, client: TxnClient, request: ProduceRequest, ends_before: dict[int, int]
    ) -> None:
        """Transactional data goes only to partitions of its producer's ongoing transaction."""
        data = request.partitions[0]
        if (
            self.broker.log(data.topic, data.partition).log_end_offset
            == ends_before[data.partition]
        ):
            return  # a duplicate: nothing was appended
        metadata = self.broker.transaction_coordinator.transactions.get(client.transactional_id)
        tp = TopicPartition(data.topic, data.partition)
        if (
            metadata is None
            or metadata.state is not TransactionState.ONGOING
            or (tp not in metadata.partitions)
        ):
            state = metadata.state.title if metadata is not None else "unknown"
            self._fail(
                f"write outside the transaction: {what_of(data)} was appended to {tp}, but "
                f"{client.transactional_id} is {state}"
                + (
                    ""
                    if metadata is None
                    else f" with partitions {list(map(str, metadata.partitions))}"
                )
            )

    @precondition(lambda self: any(c.pending is not None for c in self.clients))
    @rule(client=st.integers(0, 3), fate=st.sampled_from(TXN_FATES))
    def retry(self, client: int, fate: str) -> None:
        chosen = self._pick(client, lambda c: c.pending is not None)
        assert chosen.pending is not None
        self._exchange(chosen, chosen.pending.request, fate, retry=True)

    def _restart_producer(self, client: int, fate: str) -> None:
        """The producer process restarts: a new instance with the same transactional id."""
        old = self.clients[client % len(self.clients)]
        self.clients.remove(old)
        new = self._new_instance(old.transactional_id)
        self.say(f"{old.name} crashes and restarts as {new.name}")
        self._init(new, fate)

    def _init(self, client: TxnClient, fate: str) -> None:
        request = InitProducerIdRequest(
            transactional_id=client.transactional_id, transaction_timeout_ms=TIMEOUT_MS
        )
        self._exchange(client, request, fate)

    # --- rules: the broker and time --------------------------------------------------------

    @rule(event=st.sampled_from(EVENTS), client=st.integers(0, 3), fate=st.sampled_from(TXN_FATES))
    def event(self, event: str, client: int, fate: str) -> None:
        """Something happens besides the producers' work. One rule for all of these, so that
        failures do not crowd out the work they disturb.

        "marker": the coordinator writes one pending marker; "broker crash": the broker
        crashes and recovers; "producer restart": producer ``client`` restarts as a new
        instance, whose InitProducerId meets ``fate``; "1s" and "61s": time passes (61 s is
        past the transaction timeout) and the coordinator does its background work.
        """
        coordinator = self.broker.transaction_coordinator
        if event == "producer restart":
            self._restart_producer(client, fate)
        elif event == "marker":
            if not coordinator.pending_markers:
                self.say("the coordinator has no marker to write")
                return
            job = next(iter(coordinator.pending_markers.values()))
            tp = job.partitions[0]
            self.broker.tick(self.now, marker_limit=1)
            self.say(
                f"coordinator writes the {job.result.name} marker of {job.transactional_id} to {tp}"
            )
        elif event == "broker crash":
            pending = len(coordinator.pending_markers)
            self.broker.restart()
            self.say(
                "broker crashes and recovers"
                + (f" ({pending} transaction(s) had markers still to write)" if pending else "")
            )
        else:
            self._advance(float(event.rstrip("s")))

    def _advance(self, seconds: float) -> None:
        self.now += seconds
        before = {
            tid: meta.producer_epoch
            for tid, meta in self.broker.transaction_coordinator.transactions.items()
        }
        self.broker.tick(self.now)
        bumped = [
            tid
            for tid, meta in self.broker.transaction_coordinator.transactions.items()
            if before.get(tid, meta.producer_epoch) != meta.producer_epoch
        ]
        self.say(
            f"time passes to t={self.now:g}s"
            + (f": {', '.join(bumped)} timed out, fenced and aborted" if bumped else "")
        )

    # --- the exchange: one request across the network --------------------------------------

    def _exchange(
        self, client: TxnClient, request: TxnRequest, fate: str, *, retry: bool = False
    ) -> None:
        what = ("retry of " if retry else "") + self._describe(client, request)
        succeeded_before = client.pending.succeeded if client.pending is not None else False
        if fate == "delay" and isinstance(request, LATE_SAFE) and len(self.late) < LATE_MAX:
            self.late.append((client, request, what))
            self.say(f"{what}: held up in the network; the producer will retry")
            client.pending = Pending(request, succeeded=succeeded_before)
            return
        if fate in ("lose request", "delay"):
            self.say(f"{what}: the network loses the request")
            client.pending = Pending(request, succeeded=succeeded_before)
            return
        # Flushes and timeouts due now happen first, not to be mistaken for the request's doing.
        self.broker.tick(self.now, marker_limit=0)
        idempotent = self._retry_is_idempotent(request)
        before = self.broker.snapshot() if succeeded_before and idempotent else None
        ends_before = {log.partition: log.log_end_offset for log in self._data_logs()}
        epoch_then = self._current_epoch(client)
        response = self.broker.handle(request, now=self.now)
        assert response is not None
        ok = self._succeeded(response)
        after = self.broker.snapshot() if before is not None and ok else None
        again = None
        copy_changed = False
        if fate == "duplicate":
            before_copy = self.broker.snapshot() if ok and idempotent else None
            again = self.broker.handle(request, now=self.now)
            assert again is not None
            if before_copy is not None and self._succeeded(again):
                copy_changed = self.broker.snapshot() != before_copy
        outcome = self._outcome(response)
        if fate == "crash after":
            self.broker.restart()
            self.say(f"{what}: {outcome}; the broker crashes before the response leaves")
            fate = "lose response"
        elif fate == "lose response":
            self.say(f"{what}: {outcome}; the response is lost")
        else:
            self.say(f"{what}: {outcome}" + (" (delivered twice)" if again else ""))
        self._check_epoch(client, request, ok, epoch_then)
        if ok and isinstance(request, ProduceRequest) and again is None:
            self._check_write_in_transaction(client, request, ends_before)
        if again is not None:
            self._check_epoch(client, request, self._succeeded(again), epoch_then)
        if after is not None and after != before:
            self._fail(
                f"retry changed state: {what} had already succeeded, yet handling it again "
                "changed the broker"
            )
        if copy_changed:
            self._fail(f"retry changed state: the second copy of {what} changed the broker")
        if fate == "lose response":
            client.pending = Pending(request, succeeded=ok or succeeded_before)
            return
        client.pending = None
        self._on_response(client, request, response)

    @staticmethod
    def _retry_is_idempotent(request: TxnRequest) -> bool:
        if isinstance(request, InitProducerIdRequest):
            return request.producer_id >= 0  # a first init asks for a new epoch each time
        return not isinstance(request, TxnOffsetCommitRequest)

    @classmethod
    def _succeeded(cls, response: Response) -> bool:
        return cls._first_error(response) is ErrorCode.NONE

    @staticmethod
    def _first_error(response: Response) -> ErrorCode:
        return next((e for e in error_codes(response) if e is not ErrorCode.NONE), ErrorCode.NONE)

    def _outcome(self, response: Response) -> str:
        """A short word for a response: ok, the first error's name, or the pid and epoch."""
        error = self._first_error(response)
        if error is not ErrorCode.NONE:
            return error.name
        if isinstance(response, InitProducerIdResponse):
            return f"pid {response.producer_id} epoch {response.producer_epoch}"
        if isinstance(response, ProduceResponse):
            return f"ok at offset {response.partitions[0].base_offset}"
        return "ok"

    def _current_epoch(self, client: TxnClient) -> int | None:
        metadata = self.broker.transaction_coordinator.transactions.get(client.transactional_id)
        if metadata is None or metadata.producer_id != client.producer_id:
            return None
        return metadata.producer_epoch

    def _check_epoch(
        self, client: TxnClient, request: TxnRequest, ok: bool, epoch_then: int | None
    ) -> None:
        """Once an epoch is bumped, nothing that carries an older one may succeed."""
        if not ok or epoch_then is None or isinstance(request, InitProducerIdRequest):
            return
        if isinstance(request, ProduceRequest):
            epoch = request.partitions[0].batch.producer_epoch
        else:
            epoch = request.producer_epoch
        if epoch < epoch_then:
            self._fail(
                f"zombie accepted: {client.name}'s {request.api_name} with epoch {epoch} "
                f"succeeded although epoch {epoch_then} of {client.transactional_id} was current"
            )

    def _on_response(self, client: TxnClient, request: TxnRequest, response: Response) -> None:
        """The producer's reaction, as Kafka's transaction manager would react."""
        error = self._first_error(response)
        if error in (ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.BROKER_NOT_AVAILABLE):
            client.pending = Pending(request, succeeded=False)  # retriable: retry it
            return
        if error in (
            ErrorCode.PRODUCER_FENCED,
            ErrorCode.INVALID_PRODUCER_EPOCH,
            ErrorCode.INVALID_PRODUCER_ID_MAPPING,
        ):
            client.fenced = True
            return
        if isinstance(request, InitProducerIdRequest):
            assert isinstance(response, InitProducerIdResponse)
            if error is ErrorCode.NONE:
                client.producer_id = response.producer_id
                client.producer_epoch = response.producer_epoch
                client.sequences = {}  # a new epoch starts its sequences at 0
            return
        if error is not ErrorCode.NONE:
            # Anything else refused inside a transaction makes it abortable.
            client.abortable = True
            return
        if isinstance(request, AddPartitionsToTxnRequest):
            client.partitions.extend(tp for tp in request.partitions if tp not in client.partitions)
        elif isinstance(request, AddOffsetsToTxnRequest):
            client.offsets_added = True
        elif isinstance(request, ProduceRequest):
            data = request.partitions[0]
            tp = TopicPartition(data.topic, data.partition)
            client.sequences[tp] = data.batch.base_sequence + data.batch.record_count
        elif isinstance(request, EndTxnRequest):
            assert client.tag is not None
            self.acknowledged[client.tag] = request.committed
            self._end_locally(client)

    @staticmethod
    def _produce_request(
        client: TxnClient, tp: TopicPartition, tag: str, records: int
    ) -> ProduceRequest:
        """A transactional batch of ``records`` new values ("T1.3"), at the next sequence."""
        values = []
        for _ in range(records):
            client.records += 1
            values.append(Record(f"{tag}.{client.records}".encode()))
        batch = RecordBatch(
            records=tuple(values),
            producer_id=client.producer_id,
            producer_epoch=client.producer_epoch,
            base_sequence=client.sequences.get(tp, 0),
            is_transactional=True,
        )
        return ProduceRequest(
            partitions=(ProducePartitionData(tp.topic, tp.partition, batch),),
            transactional_id=client.transactional_id,
        )

    def _begin(self, client: TxnClient) -> None:
        client.tag = f"T{next(self._tags)}"
        self.tag_owner[client.tag] = client.transactional_id
        client.records = 0

    @staticmethod
    def _end_locally(client: TxnClient) -> None:
        client.tag = None
        client.partitions = []
        client.offsets_added = False
        client.abortable = False

    def _pick(self, index: int, wanted: Any) -> TxnClient:
        candidates = [c for c in self.clients if wanted(c)]
        return candidates[index % len(candidates)]

    def _describe(self, client: TxnClient, request: TxnRequest) -> str:
        epoch = f"epoch {client.producer_epoch}" if client.producer_id >= 0 else "no id yet"
        head = f"{client.name} ({epoch})"
        if isinstance(request, AddPartitionsToTxnRequest):
            return f"{head} AddPartitionsToTxn {request.partitions[0]} for {client.tag}"
        if isinstance(request, ProduceRequest):
            data = request.partitions[0]
            values = ", ".join((r.value or b"").decode() for r in data.batch.records)
            return f"{head} Produce {values} to {data.topic}-{data.partition}"
        if isinstance(request, AddOffsetsToTxnRequest):
            return f"{head} AddOffsetsToTxn {GROUP} for {client.tag}"
        if isinstance(request, TxnOffsetCommitRequest):
            offset = request.partitions[0].committed_offset
            return f"{head} TxnOffsetCommit {INPUT_TOPIC}-0 -> {offset} for {client.tag}"
        if isinstance(request, EndTxnRequest):
            word = "commit" if request.committed else "abort"
            return f"{head} EndTxn {word} {client.tag}"
        if request.producer_id >= 0:
            return f"{head} InitProducerId {client.transactional_id} with its id and epoch"
        return f"{head} InitProducerId {client.transactional_id}"

    # --- the oracle: what the logs say -----------------------------------------------------

    @staticmethod
    def fates(log: PartitionLog) -> Iterator[Fated]:
        """Every data record of ``log`` with its offset, batch and fate, in log order."""
        open_records: dict[int, list[tuple[int, RecordBatch, Record]]] = {}
        decided: list[Fated] = []
        for batch in log.batches():
            if batch.is_control:
                result = (
                    Fate.COMMITTED if batch.control_type is ControlType.COMMIT else Fate.ABORTED
                )
                for entry in open_records.pop(batch.producer_id, []):
                    decided.append((*entry, result))
                continue
            for position, record in enumerate(batch.records):
                entry = (batch.base_offset + position, batch, record)
                if batch.is_transactional:
                    open_records.setdefault(batch.producer_id, []).append(entry)
                else:
                    decided.append((*entry, Fate.PLAIN))
        for entries in open_records.values():
            decided.extend((*entry, Fate.OPEN) for entry in entries)
        decided.sort(key=lambda item: item[0])
        yield from decided

    def _fates_of(self, log: PartitionLog) -> list[Fated]:
        """``fates(log)``, computed again only when the log changed (most steps change one
        log, or none)."""
        key = (log.topic, log.partition)
        version = log_version(log)
        found = self._fates_memo.get(key)
        if found is None or found[0] != version:
            found = self._fates_memo[key] = (version, list(self.fates(log)))
        return found[1]

    def _data_logs(self) -> list[PartitionLog]:
        return [self.broker.log(TOPIC, partition) for partition in range(PARTITIONS)]

    def transaction_fates(self) -> dict[str, dict[str, list[str]]]:
        """Tag -> fate -> where its records and offsets are ("payments-0@3", "offsets@1")."""
        found: dict[str, dict[str, list[str]]] = {}
        for log in self._data_logs():
            for offset, _, record, fate in self._fates_of(log):
                tag = (record.value or b"").decode().split(".")[0]
                found.setdefault(tag, {}).setdefault(fate, []).append(
                    f"{log.topic}-{log.partition}@{offset}"
                )
        offsets_log = self.broker.internal_log(OFFSETS_TOPIC)
        for offset, batch, _record, fate in self._fates_of(offsets_log):
            if batch.is_transactional:
                tag = self._offset_tag(_record)
                found.setdefault(tag, {}).setdefault(fate, []).append(f"offsets@{offset}")
        return found

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _decode_offset(value: bytes) -> tuple[int, str]:
        fields = json.loads(value)
        return fields["offset"], fields["metadata"] or ""

    @classmethod
    def _offset_tag(cls, record: Record) -> str:
        assert record.value is not None
        return cls._decode_offset(record.value)[1]

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        """All the invariants, in the order a reader wants to hear about a failure."""
        if not self.broker.running:
            return
        self.coordinator()
        self.atomicity()
        self.read_committed()
        self.last_stable_offset()
        self.offsets()

    def coordinator(self) -> None:
        coordinator = self.broker.transaction_coordinator
        while coordinator.transitions:
            transition = coordinator.transitions.popleft()
            if not is_legal_transition(transition.old, transition.new):
                old = transition.old.title if transition.old is not None else "nothing"
                self._fail(
                    f"illegal transition: {transition.transactional_id} moved from {old} "
                    f"to {transition.new.title}"
                )
        self._read_decisions()
        for transactional_id in coordinator.pending_markers:
            state = coordinator.transactions[transactional_id].state
            if state not in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT):
                self._fail(f"markers pending for {transactional_id}, which is {state.title}")

    def _read_decisions(self) -> None:
        """A durable PrepareCommit is the decision: nothing may turn it into an abort."""
        log = self.broker.internal_log(TRANSACTION_STATE_TOPIC)
        for batch in log.batches(self._decisions_read):
            for record in batch.records:
                assert record.value is not None
                metadata = TransactionMetadata.from_json(record.value)
                previous = self._decided.get(metadata.transactional_id)
                overturned = previous is TransactionState.PREPARE_COMMIT and metadata.state in (
                    TransactionState.PREPARE_ABORT,
                    TransactionState.COMPLETE_ABORT,
                )
                if overturned:
                    tags = [t for t, o in self.tag_owner.items() if o == metadata.transactional_id]
                    which = f" for {tags[-1]}" if tags else ""
                    self._fail(
                        f"decision overturned: {metadata.transactional_id} logged "
                        f"PrepareCommit{which}, then {metadata.state.title}"
                    )
                self._decided[metadata.transactional_id] = metadata.state
        self._decisions_read = log.batch_count

    def _markers_pending(self, tag: str) -> bool:
        transactional_id = self.tag_owner.get(tag)
        return transactional_id in self.broker.transaction_coordinator.pending_markers

    def atomicity(self) -> None:
        for tag, by_fate in self.transaction_fates().items():
            committed = by_fate.get(Fate.COMMITTED, [])
            aborted = by_fate.get(Fate.ABORTED, [])
            still_open = by_fate.get(Fate.OPEN, [])
            if committed and aborted:
                self._fail(
                    f"torn transaction: {tag} is committed at {', '.join(committed)} but "
                    f"aborted at {', '.join(aborted)}"
                )
            decided = committed or aborted
            if decided and still_open and not self._markers_pending(tag):
                self._fail(
                    f"torn transaction: {tag} is {'committed' if committed else 'aborted'} at "
                    f"{', '.join(decided)} but still open at {', '.join(still_open)}, with no "
                    "marker left to write"
                )
            acknowledged = self.acknowledged.get(tag)
            if acknowledged is True and aborted:
                self._fail(
                    f"lost commit: {tag}'s commit was acknowledged, but it is aborted at "
                    f"{', '.join(aborted)}"
                )
            if acknowledged is False and committed:
                self._fail(
                    f"lost abort: {tag}'s abort was acknowledged, but it is committed at "
                    f"{', '.join(committed)}"
                )

    def _read(self, log: PartitionLog, isolation: IsolationLevel) -> dict[int, Record]:
        """Everything a consumer with ``isolation`` shows of ``log``, by offset."""
        response = self.broker.inspect(
            FetchRequest(
                partitions=(FetchPartition(log.topic, log.partition, 0),),
                isolation_level=isolation,
            ),
            now=self.now,
        )
        assert isinstance(response, FetchResponse)
        answer = response.partitions[0]
        shown = visible_records(answer.batches, answer.aborted_transactions, 0, isolation)
        return {consumed.offset: consumed.record for consumed in shown.records}

    def expected_last_stable_offset(self, log: PartitionLog) -> int:
        """The LSO by its definition: the HW, or the first offset of the earliest open
        transaction if that is lower (computed from the records' fates, not the log's index)."""
        open_offsets = [offset for offset, _, _, fate in self._fates_of(log) if fate == Fate.OPEN]
        return min([log.high_watermark, *open_offsets])

    def read_committed(self) -> None:
        for log in self._data_logs():
            # What a fetch returns depends on the log and its indexes alone: a log that did
            # not change since the last check, which found its reads right, is not read again
            # until a restart (a new coordinator marks it) rebuilds the indexes.
            version = (log_version(log), self.broker.transaction_coordinator)
            if self._read_checked.get((log.topic, log.partition)) == version:
                continue
            seen = self._read(log, IsolationLevel.READ_COMMITTED)
            stable = self.expected_last_stable_offset(log)
            where = f"{log.topic}-{log.partition}"
            expected = {}
            everything = {}
            for offset, _, record, fate in self._fates_of(log):
                value = (record.value or b"").decode()
                if offset in seen and fate in (Fate.ABORTED, Fate.OPEN):
                    self._fail(
                        f"{'aborted' if fate == Fate.ABORTED else 'uncommitted'} read: "
                        f"read_committed returned {value} at {where} offset {offset}, "
                        f"whose transaction is {fate}"
                    )
                if offset < stable and fate in (Fate.COMMITTED, Fate.PLAIN):
                    expected[offset] = record
                if offset < log.high_watermark:
                    everything[offset] = record
            missing = sorted(set(expected) - set(seen))
            if missing:
                value = (expected[missing[0]].value or b"").decode()
                self._fail(
                    f"committed record missing: {value} at {where} offset {missing[0]} is "
                    f"committed and below the last stable offset {stable}, but read_committed "
                    "did not return it"
                )
            uncommitted = self._read(log, IsolationLevel.READ_UNCOMMITTED)
            if uncommitted != everything:
                self._fail(
                    f"read_uncommitted wrong: {where} below the high watermark holds records "
                    f"at {sorted(everything)}, but read_uncommitted returned {sorted(uncommitted)}"
                )
            self._read_checked[(log.topic, log.partition)] = version

    def last_stable_offset(self) -> None:
        for log in self._data_logs():
            lso = log.last_stable_offset
            where = f"{log.topic}-{log.partition}"
            expected = self.expected_last_stable_offset(log)
            if lso != expected:
                self._fail(
                    f"wrong LSO: {where} has last stable offset {lso}, but its earliest open "
                    f"transaction and its high watermark put it at {expected}"
                )
            if lso > log.high_watermark:
                self._fail(
                    f"LSO above HW: {where} has last stable offset {lso} above its high "
                    f"watermark {log.high_watermark}"
                )
            previous = self._lso_seen.get(log.partition, 0)
            if lso < previous:
                self._fail(
                    f"LSO went back: {where}'s last stable offset fell from {previous} to {lso}"
                )
            self._lso_seen[log.partition] = lso

    def offsets(self) -> None:
        offsets_log = self.broker.internal_log(OFFSETS_TOPIC)
        expected: tuple[int, str] | None = None
        pending = False
        for _, batch, record, fate in self._fates_of(offsets_log):
            if not batch.is_transactional or fate == Fate.COMMITTED:
                expected = (self._offset_value(record), self._offset_tag(record))
            pending = pending or fate == Fate.OPEN
        tp = TopicPartition(INPUT_TOPIC, 0)
        response = self.broker.inspect(
            OffsetFetchRequest(group_id=GROUP, partitions=(tp,)), now=self.now
        )
        assert isinstance(response, OffsetFetchResponse)
        found = response.partitions[0]
        actual = (
            (found.committed_offset, found.committed_metadata or "")
            if found.committed_offset >= 0
            else None
        )
        if actual != expected:
            shown = f"{actual[1]}'s offset {actual[0]}" if actual else "no offset"
            wanted = f"{expected[1]}'s offset {expected[0]}" if expected else "no offset"
            self._fail(
                f"offsets out of step: the group's committed offset is {shown}, but the last "
                f"committed transaction with offsets gives {wanted}"
            )
        stable = self.broker.inspect(
            OffsetFetchRequest(group_id=GROUP, partitions=(tp,), require_stable=True), now=self.now
        )
        assert isinstance(stable, OffsetFetchResponse)
        unstable = stable.partitions[0].error_code is ErrorCode.UNSTABLE_OFFSET_COMMIT
        if pending != unstable and self.broker.config.enabled(Safeguard.PENDING_TXN_OFFSETS):
            self._fail(
                "unstable offsets served: offsets wait for a marker, yet require_stable "
                "returned an offset"
                if pending
                else "offsets stuck unstable: no offset waits for a marker, yet require_stable "
                "answers UNSTABLE_OFFSET_COMMIT"
            )

    @classmethod
    def _offset_value(cls, record: Record) -> int:
        assert record.value is not None
        return cls._decode_offset(record.value)[0]

    def teardown(self) -> None:
        """Let every retry through, time out what is left open, and check that all ended."""
        if self.failed or self.phase == "setup":
            return
        self.phase = "heal"
        if not self.broker.running:
            self.broker.recover()
        for _ in range(HEAL_ROUNDS_MAX):
            waiting = [c for c in self.clients if c.pending is not None]
            if not waiting:
                break
            client = waiting[0]
            assert client.pending is not None
            self._exchange(client, client.pending.request, "deliver", retry=True)
            if client.pending is not None:  # still busy: let the coordinator finish first
                self.broker.tick(self.now)
        while self.late:
            self.deliver_late(0)
        self.now += (self.broker.config.transaction_max_timeout_ms + TIMEOUT_MS) / 1000
        self.broker.tick(self.now)
        self.say(f"everyone stops; time passes to t={self.now:g}s and open transactions time out")
        self.check()
        for transactional_id, metadata in self.broker.transaction_coordinator.transactions.items():
            if metadata.is_open:
                self._fail(
                    f"hanging transaction: {transactional_id} is still {metadata.state.title} "
                    "after every producer stopped and every timeout passed"
                )
        for log in [*self._data_logs(), self.broker.internal_log(OFFSETS_TOPIC)]:
            if log.last_stable_offset != log.high_watermark:
                self._fail(
                    f"stuck LSO: {log.topic}-{log.partition} stays at last stable offset "
                    f"{log.last_stable_offset} below its high watermark {log.high_watermark}"
                )

    # --- the story -------------------------------------------------------------------------

    def _fail(self, message: str) -> NoReturn:
        """Stop the run with ``message``; teardown then leaves the evidence as it is."""
        self.failed = True
        self.failure = message
        raise AssertionError(message)

    def transaction_rows(self) -> tuple[TransactionRow, ...]:
        """The coordinator's transactions at the end of the run."""
        coordinator = self.broker.transaction_coordinator
        rows = []
        for metadata in coordinator.transactions.values():
            job = coordinator.pending_markers.get(metadata.transactional_id)
            rows.append(
                TransactionRow(
                    metadata.transactional_id,
                    metadata.producer_id,
                    metadata.producer_epoch,
                    metadata.state.title,
                    tuple(str(tp) for tp in metadata.partitions),
                    len(job.partitions) if job is not None else 0,
                )
            )
        return tuple(rows)

    def log_rows(self) -> tuple[LogRow, ...]:
        """The partition logs and the offsets log as rows, each record with its fate.

        Records of the transactions the failure names are marked as the evidence.
        """
        named = set(re.findall(r"\bT\d+\b", self.failure or ""))
        rows = []
        offsets_log = self.broker.internal_log(OFFSETS_TOPIC)
        for log in [*self._data_logs(), offsets_log]:
            fates = {offset: fate for offset, _, _, fate in self._fates_of(log)}
            for batch in log.batches():
                for position, record in enumerate(batch.records):
                    offset = batch.base_offset + position
                    if batch.is_control:
                        kind = batch.control_type.name if batch.control_type is not None else "?"
                        value, note, tag = "", f"{kind} marker", ""
                    elif log is offsets_log:
                        tag = self._offset_tag(record)
                        value = f"{INPUT_TOPIC}-0 -> {self._offset_value(record)} ({tag})"
                        note = fates.get(offset, "")
                    else:
                        value = (record.value or b"").decode(errors="replace")
                        tag = value.split(".")[0]
                        note = fates.get(offset, "")
                    sequence = batch.base_sequence + position if batch.base_sequence >= 0 else -1
                    rows.append(
                        LogRow(
                            log.topic,
                            log.partition,
                            offset,
                            value,
                            batch.producer_id,
                            batch.producer_epoch,
                            sequence,
                            note,
                            tag in named,
                        )
                    )
        return tuple(rows)

    def say(self, line: str, *, detail: bool = False) -> None:
        self.story.append(StoryLine(self.phase, line, detail))

    @property
    def steps(self) -> list[StoryLine]:
        return [line for line in self.story if line.phase == "step" and not line.detail]


class AtomicCommitMachine(TransactionMachine):
    """Two transactional ids, each with one live producer at a time."""


class FencingMachine(TransactionMachine):
    """One transactional id whose old instances live on as zombies."""

    transactional_ids: ClassVar[tuple[str, ...]] = ("tx",)
    max_instances: ClassVar[int] = 3

    @precondition(lambda self: len(self.clients) < self.max_instances)
    @rule(fate=st.sampled_from(TXN_FATES))
    def start_another_instance(self, fate: str) -> None:
        """A second process starts with the same transactional id; the first one lives on."""
        new = self._new_instance(self.transactional_ids[0])
        self.say(f"{new.name} starts with the same transactional id; the others live on as zombies")
        self._init(new, fate)

    @precondition(lambda self: any(c.ready and c.tag is None for c in self.clients))
    @rule(client=st.integers(0, 3), fate=st.sampled_from(TXN_FATES))
    def bump_epoch(self, client: int, fate: str) -> None:
        """InitProducerId with the current id and epoch (KIP-360): a bump, safe to retry."""
        chosen = self._pick(client, lambda c: c.ready and c.tag is None)
        request = InitProducerIdRequest(
            transactional_id=chosen.transactional_id,
            transaction_timeout_ms=TIMEOUT_MS,
            producer_id=chosen.producer_id,
            producer_epoch=chosen.producer_epoch,
        )
        self._exchange(chosen, request, fate)

    @precondition(lambda self: any(c.ready for c in self.clients))
    @rule(client=st.integers(0, 3), partition=st.integers(0, PARTITIONS - 1))
    def write_without_adding(self, client: int, partition: int) -> None:
        """A buggy client writes transactional data without AddPartitionsToTxn, perhaps with no
        transaction open at all. The broker must refuse it unless the partition is in the open
        transaction (KIP-890's defence against hanging transactions)."""
        chosen = self._pick(client, lambda c: c.ready)
        tp = TopicPartition(TOPIC, partition)
        tag = chosen.tag or f"X{next(self._tags)}"
        self.tag_owner.setdefault(tag, chosen.transactional_id)
        request = self._produce_request(chosen, tp, tag, 1)
        batch = request.partitions[0].batch
        ends_before = {log.partition: log.log_end_offset for log in self._data_logs()}
        response = self.broker.handle(request, now=self.now)
        assert isinstance(response, ProduceResponse)
        self.say(
            f"{chosen.name} (buggy) writes {tag}.{chosen.records} to {tp} without adding it: "
            f"{self._outcome(response)}"
        )
        if self._succeeded(response):
            chosen.sequences[tp] = batch.base_sequence + 1
            self._check_write_in_transaction(chosen, request, ends_before)
