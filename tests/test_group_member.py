"""The consumer's side of the group protocol: what it sends, and what it does with answers."""

from __future__ import annotations

import pytest

from minikafka.core import (
    Broker,
    BrokerConfig,
    ErrorCode,
    GroupMemberProtocol,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    MemberState,
    SyncGroupRequest,
    SyncGroupResponse,
    TopicPartition,
)
from minikafka.core.assignors import Assignment, Subscription
from minikafka.core.messages import JoinGroupMember
from minikafka.testing import GroupHarness, SimConsumer

ORDERS = {"orders": 4}


def member(name: str = "c1", **options: object) -> GroupMemberProtocol:
    return GroupMemberProtocol("billing", ("orders",), client_id=name, **options)  # type: ignore[arg-type]


def test_member_id_required_makes_it_join_again_with_the_id() -> None:
    protocol = member()
    first = protocol.join_request()
    assert first.member_id == "" and protocol.state is MemberState.JOINING
    again = protocol.on_join_response(
        JoinGroupResponse(error_code=ErrorCode.MEMBER_ID_REQUIRED, member_id="c1-0-1"), ORDERS
    )
    assert isinstance(again, JoinGroupRequest) and again.member_id == "c1-0-1"


def test_the_leader_computes_everyones_assignment_with_the_chosen_assignor() -> None:
    protocol = member(assignors=("range",))
    protocol.member_id = "a"
    subscription = Subscription(("orders",)).to_bytes()
    sync = protocol.on_join_response(
        JoinGroupResponse(
            generation_id=1,
            protocol_type="consumer",
            protocol_name="range",
            leader="a",
            member_id="a",
            members=(
                JoinGroupMember("a", None, subscription),
                JoinGroupMember("b", None, subscription),
            ),
        ),
        ORDERS,
    )
    assert isinstance(sync, SyncGroupRequest) and protocol.is_leader
    given = {a.member_id: Assignment.from_bytes(a.assignment).partitions for a in sync.assignments}
    assert given == {
        "a": (TopicPartition("orders", 0), TopicPartition("orders", 1)),
        "b": (TopicPartition("orders", 2), TopicPartition("orders", 3)),
    }


def test_a_follower_sends_no_assignment_and_takes_what_it_is_given() -> None:
    protocol = member()
    protocol.member_id = "b"
    sync = protocol.on_join_response(
        JoinGroupResponse(generation_id=3, protocol_name="range", leader="a", member_id="b"), ORDERS
    )
    assert isinstance(sync, SyncGroupRequest) and sync.assignments == ()
    mine = Assignment((TopicPartition("orders", 2),)).to_bytes()
    assert protocol.on_sync_response(SyncGroupResponse(assignment=mine)) is None
    assert protocol.state is MemberState.STABLE and protocol.generation_id == 3
    assert protocol.assignment == (TopicPartition("orders", 2),)


def test_group_metadata_keeps_the_last_completed_join_through_a_reset() -> None:
    """As Kafka's consumer (onJoinComplete): a zombie that was evicted still names its old
    generation in a transactional commit, which the coordinator refuses (KIP-447). If the
    reset showed through, the commit would carry generation -1 and no member id, a form the
    coordinator accepts in any state."""
    protocol = member()
    assert protocol.group_metadata().generation_id == -1
    protocol.member_id = "b"
    protocol.on_join_response(
        JoinGroupResponse(generation_id=3, protocol_name="range", leader="a", member_id="b"), ORDERS
    )
    protocol.on_sync_response(SyncGroupResponse(assignment=Assignment(()).to_bytes()))
    protocol.on_heartbeat_response(HeartbeatResponse(error_code=ErrorCode.UNKNOWN_MEMBER_ID))
    assert (protocol.member_id, protocol.generation_id) == ("", -1)
    metadata = protocol.group_metadata()
    assert (metadata.generation_id, metadata.member_id) == (3, "b")


@pytest.mark.parametrize(
    ("error", "keeps_member_id"),
    [
        (ErrorCode.UNKNOWN_MEMBER_ID, False),
        (ErrorCode.ILLEGAL_GENERATION, True),
        (ErrorCode.REBALANCE_IN_PROGRESS, True),
    ],
)
def test_errors_that_mean_rejoin(error: ErrorCode, keeps_member_id: bool) -> None:
    protocol = member()
    protocol.member_id, protocol.generation_id = "b", 3
    protocol.state = MemberState.STABLE
    protocol.assignment = (TopicPartition("orders", 2),)
    rejoin = protocol.on_heartbeat_response(HeartbeatResponse(error_code=error))
    assert isinstance(rejoin, JoinGroupRequest)
    assert rejoin.member_id == ("b" if keeps_member_id else "")
    assert protocol.assignment == (), "an eager member gives its partitions up before it rejoins"
    assert protocol.errors == [error]


def test_other_errors_wait_for_the_caller_to_join_again() -> None:
    protocol = member()
    assert (
        protocol.on_heartbeat_response(
            HeartbeatResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE)
        )
        is None
    )
    assert protocol.state is MemberState.UNJOINED and protocol.rejoin_needed


def test_an_unknown_assignor_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="Did you mean 'roundrobin'"):
        member(assignors=("round-robin",))


def test_cooperative_members_hand_partitions_over_in_two_rebalances() -> None:
    """With cooperative-sticky, the first member keeps reading what it keeps while the group
    rebalances, revokes only what moves, and rejoins so that it reaches the newcomer."""
    broker = Broker(BrokerConfig(group_initial_rebalance_delay_ms=0))
    broker.create_topic("orders", 4)
    world = GroupHarness(broker, dict(ORDERS))
    for name in ("c1", "c2"):
        world.consumers.append(
            SimConsumer(
                name, member(name, assignors=("cooperative-sticky",), session_timeout_ms=10_000)
            )
        )
    c1, c2 = world.consumers
    world.join(c1)
    world.advance(2)
    assert len(c1.protocol.assignment) == 4
    world.join(c2)
    world.advance(6)
    assert c1.protocol.generation_id == c2.protocol.generation_id == 3
    assert len(c1.protocol.assignment) == len(c2.protocol.assignment) == 2
    assert set(c1.protocol.assignment).isdisjoint(c2.protocol.assignment)
