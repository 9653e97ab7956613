"""Real Kafka bugs replayed as scenarios, one test per bug whose mechanism minikafka has.

Each test stages one bug whose mechanism minikafka has, and shows what minikafka does in that
place; its docstring names the bug. The sans-IO broker is driven by hand where the bug lives
in the broker; the simulated cluster with a fault plan where it takes clients, retries and a
network to stage.

Covered: KAFKA-12671 (hanging transaction), KAFKA-17582 (no rewind after an abort), KAFKA-6119
(timeout abort without a bump), KAFKA-5376/5383 (aborted list on delayed fetches), KAFKA-7190
(producer state after a restart), KAFKA-13574 (an indefinite write error), KAFKA-17754 (a
delayed EndTxn or produce landing in the next transaction), KAFKA-8805 (epoch bump on
recoverable errors), KAFKA-5793 (what OutOfOrderSequence means), librdkafka#3020 and its
follow-up #3369 (a client returning aborted data), and the TV1 side of KAFKA-18464.

Skipped, because minikafka lacks the mechanism:

- KAFKA-9144 (early producer expiry regressed the coordinator epoch): minikafka never expires
  producer state (no ``producer.id.expiration.ms``) and, with one coordinator whose pending
  markers die with it, does not check the coordinator epoch that markers carry.
- KAFKA-7190, the retention half (producer state lost when retention deletes a producer's last
  batch): logs have no segments and no retention, so the log start offset stays 0. The restart
  half (state rebuilt from the log) is covered.
- KAFKA-18464 proper (transaction version 2 self-fencing on an empty abort): minikafka follows
  transaction version 1, so EndTxn never bumps the epoch. Only the TV1 behaviour of an empty
  abort is checked.
- librdkafka#3020 proper (aborted records inside *compressed* message sets not skipped):
  minikafka has no compression. The client filter's own edge case from the fix's follow-up
  (librdkafka#3369, an ABORT marker that is not in the aborted list) is covered.
- KAFKA-17734: listed by Debezium but unverified in the reference; its mechanism could not be
  confirmed, so it is not staged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.testing

import minikafka
from minikafka import (
    ConsumerRecord,
    Fault,
    FaultPlan,
    InvalidTxnStateError,
    ProducerFencedError,
    TopicPartition,
)
from minikafka.core import Broker, BrokerConfig, ErrorCode
from minikafka.core.isolation import visible_records
from minikafka.core.messages import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    IsolationLevel,
    OffsetCommitPartition,
    ProducePartitionData,
    ProducePartitionResponse,
    ProduceRequest,
    ProduceResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.producer_state import APPEND
from minikafka.core.records import ControlType, Record, RecordBatch
from minikafka.core.transactions import TransactionState

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)
COMMITTED = IsolationLevel.READ_COMMITTED
UNCOMMITTED = IsolationLevel.READ_UNCOMMITTED


# --- helpers: the sans-IO broker driven by hand ---------------------------------------------


def new_broker() -> Broker:
    broker = Broker(BrokerConfig())
    broker.create_topic("t", 2)
    return broker


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


@dataclasses.dataclass
class Txn:
    """A transactional producer as Kafka's TV1 client would drive it, one request at a time."""

    broker: Broker
    transactional_id: str = "tx"
    producer_id: int = -1
    producer_epoch: int = -1
    sequences: dict[TopicPartition, int] = dataclasses.field(default_factory=dict)

    def init(self, *, now: float = 0.0, timeout_ms: int = 60_000) -> ErrorCode:
        response = self.broker.handle(
            InitProducerIdRequest(
                transactional_id=self.transactional_id, transaction_timeout_ms=timeout_ms
            ),
            now=now,
        )
        assert isinstance(response, InitProducerIdResponse)
        if response.error_code is ErrorCode.NONE:
            self.producer_id, self.producer_epoch = response.producer_id, response.producer_epoch
            self.sequences = {}
        return response.error_code

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

    def batch(self, tp: TopicPartition, *values: str) -> RecordBatch:
        """The next batch for ``tp`` (the sequence moves on only when ``sent`` is called)."""
        return RecordBatch(
            records=tuple(Record(value=v.encode()) for v in values),
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=self.sequences.get(tp, 0),
            is_transactional=True,
        )

    def sent(self, tp: TopicPartition, batch: RecordBatch) -> None:
        self.sequences[tp] = batch.base_sequence + len(batch.records)

    def send(self, tp: TopicPartition, *values: str, now: float = 0.0) -> ProducePartitionResponse:
        batch = self.batch(tp, *values)
        result = produce(self.broker, tp, batch, now=now)
        if result.error_code is ErrorCode.NONE:
            self.sent(tp, batch)
        return result

    def end_request(self, *, commit: bool) -> EndTxnRequest:
        return EndTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            committed=commit,
        )

    def end(self, *, commit: bool, now: float = 0.0) -> ErrorCode:
        response = self.broker.handle(self.end_request(commit=commit), now=now)
        assert isinstance(response, EndTxnResponse)
        return response.error_code


def fetch_once(
    broker: Broker, tp: TopicPartition, offset: int, isolation: IsolationLevel, max_bytes: int
) -> tuple[list[tuple[int, str]], int, list[int]]:
    """One fetch from ``offset``: the records a consumer shows (offset, value), its next
    position, and the first offsets of the aborted transactions the broker listed."""
    response = broker.handle(
        FetchRequest(
            partitions=(FetchPartition(tp.topic, tp.partition, offset, max_bytes),),
            isolation_level=isolation,
        ),
        now=0.0,
    )
    assert isinstance(response, FetchResponse)
    part = response.partitions[0]
    assert part.error_code is ErrorCode.NONE
    visible = visible_records(part.batches, part.aborted_transactions, offset, isolation)
    shown = [(c.offset, (c.record.value or b"").decode()) for c in visible.records]
    return shown, visible.next_offset, [a.first_offset for a in part.aborted_transactions]


def consume(
    broker: Broker,
    tp: TopicPartition,
    *,
    start: int = 0,
    isolation: IsolationLevel = COMMITTED,
    max_bytes: int = 1_048_576,
) -> list[tuple[int, str]]:
    """What a consumer starting at ``start`` reads, fetching until its position stops."""
    position, shown = start, []
    while True:
        records, position_after, _ = fetch_once(broker, tp, position, isolation, max_bytes)
        shown.extend(records)
        if position_after == position:
            return shown
        position = position_after


def state_of(broker: Broker, transactional_id: str = "tx") -> TransactionState:
    return broker.transaction_coordinator.transactions[transactional_id].state


# --- helpers: the simulated cluster ----------------------------------------------------------


async def read_all(
    cluster: minikafka.Cluster, topic: str, *, isolation_level: str, partitions: int = 1
) -> list[ConsumerRecord]:
    """Everything a consumer without a group reads from ``topic`` from the start, until two
    simulated seconds bring nothing new, sorted by partition and offset."""
    records: list[ConsumerRecord] = []
    async with cluster.consumer(
        isolation_level=isolation_level, auto_offset_reset="earliest"
    ) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        while batches := await consumer.getmany(timeout=2.0):
            for batch in batches.values():
                records.extend(batch)
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def committed_values(cluster: minikafka.Cluster, topic: str = "t") -> list[bytes | None]:
    return [r.value for r in await read_all(cluster, topic, isolation_level="read_committed")]


def handled_at(cluster: minikafka.Cluster, api: str) -> list[float]:
    """When the broker handled each call of ``api`` (late copies included)."""
    return [event.time for event in cluster.trace.select(kind="handle", api=api)]


# --- KAFKA-12671: the hanging transaction ----------------------------------------------------


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_kafka_12671_a_produce_arriving_after_its_marker_is_refused(commit: bool) -> None:
    """KAFKA-12671: a late produce after the marker must not open a transaction nobody closes."""
    broker = new_broker()
    txn = Txn(broker)
    assert txn.init() is ErrorCode.NONE
    assert txn.add(T0) == [ErrorCode.NONE]
    assert txn.send(T0, "a").error_code is ErrorCode.NONE
    late = txn.batch(T0, "late")  # sent now, delivered only after the decision
    assert txn.end(commit=commit) is ErrorCode.NONE
    log = broker.log("t", 0)

    # Decided, markers not yet written: the late write is told to retry and appends nothing.
    assert produce(broker, T0, late).error_code is ErrorCode.CONCURRENT_TRANSACTIONS
    assert log.log_end_offset == 1

    broker.tick(0.0)  # the marker
    assert log.log_end_offset == 2 and log.open_transactions == {}
    # The sequence check alone would take it: same epoch, the next sequence. Before KIP-890,
    # Kafka appended it, and the partition held a transaction that no marker would close.
    assert broker.producer_state("t", 0).validate(late) is APPEND
    # KIP-890 part 1: the partition is not in an ongoing transaction of this producer.
    refused = produce(broker, T0, late)
    assert refused.error_code is ErrorCode.INVALID_TXN_STATE
    assert refused.error_message
    assert log.log_end_offset == 2
    assert log.open_transactions == {}
    assert log.last_stable_offset == log.high_watermark == 2

    # The LSO is not stuck: a later plain record reaches read_committed readers.
    assert produce(broker, T0, plain("after")).error_code is ErrorCode.NONE
    expected = [(0, "a"), (2, "after")] if commit else [(2, "after")]
    assert consume(broker, T0) == expected
    assert log.last_stable_offset == log.high_watermark == 3


async def test_kafka_12671_a_delayed_transactional_produce_leaves_no_hanging_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-12671: a produce delayed past its transaction's commit must not hang the LSO."""
    plan = FaultPlan([Fault.delay(api="Produce", nth=1, seconds=10.0)])
    async with minikafka.open_cluster(seed=12671, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(transactional_id="tx", request_timeout=3.0) as producer:
            async with producer.transaction():
                await producer.send("t", b"t1", partition=0)
            # The first copy timed out at 3 s; its retry landed and the transaction committed.
            assert cluster.now() < 10.0
            await trio.sleep(10.0)
        # The late copy came at 10 s, after the COMMIT marker. KIP-890 part 1 refuses it (the
        # transaction is complete); it would also be a duplicate by its sequence number.
        assert handled_at(cluster, "Produce") == [pytest.approx(3.1), 10.0]
        log = cluster.broker.log("t", 0)
        kinds = [b.control_type if b.is_control else b.records[0].value for b in log.batches()]
        assert kinds == [b"t1", ControlType.COMMIT]
        assert log.open_transactions == {}
        assert log.last_stable_offset == log.high_watermark == log.log_end_offset == 2
        assert await committed_values(cluster) == [b"t1"]


# --- KAFKA-17582: no rewind after an abort ---------------------------------------------------


async def _read_process_write(
    *, seek_back_after_abort: bool
) -> tuple[list[list[int]], int | None, list[bytes | None]]:
    """A read-process-write loop over 8 input records whose second transaction aborts.

    Returns the input offsets each poll returned, the group's final committed offset and the
    read_committed output."""
    polls: list[list[int]] = []
    async with minikafka.open_cluster(seed=17582) as cluster:
        await cluster.create_topic("orders", partitions=1)
        await cluster.create_topic("ledger", partitions=1)
        async with cluster.producer() as source:
            for n in range(8):
                await source.send_and_wait("orders", b"v%d" % n, partition=0)
        orders = TopicPartition("orders", 0)
        async with (
            cluster.consumer(
                "orders",
                group_id="g",
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            ) as consumer,
            cluster.producer(transactional_id="ledger-1") as producer,
        ):

            async def step(max_records: int, *, commit: bool) -> None:
                batch = await consumer.getmany(timeout=30.0, max_records=max_records)
                records = batch[orders]
                polls.append([r.offset for r in records])
                producer.begin_transaction()
                for record in records:
                    await producer.send("ledger", (record.value or b"").upper(), partition=0)
                await producer.send_offsets_to_transaction(
                    {orders: records[-1].offset + 1}, consumer.group_metadata()
                )
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()

            await step(2, commit=True)
            await step(3, commit=False)  # processing failed: the transaction aborts
            assert await consumer.committed(orders) == 2
            assert await consumer.position(orders) == 5  # not rewound
            if seek_back_after_abort:
                committed = await consumer.committed(orders)
                assert committed is not None
                consumer.seek(orders, committed)
            await step(3, commit=True)
            if seek_back_after_abort:
                await step(3, commit=True)
            final = await consumer.committed(orders)
        output = await committed_values(cluster, "ledger")
    return polls, final, output


async def test_kafka_17582_after_an_abort_the_consumer_does_not_rewind_and_input_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-17582: an aborted read-process-write transaction does not rewind the consumer."""
    polls, final, output = await _read_process_write(seek_back_after_abort=False)
    # The pitfall: the next poll goes on from 5, and its commit covers 2..4 unprocessed.
    assert polls == [[0, 1], [2, 3, 4], [5, 6, 7]]
    assert final == 8
    assert output == [b"V0", b"V1", b"V5", b"V6", b"V7"]  # V2..V4 are lost


async def test_kafka_17582_seeking_back_to_the_committed_offset_after_an_abort_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-17582: after an abort the application must seek back to the committed offsets."""
    polls, final, output = await _read_process_write(seek_back_after_abort=True)
    assert polls == [[0, 1], [2, 3, 4], [2, 3, 4], [5, 6, 7]]
    assert final == 8
    assert output == [b"V%d" % n for n in range(8)]  # each exactly once


# --- KAFKA-6119: a timeout abort must bump the epoch -----------------------------------------


def test_kafka_6119_a_timed_out_transaction_is_aborted_with_a_bumped_epoch() -> None:
    """KAFKA-6119: after a timeout abort, the old producer epoch is fenced everywhere."""
    broker = new_broker()
    txn = Txn(broker)
    assert txn.init(timeout_ms=1_000) is ErrorCode.NONE
    assert txn.add(T0) == [ErrorCode.NONE]
    assert txn.send(T0, "a").error_code is ErrorCode.NONE
    old_epoch = txn.producer_epoch

    broker.tick(1.5)  # past the timeout: fence (epoch + 1), abort, write the markers
    metadata = broker.transaction_coordinator.transactions["tx"]
    assert metadata.state is TransactionState.COMPLETE_ABORT
    assert metadata.producer_epoch == old_epoch + 1
    marker = list(broker.log("t", 0).batches())[-1]
    assert (marker.control_type, marker.producer_epoch) == (ControlType.ABORT, old_epoch + 1)

    # The producer wakes up and carries on with the epoch it holds: everything is refused.
    assert txn.send(T0, "late", now=2.0).error_code is ErrorCode.INVALID_PRODUCER_EPOCH
    assert txn.add(T1, now=2.0) == [ErrorCode.PRODUCER_FENCED]
    assert txn.end(commit=True, now=2.0) is ErrorCode.PRODUCER_FENCED
    added = broker.handle(
        AddOffsetsToTxnRequest(
            transactional_id="tx",
            producer_id=txn.producer_id,
            producer_epoch=old_epoch,
            group_id="g",
        ),
        now=2.0,
    )
    assert isinstance(added, AddOffsetsToTxnResponse)
    assert added.error_code is ErrorCode.PRODUCER_FENCED
    offsets = broker.handle(
        TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id="g",
            producer_id=txn.producer_id,
            producer_epoch=old_epoch,
            partitions=(OffsetCommitPartition("t", 0, 1),),
        ),
        now=2.0,
    )
    assert isinstance(offsets, TxnOffsetCommitResponse)
    assert offsets.partitions[0].error_code is ErrorCode.PRODUCER_FENCED
    assert broker.snapshot().pending_offsets == ()
    assert state_of(broker) is TransactionState.COMPLETE_ABORT
    assert broker.log("t", 0).log_end_offset == 2
    assert consume(broker, T0) == []


async def test_kafka_6119_a_producer_that_outlives_its_transaction_timeout_is_fenced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-6119: a producer whose transaction timed out cannot commit it afterwards."""
    async with minikafka.open_cluster(seed=6119) as cluster:
        await cluster.create_topic("t", partitions=1)
        producer = cluster.producer(transactional_id="tx", transaction_timeout=5.0)
        async with producer:
            producer.begin_transaction()
            await (await producer.send("t", b"slow", partition=0))
            await trio.sleep(10.0)  # a long pause: the coordinator aborts at 5 s
            with pytest.raises(ProducerFencedError):
                await producer.commit_transaction()
        async with (
            cluster.producer(transactional_id="tx") as successor,
            successor.transaction(),
        ):
            await successor.send("t", b"next", partition=0)
        assert await committed_values(cluster) == [b"next"]


# --- KAFKA-5376 / KAFKA-5383: the aborted list on every fetch ---------------------------------


def interleaved_log(broker: Broker) -> list[tuple[int, str]]:
    """Plain writes, two aborted transactions of one producer and a committed one of another,
    interleaved on t-0. Returns what read_committed must show: (offset, value)."""
    aborter, committer = Txn(broker, "aborter"), Txn(broker, "committer")
    assert aborter.init() is ErrorCode.NONE and committer.init() is ErrorCode.NONE
    assert aborter.add(T0) == [ErrorCode.NONE] and committer.add(T0) == [ErrorCode.NONE]
    assert produce(broker, T0, plain("p0")).base_offset == 0
    assert aborter.send(T0, "a1").base_offset == 1
    assert committer.send(T0, "c1").base_offset == 2
    assert aborter.send(T0, "a2", "a3").base_offset == 3  # offsets 3 and 4
    assert produce(broker, T0, plain("p1")).base_offset == 5
    assert aborter.end(commit=False) is ErrorCode.NONE
    broker.tick(0.0)  # ABORT at 6; the committer's transaction still holds the LSO at 2
    assert broker.log("t", 0).last_stable_offset == 2
    assert committer.send(T0, "c2").base_offset == 7
    assert committer.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)  # COMMIT at 8
    assert aborter.add(T0) == [ErrorCode.NONE]  # the aborter's next transaction
    assert aborter.send(T0, "a4").base_offset == 9
    assert aborter.end(commit=False) is ErrorCode.NONE
    broker.tick(0.0)  # ABORT at 10
    assert produce(broker, T0, plain("p2")).base_offset == 11
    log = broker.log("t", 0)
    assert log.last_stable_offset == log.high_watermark == log.log_end_offset == 12
    return [(0, "p0"), (2, "c1"), (5, "p1"), (7, "c2"), (11, "p2")]


@pytest.mark.parametrize("max_bytes", [1, 1_048_576], ids=["one-batch-per-fetch", "one-fetch"])
def test_kafka_5376_read_committed_never_returns_aborted_records_from_any_fetch_offset(
    max_bytes: int,
) -> None:
    """KAFKA-5376/5383: every read_committed fetch carries the aborted list needed to filter."""
    broker = new_broker()
    committed = interleaved_log(broker)
    # A fetch that starts inside the first aborted transaction (after its first batch) still
    # gets it listed: its first offset 1 lies below the fetch offset 4.
    shown, _, aborted = fetch_once(broker, T0, 4, COMMITTED, 1_048_576)
    assert aborted == [1, 9]
    assert shown == [(5, "p1"), (7, "c2"), (11, "p2")]
    # The aborted records are there: read_uncommitted shows them.
    assert (4, "a3") in consume(broker, T0, start=4, isolation=UNCOMMITTED)
    # From every offset, one batch per fetch or all at once: the committed records at or after
    # the start, and nothing aborted.
    for start in range(broker.log("t", 0).log_end_offset + 1):
        expected = [(offset, value) for offset, value in committed if offset >= start]
        assert consume(broker, T0, start=start, max_bytes=max_bytes) == expected, start


async def test_kafka_5376_a_fetch_answered_late_still_filters_the_transaction_aborted_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-5376/5383: a read_committed fetch that is answered late must not show aborted data."""
    plan = FaultPlan([Fault.delay(api="Fetch", nth=1, seconds=5.0, client="reader")])
    async with minikafka.open_cluster(seed=5376, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        polled: dict[TopicPartition, list[ConsumerRecord]] = {}
        async with (
            cluster.producer(transactional_id="tx") as producer,
            cluster.producer() as plain_producer,
            cluster.consumer(
                client_id="reader", isolation_level="read_committed", auto_offset_reset="earliest"
            ) as reader,
        ):
            reader.assign([T0])
            producer.begin_transaction()
            await (await producer.send("t", b"aborted", partition=0))

            async def poll() -> None:
                polled.update(await reader.getmany(timeout=30.0))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(1.0)  # the reader's fetch is on its way, held up until 5 s
                await producer.abort_transaction()
                await plain_producer.send_and_wait("t", b"committed", partition=0)
            assert await reader.position(T0) == 3
        # At 5 s the log holds the aborted record (0), the plain one written before the marker
        # came (1) and the ABORT marker (2): the late answer lists the aborted transaction.
        assert handled_at(cluster, "Fetch")[0] == 5.0
        kinds = [
            b.control_type if b.is_control else b.records[0].value
            for b in cluster.broker.log("t", 0).batches()
        ]
        assert kinds == [b"aborted", b"committed", ControlType.ABORT]
        assert [(r.offset, r.value) for r in polled[T0]] == [(1, b"committed")]


# --- KAFKA-7190: producer state survives a restart -----------------------------------------


def test_kafka_7190_after_a_restart_a_retried_batch_is_still_a_duplicate() -> None:
    """KAFKA-7190: producer state rebuilt after a restart still recognises a retried batch."""
    broker = new_broker()
    response = broker.handle(InitProducerIdRequest(), now=0.0)
    assert isinstance(response, InitProducerIdResponse)
    pid = response.producer_id
    batches = [
        RecordBatch(
            records=(Record(value=b"v%d" % n, timestamp=n),),
            producer_id=pid,
            producer_epoch=0,
            base_sequence=n,
        )
        for n in range(6)
    ]
    assert [produce(broker, T0, batch).base_offset for batch in batches] == list(range(6))
    before = broker.snapshot().producers
    assert broker.restart() == 0
    assert broker.snapshot().producers == before  # rebuilt by replaying the log
    for n in (5, 1):  # the last acknowledged batch, and the oldest still in the 5-batch window
        retry = produce(broker, T0, batches[n], now=1.0)
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, n)
    assert broker.log("t", 0).log_end_offset == 6
    # Older than the window: refused as out of order, as Kafka does, never appended again.
    assert produce(broker, T0, batches[0], now=1.0).error_code is (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )
    assert broker.log("t", 0).log_end_offset == 6


async def test_kafka_7190_a_retry_across_a_broker_restart_gets_the_original_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-7190: a retry that reaches a restarted broker is still deduplicated."""
    plan = FaultPlan(
        [Fault.drop_response(api="Produce", nth=1), Fault.broker_crash(at=1.0, down_for=1.0)]
    )
    async with minikafka.open_cluster(seed=7190, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer() as producer:
            metadata = await producer.send_and_wait("t", b"pay 25", partition=0)
        assert metadata.offset == 0
        assert cluster.trace.kinds().count("recover") == 1
        assert handled_at(cluster, "Produce")[-1] >= 2.0  # the retry came after the recovery
        dirty = await read_all(cluster, "t", isolation_level="read_uncommitted")
        assert [(r.offset, r.value) for r in dirty] == [(0, b"pay 25")]


# --- KAFKA-13574: a write whose answer is lost is indefinite ----------------------------------


@pytest.mark.parametrize(
    ("config", "copies"),
    [
        ({}, 1),
        ({"transactional_id": "tx"}, 1),
        ({"enable_idempotence": False}, 2),  # the contrast: a plain retry writes it again
    ],
    ids=["idempotent", "transactional", "not-idempotent"],
)
async def test_kafka_13574_a_write_whose_answer_was_lost_is_retried_without_a_duplicate(
    autojump_clock: trio.testing.MockClock, config: dict[str, Any], copies: int
) -> None:
    """KAFKA-13574: a write that landed but whose answer was lost is indefinite, not failed."""
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1)])
    async with minikafka.open_cluster(seed=13574, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(**config) as producer:
            if "transactional_id" in config:
                async with producer.transaction():
                    handle = await producer.send("t", b"pay 25", partition=0)
                metadata = await handle
            else:
                metadata = await producer.send_and_wait("t", b"pay 25", partition=0)
        assert cluster.trace.select(kind="lost", api="Produce")
        assert len(handled_at(cluster, "Produce")) == 2  # the write and its retry both landed
        assert metadata.offset == (0 if copies == 1 else 1)  # the original offset, or a new one
        dirty = await read_all(cluster, "t", isolation_level="read_uncommitted")
        assert [r.value for r in dirty] == [b"pay 25"] * copies
        assert await committed_values(cluster) == [b"pay 25"] * copies


# --- KAFKA-17754: a late request lands in the next transaction (TV1) ---------------------------


async def test_kafka_17754_tv1_a_delayed_end_txn_commits_the_next_transaction_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-17754, as Kafka's TV1 has it: a delayed EndTxn(commit) commits the next transaction.

    minikafka follows transaction version 1 (KIP-890 part 1 only): both transactions share the
    producer id and epoch, and EndTxn names no transaction, so the late copy of the first
    commit is taken as the second transaction's commit. The second transaction is torn (its
    first record committed, the next refused by KIP-890 part 1's verification), and the
    application's abort cannot take back what was committed: an aborted read. KIP-890 part 2
    (an epoch bump at every EndTxn) is what closes this in Kafka."""
    plan = FaultPlan([Fault.delay(api="EndTxn", nth=1, seconds=10.0)])
    async with minikafka.open_cluster(seed=17754, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(transactional_id="tx", request_timeout=3.0) as producer:
            async with producer.transaction():
                await producer.send("t", b"t1", partition=0)
            # The first EndTxn timed out at 3 s; its retry committed the first transaction.
            assert cluster.now() < 10.0
            producer.begin_transaction()
            await (await producer.send("t", b"t2-a", partition=0))
            await trio.sleep(10.0)  # meanwhile, at 10 s, the first EndTxn arrives
            assert state_of(cluster.broker) is TransactionState.COMPLETE_COMMIT
            refused = await producer.send("t", b"t2-b", partition=0)
            with pytest.raises(InvalidTxnStateError):
                await refused
            with pytest.raises(InvalidTxnStateError, match="CompleteCommit"):
                await producer.abort_transaction()  # too late: it is committed
            # As in Kafka's client, INVALID_TXN_STATE on EndTxn is fatal: the producer is done.
            with pytest.raises(InvalidTxnStateError):
                producer.begin_transaction()
        retry, late, abort = handled_at(cluster, "EndTxn")[:3]
        assert (retry, late) == (pytest.approx(3.1), 10.0) and abort > late
        assert await committed_values(cluster) == [b"t1", b"t2-a"]


async def test_kafka_17754_a_duplicated_end_txn_lands_before_the_next_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-17754: a duplicated EndTxn on one connection cannot reach the next transaction.

    Both copies travel on the same connection, which is FIFO: the second arrives right after
    the first, while the commit is still being decided (CONCURRENT_TRANSACTIONS, or NONE once
    complete), before the producer can begin another transaction. Only a copy that arrives
    after the producer moved on (the delayed one above) does harm."""
    plan = FaultPlan([Fault.duplicate_request(api="EndTxn", nth=1)])
    async with minikafka.open_cluster(seed=17755, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(transactional_id="tx") as producer:
            async with producer.transaction():
                await producer.send("t", b"t1", partition=0)
            producer.begin_transaction()  # at once: no time for the copy to go astray
            await (await producer.send("t", b"t2", partition=0))
            await producer.abort_transaction()
        handled = [
            event.api
            for event in cluster.trace.select(kind="handle")
            if event.api in ("AddPartitionsToTxn", "EndTxn")
        ]
        # The copy is handled right after the original, before the next transaction's first
        # request; the commit is still writing its markers, so the latter is retried.
        assert handled[:4] == ["AddPartitionsToTxn", "EndTxn", "EndTxn", "AddPartitionsToTxn"]
        assert handled.count("EndTxn") == 3 and handled[-1] == "EndTxn"
        assert await committed_values(cluster) == [b"t1"]


def test_kafka_17754_tv1_a_late_produce_of_the_same_epoch_joins_the_next_transaction() -> None:
    """KAFKA-17754, as Kafka's TV1 has it: a late produce of the same epoch joins the next one.

    A client that aborts while one of its batches is unresolved, and keeps its epoch, lets that
    batch land in its next transaction once the partition is added again: KIP-890 part 1 finds
    the partition in an ongoing transaction of that producer and epoch, and the sequence is
    the next one. minikafka's own client bumps the epoch in this place (KAFKA-8805 below)."""
    broker = new_broker()
    txn = Txn(broker)
    assert txn.init() is ErrorCode.NONE
    assert txn.add(T0) == [ErrorCode.NONE]
    late = txn.batch(T0, "from-txn-1")
    txn.sent(T0, late)  # sent, never answered: the client moves on with the next sequence
    assert txn.end(commit=False) is ErrorCode.NONE
    broker.tick(0.0)
    assert txn.add(T0) == [ErrorCode.NONE]  # the next transaction, same producer and epoch
    assert produce(broker, T0, late).error_code is ErrorCode.NONE  # taken in
    assert txn.send(T0, "from-txn-2").error_code is ErrorCode.NONE
    assert txn.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)
    # The record of the aborted first transaction is committed with the second.
    assert [value for _, value in consume(broker, T0)] == ["from-txn-1", "from-txn-2"]


# --- KAFKA-8805: bump the epoch after an unresolved batch -------------------------------------


async def test_kafka_8805_an_abort_after_an_unresolved_batch_bumps_the_epoch_and_fences_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-8805: after a batch fails unresolved, the abort bumps the epoch, fencing its copy."""
    plan = FaultPlan([Fault.delay(api="Produce", nth=1, seconds=20.0)])
    async with minikafka.open_cluster(seed=8805, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(
            transactional_id="tx", request_timeout=3.0, retries=0
        ) as producer:
            producer.begin_transaction()
            unresolved = await producer.send("t", b"t1", partition=0)
            with pytest.raises(minikafka.KafkaError):
                await unresolved  # timed out at 3 s, no retries: did it land? Unknown.
            await producer.abort_transaction()
            assert broker_epoch(cluster) == 1  # the abort was followed by a bump
            async with producer.transaction():
                await producer.send("t", b"t2", partition=0)
                await trio.sleep(20.0)
                # The late copy of t1 (epoch 0) arrived at 20 s, while this transaction was
                # ongoing on the same partition: only the bump kept it out.
                assert handled_at(cluster, "Produce")[-1] == 20.0
                assert state_of(cluster.broker) is TransactionState.ONGOING
        dirty = await read_all(cluster, "t", isolation_level="read_uncommitted")
        assert [r.value for r in dirty] == [b"t2"]
        assert await committed_values(cluster) == [b"t2"]


def broker_epoch(cluster: minikafka.Cluster, transactional_id: str = "tx") -> int:
    return cluster.broker.transaction_coordinator.transactions[transactional_id].producer_epoch


# --- KAFKA-5793: what OUT_OF_ORDER_SEQUENCE_NUMBER means --------------------------------------


async def test_kafka_5793_a_lost_first_request_does_not_make_the_producer_write_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-5793: OUT_OF_ORDER_SEQUENCE after the producer's own lost request is not data loss.

    On one TCP connection a lost request stalls the ones behind it, so the broker never sees
    sequences 1 and 2 before 0 (it would accept them: a new producer id has no state, KIP-360);
    the producer times out, reconnects and sends 0, 1, 2 again in order."""
    plan = FaultPlan([Fault.drop_request(api="Produce", nth=1)])
    async with minikafka.open_cluster(seed=5793, faults=plan) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(batch_size=10) as producer:  # one record per request
            handles = [await producer.send("t", b"v%d" % n, partition=0) for n in range(3)]
            offsets = [(await handle).offset for handle in handles]
        dirty = await read_all(cluster, "t", isolation_level="read_uncommitted")
        assert [r.value for r in dirty] == [b"v0", b"v1", b"v2"]
        assert offsets == [0, 1, 2]


# --- librdkafka#3020 / #3369: the client filter and an ABORT marker it was not told of ----------


def test_librdkafka_3369_an_abort_marker_missing_from_the_aborted_list_hides_nothing_else() -> None:
    """librdkafka#3020/#3369: an ABORT marker missing from the aborted list must not unhide data."""
    broker = new_broker()
    txn = Txn(broker)
    assert txn.init(timeout_ms=1_000) is ErrorCode.NONE
    assert txn.add(T0, T1) == [ErrorCode.NONE, ErrorCode.NONE]
    assert txn.send(T0, "c1").base_offset == 0
    assert txn.end(commit=True) is ErrorCode.NONE
    broker.tick(0.0)  # COMMIT at 1
    # A transaction that adds t-0 but writes only to t-1, then times out: the fence writes an
    # ABORT to t-0 (with the bumped epoch) that closes nothing there: no aborted-list entry.
    assert txn.add(T0, T1, now=10.0) == [ErrorCode.NONE, ErrorCode.NONE]
    assert txn.send(T1, "x", now=10.0).error_code is ErrorCode.NONE
    broker.tick(11.5)  # ABORT at 2 on t-0
    assert txn.init(now=12.0) is ErrorCode.NONE  # a fresh epoch
    assert txn.add(T0, now=12.0) == [ErrorCode.NONE]
    assert txn.send(T0, "a1", now=12.0).base_offset == 3
    assert txn.end(commit=False, now=12.0) is ErrorCode.NONE
    broker.tick(12.0)  # ABORT at 4
    assert txn.add(T0, now=12.0) == [ErrorCode.NONE]
    assert txn.send(T0, "c2", now=12.0).base_offset == 5
    assert txn.end(commit=True, now=12.0) is ErrorCode.NONE
    broker.tick(12.0)  # COMMIT at 6
    log = broker.log("t", 0)
    markers = [(b.base_offset, b.control_type) for b in log.batches() if b.is_control]
    assert markers == [
        (1, ControlType.COMMIT),
        (2, ControlType.ABORT),
        (4, ControlType.ABORT),
        (6, ControlType.COMMIT),
    ]
    shown, _, aborted = fetch_once(broker, T0, 0, COMMITTED, 1_048_576)
    assert aborted == [3]  # the marker at 2 closed nothing, so it is not listed
    assert shown == [(0, "c1"), (5, "c2")]
    for start in range(log.log_end_offset + 1):
        expected = [(o, v) for o, v in [(0, "c1"), (5, "c2")] if o >= start]
        assert consume(broker, T0, start=start, max_bytes=1) == expected, start


# --- KAFKA-18464: an empty abort (the TV1 side) ---------------------------------------------


async def test_kafka_18464_tv1_an_empty_abort_does_not_fence_its_own_producer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KAFKA-18464 (TV1 side): aborting an empty transaction must not fence its producer."""
    async with minikafka.open_cluster(seed=18464) as cluster:
        await cluster.create_topic("t", partitions=1)
        async with cluster.producer(transactional_id="tx") as producer:
            producer.begin_transaction()
            await producer.abort_transaction()  # nothing sent: nothing to tell the coordinator
            assert broker_epoch(cluster) == 0
            async with producer.transaction():
                await producer.send("t", b"after", partition=0)
        assert len(handled_at(cluster, "EndTxn")) == 1  # the commit only
        assert broker_epoch(cluster) == 0
        assert await committed_values(cluster) == [b"after"]
    # The coordinator's side: an EndTxn for an empty transaction is refused and bumps nothing.
    broker = new_broker()
    txn = Txn(broker)
    assert txn.init() is ErrorCode.NONE
    assert txn.end(commit=False) is ErrorCode.INVALID_TXN_STATE
    assert broker.transaction_coordinator.transactions["tx"].producer_epoch == 0
    assert txn.add(T0) == [ErrorCode.NONE]
    assert txn.send(T0, "ok").error_code is ErrorCode.NONE
