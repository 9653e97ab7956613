"""A hypothesis state machine: consumers in a group, with pauses, departures and broker crashes.

Two or three consumers (``GroupMemberProtocol``) share a topic through one group; they all join
it first, and the group settles into its first generation. Rules let them leave, join again,
pause (a frozen process: no heartbeats, no reactions) and resume, commit offsets for the
partitions they believe they own (some of them slow on the network, so they arrive after a
rebalance with the generation they were sent with), and let a consumer outside the group (one
that uses ``assign()``) commit too. Time passes in one-second ticks, with heartbeats from every
consumer that is not paused; the broker can crash and recover. A consumer paused past its
session timeout is evicted, but still believes it owns its partitions: a zombie. A paused
consumer may still commit, which models the moment it wakes up, before its heartbeat thread has
learned anything.

Invariants, checked after every step (and, for commits, at each commit):
- ``owners``: consumers of the group's current generation never believe they own the same
  partition, and once a rebalance is complete (the group Stable, every member synced) the
  partitions are exactly what the group's assignor gives its current members;
- at each commit: an accepted commit comes from the partition's owner in the group's current
  assignment, or arrives while the group is Empty. Anything else is a zombie overwriting the
  progress of whoever reads the partition next;
- ``offsets``: committed offsets are exactly the accepted commits (a refused commit moves
  nothing), and they survive broker crashes;
- ``generations``: a group's generation never goes down while the broker runs, each completed
  join is the previous generation plus one, and a restart keeps every generation that was
  complete (Stable or Empty) before it;
- ``evictions``: a frozen consumer is out of the group within its session and rebalance
  timeouts, and a rebalance in which every member is waiting on its JoinGroup completes.
At the end of a run, ``teardown`` resumes everyone and lets time pass: the group must settle
into one generation that every active consumer has synced.

Subclass it to add an invariant, or use ``breaking(Safeguard.GENERATION_FENCING)`` to watch
zombie commits get through.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from minikafka.core import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    Broker,
    BrokerConfig,
    EndTxnRequest,
    EndTxnResponse,
    ErrorCode,
    HeartbeatResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResponse,
    Request,
    Response,
    SyncGroupResponse,
    TopicPartition,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from minikafka.core.assignors import Assignment, Subscription, assignor
from minikafka.core.group_member import GroupMemberProtocol, MemberState
from minikafka.core.groups import OFFSETS_TOPIC, GroupState
from minikafka.testing.controls import Breakable
from minikafka.testing.story import LogRow, StoryLine

__all__ = ["GroupHarness", "GroupMachine", "SimConsumer"]

TOPIC = "orders"
GROUP = "billing"
SESSION_TIMEOUT_MS = 10_000
REBALANCE_TIMEOUT_MS = 20_000
HEARTBEAT_INTERVAL_MS = 3_000
EXCHANGES_PER_STEP_MAX = 200
HEAL_SECONDS_MAX = 120


@attrs.define(eq=False)
class SimConsumer:
    """A consumer of the machine: its protocol state and what the machine knows of it."""

    name: str
    protocol: GroupMemberProtocol
    active: bool = False
    """It has joined and not left: it rejoins by itself when it has to."""
    paused: bool = False
    waiting_for: Request | None = None
    """The JoinGroup or SyncGroup it sent and is waiting on."""
    inbox: list[tuple[Request, Response]] = attrs.Factory(list)
    """Answers that came while it was paused, with the requests they answer."""
    last_heartbeat_s: float = 0.0
    progress: int = 0
    """How far it has read, for the offsets it commits."""
    paused_at_s: float = 0.0


class GroupHarness:
    """Consumers and a broker, wired together: requests go in, held answers come back.

    The glue a group test or a scenario needs and nothing more: it delivers each consumer's
    requests, routes JoinGroup and SyncGroup answers that the broker held to the consumer that
    waits for them (or to its inbox while it is paused), and lets time pass with heartbeats.
    ``say`` receives a line for each notable event.
    """

    def __init__(
        self,
        broker: Broker,
        partitions_per_topic: dict[str, int],
        say: Callable[..., None] = lambda line, **_: None,
    ) -> None:
        self.broker = broker
        self.partitions_per_topic = partitions_per_topic
        self.say = say
        self.now = 0.0
        self.consumers: list[SimConsumer] = []

    def join(self, consumer: SimConsumer) -> None:
        consumer.active = True
        self.send(consumer, consumer.protocol.join_request())

    def leave(self, consumer: SimConsumer) -> None:
        consumer.active = False
        consumer.waiting_for = None
        request = consumer.protocol.leave_request()
        if request is not None:
            self.broker.handle(request, now=self.now)
        self.drain()

    def resume(self, consumer: SimConsumer) -> None:
        consumer.paused = False
        inbox, consumer.inbox = consumer.inbox, []
        for request, response in inbox:
            self.send(consumer, self._answer(consumer, request, response))
        self.drain()

    def commit(self, consumer: SimConsumer | None, request: OffsetCommitRequest) -> ErrorCode:
        """Send a commit; a consumer that is told it lost its place rejoins (unless paused)."""
        response = self.broker.handle(request, now=self.now)
        assert isinstance(response, OffsetCommitResponse)
        if consumer is not None and not consumer.paused:
            self.send(consumer, consumer.protocol.on_commit_response(response))
        return response.partitions[0].error_code

    def crash_broker(self) -> None:
        """Restart the broker: held requests are lost, so their consumers will join again."""
        self.broker.restart()
        for consumer in self.consumers:
            if consumer.waiting_for is not None:
                consumer.waiting_for = None
                consumer.protocol.on_request_failed()

    def send(self, consumer: SimConsumer, request: Request | None) -> None:
        for _ in range(EXCHANGES_PER_STEP_MAX):
            if request is None:
                break
            response = self.broker.handle(request, now=self.now)
            if response is None:
                consumer.waiting_for = request
                break
            request = self._answer(consumer, request, response)
        else:
            raise AssertionError(f"{consumer.name} keeps sending: it never waits for an answer")
        self.drain()

    def _answer(
        self, consumer: SimConsumer, request: Request, response: Response
    ) -> Request | None:
        """Give the answer to ``consumer`` and return what it sends next."""
        protocol = consumer.protocol
        if isinstance(response, JoinGroupResponse):
            return protocol.on_join_response(response, self.partitions_per_topic)
        if isinstance(response, SyncGroupResponse):
            next_request = protocol.on_sync_response(response)
            if response.error_code is ErrorCode.NONE:
                shown = ", ".join(f"p{tp.partition}" for tp in protocol.assignment) or "nothing"
                self.say(
                    f"{consumer.name} gets {shown} in generation {protocol.generation_id}",
                    detail=True,
                )
            return next_request
        if isinstance(response, HeartbeatResponse):
            if response.error_code is not ErrorCode.NONE:
                self.say(f"{consumer.name}'s heartbeat: {response.error_code.name}", detail=True)
            return protocol.on_heartbeat_response(response)
        raise AssertionError(f"unexpected answer {response!r} to {request!r}")

    def drain(self) -> None:
        """Hand held answers (JoinGroup, SyncGroup) to the consumers that wait for them."""
        for _ in range(EXCHANGES_PER_STEP_MAX):
            ready = self.broker.take_delayed_responses()
            if not ready:
                return
            for request, response in ready:
                for consumer in self.consumers:
                    if consumer.waiting_for is request:
                        consumer.waiting_for = None
                        if consumer.paused:
                            consumer.inbox.append((request, response))
                        else:
                            self.send(consumer, self._answer(consumer, request, response))
                        break
        raise AssertionError("answers keep coming: the group never settles within one step")

    def advance(
        self, seconds: float, *, step: float = 1.0, each: Callable[[], None] | None = None
    ) -> None:
        """Let ``seconds`` pass in ``step``s: background work, rejoins and heartbeats."""
        for _ in range(round(seconds / step)):
            self.now = round(self.now + step, 6)
            self.broker.tick(self.now)
            self.drain()
            for consumer in self.consumers:
                if consumer.paused or not consumer.active:
                    continue
                protocol = consumer.protocol
                if protocol.state is MemberState.UNJOINED:
                    self.send(consumer, protocol.join_request())
                    continue
                interval_s = protocol.heartbeat_interval_ms / 1000
                if self.now - consumer.last_heartbeat_s < interval_s:
                    continue
                heartbeat = protocol.heartbeat_request()
                if heartbeat is None:
                    continue
                consumer.last_heartbeat_s = self.now
                response = self.broker.handle(heartbeat, now=self.now)
                assert isinstance(response, HeartbeatResponse)
                self.send(consumer, self._answer(consumer, heartbeat, response))
            if each is not None:
                each()


class GroupMachine(Breakable, RuleBasedStateMachine):
    """Consumers, a group, a broker; see the module docstring."""

    broker_config: ClassVar[BrokerConfig] = BrokerConfig()

    def __init__(self) -> None:
        super().__init__()
        self.broker = Broker(self.broker_config)
        self.world = GroupHarness(self.broker, {TOPIC: 1}, self.say)
        self.consumers = self.world.consumers
        self.partitions = 1
        self.strategy = "range"
        self.story: list[StoryLine] = []
        self.phase = "setup"
        self.committed: dict[TopicPartition, int] = {}
        """The model: the last accepted commit per partition."""
        self.bad_commits: set[int] = set()
        """Offsets-log positions of commits that should not have been accepted."""
        self.failure: str | None = None
        self.late: list[tuple[SimConsumer, OffsetCommitRequest]] = []
        """Commits slow on the network, oldest first."""
        self._generation_seen = 0
        self._stored_floor = 0
        self.forgotten: set[str] = set()
        """Member ids the broker forgot in a restart (Kafka would have kept them)."""
        """The newest generation seen Stable or Empty: stored, so a restart must keep it."""

    # --- set-up and rules ------------------------------------------------------------------

    @initialize(
        consumers=st.integers(2, 3),
        partitions=st.integers(1, 4),
        strategy=st.sampled_from(["range", "roundrobin"]),
    )
    def setup(self, consumers: int, partitions: int, strategy: str) -> None:
        self.partitions = partitions
        self.world.partitions_per_topic[TOPIC] = partitions
        self.broker.create_topic(TOPIC, partitions)
        for index in range(consumers):
            protocol = GroupMemberProtocol(
                GROUP,
                (TOPIC,),
                client_id=f"c{index}",
                assignors=(strategy,),
                session_timeout_ms=SESSION_TIMEOUT_MS,
                rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            )
            self.consumers.append(SimConsumer(f"c{index}", protocol))
        self.say(
            f"{consumers} consumers of topic {TOPIC!r} ({partitions} "
            f"partition{'s' if partitions > 1 else ''}) in group "
            f"{GROUP!r}, {strategy} assignment, session timeout {SESSION_TIMEOUT_MS // 1000} s"
        )
        for consumer in self.consumers:
            self.world.join(consumer)
        for _ in range(HEAL_SECONDS_MAX):
            if self._settled():
                break
            self.world.advance(1)
        self.say(f"all of them joined: generation {self._generation()}")
        if self._generation() != 1:
            self._fail(
                f"consumers that join together should form generation 1, not {self._generation()}"
            )
        self.strategy = strategy
        self.phase = "step"

    def _consumer(self, index: int) -> SimConsumer:
        return self.consumers[index % len(self.consumers)]

    @rule(index=st.integers(0, 2))
    def join(self, index: int) -> None:
        consumer = self._consumer(index)
        if consumer.paused or consumer.protocol.state is not MemberState.UNJOINED:
            return
        self.say(f"{consumer.name} joins the group")
        self.world.join(consumer)

    @rule(index=st.integers(0, 2))
    def leave(self, index: int) -> None:
        consumer = self._consumer(index)
        if consumer.paused or not consumer.active:
            return
        self.say(f"{consumer.name} leaves the group")
        self.world.leave(consumer)

    @rule(index=st.integers(0, 2), seconds=st.sampled_from([0, 15, 30]))
    def pause(self, index: int, seconds: int) -> None:
        """The consumer freezes (a long garbage collection, a stopped VM), and ``seconds``
        pass while the others carry on."""
        consumer = self._consumer(index)
        if consumer.paused or not consumer.active:
            return
        consumer.paused = True
        consumer.paused_at_s = self.world.now
        before = self._generation()
        self.world.advance(seconds, each=self._check_generation)
        during = f" for {seconds} s" if seconds else ""
        self.say(
            f"{consumer.name} freezes{during} (no heartbeats, no reactions)"
            + self._meanwhile(before)
        )

    @rule(index=st.integers(0, 2))
    def resume(self, index: int) -> None:
        consumer = self._consumer(index)
        if not consumer.paused:
            return
        self.say(f"{consumer.name} wakes up")
        self.world.resume(consumer)

    @rule(
        index=st.integers(0, 2),
        pick=st.integers(0, 3),
        read=st.integers(1, 5),
        how=st.sampled_from(["at once", "slow", "in a transaction"]),
    )
    def commit(self, index: int, pick: int, read: int, how: str) -> None:
        """The consumer commits how far it read on one partition it believes it owns.

        A "slow" commit is slow on the network: it reaches the broker when ``deliver_late``
        says, with the generation and member id it was sent with. "in a transaction" sends the
        offsets with the consumer's group metadata through its transactional producer
        (KIP-447), which commits the transaction if the offsets were accepted.
        """
        consumer = self._consumer(index)
        owned = consumer.protocol.assignment
        if not owned:
            return
        tp = owned[pick % len(owned)]
        consumer.progress += read
        request = consumer.protocol.commit_request({tp: consumer.progress})
        if how == "in a transaction":
            self._commit_in_transaction(consumer, tp, consumer.progress)
            return
        if how == "slow":
            self.late.append((consumer, request))
            self.say(
                f"{consumer.name} sends a commit of p{tp.partition} -> {consumer.progress} "
                f"(generation {request.generation_id}) that is slow on the network"
            )
            return
        self._commit(consumer.name, request, consumer)

    @precondition(lambda self: self.late)
    @rule()
    def deliver_late(self) -> None:
        """The oldest slow commit reaches the broker now."""
        consumer, request = self.late.pop(0)
        self._commit(f"{consumer.name}'s slow commit", request, consumer)

    @rule(partition=st.integers(0, 3), offset=st.integers(0, 50))
    def commit_from_outside(self, partition: int, offset: int) -> None:
        """A consumer that uses assign() commits with generation -1 and no member id."""
        tp = TopicPartition(TOPIC, partition % self.partitions)
        request = OffsetCommitRequest(
            group_id=GROUP, partitions=(OffsetCommitPartition(tp.topic, tp.partition, offset),)
        )
        self._commit("an assign() consumer", request, None)

    @rule(seconds=st.sampled_from([1, 3, 8, 15, 30]))
    def wait(self, seconds: int) -> None:
        before = self._generation()
        self.world.advance(seconds, each=self._check_generation)
        self.say(f"{seconds} s pass" + self._meanwhile(before))

    @rule()
    def crash_broker(self) -> None:
        self.say("the broker crashes and recovers")
        group = self.broker.group_coordinator.groups.get(GROUP)
        if group is not None:
            self.forgotten.update(group.members)
        self.world.crash_broker()
        group = self.broker.group_coordinator.groups.get(GROUP)
        found = group.generation_id if group is not None else 0
        if found > self._generation_seen:
            self._fail(
                f"after a restart the group is at generation {found}, which it never reached"
            )
        if found < self._stored_floor:
            self._fail(
                f"after a restart the group is at generation {found}, but generation "
                f"{self._stored_floor} was complete before the crash"
            )
        self._generation_seen = found

    # --- commits ---------------------------------------------------------------------------

    def _commit(self, who: str, request: OffsetCommitRequest, consumer: SimConsumer | None) -> None:
        wanted = request.partitions[0]
        tp = TopicPartition(wanted.topic, wanted.partition)
        allowed, why = self._may_commit(request, tp)
        logged = self.broker.internal_log(OFFSETS_TOPIC).log_end_offset
        error = self.world.commit(consumer, request)
        self._judge(who, request, error, allowed, why, logged)

    def _judge(
        self,
        who: str,
        request: OffsetCommitRequest | TxnOffsetCommitRequest,
        error: ErrorCode,
        allowed: bool,
        why: str,
        logged: int,
    ) -> None:
        """Tell the commit's outcome, update the model, and fail if it should not have been
        accepted."""
        wanted = request.partitions[0]
        tp = TopicPartition(wanted.topic, wanted.partition)
        outcome = "accepted" if error is ErrorCode.NONE else error.name
        member = f"member {request.member_id}, " if request.member_id else ""
        self.say(
            f"{who} commits p{tp.partition} -> {wanted.committed_offset} ({member}generation "
            f"{request.generation_id}): {outcome}"
        )
        if error is ErrorCode.NONE:
            self.committed[tp] = wanted.committed_offset
            if not allowed:
                self.bad_commits.add(logged)
                self._fail(f"a commit that should have been refused was accepted: {why}")

    def _commit_in_transaction(
        self, consumer: SimConsumer, tp: TopicPartition, offset: int
    ) -> None:
        transactional_id = f"tx-{consumer.name}"
        init = self.broker.handle(
            InitProducerIdRequest(transactional_id=transactional_id), now=self.world.now
        )
        assert isinstance(init, InitProducerIdResponse), init
        assert init.error_code is ErrorCode.NONE, init
        pid, epoch = init.producer_id, init.producer_epoch
        added = self.broker.handle(
            AddOffsetsToTxnRequest(
                transactional_id=transactional_id,
                producer_id=pid,
                producer_epoch=epoch,
                group_id=GROUP,
            ),
            now=self.world.now,
        )
        assert isinstance(added, AddOffsetsToTxnResponse) and added.error_code is ErrorCode.NONE
        request = consumer.protocol.txn_commit_request(
            {tp: offset}, transactional_id=transactional_id, producer_id=pid, producer_epoch=epoch
        )
        allowed, why = self._may_commit(request, tp)
        logged = self.broker.internal_log(OFFSETS_TOPIC).log_end_offset
        response = self.broker.handle(request, now=self.world.now)
        assert isinstance(response, TxnOffsetCommitResponse)
        error = response.partitions[0].error_code
        ended = self.broker.handle(
            EndTxnRequest(
                transactional_id=transactional_id,
                producer_id=pid,
                producer_epoch=epoch,
                committed=error is ErrorCode.NONE,
            ),
            now=self.world.now,
        )
        assert isinstance(ended, EndTxnResponse) and ended.error_code is ErrorCode.NONE, ended
        self.broker.write_markers(self.world.now)
        self._judge(consumer.name + " (in a transaction)", request, error, allowed, why, logged)

    def _may_commit(
        self, request: OffsetCommitRequest | TxnOffsetCommitRequest, tp: TopicPartition
    ) -> tuple[bool, str]:
        """Whether a commit for ``tp`` now harms nobody.

        It does not when it comes from the partition's owner in the group's current
        assignment. Nobody owns the partition while the group is Empty, so any commit is
        harmless then (a consumer outside the group may commit, as Kafka allows). A member that
        only a broker restart made unknown is no zombie either, unless someone else owns the
        partition now: Kafka would have reloaded it with the group, and here members are not
        durable.

        This judges harm, not Kafka's rule: Kafka fences by member and generation and never
        looks at partitions, so a stale commit from a member that still owns the partition is
        refused there but harmless here.
        """
        group = self.broker.group_coordinator.groups.get(GROUP)
        state = group.state if group is not None else GroupState.EMPTY
        owner = None
        if group is not None and state in (GroupState.STABLE, GroupState.PREPARING_REBALANCE):
            for member in group.members.values():
                if tp in Assignment.from_bytes(member.assignment).partitions:
                    owner = member.member_id
        if owner == request.member_id or state is GroupState.EMPTY:
            return True, ""
        if request.generation_id < 0 and not request.member_id:
            return False, f"a consumer outside the group committed while it was {state.value}"
        if owner is None and request.member_id in self.forgotten:
            return True, ""
        return False, (
            f"{request.member_id} (generation {request.generation_id}) committed for "
            f"{tp.topic}-{tp.partition}, which "
            + (f"belongs to {owner}" if owner else "nobody owns right now")
            + f" (group {state.value}, generation "
            + f"{group.generation_id if group is not None else 0})"
        )

    # --- invariants ------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        self.failure = message
        raise AssertionError(message)

    @invariant()
    def owners(self) -> None:
        group = self.broker.group_coordinator.groups.get(GROUP)
        if group is None or not self.broker.running:
            return
        current = [
            c
            for c in self.consumers
            if c.protocol.member_id in group.members
            and c.protocol.generation_id == group.generation_id
        ]
        seen: dict[TopicPartition, str] = {}
        for consumer in current:
            for tp in consumer.protocol.assignment:
                if tp in seen:
                    self._fail(
                        f"{seen[tp]} and {consumer.name} both own {tp.topic}-{tp.partition} "
                        f"in generation {group.generation_id}"
                    )
                seen[tp] = consumer.name
        settled = (
            group.state is GroupState.STABLE
            and len(current) == len(group.members)
            and all(c.protocol.state is MemberState.STABLE for c in current)
        )
        if settled and len(seen) != self.partitions:
            missing = [p for p in range(self.partitions) if TopicPartition(TOPIC, p) not in seen]
            self._fail(
                f"generation {group.generation_id} is complete, but nobody owns partitions "
                f"{missing}"
            )
        if settled:
            expected = assignor(self.strategy)(
                {c.protocol.member_id: Subscription((TOPIC,)) for c in current},
                {TOPIC: self.partitions},
            )
            for consumer in current:
                if consumer.protocol.assignment != expected[consumer.protocol.member_id]:
                    self._fail(
                        f"{consumer.name} owns {consumer.protocol.assignment} in generation "
                        f"{group.generation_id}, but {self.strategy} gives it "
                        f"{expected[consumer.protocol.member_id]}"
                    )

    @invariant()
    def evictions(self) -> None:
        """A frozen consumer is out of the group within its session and rebalance timeouts,
        and a rebalance that only waits for nobody completes."""
        group = self.broker.group_coordinator.groups.get(GROUP)
        if group is None or not self.broker.running:
            return
        limit_s = (SESSION_TIMEOUT_MS + REBALANCE_TIMEOUT_MS) / 1000 + 1
        for consumer in self.consumers:
            frozen_s = self.world.now - consumer.paused_at_s
            in_group = consumer.protocol.member_id in group.members
            if consumer.paused and in_group and frozen_s > limit_s:
                self._fail(
                    f"{consumer.name} has been frozen for {frozen_s:g} s and is still a member "
                    "of the group"
                )
        waiting = {
            c.protocol.member_id
            for c in self.consumers
            if isinstance(c.waiting_for, JoinGroupRequest)
        }
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.previous_state is not GroupState.EMPTY
            and not group.pending_members
            and set(group.members) <= waiting
        ):
            self._fail("every member is waiting on its JoinGroup, but the join did not complete")

    @invariant()
    def offsets(self) -> None:
        if not self.broker.running:
            return
        found = {
            tp: offset.offset
            for tp, offset in self.broker.group_coordinator.committed.get(GROUP, {}).items()
        }
        if found != self.committed:
            self._fail(
                f"committed offsets are {found}, but the accepted commits say {self.committed}"
            )

    def _meanwhile(self, generation_before: int) -> str:
        """What became of the group while time passed, if its generation moved on."""
        group = self.broker.group_coordinator.groups.get(GROUP)
        if group is None or group.generation_id == generation_before:
            return ""
        members = ", ".join(group.members) or "no members"
        return (
            f"; meanwhile the group moved on to generation {group.generation_id} "
            f"({group.state.value}: {members})"
        )

    def _generation(self) -> int:
        group = self.broker.group_coordinator.groups.get(GROUP)
        return group.generation_id if group is not None else 0

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation < self._generation_seen:
            self._fail(f"the generation went down from {self._generation_seen} to {generation}")
        self._generation_seen = generation
        group = self.broker.group_coordinator.groups.get(GROUP)
        if group is not None and group.state in (GroupState.STABLE, GroupState.EMPTY):
            self._stored_floor = max(self._stored_floor, generation)
        # Each completed join is the next generation: +1, never more.
        announced = [
            e.generation_id
            for e in self.broker.group_coordinator.events
            if e.what.startswith(f"generation {e.generation_id}:") and "stored" not in e.what
        ]
        for before, after in itertools.pairwise(announced):
            if after != before + 1:
                self._fail(f"generation {before} was followed by generation {after}")

    @invariant()
    def generations(self) -> None:
        self._check_generation()

    def teardown(self) -> None:
        """Wake everyone and let time pass: the group must settle, every active consumer in."""
        if self.failure is not None or not self.consumers:
            return
        self.phase = "heal"
        for consumer in self.consumers:
            if consumer.paused:
                self.world.resume(consumer)
        for _ in range(HEAL_SECONDS_MAX):
            if self._settled():
                return
            self.world.advance(1, each=self._check_generation)
        active = [c.name for c in self.consumers if c.active]
        group = self.broker.group_coordinator.groups.get(GROUP)
        state = group.state.value if group is not None else "absent"
        self._fail(
            f"after {HEAL_SECONDS_MAX} s without faults the group ({state}) has not settled "
            f"with its active consumers {active}"
        )

    def _settled(self) -> bool:
        group = self.broker.group_coordinator.groups.get(GROUP)
        active = [c for c in self.consumers if c.active]
        if not active:
            return True
        if group is None or group.state is not GroupState.STABLE:
            return False
        return {c.protocol.member_id for c in active} == set(group.members) and all(
            c.protocol.state is MemberState.STABLE
            and c.protocol.generation_id == group.generation_id
            for c in active
        )

    # --- telling the story -----------------------------------------------------------------

    def say(self, line: str, *, detail: bool = False) -> None:
        self.story.append(StoryLine(self.phase, line, detail))

    @property
    def steps(self) -> list[StoryLine]:
        return [line for line in self.story if line.phase == "step" and not line.detail]

    def log_rows(self) -> tuple[LogRow, ...]:
        """``__consumer_offsets`` as rows: group generations and commits, bad ones marked."""
        rows = []
        for batch in self.broker.internal_log(OFFSETS_TOPIC).batches():
            for position, record in enumerate(batch.records):
                offset = batch.base_offset + position
                if batch.is_control:
                    kind = batch.control_type.name if batch.control_type is not None else "?"
                    rows.append(
                        LogRow(
                            OFFSETS_TOPIC,
                            0,
                            offset,
                            f"{kind} marker of producer {batch.producer_id}",
                            batch.producer_id,
                            batch.producer_epoch,
                            -1,
                            "transaction marker",
                        )
                    )
                    continue
                if record.key is None:
                    continue
                key: list[Any] = json.loads(record.key)
                if record.value is None:
                    value, note = "tombstone", "deleted"
                elif len(key) == 1:
                    fields = json.loads(record.value)
                    value = f"{key[0]}: generation {fields['generation']}"
                    note = "group record"
                else:
                    fields = json.loads(record.value)
                    value = f"{key[0]}: {key[1]}-{key[2]} -> {fields['offset']}"
                    note = "transactional commit" if batch.is_transactional else "commit"
                bad = offset in self.bad_commits
                rows.append(
                    LogRow(
                        OFFSETS_TOPIC,
                        0,
                        offset,
                        value,
                        batch.producer_id,
                        batch.producer_epoch,
                        -1,
                        "zombie commit" if bad else note,
                        bad,
                    )
                )
        return tuple(rows)
