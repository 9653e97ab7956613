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
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    EndTxnRequest,
    EndTxnResponse,
    ErrorCode,
    FetchRequest,
    FetchResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    JoinGroupProtocol,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
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
    SyncGroupAssignment,
    SyncGroupRequest,
    SyncGroupResponse,
    TopicPartition,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.messages import Request, Response, error_codes, error_entries
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
    FindCoordinatorRequest: FindCoordinatorResponse,
    JoinGroupRequest: JoinGroupResponse,
    SyncGroupRequest: SyncGroupResponse,
    HeartbeatRequest: HeartbeatResponse,
    LeaveGroupRequest: LeaveGroupResponse,
    DeleteGroupsRequest: DeleteGroupsResponse,
}

START = 6.0
"""When the seeded broker is ready: its group's initial rebalance is complete by then."""


def seeded_broker(auto_create: bool) -> Broker:
    """A broker with two topics, some data, one idempotent producer's state, a committed group
    offset, an open transaction ("tx") with a record and pending offsets, and a Stable group
    ("members-group") of two members at generation 1."""
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
    seed_group(broker)
    return broker


def seed_group(broker: Broker) -> None:
    """Members c-0-1 (the leader) and c-0-2 join "members-group" and sync generation 1."""
    protocols = (JoinGroupProtocol("range", b""),)
    members = []
    for _ in range(2):
        first = broker.handle(
            JoinGroupRequest(group_id="members-group", protocols=protocols, client_id="c"),
            now=0.0,
        )
        assert isinstance(first, JoinGroupResponse)
        members.append(first.member_id)
        again = JoinGroupRequest(
            group_id="members-group", protocols=protocols, client_id="c", member_id=first.member_id
        )
        assert broker.handle(again, now=0.0) is None
    broker.tick(START)  # the initial rebalance delay has passed twice: both have joined
    assert len(broker.take_delayed_responses()) == 2
    leader, follower = members
    assert (
        broker.handle(
            SyncGroupRequest(group_id="members-group", generation_id=1, member_id=follower),
            now=START,
        )
        is None
    )
    assignments = tuple(SyncGroupAssignment(m, b"") for m in members)
    synced = broker.handle(
        SyncGroupRequest(
            group_id="members-group", generation_id=1, member_id=leader, assignments=assignments
        ),
        now=START,
    )
    assert isinstance(synced, SyncGroupResponse) and synced.error_code is ErrorCode.NONE
    assert len(broker.take_delayed_responses()) == 1


def acts_when_refused(request: Request, codes: list[ErrorCode]) -> bool:
    """Kafka's refusals that change state on purpose."""
    # An init that finds a transaction left open by an earlier instance fences and aborts it,
    # and asks the caller to retry.
    if isinstance(request, InitProducerIdRequest):
        return codes == [ErrorCode.CONCURRENT_TRANSACTIONS]
    # A new member gets an id to join with, and the coordinator remembers it.
    if isinstance(request, JoinGroupRequest):
        return codes == [ErrorCode.MEMBER_ID_REQUIRED]
    # A member told to rejoin has still proved it is alive.
    if isinstance(request, HeartbeatRequest):
        return codes == [ErrorCode.REBALANCE_IN_PROGRESS]
    return False


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
        now = START + step
        if step == crash_at:
            broker.crash()
        if broker.running:
            broker.tick(now)  # time-driven flushes are not the request's doing
        before = broker.snapshot()
        response = broker.handle(request, now=now)
        for held, answer in broker.take_delayed_responses():
            assert isinstance(answer, EXPECTED[type(held)])
        if response is None:
            assert (isinstance(request, ProduceRequest) and request.acks == 0) or isinstance(
                request, JoinGroupRequest | SyncGroupRequest
            )
            continue
        assert isinstance(response, EXPECTED[type(request)])
        codes = error_codes(response)
        assert all(isinstance(code, ErrorCode) for code in codes)
        refused = bool(codes) and all(code is not ErrorCode.NONE for code in codes)
        read_only = isinstance(request, FetchRequest | ListOffsetsRequest | OffsetFetchRequest) or (
            isinstance(request, MetadataRequest) and not auto_create
        )
        refused = refused and not acts_when_refused(request, codes)
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
    response = seeded_broker(auto_create=False).handle(request, now=START)
    if response is None:
        return
    for entry in error_entries(response):
        if entry.error_code is not ErrorCode.NONE:
            assert entry.error_message, f"{entry!r} has no message"
