"""Arbitrary requests: ``Broker.handle`` never raises, and a refused request changes nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minikafka.core import (
    Broker,
    BrokerConfig,
    CreateTopicsRequest,
    CreateTopicsResponse,
    ErrorCode,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    ProducePartitionData,
    ProduceRequest,
    ProduceResponse,
    Record,
    RecordBatch,
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
}


def seeded_broker(auto_create: bool) -> Broker:
    """A broker with two topics, some data and one idempotent producer's state."""
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
    return broker


def error_codes(response: Response) -> list[ErrorCode]:
    if isinstance(response, InitProducerIdResponse):
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
        read_only = isinstance(request, FetchRequest | ListOffsetsRequest) or (
            isinstance(request, MetadataRequest) and not auto_create
        )
        if refused or read_only or not broker.running:
            assert broker.snapshot() == before, f"{request!r} changed the broker"
        if not broker.running:
            assert codes == [ErrorCode.BROKER_NOT_AVAILABLE] * len(codes)
            broker.recover()


@given(request=requests())
def test_every_error_comes_with_a_message(request: Request) -> None:
    response = seeded_broker(auto_create=False).handle(request, now=0.0)
    if response is None:
        return
    entries: list[object]
    if isinstance(response, InitProducerIdResponse):
        entries = [response]
    elif isinstance(response, MetadataResponse | CreateTopicsResponse):
        entries = list(response.topics)
    else:
        entries = list(response.partitions)
    for entry in entries:
        if entry.error_code is not ErrorCode.NONE:  # type: ignore[attr-defined]
            assert entry.error_message, f"{entry!r} has no message"  # type: ignore[attr-defined]
