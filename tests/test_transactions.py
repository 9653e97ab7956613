"""Transactions: the coordinator's states, fencing, markers, the LSO, aborted reads and offsets."""

from __future__ import annotations

import dataclasses

import pytest

from minikafka.core.broker import Broker
from minikafka.core.config import BrokerConfig, Safeguard
from minikafka.core.errors import ErrorCode
from minikafka.core.groups import OFFSETS_TOPIC, OFFSETS_TP
from minikafka.core.isolation import Visible, visible_records
from minikafka.core.log import AbortedTxn, PartitionLog
from minikafka.core.messages import (
    LATEST_TIMESTAMP,
    AbortedTransaction,
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    FetchPartition,
    FetchPartitionResponse,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    IsolationLevel,
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchPartitionResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    ProducePartitionData,
    ProducePartitionResponse,
    ProduceRequest,
    ProduceResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.records import ControlType, Record, RecordBatch, TopicPartition, control_batch
from minikafka.core.transactions import (
    LEGAL_PREVIOUS_STATES,
    MAX_PRODUCER_EPOCH,
    TRANSACTION_STATE_TOPIC,
    TransactionCoordinator,
    TransactionMetadata,
    TransactionState,
    is_legal_transition,
)

S = TransactionState
T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)
COMMITTED = IsolationLevel.READ_COMMITTED
UNCOMMITTED = IsolationLevel.READ_UNCOMMITTED

# --- helpers -------------------------------------------------------------------------------


@dataclasses.dataclass
class Client:
    """A transactional producer as the tests drive it: its ids and its sequence per partition."""

    broker: Broker
    transactional_id: str = "tx"
    producer_id: int = -1
    producer_epoch: int = -1
    sequences: dict[TopicPartition, int] = dataclasses.field(default_factory=dict)

    def init(
        self, *, now: float = 0.0, timeout_ms: int = 60_000, send_ids: bool = False
    ) -> InitProducerIdResponse:
        """InitProducerId; ``send_ids`` sends the current id and epoch (KIP-360)."""
        response = self.broker.handle(
            InitProducerIdRequest(
                transactional_id=self.transactional_id,
                transaction_timeout_ms=timeout_ms,
                producer_id=self.producer_id if send_ids else -1,
                producer_epoch=self.producer_epoch if send_ids else -1,
            ),
            now=now,
        )
        assert isinstance(response, InitProducerIdResponse)
        if response.error_code is ErrorCode.NONE:
            self.producer_id, self.producer_epoch = response.producer_id, response.producer_epoch
            self.sequences = {}
        return response

    def add(self, *tps: TopicPartition, now: float = 0.0) -> list[ErrorCode]:
        response = self.broker.handle(
            AddPartitionsToTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                partitions=tps,
            ),
            now=now,
        )
        assert isinstance(response, AddPartitionsToTxnResponse)
        return [result.error_code for result in response.results]

    def send(
        self, tp: TopicPartition, *values: str, now: float = 0.0, transactional: bool = True
    ) -> ProducePartitionResponse:
        """Produce one batch with the next sequence; the sequence moves on only on success."""
        sequence = self.sequences.get(tp, 0)
        batch = RecordBatch(
            records=tuple(Record(value=v.encode()) for v in values),
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=sequence,
            is_transactional=transactional,
        )
        result = produce(self.broker, tp, batch, now=now)
        if result.error_code is ErrorCode.NONE:
            self.sequences[tp] = sequence + len(values)
        return result

    def end(self, *, commit: bool = True, now: float = 0.0) -> ErrorCode:
        response = self.broker.handle(
            EndTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                committed=commit,
            ),
            now=now,
        )
        assert isinstance(response, EndTxnResponse)
        return response.error_code

    def add_offsets(self, group_id: str = "g", *, now: float = 0.0) -> ErrorCode:
        response = self.broker.handle(
            AddOffsetsToTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                group_id=group_id,
            ),
            now=now,
        )
        assert isinstance(response, AddOffsetsToTxnResponse)
        return response.error_code

    def commit_offsets(
        self, offsets: dict[TopicPartition, int], group_id: str = "g", *, now: float = 0.0
    ) -> list[ErrorCode]:
        response = self.broker.handle(
            TxnOffsetCommitRequest(
                transactional_id=self.transactional_id,
                group_id=group_id,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                partitions=tuple(
                    OffsetCommitPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()
                ),
            ),
            now=now,
        )
        assert isinstance(response, TxnOffsetCommitResponse)
        return [p.error_code for p in response.partitions]


def new_broker(*disabled: Safeguard) -> Broker:
    broker = Broker(BrokerConfig(disabled_safeguards=frozenset(disabled)))
    broker.create_topic("t", 2)
    return broker


def started(broker: Broker, *tps: TopicPartition, transactional_id: str = "tx") -> Client:
    """A client that has its producer id and an ongoing transaction over ``tps``."""
    client = Client(broker, transactional_id)
    assert client.init().error_code is ErrorCode.NONE
    if tps:
        assert client.add(*tps) == [ErrorCode.NONE] * len(tps)
    return client


def produce(
    broker: Broker, tp: TopicPartition, batch: RecordBatch, *, now: float = 0.0
) -> ProducePartitionResponse:
    response = broker.handle(
        ProduceRequest(partitions=(ProducePartitionData(tp.topic, tp.partition, batch),)),
        now=now,
    )
    assert isinstance(response, ProduceResponse)
    return response.partitions[0]


def plain(*values: str) -> RecordBatch:
    return RecordBatch(records=tuple(Record(value=v.encode()) for v in values))


def fetch(
    broker: Broker, tp: TopicPartition, offset: int = 0, isolation: IsolationLevel = COMMITTED
) -> FetchPartitionResponse:
    response = broker.handle(
        FetchRequest(
            partitions=(FetchPartition(tp.topic, tp.partition, offset),), isolation_level=isolation
        ),
        now=0.0,
    )
    assert isinstance(response, FetchResponse)
    return response.partitions[0]


def read(broker: Broker, tp: TopicPartition, isolation: IsolationLevel = COMMITTED) -> Visible:
    """What a consumer at offset 0 shows after one fetch."""
    part = fetch(broker, tp, 0, isolation)
    return visible_records(part.batches, part.aborted_transactions, 0, isolation)


def seen(broker: Broker, tp: TopicPartition, isolation: IsolationLevel = COMMITTED) -> list[str]:
    return [c.record.value.decode() for c in read(broker, tp, isolation).records if c.record.value]


def latest(broker: Broker, tp: TopicPartition, isolation: IsolationLevel) -> int:
    response = broker.handle(
        ListOffsetsRequest(
            partitions=(ListOffsetsPartition(tp.topic, tp.partition, LATEST_TIMESTAMP),),
            isolation_level=isolation,
        ),
        now=0.0,
    )
    assert isinstance(response, ListOffsetsResponse)
    return response.partitions[0].offset


def offset_fetch(
    broker: Broker, *, require_stable: bool = False, group_id: str = "g"
) -> OffsetFetchPartitionResponse:
    response = broker.handle(
        OffsetFetchRequest(group_id=group_id, partitions=(T0,), require_stable=require_stable),
        now=0.0,
    )
    assert isinstance(response, OffsetFetchResponse)
    return response.partitions[0]


def commit_offset(broker: Broker, offset: int, group_id: str = "g") -> ErrorCode:
    response = broker.handle(
        OffsetCommitRequest(group_id=group_id, partitions=(OffsetCommitPartition("t", 0, offset),)),
        now=0.0,
    )
    assert isinstance(response, OffsetCommitResponse)
    return response.partitions[0].error_code


def markers(log: PartitionLog) -> list[tuple[ControlType | None, int]]:
    """The markers in a log: (COMMIT or ABORT, producer epoch), in log order."""
    return [(b.control_type, b.producer_epoch) for b in log.batches() if b.is_control]


def state(broker: Broker, transactional_id: str = "tx") -> TransactionMetadata:
    return broker.transaction_coordinator.transactions[transactional_id]


def txn_log_length(broker: Broker) -> int:
    return broker.internal_log(TRANSACTION_STATE_TOPIC).log_end_offset


# --- states and metadata -------------------------------------------------------------------


def test_legal_previous_states_are_kafkas() -> None:
    kafka = {
        S.EMPTY: {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
        S.ONGOING: {S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
        S.PREPARE_COMMIT: {S.ONGOING},
        S.PREPARE_ABORT: {S.ONGOING, S.PREPARE_EPOCH_FENCE},
        S.COMPLETE_COMMIT: {S.PREPARE_COMMIT},
        S.COMPLETE_ABORT: {S.PREPARE_ABORT},
        S.DEAD: {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
        S.PREPARE_EPOCH_FENCE: {S.ONGOING},
    }
    assert kafka == LEGAL_PREVIOUS_STATES
    assert is_legal_transition(None, S.EMPTY)
    assert not is_legal_transition(None, S.ONGOING)
    assert is_legal_transition(S.ONGOING, S.PREPARE_COMMIT)
    assert not is_legal_transition(S.EMPTY, S.PREPARE_COMMIT)
    assert not is_legal_transition(S.PREPARE_COMMIT, S.COMPLETE_ABORT)
    assert S.PREPARE_COMMIT.title == "PrepareCommit"


def test_transaction_metadata_round_trips_through_json() -> None:
    metadata = TransactionMetadata(
        transactional_id="tx",
        producer_id=7,
        producer_epoch=3,
        last_producer_epoch=2,
        timeout_ms=5000,
        state=S.ONGOING,
        partitions=(T1, OFFSETS_TP),
        start_ms=10,
        last_update_ms=12,
    )
    assert TransactionMetadata.from_json(metadata.to_json()) == metadata


# --- InitProducerId ------------------------------------------------------------------------


def test_the_first_init_gives_epoch_zero_and_a_second_init_bumps_the_epoch() -> None:
    broker = new_broker()
    first = Client(broker).init()
    assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0)
    second = Client(broker).init()
    assert second.error_code is ErrorCode.NONE
    assert (second.producer_id, second.producer_epoch) == (first.producer_id, 1)
    assert state(broker).state is S.EMPTY


def test_a_retried_init_with_the_previous_epoch_gets_the_same_answer_without_a_bump() -> None:
    broker = new_broker()
    client = started(broker)
    assert client.init(send_ids=True).producer_epoch == 1  # a bump the client asked for
    logged = txn_log_length(broker)
    # The answer was lost: the client retries with the pid and the epoch it still holds (0).
    retry = Client(broker, producer_id=client.producer_id, producer_epoch=0).init(send_ids=True)
    assert retry.error_code is ErrorCode.NONE
    assert (retry.producer_id, retry.producer_epoch) == (client.producer_id, 1)
    assert txn_log_length(broker) == logged


def test_an_init_with_an_epoch_neither_current_nor_previous_is_fenced() -> None:
    broker = new_broker()
    client = started(broker)
    client.init(send_ids=True)
    client.init(send_ids=True)
    assert client.producer_epoch == 2
    before = broker.snapshot()
    stale = Client(broker, producer_id=client.producer_id, producer_epoch=0).init(send_ids=True)
    assert stale.error_code is ErrorCode.PRODUCER_FENCED
    assert stale.error_message
    assert broker.snapshot() == before


@pytest.mark.parametrize("timeout_ms", [900_001, 0, -1])
def test_a_transaction_timeout_out_of_range_is_refused_and_changes_nothing(
    timeout_ms: int,
) -> None:
    broker = new_broker()
    started(broker)
    before = broker.snapshot()
    response = Client(broker).init(timeout_ms=timeout_ms)
    assert response.error_code is ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert "900000" in (response.error_message or "")
    assert Client(broker, "other").init(timeout_ms=timeout_ms).error_code is (
        ErrorCode.INVALID_TRANSACTION_TIMEOUT
    )
    assert broker.snapshot() == before


def test_an_empty_transactional_id_is_an_invalid_request() -> None:
    broker = new_broker()
    response = Client(broker, "").init()
    assert response.error_code is ErrorCode.INVALID_REQUEST
    assert broker.transaction_coordinator.transactions == {}
    assert txn_log_length(broker) == 0


def test_an_init_while_a_decision_is_being_written_asks_to_retry() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    assert client.end(commit=True) is ErrorCode.NONE
    successor = Client(broker)
    assert successor.init().error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    assert state(broker).state is S.PREPARE_COMMIT
    broker.tick(0.0)  # the markers go out; the commit completes
    assert successor.init().producer_epoch == 1


def test_a_retried_init_after_a_producer_id_rotation_gets_the_same_answer() -> None:
    log = PartitionLog(TRANSACTION_STATE_TOPIC, 0)
    exhausted = TransactionMetadata(
        transactional_id="tx",
        producer_id=5,
        producer_epoch=MAX_PRODUCER_EPOCH - 1,
        timeout_ms=60_000,
        state=S.COMPLETE_COMMIT,
    )
    log.append(RecordBatch(records=(Record(value=exhausted.to_json(), key=b"tx"),)))
    ids = iter(range(100, 200))
    coordinator = TransactionCoordinator(
        log, allocate_producer_id=lambda: next(ids), transaction_max_timeout_ms=900_000
    )
    coordinator.load()
    ask = {"timeout_ms": 60_000, "producer_id": 5, "producer_epoch": MAX_PRODUCER_EPOCH - 1}
    error, _, rotated = coordinator.init_producer_id("tx", now_ms=0, **ask)
    assert error is ErrorCode.NONE and rotated is not None
    assert (rotated.producer_id, rotated.producer_epoch) == (100, 0)
    error, _, retried = coordinator.init_producer_id("tx", now_ms=0, **ask)  # the answer was lost
    assert error is ErrorCode.NONE
    assert retried == rotated


# --- fencing a zombie ----------------------------------------------------------------------


def zombie_and_successor(broker: Broker) -> tuple[Client, Client]:
    """A wrote into an open transaction; B, the same transactional id, took over."""
    a = started(broker, T0)
    assert a.send(T0, "zombie").error_code is ErrorCode.NONE
    b = Client(broker)
    assert b.init().error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    broker.tick(0.0)  # the abort's markers go out
    assert b.init().error_code is ErrorCode.NONE
    return a, b


def test_an_init_while_a_transaction_is_open_aborts_it_with_a_bumped_epoch() -> None:
    broker = new_broker()
    a = started(broker, T0)
    a.send(T0, "zombie")
    b = Client(broker)
    response = b.init()
    assert response.error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    assert state(broker).state is S.PREPARE_ABORT
    assert state(broker).producer_epoch == 1
    assert b.init().error_code is ErrorCode.CONCURRENT_TRANSACTIONS  # until the markers are out
    broker.tick(0.0)
    assert markers(broker.log("t", 0)) == [(ControlType.ABORT, 1)]
    assert state(broker).state is S.COMPLETE_ABORT
    retry = b.init()
    assert retry.error_code is ErrorCode.NONE
    assert (retry.producer_id, retry.producer_epoch) == (a.producer_id, 2)


def test_the_fenced_instance_can_neither_write_nor_commit() -> None:
    broker = new_broker()
    a, _ = zombie_and_successor(broker)
    end_before = broker.log("t", 0).log_end_offset
    assert a.send(T0, "late").error_code is ErrorCode.INVALID_PRODUCER_EPOCH
    assert broker.log("t", 0).log_end_offset == end_before
    assert a.add(T1) == [ErrorCode.PRODUCER_FENCED]
    assert a.end(commit=True) is ErrorCode.PRODUCER_FENCED
    assert state(broker).state is S.EMPTY


def test_the_fenced_instances_records_stay_invisible_to_read_committed() -> None:
    broker = new_broker()
    _, b = zombie_and_successor(broker)
    b.add(T0)
    b.send(T0, "fresh")
    assert b.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)
    assert seen(broker, T0) == ["fresh"]
    assert seen(broker, T0, UNCOMMITTED) == ["zombie", "fresh"]


# --- AddPartitionsToTxn --------------------------------------------------------------------


def test_adding_an_unknown_partition_fails_it_and_leaves_the_others_untried() -> None:
    broker = new_broker()
    client = started(broker)
    before = broker.snapshot()
    errors = client.add(T0, TopicPartition("nope", 0), TopicPartition("t", 9))
    assert errors == [
        ErrorCode.OPERATION_NOT_ATTEMPTED,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ]
    assert broker.snapshot() == before
    assert state(broker).state is S.EMPTY


def test_adding_partitions_with_a_wrong_producer_id_or_epoch_is_refused() -> None:
    broker = new_broker()
    client = started(broker)
    before = broker.snapshot()
    wrong_pid = Client(broker, producer_id=client.producer_id + 1, producer_epoch=0)
    assert wrong_pid.add(T0) == [ErrorCode.INVALID_PRODUCER_ID_MAPPING]
    wrong_epoch = Client(broker, producer_id=client.producer_id, producer_epoch=3)
    assert wrong_epoch.add(T0) == [ErrorCode.PRODUCER_FENCED]
    assert broker.snapshot() == before


def test_adding_a_partition_while_a_commit_is_being_prepared_asks_to_retry() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    client.end(commit=True)
    assert client.add(T1) == [ErrorCode.CONCURRENT_TRANSACTIONS]  # markers not written yet
    assert state(broker).partitions == (T0,)
    broker.tick(0.0)
    assert client.add(T1) == [ErrorCode.NONE]  # a new transaction
    assert state(broker).partitions == (T1,)


def test_the_first_add_starts_the_transaction_and_its_clock() -> None:
    broker = new_broker()
    client = started(broker)
    assert client.add(T0, now=3.0) == [ErrorCode.NONE]
    assert client.add(T1, T0, now=5.0) == [ErrorCode.NONE, ErrorCode.NONE]
    metadata = state(broker)
    assert (metadata.state, metadata.partitions, metadata.start_ms) == (S.ONGOING, (T0, T1), 3000)


# --- transactional produce -----------------------------------------------------------------


def test_a_transactional_write_to_a_partition_not_added_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)
    result = client.send(T1, "a")
    assert result.error_code is ErrorCode.INVALID_TXN_STATE
    assert result.error_message
    assert broker.log("t", 1).log_end_offset == 0


def test_a_plain_write_while_the_producers_transaction_is_open_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "in-txn")
    result = client.send(T0, "plain", transactional=False)
    assert result.error_code is ErrorCode.INVALID_TXN_STATE
    assert broker.log("t", 0).log_end_offset == 1


def test_a_late_transactional_write_after_the_commit_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    client.end(commit=True)
    broker.tick(0.0)
    end = broker.log("t", 0).log_end_offset
    assert client.send(T0, "late").error_code is ErrorCode.INVALID_TXN_STATE
    assert broker.log("t", 0).log_end_offset == end
    assert broker.log("t", 0).last_stable_offset == end  # no hanging transaction


def test_a_retried_transactional_batch_gets_its_original_offset() -> None:
    broker = new_broker()
    client = started(broker, T0)
    first = client.send(T0, "a", "b")
    client.sequences[T0] = 0  # the answer was lost: send the same batch again
    retry = client.send(T0, "a", "b")
    assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, first.base_offset)
    assert broker.log("t", 0).log_end_offset == 2


def test_a_transactional_write_with_an_epoch_never_issued_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)
    forged = RecordBatch(
        records=(Record(value=b"x"),),
        producer_id=client.producer_id,
        producer_epoch=client.producer_epoch + 5,
        base_sequence=0,
        is_transactional=True,
    )
    result = produce(broker, T0, forged)
    assert result.error_code is not ErrorCode.NONE
    assert broker.log("t", 0).log_end_offset == 0


# --- EndTxn --------------------------------------------------------------------------------


def test_a_write_while_the_commit_is_being_prepared_asks_to_retry_and_appends_nothing() -> None:
    broker = new_broker()
    client = started(broker, T0)
    assert client.send(T0, "a").error_code is ErrorCode.NONE
    assert client.end(commit=True) is ErrorCode.NONE
    end = broker.log("t", 0).log_end_offset
    late = client.send(T0, "late")
    assert late.error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    assert broker.log("t", 0).log_end_offset == end
    broker.tick(0.0)
    log = broker.log("t", 0)
    assert log.last_stable_offset == log.high_watermark


def test_a_commit_is_answered_once_prepare_commit_is_durable_and_markers_follow() -> None:
    broker = new_broker()
    client = started(broker, T0, T1)
    client.send(T0, "a")
    client.send(T1, "b")
    assert client.end(commit=True) is ErrorCode.NONE
    assert state(broker).state is S.PREPARE_COMMIT
    assert list(broker.transaction_coordinator.pending_markers) == ["tx"]
    assert markers(broker.log("t", 0)) == []
    broker.tick(0.0)
    assert markers(broker.log("t", 0)) == markers(broker.log("t", 1)) == [(ControlType.COMMIT, 0)]
    assert state(broker).state is S.COMPLETE_COMMIT
    assert state(broker).partitions == ()


def test_a_commit_retried_before_the_markers_asks_to_retry() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    client.end(commit=True)
    assert client.end(commit=True) is ErrorCode.CONCURRENT_TRANSACTIONS
    assert client.end(commit=False) is ErrorCode.INVALID_TXN_STATE
    assert state(broker).state is S.PREPARE_COMMIT
    assert markers(broker.log("t", 0)) == []


def test_a_commit_retried_after_the_markers_succeeds_and_changes_nothing() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    client.end(commit=True)
    broker.tick(0.0)
    before = broker.snapshot()
    logged = txn_log_length(broker)
    assert client.end(commit=True) is ErrorCode.NONE
    assert broker.snapshot() == before
    assert txn_log_length(broker) == logged


def test_an_abort_after_a_commit_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)
    client.send(T0, "a")
    client.end(commit=True)
    broker.tick(0.0)
    assert client.end(commit=False) is ErrorCode.INVALID_TXN_STATE
    assert state(broker).state is S.COMPLETE_COMMIT
    assert markers(broker.log("t", 0)) == [(ControlType.COMMIT, 0)]


def test_end_txn_with_no_transaction_is_refused() -> None:
    broker = new_broker()
    client = started(broker)
    before = broker.snapshot()
    assert client.end(commit=True) is ErrorCode.INVALID_TXN_STATE
    assert client.end(commit=False) is ErrorCode.INVALID_TXN_STATE
    assert broker.snapshot() == before


# --- the last stable offset ----------------------------------------------------------------


def open_transaction_between_plain_writes(broker: Broker) -> Client:
    """Offsets 0-1 plain, 2-3 an open transaction, 4 plain."""
    produce(broker, T0, plain("p0", "p1"))
    client = started(broker, T0)
    client.send(T0, "t2", "t3")
    produce(broker, T0, plain("p4"))
    return client


def test_an_open_transaction_holds_the_lso_and_list_offsets_latest_at_its_first_offset() -> None:
    broker = new_broker()
    client = open_transaction_between_plain_writes(broker)
    log = broker.log("t", 0)
    assert (log.last_stable_offset, log.high_watermark) == (2, 5)
    assert log.open_transactions == {client.producer_id: 2}
    assert latest(broker, T0, COMMITTED) == 2
    assert latest(broker, T0, UNCOMMITTED) == 5


def test_read_committed_stops_at_the_lso_and_read_uncommitted_reads_to_the_hw() -> None:
    broker = new_broker()
    open_transaction_between_plain_writes(broker)
    committed = fetch(broker, T0, 0, COMMITTED)
    assert (committed.last_stable_offset, committed.high_watermark) == (2, 5)
    assert committed.batches[-1].next_offset == 2
    assert seen(broker, T0) == ["p0", "p1"]
    assert seen(broker, T0, UNCOMMITTED) == ["p0", "p1", "t2", "t3", "p4"]
    assert fetch(broker, T0, 2, COMMITTED).batches == ()


def test_after_the_commit_the_lso_reaches_the_hw() -> None:
    broker = new_broker()
    client = open_transaction_between_plain_writes(broker)
    client.end(commit=True)
    broker.tick(0.0)
    log = broker.log("t", 0)
    assert log.last_stable_offset == log.high_watermark == 6
    assert latest(broker, T0, COMMITTED) == 6
    assert seen(broker, T0) == ["p0", "p1", "t2", "t3", "p4"]


def test_without_the_lso_safeguard_read_committed_sees_an_open_transaction() -> None:
    broker = new_broker(Safeguard.LAST_STABLE_OFFSET)
    open_transaction_between_plain_writes(broker)
    assert fetch(broker, T0).last_stable_offset == 5
    assert latest(broker, T0, COMMITTED) == 5
    assert seen(broker, T0) == ["p0", "p1", "t2", "t3", "p4"]


# --- the aborted index and the consumer's filter --------------------------------------------


def interleaved_commit_and_abort(broker: Broker) -> tuple[Client, Client]:
    """On t-0: c1 (0), a1 (1), plain (2), c2 (3), a2 (4), ABORT of a (5), COMMIT of c (6)."""
    c = started(broker, T0, transactional_id="c")
    a = started(broker, T0, transactional_id="a")
    c.send(T0, "c1")
    a.send(T0, "a1")
    produce(broker, T0, plain("plain"))
    c.send(T0, "c2")
    a.send(T0, "a2")
    assert a.end(commit=False) is ErrorCode.NONE
    assert c.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)  # a's marker first: a decided first
    return c, a


def test_read_committed_skips_an_aborted_transaction_interleaved_with_a_committed_one() -> None:
    broker = new_broker()
    _, a = interleaved_commit_and_abort(broker)
    part = fetch(broker, T0)
    assert part.aborted_transactions == (AbortedTransaction(a.producer_id, 1),)
    visible = visible_records(part.batches, part.aborted_transactions, 0)
    assert [(r.offset, r.record.value) for r in visible.records] == [
        (0, b"c1"),
        (2, b"plain"),
        (3, b"c2"),
    ]
    assert visible.next_offset == 7  # past both markers


def test_read_uncommitted_shows_aborted_records_but_never_markers() -> None:
    broker = new_broker()
    interleaved_commit_and_abort(broker)
    part = fetch(broker, T0, 0, UNCOMMITTED)
    assert part.aborted_transactions == ()
    assert seen(broker, T0, UNCOMMITTED) == ["c1", "a1", "plain", "c2", "a2"]
    assert read(broker, T0, UNCOMMITTED).next_offset == 7


def test_a_read_committed_fetch_from_the_middle_still_skips_the_aborted_transaction() -> None:
    broker = new_broker()
    _, a = interleaved_commit_and_abort(broker)
    part = fetch(broker, T0, 3)
    assert part.aborted_transactions == (AbortedTransaction(a.producer_id, 1),)
    visible = visible_records(part.batches, part.aborted_transactions, 3)
    assert [(r.offset, r.record.value) for r in visible.records] == [(3, b"c2")]
    assert fetch(broker, T0, 6).aborted_transactions == ()  # past a's marker


def aborted_log() -> PartitionLog:
    """pid 1 aborted (0, marker 1); pid 2 aborted (2, marker 3); pid 3 committed (4, marker 5)."""
    log = PartitionLog("t", 0)
    for pid, result in [(1, ControlType.ABORT), (2, ControlType.ABORT), (3, ControlType.COMMIT)]:
        txn = RecordBatch(
            records=(Record(value=b"x"),), producer_id=pid, producer_epoch=0, is_transactional=True
        )
        log.append(txn)
        log.append(control_batch(result, producer_id=pid, producer_epoch=0))
    log.flush()
    return log


def test_the_aborted_index_holds_only_aborted_transactions() -> None:
    log = aborted_log()
    assert log.aborted_index == (AbortedTxn(1, 0, 1, 2), AbortedTxn(2, 2, 3, 4))
    assert log.open_transactions == {}
    assert log.last_stable_offset == 6


@pytest.mark.parametrize(
    ("fetch_offset", "upper_bound", "producers"),
    [
        (0, 6, [1, 2]),
        (0, 1, [1]),  # pid 2 starts at 2, not below the bound
        (0, 3, [1, 2]),
        (1, 6, [1, 2]),  # pid 1's marker is at 1: still overlaps
        (2, 6, [2]),  # pid 1 ended before the fetch offset
        (2, 2, []),  # pid 2 starts at the bound
        (3, 3, [2]),
        (4, 6, []),
    ],
)
def test_the_aborted_lookup_respects_both_bounds(
    fetch_offset: int, upper_bound: int, producers: list[int]
) -> None:
    found = aborted_log().aborted_transactions(fetch_offset, upper_bound)
    assert [entry.producer_id for entry in found] == producers


def test_the_aborted_lookup_finds_a_transaction_that_began_before_an_earlier_marker() -> None:
    log = PartitionLog("t", 0)

    def txn(pid: int) -> RecordBatch:
        return RecordBatch(
            records=(Record(value=b"x"),), producer_id=pid, producer_epoch=0, is_transactional=True
        )

    log.append(txn(1))  # 0: pid 1 opens
    log.append(txn(2))  # 1: pid 2 opens
    log.append(control_batch(ControlType.ABORT, producer_id=2, producer_epoch=0))  # 2
    log.append(control_batch(ControlType.ABORT, producer_id=1, producer_epoch=0))  # 3
    assert log.aborted_index == (AbortedTxn(2, 1, 2, 0), AbortedTxn(1, 0, 3, 4))
    assert [e.producer_id for e in log.aborted_transactions(2, 3)] == [2, 1]
    assert [e.producer_id for e in log.aborted_transactions(0, 1)] == [1]


def test_truncation_rebuilds_the_transaction_indexes() -> None:
    log = PartitionLog("t", 0)
    txn = RecordBatch(
        records=(Record(value=b"x"),), producer_id=1, producer_epoch=0, is_transactional=True
    )
    log.append(txn)
    log.flush()
    log.append(control_batch(ControlType.ABORT, producer_id=1, producer_epoch=0))
    assert (log.open_transactions, len(log.aborted_index)) == ({}, 1)
    assert log.truncate_to_flushed() == 1
    assert log.open_transactions == {1: 0}
    assert log.aborted_index == ()
    assert log.aborted_transactions(0, 10) == []
    assert log.last_stable_offset == 0


# --- markers, crashes and roll-forward ------------------------------------------------------


def committed_with_one_marker_written(broker: Broker) -> Client:
    client = started(broker, T0, T1)
    client.send(T0, "a")
    client.send(T1, "b")
    assert client.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0, marker_limit=1)
    return client


def test_a_marker_limit_writes_one_marker_at_a_time() -> None:
    broker = new_broker()
    committed_with_one_marker_written(broker)
    assert markers(broker.log("t", 0)) == [(ControlType.COMMIT, 0)]
    assert markers(broker.log("t", 1)) == []
    assert state(broker).state is S.PREPARE_COMMIT
    assert broker.transaction_coordinator.pending_markers["tx"].partitions == (T1,)
    assert broker.log("t", 1).last_stable_offset == 0


def test_a_crash_between_markers_rolls_forward_to_a_commit() -> None:
    broker = new_broker()
    committed_with_one_marker_written(broker)
    broker.crash()
    broker.recover()
    assert state(broker).state is S.PREPARE_COMMIT
    broker.tick(1.0)
    assert markers(broker.log("t", 0)) == [(ControlType.COMMIT, 0)]  # not written twice
    assert markers(broker.log("t", 1)) == [(ControlType.COMMIT, 0)]
    assert state(broker).state is S.COMPLETE_COMMIT
    assert broker.transaction_coordinator.pending_markers == {}
    assert (seen(broker, T0), seen(broker, T1)) == (["a"], ["b"])


def test_writing_a_marker_again_appends_nothing() -> None:
    broker = new_broker()
    client = started(broker, T0, T1)
    client.send(T0, "a")
    client.send(T1, "b")
    client.end(commit=True)
    coordinator = broker.transaction_coordinator
    job = coordinator.pending_markers["tx"]
    broker.tick(0.0, marker_limit=1)
    coordinator.pending_markers["tx"] = job  # send both markers again, as a new coordinator does
    written = broker.write_markers(0.0)
    assert len(written) == 1, "the marker already written appends nothing, and is not reported"
    assert [log.log_end_offset for log in broker.logs()] == [2, 2]
    assert state(broker).state is S.COMPLETE_COMMIT
    before = broker.snapshot()
    assert broker.write_markers(0.0) == []
    assert broker.snapshot() == before


def test_without_roll_forward_a_crash_between_markers_tears_the_transaction() -> None:
    broker = new_broker(Safeguard.ROLL_FORWARD)
    committed_with_one_marker_written(broker)
    broker.crash()
    broker.recover()
    broker.tick(1.0)
    assert markers(broker.log("t", 0)) == [(ControlType.COMMIT, 0)]
    assert markers(broker.log("t", 1)) == [(ControlType.ABORT, 0)]
    assert state(broker).state is S.COMPLETE_ABORT
    # The producer was told "committed", yet only half of its transaction is visible.
    assert (seen(broker, T0), seen(broker, T1)) == (["a"], [])


# --- consumer offsets ----------------------------------------------------------------------


def test_a_plain_offset_commit_is_fetched_back_and_survives_a_restart() -> None:
    broker = new_broker()
    assert offset_fetch(broker).committed_offset == -1
    assert commit_offset(broker, 5) is ErrorCode.NONE
    answer = offset_fetch(broker, require_stable=True)
    assert (answer.error_code, answer.committed_offset) == (ErrorCode.NONE, 5)
    broker.restart()
    assert offset_fetch(broker, require_stable=True).committed_offset == 5


def offsets_in_transaction(broker: Broker, offset: int = 7) -> Client:
    """Group g committed 3 for t-0; a transaction holds 7 pending."""
    assert commit_offset(broker, 3) is ErrorCode.NONE
    client = started(broker)
    assert client.add_offsets("g") is ErrorCode.NONE
    assert client.commit_offsets({T0: offset}) == [ErrorCode.NONE]
    return client


def test_a_transactional_offset_stays_pending_until_the_commit_marker() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    assert offset_fetch(broker).committed_offset == 3
    unstable = offset_fetch(broker, require_stable=True)
    assert unstable.error_code is ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert unstable.error_message
    assert client.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)
    assert markers(broker.internal_log(OFFSETS_TOPIC)) == [(ControlType.COMMIT, 0)]
    stable = offset_fetch(broker, require_stable=True)
    assert (stable.error_code, stable.committed_offset) == (ErrorCode.NONE, 7)


def test_an_aborted_transactional_offset_is_dropped() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    client.end(commit=False)
    broker.tick(0.0)
    stable = offset_fetch(broker, require_stable=True)
    assert (stable.error_code, stable.committed_offset) == (ErrorCode.NONE, 3)
    assert broker.snapshot().pending_offsets == ()


def test_an_aborted_transactional_offset_stays_dropped_after_a_restart() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    client.end(commit=False)
    broker.tick(0.0)
    broker.restart()
    stable = offset_fetch(broker, require_stable=True)
    assert (stable.error_code, stable.committed_offset) == (ErrorCode.NONE, 3)
    assert broker.snapshot().pending_offsets == ()


def test_a_plain_commit_made_after_a_transactional_one_is_kept_when_it_commits() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    assert commit_offset(broker, 9) is ErrorCode.NONE
    client.end(commit=True)
    broker.tick(0.0)
    assert offset_fetch(broker).committed_offset == 9


def test_the_pending_offsets_of_a_fenced_instance_are_dropped() -> None:
    broker = new_broker()
    zombie = offsets_in_transaction(broker)
    assert Client(broker).init().error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    broker.tick(0.0)
    assert markers(broker.internal_log(OFFSETS_TOPIC)) == [(ControlType.ABORT, 1)]
    assert offset_fetch(broker, require_stable=True).committed_offset == 3
    assert zombie.commit_offsets({T0: 8}) == [ErrorCode.PRODUCER_FENCED]
    assert broker.snapshot().pending_offsets == ()


def test_protocol_v1_lets_a_late_offset_commit_land_in_the_next_transaction() -> None:
    """KAFKA-17754, as Kafka's transaction protocol version 1 (which minikafka follows) has it:
    two transactions of one producer share its id and epoch, so a copy of the first one's
    TxnOffsetCommit that arrives late is taken into the second. KIP-890 part 2 closes this
    by bumping the epoch at every commit."""
    broker = new_broker()
    client = offsets_in_transaction(broker, offset=5)
    late_copy = TxnOffsetCommitRequest(
        transactional_id=client.transactional_id,
        group_id="g",
        producer_id=client.producer_id,
        producer_epoch=client.producer_epoch,
        partitions=(OffsetCommitPartition("t", 0, 5),),
    )
    assert client.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)
    assert offset_fetch(broker).committed_offset == 5
    assert client.add_offsets("g") is ErrorCode.NONE  # the next transaction begins
    response = broker.handle(late_copy, now=0.0)
    assert isinstance(response, TxnOffsetCommitResponse)
    assert response.partitions[0].error_code is ErrorCode.NONE  # accepted into the second one
    assert client.end(commit=False) is ErrorCode.NONE
    broker.tick(0.0)
    # The log: a plain commit, the first transaction's offsets and its COMMIT marker, then
    # the late copy, which the second transaction's ABORT marker closes.
    kinds = [
        batch.control_type if batch.is_control else batch.is_transactional
        for batch in broker.internal_log(OFFSETS_TOPIC).batches()
    ]
    assert kinds == [False, True, ControlType.COMMIT, True, ControlType.ABORT]


def test_txn_offset_commit_without_add_offsets_is_refused() -> None:
    broker = new_broker()
    client = started(broker, T0)  # a transaction, but the group's offsets were never added
    logged = broker.internal_log(OFFSETS_TOPIC).log_end_offset
    assert client.commit_offsets({T0: 1}) == [ErrorCode.INVALID_TXN_STATE]
    assert broker.internal_log(OFFSETS_TOPIC).log_end_offset == logged
    assert broker.snapshot().pending_offsets == ()


def test_pending_offsets_stay_pending_across_a_restart_and_settle_after_it() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    broker.restart()
    assert offset_fetch(broker, require_stable=True).error_code is ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert offset_fetch(broker).committed_offset == 3
    assert client.end(commit=True) is ErrorCode.NONE
    broker.tick(1.0)
    assert offset_fetch(broker, require_stable=True).committed_offset == 7


def test_a_decided_commit_of_offsets_rolls_forward_after_a_crash() -> None:
    broker = new_broker()
    client = offsets_in_transaction(broker)
    client.end(commit=True)
    broker.crash()  # before any marker
    broker.recover()
    assert broker.snapshot().pending_offsets == (("g", client.producer_id, T0, 7),)
    broker.tick(1.0)
    assert offset_fetch(broker, require_stable=True).committed_offset == 7


def test_without_pending_offsets_a_transactional_offset_counts_at_once_and_survives_an_abort() -> (
    None
):
    broker = new_broker(Safeguard.PENDING_TXN_OFFSETS)
    client = offsets_in_transaction(broker)
    assert offset_fetch(broker, require_stable=True).committed_offset == 7
    client.end(commit=False)
    broker.tick(0.0)
    assert offset_fetch(broker).committed_offset == 7
    broker.restart()
    assert offset_fetch(broker).committed_offset == 7


@pytest.mark.parametrize(
    ("group_id", "topic", "offset", "error"),
    [
        ("g", "t", -1, ErrorCode.INVALID_REQUEST),
        ("", "t", 1, ErrorCode.INVALID_GROUP_ID),
        ("g", "nope", 1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ],
)
def test_a_bad_offset_commit_gets_a_clear_error_and_writes_nothing(
    group_id: str, topic: str, offset: int, error: ErrorCode
) -> None:
    broker = new_broker()
    before = broker.snapshot()
    wanted = (OffsetCommitPartition(topic, 0, offset),)
    plain_answer = broker.handle(OffsetCommitRequest(group_id=group_id, partitions=wanted), now=0.0)
    assert isinstance(plain_answer, OffsetCommitResponse)
    client = started(broker)
    client.add_offsets("g")
    in_txn = broker.handle(
        TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id=group_id,
            producer_id=client.producer_id,
            producer_epoch=client.producer_epoch,
            partitions=wanted,
        ),
        now=0.0,
    )
    assert isinstance(in_txn, TxnOffsetCommitResponse)
    for answer in (plain_answer.partitions[0], in_txn.partitions[0]):
        assert answer.error_code is error
        assert answer.error_message
    assert broker.internal_log(OFFSETS_TOPIC).log_end_offset == 0
    assert broker.snapshot().committed_offsets == before.committed_offsets == ()
    assert broker.snapshot().pending_offsets == ()


# --- timeouts ------------------------------------------------------------------------------


def test_a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() -> None:
    broker = new_broker()
    client = Client(broker)
    client.init(timeout_ms=1000)
    client.add(T0)
    client.send(T0, "a")
    broker.tick(1.0)  # exactly at the deadline: not past it
    assert state(broker).state is S.ONGOING
    broker.tick(1.5)
    assert state(broker).state is S.COMPLETE_ABORT
    assert state(broker).producer_epoch == 1
    assert markers(broker.log("t", 0)) == [(ControlType.ABORT, 1)]
    assert client.end(commit=True, now=2.0) is ErrorCode.PRODUCER_FENCED
    assert client.send(T0, "late", now=2.0).error_code is ErrorCode.INVALID_PRODUCER_EPOCH
    assert seen(broker, T0) == []


# --- recovery ------------------------------------------------------------------------------


def test_restart_rebuilds_the_coordinator_from_the_transaction_log() -> None:
    broker = new_broker()
    committed = started(broker, T0, transactional_id="committed")
    committed.send(T0, "c")
    committed.end(commit=True)
    aborted = started(broker, T1, transactional_id="aborted")
    aborted.send(T1, "a")
    aborted.end(commit=False)
    zombie_and_successor(broker)  # "tx": fenced once, then re-initialised
    bumped = started(broker, transactional_id="bumped")
    bumped.init(send_ids=True)
    ongoing = started(broker, T1, transactional_id="ongoing")
    ongoing.send(T1, "o")
    broker.tick(0.0)
    before = broker.snapshot()
    assert before.pending_markers == ()
    broker.restart()
    after = broker.snapshot()
    assert after.transactions == before.transactions
    assert [m.state for m in after.transactions] == [
        S.COMPLETE_COMMIT,
        S.COMPLETE_ABORT,
        S.EMPTY,
        S.EMPTY,
        S.ONGOING,
    ]
    assert broker.log("t", 1).open_transactions == {ongoing.producer_id: 2}
    assert ongoing.end(commit=True, now=1.0) is ErrorCode.NONE
    broker.tick(1.0)
    assert seen(broker, T1) == ["o"]
