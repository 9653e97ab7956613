"""Hypothesis strategies for minikafka's messages: any field values of the right types.

They draw mostly sensible values with a generous share of hostile ones (negative offsets,
unknown topics, huge sequence numbers, stale epochs), for fuzzing ``Broker.handle``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from minikafka.core.messages import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    CoordinatorType,
    CreatableTopic,
    CreateTopicsRequest,
    DeleteGroupsRequest,
    EndTxnRequest,
    FetchPartition,
    FetchRequest,
    FindCoordinatorRequest,
    HeartbeatRequest,
    InitProducerIdRequest,
    IsolationLevel,
    JoinGroupProtocol,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsPartition,
    ListOffsetsRequest,
    MemberIdentity,
    MetadataRequest,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetFetchRequest,
    ProducePartitionData,
    ProduceRequest,
    Request,
    SyncGroupAssignment,
    SyncGroupRequest,
    TxnOffsetCommitRequest,
)
from minikafka.core.records import MAX_SEQUENCE, Record, RecordBatch, TopicPartition

__all__ = [
    "batches",
    "group_ids",
    "group_requests",
    "records",
    "requests",
    "topic_names",
    "transaction_requests",
    "transactional_ids",
]

KNOWN_TOPICS = ("payments", "ledger")
KNOWN_TRANSACTIONAL_IDS = ("tx", "other")
KNOWN_GROUPS = ("ledger-group", "other-group", "members-group")
KNOWN_MEMBERS = ("c-0-1", "c-0-2", "c-0-3")
"""Member ids a seeded broker's coordinator hands out first (client id "c", epoch 0)."""


def topic_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(KNOWN_TOPICS),
        st.sampled_from(["", ".", "..", "__internal", "bad name", "x" * 250, "new-topic"]),
        st.text(max_size=12),
    )


def _small_or_any(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(low, high), st.integers())


def records() -> st.SearchStrategy[Record]:
    maybe_bytes = st.none() | st.binary(max_size=8)
    return st.builds(
        Record,
        value=maybe_bytes,
        key=maybe_bytes,
        headers=st.lists(st.tuples(st.text(max_size=4), maybe_bytes), max_size=2).map(tuple),
        timestamp=_small_or_any(-2, 10_000),
    )


def batches() -> st.SearchStrategy[RecordBatch]:
    return st.builds(
        RecordBatch,
        records=st.lists(records(), max_size=3).map(tuple),
        producer_id=_small_or_any(-2, 3),
        producer_epoch=_small_or_any(-2, 3),
        base_sequence=st.one_of(
            st.integers(-2, 8), st.integers(MAX_SEQUENCE - 3, MAX_SEQUENCE + 3), st.integers()
        ),
        is_transactional=st.booleans(),
        is_control=st.booleans(),
        base_offset=_small_or_any(-2, 5),
    )


def _partition() -> st.SearchStrategy[int]:
    return _small_or_any(-2, 3)


def transactional_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_TRANSACTIONAL_IDS), st.just(""), st.text(max_size=4))


def group_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_GROUPS), st.just(""), st.text(max_size=4))


def _topic_partitions() -> st.SearchStrategy[tuple[TopicPartition, ...]]:
    return st.lists(st.builds(TopicPartition, topic_names(), _partition()), max_size=3).map(tuple)


def _offsets() -> st.SearchStrategy[tuple[OffsetCommitPartition, ...]]:
    return st.lists(
        st.builds(
            OffsetCommitPartition,
            topic_names(),
            _partition(),
            _small_or_any(-2, 20),
            st.none() | st.text(max_size=3) | st.just("x" * 4097),
        ),
        max_size=3,
    ).map(tuple)


def _member_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_MEMBERS), st.just(""), st.text(max_size=3))


def group_requests() -> st.SearchStrategy[Request]:
    """Requests of the group membership APIs, with any field values of the right types."""
    protocols = st.lists(
        st.builds(
            JoinGroupProtocol,
            st.sampled_from(["range", "roundrobin"]) | st.text(max_size=2),
            st.binary(max_size=4),
        ),
        max_size=2,
    ).map(tuple)
    generation = _small_or_any(-2, 3)
    instance = st.none() | st.text(max_size=2)
    return st.one_of(
        st.builds(
            FindCoordinatorRequest,
            key=group_ids() | transactional_ids(),
            key_type=st.sampled_from(CoordinatorType),
        ),
        st.builds(
            JoinGroupRequest,
            group_id=group_ids(),
            protocols=protocols,
            member_id=_member_ids(),
            session_timeout_ms=st.sampled_from([10_000, 45_000]) | st.integers(),
            rebalance_timeout_ms=st.sampled_from([20_000]) | st.integers(),
            group_instance_id=instance,
            protocol_type=st.sampled_from(["consumer"]) | st.text(max_size=2),
            client_id=st.sampled_from(["c"]) | st.text(max_size=2),
        ),
        st.builds(
            SyncGroupRequest,
            group_id=group_ids(),
            generation_id=generation,
            member_id=_member_ids(),
            assignments=st.lists(
                st.builds(SyncGroupAssignment, _member_ids(), st.binary(max_size=4)), max_size=3
            ).map(tuple),
            group_instance_id=instance,
            protocol_type=st.none() | st.sampled_from(["consumer"]) | st.text(max_size=2),
            protocol_name=st.none() | st.sampled_from(["range"]) | st.text(max_size=2),
        ),
        st.builds(
            HeartbeatRequest,
            group_id=group_ids(),
            generation_id=generation,
            member_id=_member_ids(),
            group_instance_id=instance,
        ),
        st.builds(
            LeaveGroupRequest,
            group_id=group_ids(),
            members=st.lists(st.builds(MemberIdentity, _member_ids(), instance), max_size=3).map(
                tuple
            ),
        ),
        st.builds(DeleteGroupsRequest, group_ids=st.lists(group_ids(), max_size=3).map(tuple)),
    )


def transaction_requests() -> st.SearchStrategy[Request]:
    """Requests of the transaction and offset APIs, with any field values of the right types."""
    producer = {
        "transactional_id": transactional_ids(),
        "producer_id": _small_or_any(-2, 3),
        "producer_epoch": _small_or_any(-2, 3),
    }
    return st.one_of(
        st.builds(AddPartitionsToTxnRequest, partitions=_topic_partitions(), **producer),
        st.builds(AddOffsetsToTxnRequest, group_id=group_ids(), **producer),
        st.builds(EndTxnRequest, committed=st.booleans(), **producer),
        st.builds(
            TxnOffsetCommitRequest,
            group_id=group_ids(),
            partitions=_offsets(),
            generation_id=_small_or_any(-2, 3),
            member_id=_member_ids(),
            **producer,
        ),
        st.builds(
            OffsetCommitRequest,
            group_id=group_ids(),
            partitions=_offsets(),
            generation_id=_small_or_any(-2, 3),
            member_id=_member_ids(),
        ),
        st.builds(
            OffsetFetchRequest,
            group_id=group_ids(),
            partitions=st.none() | _topic_partitions(),
            require_stable=st.booleans(),
        ),
    )


def requests() -> st.SearchStrategy[Request]:
    """Any request the core knows, with any field values of the right types."""
    isolation = st.sampled_from(IsolationLevel)
    produce = st.builds(
        ProduceRequest,
        partitions=st.lists(
            st.builds(ProducePartitionData, topic_names(), _partition(), batches()), max_size=3
        ).map(tuple),
        acks=st.one_of(st.sampled_from([-1, 0, 1]), st.integers()),
        timeout_ms=st.integers(),
        transactional_id=st.none() | transactional_ids(),
    )
    fetch = st.builds(
        FetchRequest,
        partitions=st.lists(
            st.builds(
                FetchPartition,
                topic_names(),
                _partition(),
                _small_or_any(-2, 10),
                _small_or_any(-1, 200),
            ),
            max_size=3,
        ).map(tuple),
        isolation_level=isolation,
        max_bytes=_small_or_any(-1, 300),
        max_wait_ms=st.integers(),
        min_bytes=st.integers(),
    )
    list_offsets = st.builds(
        ListOffsetsRequest,
        partitions=st.lists(
            st.builds(ListOffsetsPartition, topic_names(), _partition(), _small_or_any(-4, 20)),
            max_size=3,
        ).map(tuple),
        isolation_level=isolation,
    )
    metadata = st.builds(
        MetadataRequest,
        topics=st.none() | st.lists(topic_names(), max_size=3).map(tuple),
        allow_auto_topic_creation=st.booleans(),
    )
    create_topics = st.builds(
        CreateTopicsRequest,
        topics=st.lists(
            st.builds(CreatableTopic, topic_names(), _small_or_any(-2, 4), _small_or_any(-2, 3)),
            max_size=3,
        ).map(tuple),
        validate_only=st.booleans(),
    )
    init_producer_id = st.builds(
        InitProducerIdRequest,
        transactional_id=st.none() | transactional_ids(),
        transaction_timeout_ms=st.integers(),
        producer_id=_small_or_any(-2, 3),
        producer_epoch=_small_or_any(-2, 3),
    )
    return st.one_of(
        produce,
        fetch,
        list_offsets,
        metadata,
        create_topics,
        init_producer_id,
        transaction_requests(),
        group_requests(),
    )
