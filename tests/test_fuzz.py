"""Arbitrary requests: ``Broker.handle`` never raises, and a refused request changes nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minikafka.core import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    Broker,
    BrokerConfig,
    CreateTopicsRequest,
    CreateTopicsResponse,
    EndTxnRequest,
    EndTxnResponse,
    ErrorCode,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    ProducePartitionData,
    ProduceRequest,
    ProduceResponse,
    Record,
    RecordBatch,
    TopicPartition,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.messages import Request, Response
from minikafka.testing.strategies import requests

EXPECTED: dict[type[Request], type[Response]] = {
    ProduceRequest: ProduceResponse,
    FetchRequest: FetchResponse,
    ListOffsetsRequest: ListOffsetsResponse,
    MetadataRequest: MetadataResponse,
    CreateTopicsRequest: CreateTopicsResponse,
    InitProducerIdRequest: InitProducerIdResponse,
    AddPartitionsToTxnRequest: AddPartitionsToTxnResponse,
    AddOffsetsToTxnRequest: AddOffsetsToTxnResponse,
    EndTxnRequest: EndTxnResponse,
    TxnOffsetCommitRequest: TxnOffsetCommitResponse,
    OffsetCommitRequest: OffsetCommitResponse,
    OffsetFetchRequest: OffsetFetchResponse,
}


def seeded_broker(auto_create: bool) -> Broker:
    """A broker with two topics, some data, one idempotent producer's state, a committed group
    offset, and an open transaction ("tx") with a record and pending offsets."""
    broker = Broker(BrokerConfig(auto_create_topics_enable=auto_create))
    broker.create_topic("payments", 2)
    broker.create_topic("ledger", 1)
    init = broker.handle(InitProducerIdRequest(), now=0.0)
    assert isinstance(init, InitProducerIdResponse)
    for sequence in range(3):
        batch = RecordBatch(
            records=(Record(b"v%d" % sequence, timestamp=sequence),),
            producer_id=init.producer_id,
            producer_epoch=0,
            base_sequence=sequence,
        )
        broker.handle(
            ProduceRequest(partitions=(ProducePartitionData("payments", 0, batch),)), now=0.0
        )
    broker.handle(
        OffsetCommitRequest(
            group_id="ledger-group", partitions=(OffsetCommitPartition("payments", 0, 2),)
        ),
        now=0.0,
    )
    txn = broker.handle(InitProducerIdRequest(transactional_id="tx"), now=0.0)
    assert isinstance(txn, InitProducerIdResponse)
    producer = {
        "transactional_id": "tx",
        "producer_id": txn.producer_id,
        "producer_epoch": txn.producer_epoch,
    }
    for request in (
        AddPartitionsToTxnRequest(partitions=(TopicPartition("payments", 1),), **producer),
        ProduceRequest(
            partitions=(
                ProducePartitionData(
                    "payments",
                    1,
                    RecordBatch(
                        records=(Record(b"t1"),),
                        producer_id=txn.producer_id,
                        producer_epoch=txn.producer_epoch,
                        base_sequence=0,
                        is_transactional=True,
                    ),
                ),
            )
        ),
        AddOffsetsToTxnRequest(group_id="ledger-group", **producer),
        TxnOffsetCommitRequest(
            group_id="ledger-group",
            partitions=(OffsetCommitPartition("payments", 1, 1),),
            **producer,
        ),
    ):
        response = broker.handle(request, now=0.0)
        assert response is not None
        assert set(error_codes(response)) == {ErrorCode.NONE}, response
    return broker


def error_codes(response: Response) -> list[ErrorCode]:
    if isinstance(response, InitProducerIdResponse | AddOffsetsToTxnResponse | EndTxnResponse):
        return [response.error_code]
    if isinstance(response, AddPartitionsToTxnResponse):
        return [result.error_code for result in response.results]
    if isinstance(response, OffsetFetchResponse) and response.error_code is not ErrorCode.NONE:
        return [response.error_code]
    if isinstance(response, MetadataResponse):
        return [topic.error_code for topic in response.topics]
    if isinstance(response, CreateTopicsResponse):
        return [topic.error_code for topic in response.topics]
    return [p.error_code for p in response.partitions]


@given(
    script=st.lists(requests(), min_size=1, max_size=8),
    auto_create=st.booleans(),
    crash_at=st.none() | st.integers(0, 7),
)
def test_handle_never_raises_and_refusals_change_nothing(
    script: list[Request], auto_create: bool, crash_at: int | None
) -> None:
    broker = seeded_broker(auto_create)
    for step, request in enumerate(script):
        now = float(step)
        if step == crash_at:
            broker.crash()
        if broker.running:
            broker.tick(now)  # time-driven flushes are not the request's doing
        before = broker.snapshot()
        response = broker.handle(request, now=now)
        if response is None:
            assert isinstance(request, ProduceRequest) and request.acks == 0
            continue
        assert isinstance(response, EXPECTED[type(request)])
        codes = error_codes(response)
        assert all(isinstance(code, ErrorCode) for code in codes)
        refused = bool(codes) and all(code is not ErrorCode.NONE for code in codes)
        read_only = isinstance(request, FetchRequest | ListOffsetsRequest | OffsetFetchRequest) or (
            isinstance(request, MetadataRequest) and not auto_create
        )
        # Kafka's one refusal that acts: an init that finds a transaction left open by an
        # earlier instance fences and aborts it, and asks the caller to retry.
        fences = isinstance(request, InitProducerIdRequest) and codes == [
            ErrorCode.CONCURRENT_TRANSACTIONS
        ]
        refused = refused and not fences
        if refused or read_only or not broker.running:
            assert broker.snapshot() == before, f"{request!r} changed the broker"
        if not broker.running:
            assert codes == [ErrorCode.BROKER_NOT_AVAILABLE] * len(codes)
            broker.recover()
        invariants_hold(broker)


def invariants_hold(broker: Broker) -> None:
    """Whatever the requests, the logs' marks and the coordinator stay consistent."""
    for log in broker.logs():
        assert log.last_stable_offset <= log.high_watermark <= log.log_end_offset
    coordinator = broker.transaction_coordinator
    for transactional_id in coordinator.pending_markers:
        assert coordinator.transactions[transactional_id].is_open


@given(request=requests())
def test_every_error_comes_with_a_message(request: Request) -> None:
    response = seeded_broker(auto_create=False).handle(request, now=0.0)
    if response is None:
        return
    entries: list[object]
    if isinstance(response, InitProducerIdResponse | AddOffsetsToTxnResponse | EndTxnResponse):
        entries = [response]
    elif isinstance(response, AddPartitionsToTxnResponse):
        entries = list(response.results)
    elif isinstance(response, OffsetFetchResponse) and response.error_code is not ErrorCode.NONE:
        entries = [response]
    elif isinstance(response, MetadataResponse | CreateTopicsResponse):
        entries = list(response.topics)
    else:
        entries = list(response.partitions)
    for entry in entries:
        if entry.error_code is not ErrorCode.NONE:  # type: ignore[attr-defined]
            assert entry.error_message, f"{entry!r} has no message"  # type: ignore[attr-defined]
