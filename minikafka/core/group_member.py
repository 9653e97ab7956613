"""A consumer's side of the classic group protocol, sans-IO: what to send, and what an answer means.

``GroupMemberProtocol`` is the part of Kafka's ``ConsumerCoordinator`` that decides the
requests: join (with the MEMBER_ID_REQUIRED round trip), compute the assignment when it is the
leader, sync, heartbeat, rejoin when told, leave. It never sends anything itself: each method
returns the next request, and the caller (a test machine, a scenario, the trio consumer)
delivers it and hands back the answer. It never reads a clock either: the caller decides when
a heartbeat is due (``heartbeat_interval_ms``).

Kafka's client rules it follows:
- REBALANCE_IN_PROGRESS: rejoin with the same member id.
- UNKNOWN_MEMBER_ID: forget the member id, the generation and the partitions (they are lost),
  then rejoin as a new member.
- ILLEGAL_GENERATION: the same, but rejoin with the same member id.
- An eager protocol (range, roundrobin, sticky) gives up every partition before it rejoins. A
  cooperative one (cooperative-sticky) keeps them, and rejoins once more when its new
  assignment took partitions away, so that they reach their new owner in a second rebalance.
- A member that lost its membership still believes its partitions are its own until it hears
  otherwise: that is the zombie that generation fencing stops.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

from minikafka.core.assignors import (
    CONSUMER_PROTOCOL_TYPE,
    COOPERATIVE_ASSIGNORS,
    Assignment,
    Subscription,
    assignor,
)
from minikafka.core.errors import ErrorCode
from minikafka.core.messages import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupProtocol,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    MemberIdentity,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResponse,
    SyncGroupAssignment,
    SyncGroupRequest,
    SyncGroupResponse,
    TxnOffsetCommitRequest,
)
from minikafka.core.records import TopicPartition

__all__ = ["ConsumerGroupMetadata", "GroupMemberProtocol", "MemberState"]


class MemberState(enum.Enum):
    UNJOINED = "unjoined"
    """Not in a generation: it has to join."""
    JOINING = "joining"
    """A JoinGroup is out."""
    SYNCING = "syncing"
    """A SyncGroup is out."""
    STABLE = "stable"
    """It has its assignment for the current generation, as far as it knows."""


@attrs.frozen(slots=True)
class ConsumerGroupMetadata:
    """What a consumer tells a transactional producer about its membership (KIP-447)."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


def _entries(offsets: Mapping[TopicPartition, int]) -> tuple[OffsetCommitPartition, ...]:
    return tuple(
        OffsetCommitPartition(tp.topic, tp.partition, offset)
        for tp, offset in sorted(offsets.items())
    )


def _sorted_topics(topics: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(topics)))


@attrs.define(eq=False)
class GroupMemberProtocol:
    """One consumer's membership in one group. Times are milliseconds, as on the wire."""

    group_id: str
    topics: tuple[str, ...] = attrs.field(converter=_sorted_topics)
    client_id: str = "consumer"
    assignors: tuple[str, ...] = ("range", "cooperative-sticky")
    """Kafka's default ``partition.assignment.strategy``, most preferred first."""
    session_timeout_ms: int = 45_000
    rebalance_timeout_ms: int = 300_000
    """The consumer's ``max.poll.interval.ms``: how long a rebalance may wait for it."""
    heartbeat_interval_ms: int = 3_000
    member_id: str = ""
    generation_id: int = -1
    state: MemberState = MemberState.UNJOINED
    protocol_name: str | None = None
    is_leader: bool = False
    assignment: tuple[TopicPartition, ...] = ()
    """The partitions this member believes it owns."""
    rejoin_needed: bool = True
    joined: tuple[int, str] = (-1, "")
    """(generation, member id) of the last join that completed: what ``group_metadata`` says."""
    errors: list[ErrorCode] = attrs.Factory(list)
    """Every error the coordinator answered, in order (for tests and stories)."""

    def __attrs_post_init__(self) -> None:
        for name in self.assignors:
            assignor(name)  # an unknown name raises here, with the choices
        if not self.assignors:
            raise ValueError("a consumer needs at least one partition assignment strategy")

    @property
    def cooperative(self) -> bool:
        return self.protocol_name in COOPERATIVE_ASSIGNORS

    def group_metadata(self) -> ConsumerGroupMetadata:
        """The generation and member id of the last completed join, as Kafka's consumer keeps
        them (``onJoinComplete``): an error that resets the member does not change them, so a
        zombie's transactional commit names its old generation and is refused (KIP-447)."""
        generation_id, member_id = self.joined
        return ConsumerGroupMetadata(self.group_id, generation_id, member_id)

    # --- requests --------------------------------------------------------------------------

    def join_request(self) -> JoinGroupRequest:
        """Join (or rejoin). An eager member gives up its partitions first."""
        if not self.cooperative:
            owned, self.assignment = self.assignment, ()
        else:
            owned = self.assignment
        subscription = Subscription(self.topics, owned, self.generation_id).to_bytes()
        self.state = MemberState.JOINING
        self.rejoin_needed = False
        return JoinGroupRequest(
            group_id=self.group_id,
            member_id=self.member_id,
            session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            protocol_type=CONSUMER_PROTOCOL_TYPE,
            protocols=tuple(JoinGroupProtocol(name, subscription) for name in self.assignors),
            client_id=self.client_id,
        )

    def heartbeat_request(self) -> HeartbeatRequest | None:
        """A heartbeat, once the member has a generation (Kafka starts after the join)."""
        if self.state not in (MemberState.SYNCING, MemberState.STABLE):
            return None
        return HeartbeatRequest(
            group_id=self.group_id, generation_id=self.generation_id, member_id=self.member_id
        )

    def leave_request(self) -> LeaveGroupRequest | None:
        """Leave the group (on close). The member forgets everything."""
        if not self.member_id:
            return None
        request = LeaveGroupRequest(
            group_id=self.group_id, members=(MemberIdentity(self.member_id),)
        )
        self._reset(member=True)
        return request

    def commit_request(self, offsets: Mapping[TopicPartition, int]) -> OffsetCommitRequest:
        """Commit ``offsets`` (next offset to read, per partition) as this member believes."""
        return OffsetCommitRequest(
            group_id=self.group_id,
            generation_id=self.generation_id,
            member_id=self.member_id,
            partitions=_entries(offsets),
        )

    def txn_commit_request(
        self,
        offsets: Mapping[TopicPartition, int],
        *,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
    ) -> TxnOffsetCommitRequest:
        """The same offsets sent in a transaction, with this member's group metadata."""
        return TxnOffsetCommitRequest(
            transactional_id=transactional_id,
            group_id=self.group_id,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            generation_id=self.generation_id,
            member_id=self.member_id,
            partitions=_entries(offsets),
        )

    # --- answers ---------------------------------------------------------------------------

    def on_join_response(
        self, response: JoinGroupResponse, partitions_per_topic: Mapping[str, int]
    ) -> JoinGroupRequest | SyncGroupRequest | None:
        """Take a JoinGroup answer; return the next request, or None to wait (an error)."""
        error = response.error_code
        if error is ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = response.member_id
            return self.join_request()
        if error is not ErrorCode.NONE:
            return self._on_error(error)
        self.member_id = response.member_id
        self.generation_id = response.generation_id
        self.protocol_name = response.protocol_name
        self.is_leader = response.leader == self.member_id
        self.state = MemberState.SYNCING
        assignments: tuple[SyncGroupAssignment, ...] = ()
        if self.is_leader:
            assert response.protocol_name is not None
            subscriptions = {
                member.member_id: Subscription.from_bytes(member.metadata)
                for member in response.members
            }
            shares = assignor(response.protocol_name)(subscriptions, partitions_per_topic)
            assignments = tuple(
                SyncGroupAssignment(member_id, Assignment(partitions).to_bytes())
                for member_id, partitions in sorted(shares.items())
            )
        return SyncGroupRequest(
            group_id=self.group_id,
            generation_id=self.generation_id,
            member_id=self.member_id,
            protocol_type=response.protocol_type,
            protocol_name=response.protocol_name,
            assignments=assignments,
        )

    def on_sync_response(self, response: SyncGroupResponse) -> JoinGroupRequest | None:
        """Take a SyncGroup answer: the member's partitions, or an error that means rejoin."""
        if response.error_code is not ErrorCode.NONE:
            return self._on_error(response.error_code)
        given = Assignment.from_bytes(response.assignment).partitions
        revoked = set(self.assignment) - set(given)
        self.assignment = given
        self.state = MemberState.STABLE
        self.joined = (self.generation_id, self.member_id)
        if self.cooperative and revoked:
            # KIP-429: what this member gave up goes to its new owner in one more rebalance.
            return self.join_request()
        return None

    def on_heartbeat_response(self, response: HeartbeatResponse) -> JoinGroupRequest | None:
        if response.error_code is ErrorCode.NONE:
            return None
        return self._on_error(response.error_code)

    def request_rejoin(self, reason: ErrorCode) -> None:
        """Remember that the member must rejoin, and give up nothing yet (Kafka's
        ``requestRejoin``): the caller sends ``join_request()`` when it is ready to, as a
        consumer does inside its next poll. Until then the member keeps its generation and its
        partitions, so a commit of them still counts."""
        self.errors.append(reason)
        self.rejoin_needed = True

    def on_commit_response(self, response: OffsetCommitResponse) -> JoinGroupRequest | None:
        """A refused commit can mean the member lost its place: then it rejoins."""
        for partition in response.partitions:
            if partition.error_code in (
                ErrorCode.UNKNOWN_MEMBER_ID,
                ErrorCode.ILLEGAL_GENERATION,
                ErrorCode.REBALANCE_IN_PROGRESS,
            ):
                return self._on_error(partition.error_code)
        return None

    def on_request_failed(self) -> None:
        """The request or its answer was lost (a timeout, a broken connection): join again."""
        if self.state in (MemberState.JOINING, MemberState.SYNCING):
            self.state = MemberState.UNJOINED
            self.rejoin_needed = True

    def _on_error(self, error: ErrorCode) -> JoinGroupRequest | None:
        self.errors.append(error)
        if error is ErrorCode.UNKNOWN_MEMBER_ID:
            self._reset(member=True)
            return self.join_request()
        if error is ErrorCode.ILLEGAL_GENERATION:
            self._reset(member=False)
            return self.join_request()
        if error is ErrorCode.REBALANCE_IN_PROGRESS:
            return self.join_request()
        # Anything else (coordinator down, a bad configuration): wait, then join again.
        self.state = MemberState.UNJOINED
        self.rejoin_needed = True
        return None

    def _reset(self, *, member: bool) -> None:
        if member:
            self.member_id = ""
        self.generation_id = -1
        self.is_leader = False
        self.assignment = ()  # lost, not revoked: someone else may own them by now
        self.state = MemberState.UNJOINED
        self.rejoin_needed = True
