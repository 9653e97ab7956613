"""The group coordinator: joins, syncs, heartbeats, timeouts, leaving, deleting, offset commits
checked against membership, and what a crash keeps.

Each test drives a ``Broker`` with raw requests at explicit times (``now`` in seconds). Held
JoinGroup and SyncGroup answers come from ``take_delayed_responses`` (rule 6 of broker.py);
``settle`` lets time pass and collects them by member id.

Unless a test says otherwise, members ask for a 6 s session timeout (the broker's minimum) and
a 10 s rebalance timeout, and a group that members join at ``t`` completes its first join at
``t + 6``: the 3 s initial rebalance delay, extended once because a second member arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from minikafka.core.broker import Broker
from minikafka.core.config import BrokerConfig, Safeguard
from minikafka.core.errors import ErrorCode
from minikafka.core.groups import GroupSnapshot, GroupState
from minikafka.core.messages import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    DeletableGroupResult,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    JoinGroupMember,
    JoinGroupProtocol,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    MemberIdentity,
    OffsetCommitPartition,
    OffsetCommitPartitionResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Request,
    Response,
    SyncGroupAssignment,
    SyncGroupRequest,
    SyncGroupResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
    error_codes,
)
from minikafka.core.records import TopicPartition

E = ErrorCode
GROUP = "g"
T0 = TopicPartition("t", 0)
SESSION_MS = 6_000
REBALANCE_MS = 10_000
RANGE = (JoinGroupProtocol("range", b"r"),)

# --- helpers -------------------------------------------------------------------------------


def new_broker(**settings: Any) -> Broker:
    broker = Broker(BrokerConfig(**settings))
    broker.create_topic("t", 1)
    return broker


def join_request(client: str = "c", **fields: Any) -> JoinGroupRequest:
    defaults: dict[str, Any] = {
        "group_id": GROUP,
        "protocols": RANGE,
        "client_id": client,
        "session_timeout_ms": SESSION_MS,
        "rebalance_timeout_ms": REBALANCE_MS,
    }
    return JoinGroupRequest(**{**defaults, **fields})


def join(broker: Broker, client: str, now: float, **fields: Any) -> str:
    """A new member joins: MEMBER_ID_REQUIRED, then the join with that id, which is held."""
    first = broker.handle(join_request(client, **fields), now=now)
    assert isinstance(first, JoinGroupResponse)
    assert first.error_code is E.MEMBER_ID_REQUIRED, first
    assert broker.handle(join_request(client, member_id=first.member_id, **fields), now=now) is None
    return first.member_id


def rejoin(broker: Broker, member_id: str, now: float, **fields: Any) -> Response | None:
    """An existing member sends JoinGroup again (None: the answer is held)."""
    return broker.handle(join_request(member_id=member_id, **fields), now=now)


def settle(broker: Broker, now: float) -> dict[str, Response]:
    """Let time pass until ``now``; the held answers that are ready, by member id."""
    broker.tick(now)
    answers: dict[str, Response] = {}
    for request, response in broker.take_delayed_responses():
        assert isinstance(request, JoinGroupRequest | SyncGroupRequest)
        assert request.member_id not in answers
        answers[request.member_id] = response
    return answers


def sync(
    broker: Broker,
    member_id: str,
    now: float,
    assignments: dict[str, bytes] | None = None,
    *,
    generation: int = 1,
) -> Response | None:
    request = SyncGroupRequest(
        group_id=GROUP,
        generation_id=generation,
        member_id=member_id,
        assignments=tuple(SyncGroupAssignment(m, a) for m, a in (assignments or {}).items()),
    )
    return broker.handle(request, now=now)


def heartbeat(
    broker: Broker, member_id: str, now: float, *, generation: int = 1, group: str = GROUP
) -> HeartbeatResponse:
    response = broker.handle(
        HeartbeatRequest(group_id=group, generation_id=generation, member_id=member_id), now=now
    )
    assert isinstance(response, HeartbeatResponse)
    return response


def leave(broker: Broker, *member_ids: str, now: float, group: str = GROUP) -> LeaveGroupResponse:
    response = broker.handle(
        LeaveGroupRequest(group_id=group, members=tuple(MemberIdentity(m) for m in member_ids)),
        now=now,
    )
    assert isinstance(response, LeaveGroupResponse)
    return response


def joined(
    broker: Broker, *clients: str, now: float = 0.0, generation: int = 1, **fields: Any
) -> list[str]:
    """``clients`` join an Empty group at ``now``; the join completes at ``now + 6`` in
    ``generation``, with the first as leader. Returns the member ids; the group is
    CompletingRebalance."""
    members = [join(broker, client, now, **fields) for client in clients]
    answers = settle(broker, now + 6)
    assert sorted(answers) == sorted(members)
    for answer in answers.values():
        assert isinstance(answer, JoinGroupResponse)
        assert (answer.error_code, answer.generation_id) == (E.NONE, generation)
        assert answer.leader == members[0]
    return members


def stable_group(broker: Broker, *clients: str, now: float = 0.0, **fields: Any) -> list[str]:
    """As ``joined``, and then every member syncs generation 1 at ``now + 6``: Stable. Each
    member's assignment is its member id; heartbeats are next due at ``now + 12``."""
    members = joined(broker, *clients, now=now, **fields)
    leader, followers = members[0], members[1:]
    for follower in followers:
        assert sync(broker, follower, now + 6) is None
    answer = sync(broker, leader, now + 6, {m: m.encode() for m in members})
    assert isinstance(answer, SyncGroupResponse) and answer.error_code is E.NONE
    assert sorted(settle(broker, now + 6)) == sorted(followers)
    assert group(broker).state is GroupState.STABLE
    return members


def group(broker: Broker, group_id: str = GROUP) -> GroupSnapshot:
    found = [g for g in broker.snapshot().groups if g.group_id == group_id]
    assert len(found) == 1, f"no group {group_id!r}"
    return found[0]


def member_ids(broker: Broker) -> list[str]:
    return [m.member_id for m in group(broker).members]


def commit(
    broker: Broker,
    now: float,
    *,
    generation: int = -1,
    member: str = "",
    offset: int = 5,
    group_id: str = GROUP,
) -> OffsetCommitPartitionResponse:
    response = broker.handle(
        OffsetCommitRequest(
            group_id=group_id,
            partitions=(OffsetCommitPartition(T0.topic, T0.partition, offset),),
            generation_id=generation,
            member_id=member,
        ),
        now=now,
    )
    assert isinstance(response, OffsetCommitResponse)
    return response.partitions[0]


def committed(broker: Broker, group_id: str = GROUP) -> int:
    """The group's committed offset for t-0 (-1: none), read without letting time pass."""
    response = broker.inspect(OffsetFetchRequest(group_id=group_id, partitions=(T0,)), now=0.0)
    assert isinstance(response, OffsetFetchResponse)
    return response.partitions[0].committed_offset


@attrs.frozen
class TxnProducer:
    producer_id: int
    producer_epoch: int


def txn_producer(broker: Broker, now: float) -> TxnProducer:
    """A transactional producer with an ongoing transaction that includes the group's offsets."""
    init = broker.handle(InitProducerIdRequest(transactional_id="tx"), now=now)
    assert isinstance(init, InitProducerIdResponse) and init.error_code is E.NONE
    producer = TxnProducer(init.producer_id, init.producer_epoch)
    added = broker.handle(
        AddOffsetsToTxnRequest(
            transactional_id="tx",
            producer_id=producer.producer_id,
            producer_epoch=producer.producer_epoch,
            group_id=GROUP,
        ),
        now=now,
    )
    assert isinstance(added, AddOffsetsToTxnResponse) and added.error_code is E.NONE
    return producer


def txn_commit(
    broker: Broker,
    producer: TxnProducer,
    now: float,
    *,
    generation: int = -1,
    member: str = "",
    offset: int = 5,
) -> OffsetCommitPartitionResponse:
    response = broker.handle(
        TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id=GROUP,
            producer_id=producer.producer_id,
            producer_epoch=producer.producer_epoch,
            partitions=(OffsetCommitPartition(T0.topic, T0.partition, offset),),
            generation_id=generation,
            member_id=member,
        ),
        now=now,
    )
    assert isinstance(response, TxnOffsetCommitResponse)
    return response.partitions[0]


def zombie_scenario(broker: Broker) -> tuple[str, str]:
    """a and b are Stable in generation 1; b goes silent, is removed at t=12, and a alone
    is Stable in generation 2 at t=13. b is now a zombie: it still believes in generation 1."""
    a, b = stable_group(broker, "a", "b")
    assert heartbeat(broker, a, 10.0).error_code is E.NONE
    settle(broker, 12.0)
    assert member_ids(broker) == [a]
    answer = rejoin(broker, a, 13.0)
    assert isinstance(answer, JoinGroupResponse) and answer.generation_id == 2
    synced = sync(broker, a, 13.0, {a: b"all"}, generation=2)
    assert isinstance(synced, SyncGroupResponse) and synced.error_code is E.NONE
    return a, b


# --- joining -------------------------------------------------------------------------------


def test_an_empty_member_id_gets_member_id_required_with_an_id_built_from_the_client_id() -> None:
    broker = new_broker()
    first = broker.handle(join_request("app-1"), now=0.0)
    assert isinstance(first, JoinGroupResponse)
    assert first.error_code is E.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("app-1-")
    assert first.error_message
    assert group(broker).pending_members == (first.member_id,)
    assert group(broker).members == ()
    again = join_request("app-1", member_id=first.member_id)
    assert broker.handle(again, now=0.0) is None
    assert member_ids(broker) == [first.member_id]
    assert group(broker).pending_members == ()
    assert group(broker).state is GroupState.PREPARING_REBALANCE


def test_the_initial_rebalance_delay_is_extended_once_for_a_member_that_arrived_during_it() -> None:
    """Kafka's tryCompleteInitialRebalanceElseSchedule: when the 3 s delay ends and a member
    joined during it, wait another 3 s; complete when a delay passes with no newcomer."""
    broker = new_broker()
    a = join(broker, "a", 0.0)
    b = join(broker, "b", 0.5)
    assert settle(broker, 2.999) == {}
    assert settle(broker, 3.0) == {}
    assert settle(broker, 5.999) == {}
    answers = settle(broker, 6.0)
    assert sorted(answers) == sorted([a, b])
    for answer in answers.values():
        assert isinstance(answer, JoinGroupResponse)
        assert (answer.error_code, answer.generation_id) == (E.NONE, 1)


def test_a_lone_member_waits_out_the_initial_rebalance_delay_once() -> None:
    broker = new_broker()
    a = join(broker, "a", 0.0)
    assert settle(broker, 2.999) == {}
    assert list(settle(broker, 3.0)) == [a]


def test_every_member_arriving_during_the_delay_extends_it_again() -> None:
    broker = new_broker()
    a = join(broker, "a", 0.0)
    b = join(broker, "b", 0.5)
    c = join(broker, "c", 4.0)  # during the first extension
    assert settle(broker, 8.999) == {}
    assert sorted(settle(broker, 9.0)) == sorted([a, b, c])


def test_the_initial_rebalance_delay_never_outlasts_the_rebalance_timeout() -> None:
    """With a 4 s rebalance timeout only 1 s is left after the first delay: the extension is
    1 s long, and after it the join completes although another member arrived."""
    broker = new_broker()
    a = join(broker, "a", 0.0, rebalance_timeout_ms=4_000)
    b = join(broker, "b", 0.5, rebalance_timeout_ms=4_000)
    assert settle(broker, 3.0) == {}
    c = join(broker, "c", 3.5, rebalance_timeout_ms=4_000)
    assert settle(broker, 3.999) == {}
    assert sorted(settle(broker, 4.0)) == sorted([a, b, c])


def test_without_an_initial_delay_the_first_member_completes_alone_at_the_next_tick() -> None:
    broker = new_broker(group_initial_rebalance_delay_ms=0)
    a = join(broker, "a", 0.0)
    answers = settle(broker, 0.0)
    assert answers == {
        a: JoinGroupResponse(
            generation_id=1,
            protocol_type="consumer",
            protocol_name="range",
            leader=a,
            member_id=a,
            members=(JoinGroupMember(a, None, b"r"),),
        )
    }


def test_the_leader_gets_every_members_metadata_and_followers_get_none() -> None:
    broker = new_broker()
    a = join(broker, "a", 0.0, protocols=(JoinGroupProtocol("range", b"A"),))
    b = join(broker, "b", 0.0, protocols=(JoinGroupProtocol("range", b"B"),))
    answers = settle(broker, 6.0)
    leader = JoinGroupResponse(
        generation_id=1,
        protocol_type="consumer",
        protocol_name="range",
        leader=a,
        member_id=a,
        members=(JoinGroupMember(a, None, b"A"), JoinGroupMember(b, None, b"B")),
    )
    assert answers == {a: leader, b: attrs.evolve(leader, member_id=b, members=())}
    assert group(broker).state is GroupState.COMPLETING_REBALANCE


def test_the_protocol_is_chosen_by_vote_among_those_every_member_supports() -> None:
    """The leader prefers range, but two of three members prefer roundrobin; sticky is not
    supported by everyone. The leader gets each member's metadata for the chosen protocol."""
    broker = new_broker()
    p = JoinGroupProtocol
    a = join(broker, "a", 0.0, protocols=(p("sticky", b"as"), p("range", b"ar"), p("rr", b"a")))
    b = join(broker, "b", 0.0, protocols=(p("rr", b"b"), p("range", b"br")))
    c = join(broker, "c", 0.0, protocols=(p("rr", b"c"), p("range", b"cr"), p("sticky", b"cs")))
    answers = settle(broker, 6.0)
    leader = answers[a]
    assert isinstance(leader, JoinGroupResponse)
    assert leader.protocol_name == "rr"
    assert leader.members == (
        JoinGroupMember(a, None, b"a"),
        JoinGroupMember(b, None, b"b"),
        JoinGroupMember(c, None, b"c"),
    )
    assert group(broker).protocol_name == "rr"


# --- syncing -------------------------------------------------------------------------------


def test_a_followers_sync_waits_for_the_leaders_assignment() -> None:
    broker = new_broker()
    a, b = joined(broker, "a", "b")
    assert sync(broker, b, 6.0) is None
    assert settle(broker, 7.0) == {}
    answer = sync(broker, a, 7.0, {a: b"A", b: b"B"})
    assert answer == SyncGroupResponse(
        protocol_type="consumer", protocol_name="range", assignment=b"A"
    )
    assert settle(broker, 7.0) == {
        b: SyncGroupResponse(protocol_type="consumer", protocol_name="range", assignment=b"B")
    }
    assert group(broker).state is GroupState.STABLE
    assert [m.assignment for m in group(broker).members] == [b"A", b"B"]


def test_a_member_missing_from_the_leaders_assignment_gets_empty_bytes() -> None:
    broker = new_broker()
    a, b = joined(broker, "a", "b")
    assert sync(broker, b, 6.0) is None
    assert sync(broker, a, 6.0, {a: b"everything"}) is not None
    answer = settle(broker, 6.0)[b]
    assert isinstance(answer, SyncGroupResponse)
    assert (answer.error_code, answer.assignment) == (E.NONE, b"")


def test_a_sync_in_a_stable_group_returns_the_members_assignment_at_once() -> None:
    broker = new_broker()
    _, b = stable_group(broker, "a", "b")
    answer = sync(broker, b, 7.0)
    assert answer == SyncGroupResponse(
        protocol_type="consumer", protocol_name="range", assignment=b.encode()
    )
    assert group(broker).state is GroupState.STABLE


# --- heartbeats and timeouts ---------------------------------------------------------------


def test_heartbeats_say_whether_to_rejoin_by_group_state() -> None:
    broker = new_broker()
    a, b = joined(broker, "a", "b")
    assert heartbeat(broker, b, 6.5) == HeartbeatResponse()  # CompletingRebalance
    assert sync(broker, b, 7.0) is None
    assert sync(broker, a, 7.0, {a: b"A", b: b"B"}) is not None
    assert heartbeat(broker, b, 8.0) == HeartbeatResponse()  # Stable
    assert rejoin(broker, a, 9.0) is None  # the leader rejoins: PreparingRebalance
    rebalancing = heartbeat(broker, b, 9.5)
    assert rebalancing.error_code is E.REBALANCE_IN_PROGRESS
    assert rebalancing.error_message


def test_a_heartbeat_with_a_wrong_generation_gets_illegal_generation() -> None:
    broker = new_broker()
    a, _ = stable_group(broker, "a", "b")
    before = broker.snapshot()
    for generation in (0, 2):
        response = heartbeat(broker, a, 7.0, generation=generation)
        assert response.error_code is E.ILLEGAL_GENERATION
        assert response.error_message
    assert broker.snapshot() == before


def test_a_heartbeat_from_a_stranger_or_to_an_unknown_group_gets_unknown_member_id() -> None:
    broker = new_broker()
    a, _ = stable_group(broker, "a", "b")
    before = broker.snapshot()
    for response in (
        heartbeat(broker, "stranger", 7.0),
        heartbeat(broker, a, 7.0, group="other"),
    ):
        assert response.error_code is E.UNKNOWN_MEMBER_ID
        assert response.error_message
    assert broker.snapshot() == before


def test_a_silent_member_is_removed_after_its_session_timeout_and_the_others_rebalance() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")  # heartbeats due at t=12
    assert heartbeat(broker, a, 10.0).error_code is E.NONE
    settle(broker, 11.999)
    assert member_ids(broker) == [a, b]
    settle(broker, 12.0)
    assert member_ids(broker) == [a]
    assert group(broker).state is GroupState.PREPARING_REBALANCE
    assert heartbeat(broker, a, 13.0).error_code is E.REBALANCE_IN_PROGRESS
    answer = rejoin(broker, a, 13.0)  # everyone left has joined: no need to wait
    assert isinstance(answer, JoinGroupResponse)
    assert (answer.error_code, answer.generation_id, answer.leader) == (E.NONE, 2, a)
    assert answer.members == (JoinGroupMember(a, None, b"r"),)


def test_a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed() -> None:
    """b keeps heartbeating, so its session is fine, but it ignores REBALANCE_IN_PROGRESS:
    when the 10 s rebalance timeout ends the join completes without it."""
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert rejoin(broker, a, 7.0) is None
    for now in (8.0, 11.0, 14.0):
        assert heartbeat(broker, b, now).error_code is E.REBALANCE_IN_PROGRESS
    assert settle(broker, 16.999) == {}
    answer = settle(broker, 17.0)[a]
    assert isinstance(answer, JoinGroupResponse)
    assert answer.generation_id == 2
    assert answer.members == (JoinGroupMember(a, None, b"r"),)
    assert heartbeat(broker, b, 17.5).error_code is E.UNKNOWN_MEMBER_ID


def test_a_new_members_join_waits_at_most_five_minutes_then_gets_unknown_member_id() -> None:
    """A new member cannot heartbeat, so Kafka drops its join after a fixed 5 minutes (here
    the rebalance, waiting for b with a 10-minute rebalance timeout, outlasts that)."""
    broker = new_broker()
    slow = {"rebalance_timeout_ms": 600_000}
    a, b = stable_group(broker, "a", "b", **slow)
    assert rejoin(broker, a, 7.0, **slow) is None
    c = join(broker, "c", 7.0, **slow)
    for now in range(8, 307, 5):
        assert heartbeat(broker, b, float(now)).error_code is E.REBALANCE_IN_PROGRESS
    assert settle(broker, 306.999) == {}
    answers = settle(broker, 307.0)
    assert list(answers) == [c]
    dropped = answers[c]
    assert isinstance(dropped, JoinGroupResponse)
    assert dropped.error_code is E.UNKNOWN_MEMBER_ID and dropped.error_message
    assert member_ids(broker) == [a, b]
    answer = rejoin(broker, b, 307.5, **slow)
    assert isinstance(answer, JoinGroupResponse) and answer.generation_id == 2
    assert sorted(settle(broker, 307.5)) == [a]


def test_members_that_do_not_sync_within_the_rebalance_timeout_are_removed() -> None:
    broker = new_broker()
    a, b = joined(broker, "a", "b")  # at t=6: SyncGroup due by t=16
    assert sync(broker, a, 6.0, {a: b"A", b: b"B"}) is not None
    for now in (9.0, 12.0, 15.0):
        assert heartbeat(broker, a, now).error_code is E.NONE
        assert heartbeat(broker, b, now).error_code is E.NONE
    settle(broker, 15.999)
    assert member_ids(broker) == [a, b]
    settle(broker, 16.0)
    assert member_ids(broker) == [a]
    assert group(broker).state is GroupState.PREPARING_REBALANCE
    assert heartbeat(broker, a, 16.5).error_code is E.REBALANCE_IN_PROGRESS
    assert heartbeat(broker, b, 16.5).error_code is E.UNKNOWN_MEMBER_ID


def test_a_follower_that_waited_for_the_leaders_sync_still_times_out_afterwards() -> None:
    """b syncs at t=6 and waits; its session deadline (t=12) passes while it waits, which is
    fine (a parked member is alive). The leader syncs at t=13, b gets its assignment and is
    never heard from again: it must be removed at t=19, one session timeout later, because
    Kafka restarts a member's session when it hands out its assignment (propagateAssignment)."""
    broker = new_broker()
    a, b = joined(broker, "a", "b", rebalance_timeout_ms=60_000)
    assert sync(broker, b, 6.0) is None
    assert heartbeat(broker, a, 9.0).error_code is E.NONE
    assert heartbeat(broker, a, 12.5).error_code is E.NONE
    assert sync(broker, a, 13.0, {a: b"A", b: b"B"}) is not None
    assert list(settle(broker, 13.0)) == [b]
    assert heartbeat(broker, a, 16.0).error_code is E.NONE
    settle(broker, 19.0)
    assert member_ids(broker) == [a]
    assert heartbeat(broker, a, 19.5).error_code is E.REBALANCE_IN_PROGRESS


def test_an_unused_member_id_expires_after_its_session_timeout() -> None:
    broker = new_broker()
    first = broker.handle(join_request("a"), now=0.0)
    assert isinstance(first, JoinGroupResponse)
    settle(broker, 5.999)
    assert group(broker).pending_members == (first.member_id,)
    settle(broker, 6.0)
    assert group(broker).pending_members == ()
    late = rejoin(broker, first.member_id, 6.5)
    assert isinstance(late, JoinGroupResponse)
    assert late.error_code is E.UNKNOWN_MEMBER_ID
    assert late.error_message


# --- leaving -------------------------------------------------------------------------------


def test_a_member_that_leaves_makes_the_others_rebalance() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    response = leave(broker, b, now=7.0)
    assert error_codes(response) == [E.NONE]
    assert member_ids(broker) == [a]
    assert heartbeat(broker, a, 7.5).error_code is E.REBALANCE_IN_PROGRESS
    answer = rejoin(broker, a, 8.0)
    assert isinstance(answer, JoinGroupResponse) and answer.generation_id == 2


def test_leaving_twice_gets_unknown_member_id_and_changes_nothing() -> None:
    broker = new_broker()
    _, b = stable_group(broker, "a", "b")
    leave(broker, b, now=7.0)
    before = broker.snapshot()
    again = leave(broker, b, now=7.0)
    assert again.error_code is E.NONE
    assert [(m.member_id, m.error_code) for m in again.members] == [(b, E.UNKNOWN_MEMBER_ID)]
    assert again.members[0].error_message
    assert broker.snapshot() == before


def test_a_member_id_never_used_can_leave() -> None:
    broker = new_broker()
    a = join(broker, "a", 0.0)
    first = broker.handle(join_request("b"), now=1.0)
    assert isinstance(first, JoinGroupResponse)
    assert error_codes(leave(broker, first.member_id, now=1.0)) == [E.NONE]
    assert group(broker).pending_members == ()
    late = rejoin(broker, first.member_id, 1.5)
    assert isinstance(late, JoinGroupResponse) and late.error_code is E.UNKNOWN_MEMBER_ID
    assert list(settle(broker, 3.0)) == [a]


def test_leaving_an_unknown_group_gets_unknown_member_id() -> None:
    broker = new_broker()
    response = leave(broker, "a-0-1", now=0.0, group="nobody")
    assert response.error_code is E.UNKNOWN_MEMBER_ID
    assert response.error_message
    assert broker.snapshot().groups == ()


def test_a_member_that_leaves_while_its_join_is_held_gets_unknown_member_id_for_it() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert rejoin(broker, a, 7.0) is None
    assert error_codes(leave(broker, a, now=8.0)) == [E.NONE]
    answers = settle(broker, 8.0)
    assert list(answers) == [a]
    dropped = answers[a]
    assert isinstance(dropped, JoinGroupResponse)
    assert dropped.error_code is E.UNKNOWN_MEMBER_ID and dropped.error_message
    assert member_ids(broker) == [b]


# --- refusals ------------------------------------------------------------------------------

Make = Callable[[str, str], Request]
REFUSALS: dict[str, tuple[Make, ErrorCode]] = {
    "sync before join": (
        lambda a, b: SyncGroupRequest(group_id="new", generation_id=0, member_id="x"),
        E.UNKNOWN_MEMBER_ID,
    ),
    "sync from a stranger": (
        lambda a, b: SyncGroupRequest(group_id=GROUP, generation_id=1, member_id="x"),
        E.UNKNOWN_MEMBER_ID,
    ),
    "sync with a stale generation": (
        lambda a, b: SyncGroupRequest(group_id=GROUP, generation_id=0, member_id=b),
        E.ILLEGAL_GENERATION,
    ),
    "sync naming another protocol": (
        lambda a, b: SyncGroupRequest(
            group_id=GROUP, generation_id=1, member_id=b, protocol_name="roundrobin"
        ),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "heartbeat from a stranger": (
        lambda a, b: HeartbeatRequest(group_id=GROUP, generation_id=1, member_id="x"),
        E.UNKNOWN_MEMBER_ID,
    ),
    "heartbeat with an empty group id": (
        lambda a, b: HeartbeatRequest(group_id="", generation_id=1, member_id=a),
        E.INVALID_GROUP_ID,
    ),
    "join with another protocol type": (
        lambda a, b: join_request(protocol_type="connect"),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "join with no protocol in common": (
        lambda a, b: join_request(protocols=(JoinGroupProtocol("sticky"),)),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "member rejoining with no protocol in common": (
        lambda a, b: join_request(member_id=b, protocols=(JoinGroupProtocol("sticky"),)),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "join a new group with no protocols": (
        lambda a, b: join_request(group_id="new", protocols=()),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "join a new group with no protocol type": (
        lambda a, b: join_request(group_id="new", protocol_type=""),
        E.INCONSISTENT_GROUP_PROTOCOL,
    ),
    "join with a member id the group never gave": (
        lambda a, b: join_request(member_id="x"),
        E.UNKNOWN_MEMBER_ID,
    ),
    "join a new group with a member id": (
        lambda a, b: join_request(group_id="new", member_id=a),
        E.UNKNOWN_MEMBER_ID,
    ),
    "session timeout below the minimum": (
        lambda a, b: join_request(session_timeout_ms=5_999),
        E.INVALID_SESSION_TIMEOUT,
    ),
    "session timeout above the maximum": (
        lambda a, b: join_request(group_id="new", session_timeout_ms=1_800_001),
        E.INVALID_SESSION_TIMEOUT,
    ),
    "negative rebalance timeout": (
        lambda a, b: join_request(rebalance_timeout_ms=-1),
        E.INVALID_REQUEST,
    ),
    "empty group id": (lambda a, b: join_request(group_id=""), E.INVALID_GROUP_ID),
    "static membership": (
        lambda a, b: join_request(group_id="new", group_instance_id="instance-1"),
        E.UNSUPPORTED_VERSION,
    ),
    "a protocol listed twice": (
        lambda a, b: join_request(group_id="new", protocols=(*RANGE, *RANGE)),
        E.INVALID_REQUEST,
    ),
    "leave naming nobody": (
        lambda a, b: LeaveGroupRequest(group_id=GROUP, members=()),
        E.INVALID_REQUEST,
    ),
    "leave with an empty group id": (
        lambda a, b: LeaveGroupRequest(group_id="", members=(MemberIdentity(a),)),
        E.INVALID_GROUP_ID,
    ),
    "commit with an empty group id": (
        lambda a, b: OffsetCommitRequest(
            group_id="", partitions=(OffsetCommitPartition("t", 0, 1),)
        ),
        E.INVALID_GROUP_ID,
    ),
}


@pytest.mark.parametrize(("make", "expected"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_request_gets_an_error_with_a_message_and_changes_nothing(
    make: Make, expected: ErrorCode
) -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    before = broker.snapshot()
    response = broker.handle(make(a, b), now=7.0)
    assert response is not None
    assert error_codes(response) == [expected]
    if isinstance(response, OffsetCommitResponse):  # a commit is refused per partition
        assert response.partitions[0].error_message
    else:
        assert getattr(response, "error_message", None)
    assert broker.snapshot() == before


# --- rejoining -----------------------------------------------------------------------------


def test_an_unchanged_follower_rejoining_a_stable_group_is_answered_at_once() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    answer = rejoin(broker, b, 7.0)
    assert answer == JoinGroupResponse(
        generation_id=1,
        protocol_type="consumer",
        protocol_name="range",
        leader=a,
        member_id=b,
        members=(),
    )
    assert group(broker).state is GroupState.STABLE


def test_the_leader_rejoining_a_stable_group_starts_a_rebalance() -> None:
    """The leader rejoins to have the assignment recomputed (say, a topic gained partitions),
    even when its metadata did not change."""
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert rejoin(broker, a, 7.0) is None
    assert group(broker).state is GroupState.PREPARING_REBALANCE
    answer = rejoin(broker, b, 7.5)
    assert isinstance(answer, JoinGroupResponse) and answer.generation_id == 2
    assert list(settle(broker, 7.5)) == [a]


def test_a_member_rejoining_with_changed_protocols_starts_a_rebalance() -> None:
    broker = new_broker()
    _, b = stable_group(broker, "a", "b")
    assert rejoin(broker, b, 7.0, protocols=(JoinGroupProtocol("range", b"new topics"),)) is None
    assert group(broker).state is GroupState.PREPARING_REBALANCE


def test_a_member_that_lost_its_join_answer_gets_the_same_answer_again() -> None:
    broker = new_broker()
    a, b = [join(broker, client, 0.0) for client in ("a", "b")]
    answers = settle(broker, 6.0)
    assert rejoin(broker, a, 7.0) == answers[a]
    assert rejoin(broker, b, 7.0) == answers[b]
    assert group(broker).state is GroupState.COMPLETING_REBALANCE
    assert group(broker).generation_id == 1


# --- deleting groups, finding the coordinator ----------------------------------------------


def delete(broker: Broker, group_id: str, now: float) -> DeletableGroupResult:
    response = broker.handle(DeleteGroupsRequest(group_ids=(group_id,)), now=now)
    assert isinstance(response, DeleteGroupsResponse)
    (result,) = response.results
    return result


def test_deleting_an_empty_group_removes_it_and_its_offsets_for_good() -> None:
    broker = new_broker()
    assert commit(broker, 0.0, offset=7).error_code is E.NONE  # creates an Empty group
    assert committed(broker) == 7
    assert delete(broker, GROUP, 1.0) == DeletableGroupResult(GROUP)
    again = delete(broker, GROUP, 1.0)
    assert again.error_code is E.GROUP_ID_NOT_FOUND and again.error_message
    assert committed(broker) == -1
    assert broker.snapshot().groups == ()
    broker.restart()
    assert broker.snapshot().groups == ()
    assert committed(broker) == -1


def test_a_group_that_emptied_out_can_be_deleted() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert commit(broker, 7.0, generation=1, member=a).error_code is E.NONE
    assert error_codes(leave(broker, a, b, now=8.0)) == [E.NONE, E.NONE]
    assert group(broker).state is GroupState.EMPTY
    assert delete(broker, GROUP, 8.0) == DeletableGroupResult(GROUP)
    assert committed(broker) == -1


def test_a_group_with_members_cannot_be_deleted() -> None:
    broker = new_broker()
    stable_group(broker, "a", "b")
    before = broker.snapshot()
    result = delete(broker, GROUP, 7.0)
    assert result.error_code is E.NON_EMPTY_GROUP and result.error_message
    assert broker.snapshot() == before


def test_an_empty_group_with_an_unused_member_id_can_be_deleted() -> None:
    broker = new_broker()
    first = broker.handle(join_request("a"), now=0.0)
    assert isinstance(first, JoinGroupResponse)
    assert group(broker).state is GroupState.EMPTY
    assert delete(broker, GROUP, 1.0) == DeletableGroupResult(GROUP)
    late = rejoin(broker, first.member_id, 1.5)
    assert isinstance(late, JoinGroupResponse) and late.error_code is E.UNKNOWN_MEMBER_ID


def test_deleting_an_unknown_group_gets_group_id_not_found() -> None:
    broker = new_broker()
    result = delete(broker, "nobody", 0.0)
    assert result.error_code is E.GROUP_ID_NOT_FOUND and result.error_message


def test_find_coordinator_names_this_broker() -> None:
    broker = Broker(node_id=3)
    response = broker.handle(FindCoordinatorRequest(key=GROUP), now=0.0)
    assert response == FindCoordinatorResponse(node_id=3, host="minikafka", port=9092)
    empty = broker.handle(FindCoordinatorRequest(key=""), now=0.0)
    assert isinstance(empty, FindCoordinatorResponse)
    assert empty.error_code is E.INVALID_REQUEST and empty.error_message


# --- offset commits against membership (ClassicGroup.validateOffsetCommit) -----------------


def test_a_member_of_the_current_generation_commits_in_a_stable_group() -> None:
    broker = new_broker()
    _, b = stable_group(broker, "a", "b")
    assert commit(broker, 7.0, generation=1, member=b, offset=3).error_code is E.NONE
    assert committed(broker) == 3


def test_a_stale_generation_cannot_commit() -> None:
    broker = new_broker()
    a, _ = zombie_scenario(broker)  # a is in generation 2
    refused = commit(broker, 14.0, generation=1, member=a)
    assert refused.error_code is E.ILLEGAL_GENERATION and refused.error_message
    assert commit(broker, 14.0, generation=2, member=a).error_code is E.NONE


def test_a_removed_member_cannot_commit() -> None:
    broker = new_broker()
    _, b = zombie_scenario(broker)
    refused = commit(broker, 14.0, generation=1, member=b)
    assert refused.error_code is E.UNKNOWN_MEMBER_ID and refused.error_message
    stranger = commit(broker, 14.0, generation=2, member="x")
    assert stranger.error_code is E.UNKNOWN_MEMBER_ID


def test_a_commit_during_completing_rebalance_waits_for_sync() -> None:
    """The member holds generation 1 from its JoinGroup answer but no assignment yet."""
    broker = new_broker()
    a, _ = joined(broker, "a", "b")
    refused = commit(broker, 6.5, generation=1, member=a)
    assert refused.error_code is E.REBALANCE_IN_PROGRESS and refused.error_message


def test_a_current_member_may_commit_while_the_group_prepares_a_rebalance() -> None:
    """Kafka allows it: the member still owns its partitions until it rejoins, and committing
    before giving them up is what a consumer's revoke callback does."""
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert rejoin(broker, a, 7.0) is None
    assert group(broker).state is GroupState.PREPARING_REBALANCE
    assert commit(broker, 7.5, generation=1, member=b).error_code is E.NONE


def test_a_consumer_outside_the_group_commits_only_while_the_group_is_empty() -> None:
    """Generation -1 and no member id: an ``assign()`` consumer or an admin tool."""
    broker = new_broker()
    assert commit(broker, 0.0, offset=1).error_code is E.NONE  # no group yet
    a, b = stable_group(broker, "a", "b", now=1.0)
    refused = commit(broker, 8.0, offset=2)
    assert refused.error_code is E.UNKNOWN_MEMBER_ID and refused.error_message
    assert committed(broker) == 1
    leave(broker, a, b, now=9.0)
    assert group(broker).state is GroupState.EMPTY
    assert commit(broker, 10.0, offset=3).error_code is E.NONE
    assert committed(broker) == 3


def test_a_generation_of_a_group_that_does_not_exist_is_illegal() -> None:
    broker = new_broker()
    refused = commit(broker, 0.0, generation=1, member="a-0-1")
    assert refused.error_code is E.ILLEGAL_GENERATION and refused.error_message
    assert broker.snapshot().groups == ()


def test_a_zombie_cannot_commit_in_a_transaction() -> None:
    """KIP-447: ``sendOffsetsToTransaction(offsets, consumer.groupMetadata())`` sends the
    member id and generation, so the group coordinator refuses a consumer that lost its
    partitions, whatever its producer's epoch."""
    broker = new_broker()
    a, b = zombie_scenario(broker)
    producer = txn_producer(broker, 13.0)
    removed = txn_commit(broker, producer, 13.5, generation=1, member=b)
    assert removed.error_code is E.UNKNOWN_MEMBER_ID and removed.error_message
    stale = txn_commit(broker, producer, 13.5, generation=1, member=a)
    assert stale.error_code is E.ILLEGAL_GENERATION and stale.error_message
    assert broker.snapshot().pending_offsets == ()
    assert txn_commit(broker, producer, 13.5, generation=2, member=a).error_code is E.NONE
    assert len(broker.snapshot().pending_offsets) == 1


def test_a_pre_kip_447_transactional_commit_is_accepted_in_a_stable_group() -> None:
    """The pre-KIP-447 form, ``sendOffsetsToTransaction(offsets, group_id)``: the group always
    has members while the application runs, so refusing it would stop every older
    exactly-once application. Such producers are fenced by their transactional id instead (a
    new instance bumps the epoch), which is why this is safe; a plain commit in the same form
    is refused."""
    broker = new_broker()
    stable_group(broker, "a", "b")
    producer = txn_producer(broker, 7.0)
    assert txn_commit(broker, producer, 7.0).error_code is E.NONE
    assert commit(broker, 7.0).error_code is E.UNKNOWN_MEMBER_ID


def test_a_transactional_commit_is_accepted_during_completing_rebalance() -> None:
    """Kafka does not check the group state for transactional commits: only the member and its
    generation. A plain commit at the same moment is told to wait."""
    broker = new_broker()
    a, _ = joined(broker, "a", "b")
    producer = txn_producer(broker, 6.0)
    assert txn_commit(broker, producer, 6.5, generation=1, member=a).error_code is E.NONE
    assert commit(broker, 6.5, generation=1, member=a).error_code is E.REBALANCE_IN_PROGRESS


@pytest.mark.parametrize(
    ("disabled", "expected", "offset_after"),
    [
        (frozenset(), E.UNKNOWN_MEMBER_ID, 5),
        (frozenset({Safeguard.GENERATION_FENCING}), E.NONE, 9),
    ],
    ids=["fenced", "unfenced"],
)
def test_generation_fencing_decides_whether_a_zombie_commits(
    disabled: frozenset[Safeguard], expected: ErrorCode, offset_after: int
) -> None:
    broker = new_broker(disabled_safeguards=disabled)
    a, b = zombie_scenario(broker)
    assert commit(broker, 14.0, generation=2, member=a, offset=5).error_code is E.NONE
    assert commit(broker, 14.5, generation=1, member=b, offset=9).error_code is expected
    assert committed(broker) == offset_after


def test_a_refused_commit_leaves_committed_offsets_unchanged() -> None:
    broker = new_broker()
    a, b = zombie_scenario(broker)
    assert commit(broker, 14.0, generation=2, member=a, offset=5).error_code is E.NONE
    before = broker.snapshot()
    assert commit(broker, 14.5, generation=1, member=a, offset=9).error_code is not E.NONE
    assert commit(broker, 14.5, generation=1, member=b, offset=9).error_code is not E.NONE
    assert commit(broker, 14.5, offset=9).error_code is not E.NONE
    assert broker.snapshot() == before
    assert committed(broker) == 5


# --- durability ----------------------------------------------------------------------------


def test_after_a_restart_a_group_is_empty_at_its_stored_generation_with_its_offsets() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")  # the leader's SyncGroup stored generation 1
    assert commit(broker, 7.0, generation=1, member=a, offset=4).error_code is E.NONE
    broker.restart()
    after = group(broker)
    assert (after.state, after.generation_id, after.members) == (GroupState.EMPTY, 1, ())
    assert committed(broker) == 4
    for member in (a, b):
        assert heartbeat(broker, member, 8.0).error_code is E.UNKNOWN_MEMBER_ID


def test_a_group_that_became_empty_comes_back_at_that_generation() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    leave(broker, a, b, now=7.0)  # the join completes with nobody: generation 2, stored
    assert (group(broker).state, group(broker).generation_id) == (GroupState.EMPTY, 2)
    broker.restart()
    assert (group(broker).state, group(broker).generation_id) == (GroupState.EMPTY, 2)


def test_member_ids_after_a_restart_differ_from_those_before() -> None:
    broker = new_broker()
    before = join(broker, "a", 0.0)
    broker.restart()
    after = join(broker, "a", 1.0)
    assert before != after
    assert before.startswith("a-") and after.startswith("a-")


def test_a_generation_announced_but_never_stored_is_reused_after_a_restart() -> None:
    """Generation 2 is handed out in JoinGroup answers, but Kafka stores a generation only
    when the leader's SyncGroup brings the assignment; the broker crashes before that, so it
    comes back at generation 1 and the next rebalance hands out generation 2 again.

    This is safe because nobody can mistake one generation 2 for the other: member ids made
    after the restart include the new coordinator epoch, so the members of the lost generation
    2 are unknown to the group, and their commits, heartbeats and syncs are refused with
    UNKNOWN_MEMBER_ID before the generation number is ever compared.
    """
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    assert rejoin(broker, a, 7.0) is None
    lost = rejoin(broker, b, 7.0)
    assert isinstance(lost, JoinGroupResponse) and lost.generation_id == 2
    broker.restart()
    assert group(broker).generation_id == 1
    c, d = joined(broker, "c", "d", now=8.0, generation=2)
    assert {c, d}.isdisjoint({a, b})
    old = commit(broker, 14.5, generation=2, member=b)
    assert old.error_code is E.UNKNOWN_MEMBER_ID
    assert heartbeat(broker, b, 14.5, generation=2).error_code is E.UNKNOWN_MEMBER_ID
    old_sync = sync(broker, a, 14.5, {a: b"stale"}, generation=2)
    assert isinstance(old_sync, SyncGroupResponse)
    assert old_sync.error_code is E.UNKNOWN_MEMBER_ID
    assert commit(broker, 14.5, generation=2, member=c).error_code is E.REBALANCE_IN_PROGRESS


def test_a_crash_drops_held_requests() -> None:
    broker = new_broker()
    join(broker, "a", 0.0)
    join(broker, "b", 0.0)
    broker.restart()
    assert broker.take_delayed_responses() == []
    assert settle(broker, 10.0) == {}
    after = group(broker)
    assert (after.state, after.generation_id, after.members) == (GroupState.EMPTY, 0, ())


# --- found by mutation testing -------------------------------------------------------------


def test_a_held_sync_is_answered_rebalance_in_progress_when_a_new_rebalance_starts() -> None:
    broker = new_broker()
    _, b = joined(broker, "a", "b")
    assert sync(broker, b, 6.0) is None
    join(broker, "c", 6.5)  # CompletingRebalance -> PreparingRebalance
    answers = settle(broker, 6.5)
    assert isinstance(answers.get(b), SyncGroupResponse)
    assert answers[b].error_code is E.REBALANCE_IN_PROGRESS


def test_a_leave_completes_a_join_that_only_waited_for_the_leaver() -> None:
    broker = new_broker()
    a, b, c = stable_group(broker, "a", "b", "c")
    assert rejoin(broker, a, 7.0) is None
    assert rejoin(broker, b, 7.0) is None
    leave(broker, c, now=7.0)
    answers = settle(broker, 7.0)
    assert sorted(answers) == sorted([a, b])
    assert all(isinstance(r, JoinGroupResponse) and r.generation_id == 2 for r in answers.values())


def test_an_expiring_member_id_completes_a_join_that_waited_for_it() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    first = broker.handle(join_request("c"), now=7.0)
    assert isinstance(first, JoinGroupResponse) and first.error_code is E.MEMBER_ID_REQUIRED
    assert rejoin(broker, a, 7.0) is None
    assert rejoin(broker, b, 7.0) is None
    answers = settle(broker, 13.0)  # the unused id expires at 7 + 6 = 13; the join deadline is 17
    assert sorted(answers) == sorted([a, b])


def test_timers_fire_in_deadline_order_each_at_its_own_time_in_one_big_step() -> None:
    broker = new_broker()
    a, b = stable_group(broker, "a", "b")
    heartbeat(broker, a, 10.0)
    broker.tick(100.0)
    removed = [
        (e.at_ms, e.member_id, e.what)
        for e in broker.group_coordinator.events
        if e.what.startswith("member removed")
    ]
    assert removed == [
        (12_000, b, "member removed: session timeout"),
        (16_000, a, "member removed: session timeout"),
    ]


def test_a_group_with_offsets_waiting_for_a_marker_cannot_be_deleted() -> None:
    broker = new_broker()
    producer = txn_producer(broker, 1.0)
    assert txn_commit(broker, producer, 1.0).error_code is E.NONE
    before = broker.snapshot()
    result = delete(broker, GROUP, 2.0)
    assert result.error_code is E.NON_EMPTY_GROUP and result.error_message
    assert broker.snapshot() == before


def test_a_transactional_commit_with_another_transactional_ids_producer_is_refused() -> None:
    broker = new_broker()
    producer = txn_producer(broker, 1.0)
    other = broker.handle(InitProducerIdRequest(transactional_id="other"), now=1.0)
    assert isinstance(other, InitProducerIdResponse)
    response = broker.handle(
        TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id=GROUP,
            producer_id=other.producer_id,
            producer_epoch=other.producer_epoch,
            partitions=(OffsetCommitPartition(T0.topic, T0.partition, 5),),
        ),
        now=1.0,
    )
    assert isinstance(response, TxnOffsetCommitResponse)
    assert response.partitions[0].error_code is E.INVALID_PRODUCER_ID_MAPPING
    assert committed(broker) == -1 and producer.producer_id != other.producer_id
