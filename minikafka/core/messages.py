"""Typed requests and responses, named after Kafka's APIs.

Each request names its API (``api_name``, Kafka's key and name), so a fault plan or a trace can
say "the 3rd Produce". Each request can also build the response that refuses it as a whole
(``error_response``): the broker uses it while it is down and for malformed requests.

Simplified: Kafka nests partitions under topics; these messages list (topic, partition)
entries flat, in request order. Fields keep Kafka's names and units (``*_ms``).
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from minikafka.core.errors import ErrorCode
from minikafka.core.records import RecordBatch, TopicPartition

__all__ = [
    "ACKS_ALL",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "AbortedTransaction",
    "AddOffsetsToTxnRequest",
    "AddOffsetsToTxnResponse",
    "AddPartitionsToTxnRequest",
    "AddPartitionsToTxnResponse",
    "AddPartitionsToTxnResult",
    "BrokerMetadata",
    "CoordinatorType",
    "CreatableTopic",
    "CreatableTopicResult",
    "CreateTopicsRequest",
    "CreateTopicsResponse",
    "DeletableGroupResult",
    "DeleteGroupsRequest",
    "DeleteGroupsResponse",
    "EndTxnRequest",
    "EndTxnResponse",
    "FetchPartition",
    "FetchPartitionResponse",
    "FetchRequest",
    "FetchResponse",
    "FindCoordinatorRequest",
    "FindCoordinatorResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "InitProducerIdRequest",
    "InitProducerIdResponse",
    "IsolationLevel",
    "JoinGroupMember",
    "JoinGroupProtocol",
    "JoinGroupRequest",
    "JoinGroupResponse",
    "LeaveGroupMemberResponse",
    "LeaveGroupRequest",
    "LeaveGroupResponse",
    "ListOffsetsPartition",
    "ListOffsetsPartitionResponse",
    "ListOffsetsRequest",
    "ListOffsetsResponse",
    "MemberIdentity",
    "MetadataRequest",
    "MetadataResponse",
    "OffsetCommitPartition",
    "OffsetCommitPartitionResponse",
    "OffsetCommitRequest",
    "OffsetCommitResponse",
    "OffsetFetchPartitionResponse",
    "OffsetFetchRequest",
    "OffsetFetchResponse",
    "PartitionMetadata",
    "ProducePartitionData",
    "ProducePartitionResponse",
    "ProduceRequest",
    "ProduceResponse",
    "Request",
    "Response",
    "SyncGroupAssignment",
    "SyncGroupRequest",
    "SyncGroupResponse",
    "TopicMetadata",
    "TxnOffsetCommitRequest",
    "TxnOffsetCommitResponse",
    "error_codes",
    "error_entries",
]

ACKS_ALL = -1
"""``acks="all"`` on the wire."""
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


class IsolationLevel(enum.IntEnum):
    READ_UNCOMMITTED = 0
    READ_COMMITTED = 1


# --- Produce (API key 0) -------------------------------------------------------------------


@attrs.frozen(slots=True)
class ProducePartitionData:
    topic: str
    partition: int
    batch: RecordBatch


@attrs.frozen(slots=True)
class ProducePartitionResponse:
    topic: str
    partition: int
    error_code: ErrorCode = ErrorCode.NONE
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None


@attrs.frozen(slots=True)
class ProduceResponse:
    partitions: tuple[ProducePartitionResponse, ...]


@attrs.frozen(slots=True, kw_only=True)
class ProduceRequest:
    """One batch per partition. ``acks`` is 0, 1 or -1 (``ACKS_ALL``); acks=0 gets no answer."""

    api_key: ClassVar[int] = 0
    api_name: ClassVar[str] = "Produce"

    partitions: tuple[ProducePartitionData, ...]
    acks: int = ACKS_ALL
    timeout_ms: int = 30_000
    transactional_id: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> ProduceResponse:
        return ProduceResponse(
            tuple(
                ProducePartitionResponse(p.topic, p.partition, error, error_message=message)
                for p in self.partitions
            )
        )


# --- Fetch (API key 1) ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class FetchPartition:
    topic: str
    partition: int
    fetch_offset: int
    partition_max_bytes: int = 1_048_576


@attrs.frozen(slots=True)
class AbortedTransaction:
    producer_id: int
    first_offset: int


@attrs.frozen(slots=True, kw_only=True)
class FetchPartitionResponse:
    topic: str
    partition: int
    error_code: ErrorCode = ErrorCode.NONE
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted_transactions: tuple[AbortedTransaction, ...] = ()
    batches: tuple[RecordBatch, ...] = ()
    error_message: str | None = None


@attrs.frozen(slots=True)
class FetchResponse:
    partitions: tuple[FetchPartitionResponse, ...]
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class FetchRequest:
    """Simplified: the core answers at once; waiting for ``min_bytes`` is the caller's job."""

    api_key: ClassVar[int] = 1
    api_name: ClassVar[str] = "Fetch"

    partitions: tuple[FetchPartition, ...]
    isolation_level: IsolationLevel = IsolationLevel.READ_UNCOMMITTED
    max_bytes: int = 52_428_800
    max_wait_ms: int = 500
    min_bytes: int = 1

    def error_response(self, error: ErrorCode, message: str) -> FetchResponse:
        return FetchResponse(
            tuple(
                FetchPartitionResponse(
                    topic=p.topic,
                    partition=p.partition,
                    error_code=error,
                    error_message=message,
                )
                for p in self.partitions
            ),
            error_code=error,
            error_message=message,
        )


# --- ListOffsets (API key 2) ---------------------------------------------------------------


@attrs.frozen(slots=True)
class ListOffsetsPartition:
    """``timestamp`` is ``LATEST_TIMESTAMP`` (-1), ``EARLIEST_TIMESTAMP`` (-2) or a time in ms."""

    topic: str
    partition: int
    timestamp: int = LATEST_TIMESTAMP


@attrs.frozen(slots=True)
class ListOffsetsPartitionResponse:
    topic: str
    partition: int
    error_code: ErrorCode = ErrorCode.NONE
    timestamp: int = -1
    offset: int = -1
    error_message: str | None = None


@attrs.frozen(slots=True)
class ListOffsetsResponse:
    partitions: tuple[ListOffsetsPartitionResponse, ...]


@attrs.frozen(slots=True, kw_only=True)
class ListOffsetsRequest:
    api_key: ClassVar[int] = 2
    api_name: ClassVar[str] = "ListOffsets"

    partitions: tuple[ListOffsetsPartition, ...]
    isolation_level: IsolationLevel = IsolationLevel.READ_UNCOMMITTED

    def error_response(self, error: ErrorCode, message: str) -> ListOffsetsResponse:
        return ListOffsetsResponse(
            tuple(
                ListOffsetsPartitionResponse(p.topic, p.partition, error, error_message=message)
                for p in self.partitions
            )
        )


# --- Metadata (API key 3) ------------------------------------------------------------------


@attrs.frozen(slots=True)
class BrokerMetadata:
    node_id: int
    host: str
    port: int


@attrs.frozen(slots=True)
class PartitionMetadata:
    partition: int
    leader_id: int
    error_code: ErrorCode = ErrorCode.NONE


@attrs.frozen(slots=True, kw_only=True)
class TopicMetadata:
    name: str
    error_code: ErrorCode = ErrorCode.NONE
    partitions: tuple[PartitionMetadata, ...] = ()
    is_internal: bool = False
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class MetadataResponse:
    brokers: tuple[BrokerMetadata, ...] = ()
    topics: tuple[TopicMetadata, ...] = ()
    controller_id: int = -1


@attrs.frozen(slots=True, kw_only=True)
class MetadataRequest:
    """``topics=None`` asks for every topic; a listed unknown topic may be auto-created."""

    api_key: ClassVar[int] = 3
    api_name: ClassVar[str] = "Metadata"

    topics: tuple[str, ...] | None = None
    allow_auto_topic_creation: bool = True

    def error_response(self, error: ErrorCode, message: str) -> MetadataResponse:
        return MetadataResponse(
            topics=tuple(
                TopicMetadata(name=name, error_code=error, error_message=message)
                for name in self.topics or ()
            )
        )


# --- CreateTopics (API key 19) -------------------------------------------------------------


@attrs.frozen(slots=True)
class CreatableTopic:
    name: str
    num_partitions: int = 1
    replication_factor: int = 1


@attrs.frozen(slots=True)
class CreatableTopicResult:
    name: str
    error_code: ErrorCode = ErrorCode.NONE
    num_partitions: int = -1
    error_message: str | None = None


@attrs.frozen(slots=True)
class CreateTopicsResponse:
    topics: tuple[CreatableTopicResult, ...]


@attrs.frozen(slots=True, kw_only=True)
class CreateTopicsRequest:
    api_key: ClassVar[int] = 19
    api_name: ClassVar[str] = "CreateTopics"

    topics: tuple[CreatableTopic, ...]
    validate_only: bool = False

    def error_response(self, error: ErrorCode, message: str) -> CreateTopicsResponse:
        return CreateTopicsResponse(
            tuple(CreatableTopicResult(t.name, error, error_message=message) for t in self.topics)
        )


# --- InitProducerId (API key 22) -----------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class InitProducerIdResponse:
    error_code: ErrorCode = ErrorCode.NONE
    producer_id: int = -1
    producer_epoch: int = -1
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class InitProducerIdRequest:
    """Without a ``transactional_id``, asks for a fresh producer id at epoch 0."""

    api_key: ClassVar[int] = 22
    api_name: ClassVar[str] = "InitProducerId"

    transactional_id: str | None = None
    transaction_timeout_ms: int = 60_000
    producer_id: int = -1
    producer_epoch: int = -1

    def error_response(self, error: ErrorCode, message: str) -> InitProducerIdResponse:
        return InitProducerIdResponse(error_code=error, error_message=message)


# --- OffsetCommit (API key 8) -------------------------------------------------------------


@attrs.frozen(slots=True)
class OffsetCommitPartition:
    """An offset to commit: the next offset the group will consume from ``topic-partition``."""

    topic: str
    partition: int
    committed_offset: int
    committed_metadata: str | None = None


@attrs.frozen(slots=True)
class OffsetCommitPartitionResponse:
    topic: str
    partition: int
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True)
class OffsetCommitResponse:
    partitions: tuple[OffsetCommitPartitionResponse, ...]


def _refuse_offsets(
    partitions: tuple[OffsetCommitPartition, ...], error: ErrorCode, message: str
) -> tuple[OffsetCommitPartitionResponse, ...]:
    return tuple(
        OffsetCommitPartitionResponse(p.topic, p.partition, error, error_message=message)
        for p in partitions
    )


@attrs.frozen(slots=True, kw_only=True)
class OffsetCommitRequest:
    """Commit offsets for a group, as a member of its current generation.

    ``generation_id=-1`` and no member id: a consumer that uses ``assign()`` rather than group
    membership, accepted only while the group is Empty.
    """

    api_key: ClassVar[int] = 8
    api_name: ClassVar[str] = "OffsetCommit"

    group_id: str
    partitions: tuple[OffsetCommitPartition, ...]
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> OffsetCommitResponse:
        return OffsetCommitResponse(_refuse_offsets(self.partitions, error, message))


# --- OffsetFetch (API key 9) ---------------------------------------------------------------


@attrs.frozen(slots=True)
class OffsetFetchPartitionResponse:
    """``committed_offset`` is -1 when the group has committed nothing for the partition."""

    topic: str
    partition: int
    committed_offset: int = -1
    committed_metadata: str | None = None
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class OffsetFetchResponse:
    partitions: tuple[OffsetFetchPartitionResponse, ...] = ()
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class OffsetFetchRequest:
    """The group's committed offsets; ``partitions=None`` asks for all of them.

    With ``require_stable``, a partition that has transactional offsets waiting for their
    marker answers UNSTABLE_OFFSET_COMMIT, and the consumer asks again (KIP-447).
    """

    api_key: ClassVar[int] = 9
    api_name: ClassVar[str] = "OffsetFetch"

    group_id: str
    partitions: tuple[TopicPartition, ...] | None = None
    require_stable: bool = False

    def error_response(self, error: ErrorCode, message: str) -> OffsetFetchResponse:
        return OffsetFetchResponse(error_code=error, error_message=message)


# --- AddPartitionsToTxn (API key 24) -------------------------------------------------------


@attrs.frozen(slots=True)
class AddPartitionsToTxnResult:
    topic: str
    partition: int
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True)
class AddPartitionsToTxnResponse:
    results: tuple[AddPartitionsToTxnResult, ...]


@attrs.frozen(slots=True, kw_only=True)
class AddPartitionsToTxnRequest:
    """Add partitions to the producer's transaction before its first write to each."""

    api_key: ClassVar[int] = 24
    api_name: ClassVar[str] = "AddPartitionsToTxn"

    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[TopicPartition, ...]

    def error_response(self, error: ErrorCode, message: str) -> AddPartitionsToTxnResponse:
        return AddPartitionsToTxnResponse(
            tuple(
                AddPartitionsToTxnResult(tp.topic, tp.partition, error, error_message=message)
                for tp in self.partitions
            )
        )


# --- AddOffsetsToTxn (API key 25), EndTxn (API key 26) -------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class AddOffsetsToTxnResponse:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class AddOffsetsToTxnRequest:
    """Add the group's offsets partition to the transaction, before ``TxnOffsetCommit``."""

    api_key: ClassVar[int] = 25
    api_name: ClassVar[str] = "AddOffsetsToTxn"

    transactional_id: str
    producer_id: int
    producer_epoch: int
    group_id: str

    def error_response(self, error: ErrorCode, message: str) -> AddOffsetsToTxnResponse:
        return AddOffsetsToTxnResponse(error_code=error, error_message=message)


@attrs.frozen(slots=True, kw_only=True)
class EndTxnResponse:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class EndTxnRequest:
    """Commit (``committed=True``) or abort the producer's ongoing transaction."""

    api_key: ClassVar[int] = 26
    api_name: ClassVar[str] = "EndTxn"

    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool

    def error_response(self, error: ErrorCode, message: str) -> EndTxnResponse:
        return EndTxnResponse(error_code=error, error_message=message)


# --- TxnOffsetCommit (API key 28) ----------------------------------------------------------


@attrs.frozen(slots=True)
class TxnOffsetCommitResponse:
    partitions: tuple[OffsetCommitPartitionResponse, ...]


@attrs.frozen(slots=True, kw_only=True)
class TxnOffsetCommitRequest:
    """Offsets written inside a transaction: pending until the transaction's marker.

    ``generation_id`` and ``member_id`` come from the consumer's group metadata (KIP-447), and
    the group coordinator checks them as it checks OffsetCommit's. Without them
    (``generation_id=-1``, no member id: the pre-KIP-447 form) the commit is accepted in any
    group state, as in Kafka, so such a producer is not fenced by the group.
    """

    api_key: ClassVar[int] = 28
    api_name: ClassVar[str] = "TxnOffsetCommit"

    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[OffsetCommitPartition, ...]
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> TxnOffsetCommitResponse:
        return TxnOffsetCommitResponse(_refuse_offsets(self.partitions, error, message))


# --- FindCoordinator (API key 10) ----------------------------------------------------------


class CoordinatorType(enum.IntEnum):
    GROUP = 0
    TRANSACTION = 1


@attrs.frozen(slots=True, kw_only=True)
class FindCoordinatorResponse:
    error_code: ErrorCode = ErrorCode.NONE
    node_id: int = -1
    host: str = ""
    port: int = -1
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class FindCoordinatorRequest:
    """Which broker coordinates a group (``key`` is a group id) or a transactional id."""

    api_key: ClassVar[int] = 10
    api_name: ClassVar[str] = "FindCoordinator"

    key: str
    key_type: CoordinatorType = CoordinatorType.GROUP

    def error_response(self, error: ErrorCode, message: str) -> FindCoordinatorResponse:
        return FindCoordinatorResponse(error_code=error, error_message=message)


# --- JoinGroup (API key 11) ----------------------------------------------------------------


@attrs.frozen(slots=True)
class JoinGroupProtocol:
    """One protocol a member can use (for consumers: an assignor name) and its metadata.

    The coordinator never reads ``metadata``: only the group's leader decodes it.
    """

    name: str
    metadata: bytes = b""


@attrs.frozen(slots=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str | None = None
    metadata: bytes = b""


@attrs.frozen(slots=True, kw_only=True)
class JoinGroupResponse:
    """``members`` is filled for the leader only: it computes the assignment from them."""

    error_code: ErrorCode = ErrorCode.NONE
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: tuple[JoinGroupMember, ...] = ()
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class JoinGroupRequest:
    """Join a group, or rejoin it for the next generation.

    A member without an id (``member_id=""``) first gets MEMBER_ID_REQUIRED with an id to join
    with (JoinGroup v4 and later). The answer to a join is held until the rebalance completes,
    so ``Broker.handle`` may return None and answer later (see ``take_delayed_responses``).
    ``client_id`` stands for the request header's client id, from which Kafka builds member ids.
    """

    api_key: ClassVar[int] = 11
    api_name: ClassVar[str] = "JoinGroup"

    group_id: str
    protocols: tuple[JoinGroupProtocol, ...]
    member_id: str = ""
    session_timeout_ms: int = 45_000
    rebalance_timeout_ms: int = 300_000
    group_instance_id: str | None = None
    protocol_type: str = "consumer"
    client_id: str = "consumer"
    reason: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> JoinGroupResponse:
        return JoinGroupResponse(error_code=error, member_id=self.member_id, error_message=message)


# --- Heartbeat (API key 12) ----------------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class HeartbeatResponse:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class HeartbeatRequest:
    """A member is alive. REBALANCE_IN_PROGRESS in the answer tells it to rejoin."""

    api_key: ClassVar[int] = 12
    api_name: ClassVar[str] = "Heartbeat"

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> HeartbeatResponse:
        return HeartbeatResponse(error_code=error, error_message=message)


# --- LeaveGroup (API key 13) ---------------------------------------------------------------


@attrs.frozen(slots=True)
class MemberIdentity:
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


@attrs.frozen(slots=True)
class LeaveGroupMemberResponse:
    member_id: str
    group_instance_id: str | None = None
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class LeaveGroupResponse:
    error_code: ErrorCode = ErrorCode.NONE
    members: tuple[LeaveGroupMemberResponse, ...] = ()
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class LeaveGroupRequest:
    """Members leave the group at once, instead of waiting out their session timeout."""

    api_key: ClassVar[int] = 13
    api_name: ClassVar[str] = "LeaveGroup"

    group_id: str
    members: tuple[MemberIdentity, ...]

    def error_response(self, error: ErrorCode, message: str) -> LeaveGroupResponse:
        return LeaveGroupResponse(error_code=error, error_message=message)


# --- SyncGroup (API key 14) ----------------------------------------------------------------


@attrs.frozen(slots=True)
class SyncGroupAssignment:
    member_id: str
    assignment: bytes


@attrs.frozen(slots=True, kw_only=True)
class SyncGroupResponse:
    error_code: ErrorCode = ErrorCode.NONE
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""
    error_message: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class SyncGroupRequest:
    """After a join: the leader sends everyone's assignment, the others send none.

    The answer waits for the leader's assignment, so ``Broker.handle`` may return None and
    answer later (see ``take_delayed_responses``).
    """

    api_key: ClassVar[int] = 14
    api_name: ClassVar[str] = "SyncGroup"

    group_id: str
    generation_id: int
    member_id: str
    assignments: tuple[SyncGroupAssignment, ...] = ()
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None

    def error_response(self, error: ErrorCode, message: str) -> SyncGroupResponse:
        return SyncGroupResponse(error_code=error, error_message=message)


# --- DeleteGroups (API key 42) -------------------------------------------------------------


@attrs.frozen(slots=True)
class DeletableGroupResult:
    group_id: str
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@attrs.frozen(slots=True)
class DeleteGroupsResponse:
    results: tuple[DeletableGroupResult, ...]


@attrs.frozen(slots=True, kw_only=True)
class DeleteGroupsRequest:
    """Delete empty groups and their committed offsets (an admin operation)."""

    api_key: ClassVar[int] = 42
    api_name: ClassVar[str] = "DeleteGroups"

    group_ids: tuple[str, ...]

    def error_response(self, error: ErrorCode, message: str) -> DeleteGroupsResponse:
        return DeleteGroupsResponse(
            tuple(DeletableGroupResult(g, error, error_message=message) for g in self.group_ids)
        )


Request = (
    ProduceRequest
    | FetchRequest
    | ListOffsetsRequest
    | MetadataRequest
    | CreateTopicsRequest
    | InitProducerIdRequest
    | OffsetCommitRequest
    | OffsetFetchRequest
    | AddPartitionsToTxnRequest
    | AddOffsetsToTxnRequest
    | EndTxnRequest
    | TxnOffsetCommitRequest
    | FindCoordinatorRequest
    | JoinGroupRequest
    | HeartbeatRequest
    | LeaveGroupRequest
    | SyncGroupRequest
    | DeleteGroupsRequest
)
Response = (
    ProduceResponse
    | FetchResponse
    | ListOffsetsResponse
    | MetadataResponse
    | CreateTopicsResponse
    | InitProducerIdResponse
    | OffsetCommitResponse
    | OffsetFetchResponse
    | AddPartitionsToTxnResponse
    | AddOffsetsToTxnResponse
    | EndTxnResponse
    | TxnOffsetCommitResponse
    | FindCoordinatorResponse
    | JoinGroupResponse
    | HeartbeatResponse
    | LeaveGroupResponse
    | SyncGroupResponse
    | DeleteGroupsResponse
)


def error_entries(response: Response) -> list[Any]:
    """The parts of a response that carry an error code and message: the response itself if it
    failed as a whole, else each partition, result, topic or member it lists."""
    whole: ErrorCode = getattr(response, "error_code", ErrorCode.NONE)
    if whole is not ErrorCode.NONE or isinstance(response, JoinGroupResponse):
        return [response]  # a JoinGroup's members are the group's, not results
    for name in ("partitions", "results", "topics", "members"):
        entries = getattr(response, name, None)
        if entries is not None:
            return list(entries)
    return [response]


def error_codes(response: Response) -> list[ErrorCode]:
    """The error codes a response carries (one for each of its ``error_entries``)."""
    return [entry.error_code for entry in error_entries(response)]
