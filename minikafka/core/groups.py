"""The group coordinator: membership, generations, rebalances, and the offsets groups commit.

Kafka's classic group protocol, for one broker. A consumer joins a group (JoinGroup), the
coordinator waits until every known member has joined, starts a new *generation* and names
one member the leader. The leader computes the assignment with an assignor (a consumer does
that, not the broker: see ``assignors.py``) and sends it in its SyncGroup; the coordinator
hands each member its share. Members then heartbeat. A member that misses heartbeats for its
session timeout, or does not rejoin within the rebalance timeout, is removed, and the others
rebalance into the next generation.

Theory of operation:

1. Group states are Kafka's: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead, and
   ``LEGAL_PREVIOUS_GROUP_STATES`` lists the legal moves. An illegal move is a bug in this
   module (an assertion), never a client's mistake: clients get error codes.
2. JoinGroup and SyncGroup are long polls. Their answers wait in the group (Kafka's
   purgatory) until the rebalance moves on; the coordinator then puts them in ``outbox``,
   and the broker hands them out (``Broker.take_delayed_responses``).
3. Time arrives as ``now_ms``. Deadlines (session timeouts, the rebalance timeout, the initial
   rebalance delay, the wait for SyncGroup) fire in ``expire(now_ms)``, earliest first, each
   at its own deadline, as Kafka's timer wheel fires them.
4. Durable: each completed generation (when the leader's assignment is stored, or when the
   group becomes Empty), every committed offset, and the deletion of a group, all written to
   ``__consumer_offsets`` before memory changes. Volatile: members. After a restart ``load``
   rebuilds every group as Empty at its last stored generation, and members rejoin.
5. Offset commits are checked against membership (``check_commit``): a member of the current
   generation, or a consumer outside the group while the group is Empty. Transactional offsets
   (TxnOffsetCommit) are *pending* until the transaction's COMMIT marker reaches the offsets
   log, and an ABORT marker drops them (Kafka's ``pendingTransactionalOffsets``).

Simplified: Kafka spreads groups over 50 partitions of ``__consumer_offsets``; here there is
one, never compacted. Kafka's group records also carry each member, and a group loaded with
members rebalances with them; here members are not stored. Static membership
(``group.instance.id``) is not simulated.
"""

from __future__ import annotations

import enum
import functools
import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Concatenate, ParamSpec, TypeVar

import attrs

from minikafka.core.errors import ErrorCode
from minikafka.core.log import PartitionLog
from minikafka.core.messages import (
    DeletableGroupResult,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupMember,
    JoinGroupProtocol,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupMemberResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitPartition,
    OffsetCommitPartitionResponse,
    OffsetFetchPartitionResponse,
    Request,
    Response,
    SyncGroupRequest,
    SyncGroupResponse,
)
from minikafka.core.records import ControlType, Record, RecordBatch, TopicPartition

__all__ = [
    "GROUP_EVENTS_KEPT",
    "LEGAL_PREVIOUS_GROUP_STATES",
    "NEW_MEMBER_JOIN_TIMEOUT_MS",
    "OFFSETS_TOPIC",
    "OFFSETS_TP",
    "OFFSET_METADATA_MAX_BYTES",
    "ClassicGroup",
    "GroupCoordinator",
    "GroupEvent",
    "GroupSnapshot",
    "GroupState",
    "Member",
    "MemberSnapshot",
    "OffsetAndMetadata",
    "Timer",
]

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_TP = TopicPartition(OFFSETS_TOPIC, 0)
OFFSET_METADATA_MAX_BYTES = 4096
"""Kafka's ``offset.metadata.max.bytes``."""
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000
"""How long a new member's first JoinGroup may wait before the member is dropped (Kafka's
fixed 5 minutes: a new member cannot heartbeat yet, so its session timeout does not apply)."""
GROUP_EVENTS_KEPT = 256
"""How many recent group events the coordinator remembers (for timelines and invariants)."""


class GroupState(enum.Enum):
    """A classic group's state, with Kafka's names."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_G = GroupState

LEGAL_PREVIOUS_GROUP_STATES: dict[GroupState, frozenset[GroupState]] = {
    _G.EMPTY: frozenset({_G.PREPARING_REBALANCE}),
    _G.PREPARING_REBALANCE: frozenset({_G.STABLE, _G.COMPLETING_REBALANCE, _G.EMPTY}),
    _G.COMPLETING_REBALANCE: frozenset({_G.PREPARING_REBALANCE}),
    _G.STABLE: frozenset({_G.COMPLETING_REBALANCE}),
    _G.DEAD: frozenset(
        {_G.STABLE, _G.PREPARING_REBALANCE, _G.COMPLETING_REBALANCE, _G.EMPTY, _G.DEAD}
    ),
}
"""Kafka's ``ClassicGroupState.validPreviousStates``: the states each state may follow."""


@attrs.frozen(slots=True)
class OffsetAndMetadata:
    """A committed offset, and where its record sits in the offsets log (to order commits)."""

    offset: int
    metadata: str | None
    commit_timestamp_ms: int
    log_offset: int


@attrs.define(eq=False)
class Member:
    """A group member, as the coordinator sees it. Not durable."""

    member_id: str
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[JoinGroupProtocol, ...]
    assignment: bytes = b""
    awaiting_join: JoinGroupRequest | None = None
    """The member's JoinGroup, held until the join phase completes."""
    awaiting_sync: SyncGroupRequest | None = None
    """The member's SyncGroup, held until the leader's assignment arrives."""
    heartbeat_deadline_ms: int | None = None
    is_new: bool = False
    """Added in this rebalance and not yet answered: its session timeout does not apply yet."""

    def metadata(self, protocol_name: str) -> bytes:
        for protocol in self.protocols:
            if protocol.name == protocol_name:
                return protocol.metadata
        raise AssertionError(f"member {self.member_id} does not support {protocol_name!r}")

    def vote(self, candidates: Iterable[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        allowed = set(candidates)
        for protocol in self.protocols:
            if protocol.name in allowed:
                return protocol.name
        raise AssertionError(f"member {self.member_id} supports none of {sorted(allowed)}")

    @property
    def has_satisfied_heartbeat(self) -> bool:
        """Kafka's rule: a member parked in a join or sync is alive, unless it is new."""
        if self.is_new:
            return False
        return self.awaiting_join is not None or self.awaiting_sync is not None


@attrs.define(eq=False)
class ClassicGroup:
    """One group's membership. Only ``generation_id`` and the protocol survive a crash."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    previous_state: GroupState | None = None
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = attrs.Factory(dict)
    pending_members: dict[str, int] = attrs.Factory(dict)
    """Member ids handed out with MEMBER_ID_REQUIRED, and when (ms) each expires unused."""
    pending_sync: dict[str, None] = attrs.Factory(dict)
    """Members of the new generation that have not sent SyncGroup yet (insertion-ordered)."""
    join_deadline_ms: int | None = None
    initial_delay: tuple[int, int] | None = None
    """(delay, remaining) while the first rebalance of an Empty group waits for more members."""
    new_member_added: bool = False
    sync_deadline_ms: int | None = None

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(
            m.awaiting_join is not None for m in self.members.values()
        )

    def candidate_protocols(self) -> list[str]:
        """Protocols every member supports, in the first member's order of preference."""
        members = list(self.members.values())
        if not members:
            return []
        names = [p.name for p in members[0].protocols]
        return [n for n in names if all(n in {p.name for p in m.protocols} for m in members)]

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        """Kafka's rule: an Empty group takes any protocol; otherwise the type must match and
        one of ``names`` must be supported by every member."""
        names = list(names)
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        candidates = set(self.candidate_protocols())
        return self.protocol_type == protocol_type and any(n in candidates for n in names)

    def select_protocol(self) -> str:
        """Each member votes for its preferred common protocol; the most votes win.

        Simplified: a tie goes to the protocol the first member prefers; Kafka's pick among
        tied protocols depends on hash order.
        """
        candidates = self.candidate_protocols()
        votes = {name: 0 for name in candidates}
        for member in self.members.values():
            votes[member.vote(candidates)] += 1
        return max(candidates, key=lambda name: votes[name])


@attrs.frozen(slots=True)
class MemberSnapshot:
    member_id: str
    client_id: str
    assignment: bytes
    awaiting_join: bool
    awaiting_sync: bool
    heartbeat_deadline_ms: int | None
    protocols: tuple[JoinGroupProtocol, ...] = ()
    session_timeout_ms: int = 0
    rebalance_timeout_ms: int = 0
    is_new: bool = False


@attrs.frozen(slots=True)
class GroupSnapshot:
    """A group's membership as values: for invariants, pictures and equality checks."""

    group_id: str
    state: GroupState
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    members: tuple[MemberSnapshot, ...]
    pending_members: tuple[str, ...]
    previous_state: GroupState | None = None
    pending_deadlines_ms: tuple[int, ...] = ()
    pending_sync: tuple[str, ...] = ()
    join_deadline_ms: int | None = None
    sync_deadline_ms: int | None = None
    initial_delay: tuple[int, int] | None = None
    new_member_added: bool = False


@attrs.frozen(slots=True)
class GroupEvent:
    """Something that happened to a group, for timelines: at ``at_ms``, ``what`` happened."""

    at_ms: int
    group_id: str
    what: str
    state: GroupState
    generation_id: int
    member_id: str | None = None


class Timer(enum.Enum):
    """What a group deadline is for."""

    JOIN = "the join phase ends (the rebalance timeout, or the initial delay)"
    SYNC = "the wait for SyncGroup ends"
    PENDING_MEMBER = "a member id handed out with MEMBER_ID_REQUIRED expires unused"
    SESSION = "a member's session times out"


P = ParamSpec("P")
R = TypeVar("R")


def _keeps_deadline(
    method: Callable[Concatenate[GroupCoordinator, P], R],
) -> Callable[Concatenate[GroupCoordinator, P], R]:
    """After the handler, whatever it did, recompute the coordinator's earliest deadline."""

    @functools.wraps(method)
    def handler(self: GroupCoordinator, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._update_deadline()

    return handler


LEFT = "left the group"
STATIC_MEMBERSHIP = "static membership (group_instance_id) is not simulated; leave it None"

Answer = tuple[ErrorCode, str | None]
OK: Answer = (ErrorCode.NONE, None)


def _offset_key(group_id: str, tp: TopicPartition) -> bytes:
    return json.dumps([group_id, tp.topic, tp.partition]).encode()


def _group_key(group_id: str) -> bytes:
    return json.dumps([group_id]).encode()


def _value(offset: int, metadata: str | None, now_ms: int) -> bytes:
    return json.dumps({"offset": offset, "metadata": metadata, "timestamp": now_ms}).encode()


def _group_value(group: ClassicGroup, now_ms: int) -> bytes:
    return json.dumps(
        {
            "protocol_type": group.protocol_type,
            "generation": group.generation_id,
            "protocol": group.protocol_name,
            "leader": group.leader_id,
            "members": list(group.members),
            "timestamp": now_ms,
        }
    ).encode()


class GroupCoordinator:
    """Kafka's group coordinator for one broker, over the ``__consumer_offsets`` log.

    Handlers return a response, or None when the answer is held (JoinGroup, SyncGroup); held
    answers, and answers to other members' held requests, go to ``outbox``. A refused request
    changes nothing. ``pending_offsets=False`` is the broken mode of the PENDING_TXN_OFFSETS
    safeguard: transactional offsets are current as soon as they are written, and an abort
    keeps them. ``generation_fencing=False`` is the broken mode of GENERATION_FENCING: a commit
    that names a member and a generation is believed, whether or not they are current.
    """

    def __init__(
        self,
        log: PartitionLog,
        *,
        partition_exists: Callable[[TopicPartition], bool],
        pending_offsets: bool = True,
        generation_fencing: bool = True,
        min_session_timeout_ms: int = 6_000,
        max_session_timeout_ms: int = 1_800_000,
        initial_rebalance_delay_ms: int = 3_000,
        coordinator_epoch: int = 0,
    ) -> None:
        self.log = log
        self._partition_exists = partition_exists
        self.pending_offsets = pending_offsets
        self.generation_fencing = generation_fencing
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.coordinator_epoch = coordinator_epoch
        self.groups: dict[str, ClassicGroup] = {}
        self.committed: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        # group -> producer id -> offsets waiting for that producer's marker
        self.pending: dict[str, dict[int, dict[TopicPartition, OffsetAndMetadata]]] = {}
        self.outbox: list[tuple[Request, Response]] = []
        self.events: deque[GroupEvent] = deque(maxlen=GROUP_EVENTS_KEPT)
        self.events_written = 0
        """How many events there have been, including those the deque let go."""
        self.deadline_ms: int | None = None
        """The earliest deadline of any group (ms), so callers can check cheaply."""
        self._members_created = 0

    # --- bookkeeping -----------------------------------------------------------------------

    def _event(
        self, group: ClassicGroup, now_ms: int, what: str, member_id: str | None = None
    ) -> None:
        self.events.append(
            GroupEvent(now_ms, group.group_id, what, group.state, group.generation_id, member_id)
        )
        self.events_written += 1

    def _transition(self, group: ClassicGroup, state: GroupState) -> None:
        if group.state not in LEGAL_PREVIOUS_GROUP_STATES[state]:
            raise AssertionError(  # a bug in this module, never a client's mistake
                f"illegal transition of group {group.group_id!r}: "
                f"{group.state.value} -> {state.value}"
            )
        group.previous_state = group.state
        group.state = state

    def _answer(self, request: Request, response: Response) -> None:
        self.outbox.append((request, response))

    def _new_member_id(self, client_id: str) -> str:
        """Simplified: Kafka appends a random UUID to the client id; here the coordinator
        epoch and a counter, so a run is reproducible and no id repeats after a restart."""
        self._members_created += 1
        return f"{client_id or 'member'}-{self.coordinator_epoch}-{self._members_created}"

    def _store_group(self, group: ClassicGroup, now_ms: int) -> None:
        """Write the group's generation to the offsets log (flushed) before it counts."""
        record = Record(
            value=_group_value(group, now_ms), key=_group_key(group.group_id), timestamp=now_ms
        )
        self.log.append(RecordBatch(records=(record,)))
        self.log.flush()

    def _timers(self) -> list[tuple[int, Timer, ClassicGroup, str | None]]:
        """Every pending deadline: (when in ms, what for, group, member), in a fixed order.

        Rebuilt whenever it is needed: a few groups of a few members cost nothing next to a
        request, and there is no second copy of the deadlines to keep in step.
        """
        timers: list[tuple[int, Timer, ClassicGroup, str | None]] = []
        for group in self.groups.values():
            if group.join_deadline_ms is not None:
                timers.append((group.join_deadline_ms, Timer.JOIN, group, None))
            if group.sync_deadline_ms is not None:
                timers.append((group.sync_deadline_ms, Timer.SYNC, group, None))
            for member_id, deadline in group.pending_members.items():
                timers.append((deadline, Timer.PENDING_MEMBER, group, member_id))
            for member in group.members.values():
                if member.heartbeat_deadline_ms is not None:
                    timers.append(
                        (member.heartbeat_deadline_ms, Timer.SESSION, group, member.member_id)
                    )
        return timers

    def _update_deadline(self) -> None:
        self.deadline_ms = min((t[0] for t in self._timers()), default=None)

    def take_delayed_responses(self) -> list[tuple[Request, Response]]:
        """Answers to held requests that are ready, oldest first, as (request, response)."""
        ready, self.outbox = self.outbox, []
        return ready

    # --- JoinGroup -------------------------------------------------------------------------

    def _join_refusal(self, request: JoinGroupRequest) -> Answer:
        if not request.group_id:
            return ErrorCode.INVALID_GROUP_ID, "the group id must not be empty"
        low, high = self.min_session_timeout_ms, self.max_session_timeout_ms
        if not low <= request.session_timeout_ms <= high:
            return (
                ErrorCode.INVALID_SESSION_TIMEOUT,
                f"session timeout {request.session_timeout_ms} ms is outside the broker's "
                f"range [{low}, {high}] ms (group_min/max_session_timeout_ms)",
            )
        if request.rebalance_timeout_ms < 0:
            return (
                ErrorCode.INVALID_REQUEST,
                f"rebalance timeout {request.rebalance_timeout_ms} ms is negative",
            )
        if request.group_instance_id is not None:
            return ErrorCode.UNSUPPORTED_VERSION, STATIC_MEMBERSHIP
        names = [p.name for p in request.protocols]
        if len(set(names)) != len(names):
            return ErrorCode.INVALID_REQUEST, f"a protocol is listed twice in {names}"
        group = self.groups.get(request.group_id)
        if group is None:
            if request.member_id:
                return (
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"group {request.group_id!r} has no member {request.member_id!r}; "
                    "join with an empty member id",
                )
            if not request.protocol_type or not names:
                return (
                    ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
                    "a join needs a protocol type and at least one protocol",
                )
            return OK
        if not group.supports_protocols(request.protocol_type, names):
            return (
                ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
                f"group {group.group_id!r} uses protocol type {group.protocol_type!r} with "
                f"{group.candidate_protocols()}; this member offers {request.protocol_type!r} "
                f"with {names}",
            )
        member_id = request.member_id
        if member_id and member_id not in group.pending_members and member_id not in group.members:
            return (
                ErrorCode.UNKNOWN_MEMBER_ID,
                f"group {group.group_id!r} has no member {member_id!r} (removed, or never "
                "joined); rejoin with an empty member id",
            )
        return OK

    @_keeps_deadline
    def join_group(self, request: JoinGroupRequest, now_ms: int) -> JoinGroupResponse | None:
        """Kafka's classic JoinGroup. Returns None while the answer is held."""
        error, message = self._join_refusal(request)
        if error is not ErrorCode.NONE:
            return request.error_response(error, message or error.name)
        group = self.groups.get(request.group_id)
        if group is None:
            group = ClassicGroup(request.group_id)
            self.groups[group.group_id] = group
            self._store_group(group, now_ms)
            self._event(group, now_ms, "group created")
        member_id = request.member_id
        if not member_id:
            member_id = self._new_member_id(request.client_id)
            group.pending_members[member_id] = now_ms + request.session_timeout_ms
            self._event(group, now_ms, "member id handed out (MEMBER_ID_REQUIRED)", member_id)
            return JoinGroupResponse(
                error_code=ErrorCode.MEMBER_ID_REQUIRED,
                member_id=member_id,
                error_message="join again with this member id",
            )
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            self._add_member(group, member_id, request, now_ms)
            return None
        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            self._update_member(group, member, request, now_ms, "member rejoined")
            return None
        same = member.protocols == request.protocols
        if group.state is GroupState.COMPLETING_REBALANCE and same:
            # It lost the first answer: answer again for the current generation.
            return self._join_answer(group, member)
        if group.state is GroupState.STABLE and same and group.leader_id != member_id:
            return self._join_answer(group, member)
        why = "leader rejoined" if same else "member changed its protocols"
        self._update_member(group, member, request, now_ms, why)
        return None

    def _join_answer(self, group: ClassicGroup, member: Member) -> JoinGroupResponse:
        members: tuple[JoinGroupMember, ...] = ()
        if member.member_id == group.leader_id:
            assert group.protocol_name is not None
            members = tuple(
                JoinGroupMember(m.member_id, None, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
        return JoinGroupResponse(
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            member_id=member.member_id,
            members=members,
        )

    def _add_member(
        self, group: ClassicGroup, member_id: str, request: JoinGroupRequest, now_ms: int
    ) -> None:
        member = Member(
            member_id=member_id,
            client_id=request.client_id,
            session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=request.protocols,
            awaiting_join=request,
            heartbeat_deadline_ms=now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new=True,
        )
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.previous_state is GroupState.EMPTY
        ):
            group.new_member_added = True
        if not group.members:
            group.protocol_type = request.protocol_type
        group.members[member_id] = member
        if group.leader_id is None:
            group.leader_id = member_id
        self._event(group, now_ms, "member joined", member_id)
        self._maybe_rebalance(group, now_ms, f"{member_id} joined")

    def _update_member(
        self, group: ClassicGroup, member: Member, request: JoinGroupRequest, now_ms: int, why: str
    ) -> None:
        member.protocols = request.protocols
        member.session_timeout_ms = request.session_timeout_ms
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        # Simplified as in Kafka: an earlier held JoinGroup of the member is never answered.
        member.awaiting_join = request
        self._event(group, now_ms, why, member.member_id)
        self._maybe_rebalance(group, now_ms, f"{member.member_id} {why}")

    def _maybe_rebalance(self, group: ClassicGroup, now_ms: int, reason: str) -> None:
        if group.state in LEGAL_PREVIOUS_GROUP_STATES[GroupState.PREPARING_REBALANCE]:
            self._prepare_rebalance(group, now_ms, reason)
        else:
            self._maybe_complete_join(group, now_ms)

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int, reason: str) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._fail_syncs(group, now_ms, ErrorCode.REBALANCE_IN_PROGRESS)
        group.sync_deadline_ms = None
        initial = group.state is GroupState.EMPTY
        self._transition(group, GroupState.PREPARING_REBALANCE)
        self._event(group, now_ms, f"rebalance started: {reason}")
        if initial:
            delay = self.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms - delay, 0)
            group.initial_delay = (delay, remaining)
            group.new_member_added = False
            group.join_deadline_ms = now_ms + delay
        elif group.has_all_members_joined():
            self._complete_join(group, now_ms)
        else:
            group.initial_delay = None
            group.join_deadline_ms = now_ms + group.rebalance_timeout_ms

    def _maybe_complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        """Complete the join phase once all members are in, except in an initial rebalance,
        which only its delay timer completes."""
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.previous_state is not GroupState.EMPTY
            and group.has_all_members_joined()
        ):
            self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        group.join_deadline_ms = None
        group.initial_delay = None
        for member in [m for m in group.members.values() if m.awaiting_join is None]:
            self._remove_member(
                group, member, now_ms, "did not rejoin within the rebalance timeout"
            )
        group.generation_id += 1
        group.pending_sync = {}
        if not group.members:
            group.protocol_name = None
            self._transition(group, GroupState.EMPTY)
            self._store_group(group, now_ms)
            self._event(group, now_ms, f"generation {group.generation_id}: no members")
            return
        group.protocol_name = group.select_protocol()
        self._transition(group, GroupState.COMPLETING_REBALANCE)
        self._event(
            group,
            now_ms,
            f"generation {group.generation_id}: {len(group.members)} "
            f"member{'s' if len(group.members) > 1 else ''}, "
            f"leader {group.leader_id}, protocol {group.protocol_name}",
        )
        for member in group.members.values():
            held = member.awaiting_join
            assert held is not None
            member.awaiting_join = None
            self._answer(held, self._join_answer(group, member))
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            member.is_new = False
            group.pending_sync[member.member_id] = None
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms

    # --- SyncGroup -------------------------------------------------------------------------

    def _member_refusal(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None,
    ) -> Answer:
        """The checks Kafka's SyncGroup and Heartbeat share: a known member, this generation."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, "the group id must not be empty"
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.EMPTY:
            return (
                ErrorCode.UNKNOWN_MEMBER_ID,
                f"group {group_id!r} has no members; join it first",
            )
        if group_instance_id is not None:
            return ErrorCode.UNKNOWN_MEMBER_ID, STATIC_MEMBERSHIP
        if member_id not in group.members:
            return (
                ErrorCode.UNKNOWN_MEMBER_ID,
                f"group {group_id!r} has no member {member_id!r}; rejoin with an empty member id",
            )
        if generation_id != group.generation_id:
            return (
                ErrorCode.ILLEGAL_GENERATION,
                f"generation {generation_id} is not the current generation of group "
                f"{group_id!r} ({group.generation_id}); rejoin the group",
            )
        return OK

    @_keeps_deadline
    def sync_group(self, request: SyncGroupRequest, now_ms: int) -> SyncGroupResponse | None:
        """Kafka's classic SyncGroup. Returns None while the answer waits for the leader."""
        error, message = self._member_refusal(
            request.group_id, request.member_id, request.generation_id, request.group_instance_id
        )
        if error is not ErrorCode.NONE:
            return request.error_response(error, message or error.name)
        group = self.groups[request.group_id]
        if (request.protocol_type is not None and request.protocol_type != group.protocol_type) or (
            request.protocol_name is not None and request.protocol_name != group.protocol_name
        ):
            named = [n for n in (request.protocol_type, request.protocol_name) if n is not None]
            return request.error_response(
                ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
                f"group {group.group_id!r} uses protocol type {group.protocol_type!r} with "
                f"{group.protocol_name!r}; this SyncGroup names {' and '.join(map(repr, named))}",
            )
        member = group.members[request.member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            return request.error_response(
                ErrorCode.REBALANCE_IN_PROGRESS, "the group is rebalancing; rejoin it"
            )
        group.pending_sync.pop(member.member_id, None)
        if group.state is GroupState.STABLE:
            if not group.pending_sync:
                group.sync_deadline_ms = None
            return SyncGroupResponse(
                protocol_type=group.protocol_type,
                protocol_name=group.protocol_name,
                assignment=member.assignment,
            )
        member.awaiting_sync = request
        if member.member_id != group.leader_id:
            return None
        given = {a.member_id: a.assignment for a in request.assignments}
        for each in group.members.values():
            each.assignment = given.get(each.member_id, b"")
        self._transition(group, GroupState.STABLE)
        self._store_group(group, now_ms)
        self._event(group, now_ms, f"generation {group.generation_id}: assignment stored")
        if not group.pending_sync:
            group.sync_deadline_ms = None
        for each in group.members.values():
            self._answer_sync(
                each,
                now_ms,
                SyncGroupResponse(
                    protocol_type=group.protocol_type,
                    protocol_name=group.protocol_name,
                    assignment=each.assignment,
                ),
            )
        return None

    def _answer_sync(self, member: Member, now_ms: int, response: SyncGroupResponse) -> None:
        """Answer the member's held SyncGroup, if any, and restart its session timer: a session
        that ran out while the member waited did not count (Kafka's propagateAssignment)."""
        held = member.awaiting_sync
        if held is None:
            return
        member.awaiting_sync = None
        self._answer(held, response)
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    def _fail_syncs(self, group: ClassicGroup, now_ms: int, error: ErrorCode) -> None:
        """Drop the generation's assignment and answer every held SyncGroup with ``error``."""
        for member in group.members.values():
            member.assignment = b""
            self._answer_sync(
                member,
                now_ms,
                SyncGroupResponse(
                    error_code=error, error_message="the group is rebalancing; rejoin it"
                ),
            )

    # --- Heartbeat, LeaveGroup ---------------------------------------------------------------

    @_keeps_deadline
    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        """Kafka's classic Heartbeat: keeps the member alive; says when to rejoin."""
        error, message = self._member_refusal(
            request.group_id, request.member_id, request.generation_id, request.group_instance_id
        )
        if error is not ErrorCode.NONE:
            return request.error_response(error, message or error.name)
        group = self.groups[request.group_id]
        member = group.members[request.member_id]
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return request.error_response(
                ErrorCode.REBALANCE_IN_PROGRESS, "the group is rebalancing; rejoin it"
            )
        return HeartbeatResponse()

    @_keeps_deadline
    def leave_group(self, request: LeaveGroupRequest, now_ms: int) -> LeaveGroupResponse:
        """Kafka's LeaveGroup (v3 and later: several members at once)."""
        if not request.group_id:
            return request.error_response(
                ErrorCode.INVALID_GROUP_ID, "the group id must not be empty"
            )
        if not request.members:
            return request.error_response(ErrorCode.INVALID_REQUEST, "no members to remove")
        group = self.groups.get(request.group_id)
        if group is None:
            return request.error_response(
                ErrorCode.UNKNOWN_MEMBER_ID, f"there is no group {request.group_id!r}"
            )
        answers = []
        left = False
        for identity in request.members:
            member_id = identity.member_id
            if identity.group_instance_id is None and member_id in group.pending_members:
                del group.pending_members[member_id]
                left = True
                answers.append(LeaveGroupMemberResponse(member_id))
            elif identity.group_instance_id is None and member_id in group.members:
                self._remove_member(group, group.members[member_id], now_ms, LEFT)
                left = True
                answers.append(LeaveGroupMemberResponse(member_id))
            else:
                answers.append(
                    LeaveGroupMemberResponse(
                        member_id,
                        identity.group_instance_id,
                        ErrorCode.UNKNOWN_MEMBER_ID,
                        error_message=f"group {group.group_id!r} has no member {member_id!r}: "
                        "it left already, was removed, or never joined",
                    )
                )
        if left:
            if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                self._maybe_rebalance(group, now_ms, "a member left")
            elif group.state is GroupState.PREPARING_REBALANCE:
                self._maybe_complete_join(group, now_ms)
        return LeaveGroupResponse(members=tuple(answers))

    def _remove_member(self, group: ClassicGroup, member: Member, now_ms: int, why: str) -> None:
        """Take a member out; its held JoinGroup is answered UNKNOWN_MEMBER_ID, as in Kafka."""
        held = member.awaiting_join
        if held is not None:
            member.awaiting_join = None
            self._answer(
                held,
                JoinGroupResponse(
                    error_code=ErrorCode.UNKNOWN_MEMBER_ID,
                    error_message=f"no longer a member of group {group.group_id!r}: {why}"
                    + ("" if why == LEFT else "; rejoin with an empty member id"),
                ),
            )
        del group.members[member.member_id]
        group.pending_sync.pop(member.member_id, None)
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)
        self._event(group, now_ms, f"member removed: {why}", member.member_id)

    # --- DeleteGroups --------------------------------------------------------------------------

    @_keeps_deadline
    def delete_groups(self, request: DeleteGroupsRequest, now_ms: int) -> DeleteGroupsResponse:
        """Delete Empty groups: tombstones for their offsets and their group record."""
        return DeleteGroupsResponse(tuple(self._delete_group(g, now_ms) for g in request.group_ids))

    def _delete_group(self, group_id: str, now_ms: int) -> DeletableGroupResult:
        if not group_id:
            return DeletableGroupResult(
                group_id, ErrorCode.INVALID_GROUP_ID, error_message="the group id must not be empty"
            )
        group = self.groups.get(group_id)
        if group is None:
            return DeletableGroupResult(
                group_id, ErrorCode.GROUP_ID_NOT_FOUND, error_message=f"no group {group_id!r}"
            )
        if group.state is not GroupState.EMPTY:
            return DeletableGroupResult(
                group_id,
                ErrorCode.NON_EMPTY_GROUP,
                error_message=f"group {group_id!r} has members; delete it once they have left",
            )
        if self.pending.get(group_id):
            return DeletableGroupResult(
                group_id,
                ErrorCode.NON_EMPTY_GROUP,
                error_message=f"group {group_id!r} has transactional offsets waiting for a "
                "marker; delete it after the transaction ends",
            )
        records = [
            Record(value=None, key=_offset_key(group_id, tp), timestamp=now_ms)
            for tp in self.committed.get(group_id, {})
        ]
        records.append(Record(value=None, key=_group_key(group_id), timestamp=now_ms))
        self.log.append(RecordBatch(records=tuple(records)))
        self.log.flush()
        self._transition(group, GroupState.DEAD)
        self._event(group, now_ms, "group deleted")
        del self.groups[group_id]
        self.committed.pop(group_id, None)
        return DeletableGroupResult(group_id)

    # --- time ----------------------------------------------------------------------------------

    @_keeps_deadline
    def expire(self, now_ms: int) -> None:
        """Fire every deadline due by ``now_ms``, earliest first, each at its own time."""
        fire = {
            Timer.JOIN: self._join_phase_ends,
            Timer.SYNC: self._sync_wait_ends,
            Timer.PENDING_MEMBER: self._pending_member_expires,
            Timer.SESSION: self._session_ends,
        }
        for _ in range(100_000):
            due = [t for t in self._timers() if t[0] <= now_ms]
            if not due:
                return
            at_ms, timer, group, member_id = min(due, key=lambda t: t[0])
            fire[timer](group, member_id, at_ms)
        raise AssertionError("group timers keep firing: a deadline is not moving forward")

    def _join_phase_ends(self, group: ClassicGroup, _: str | None, at_ms: int) -> None:
        delay = group.initial_delay
        if delay is not None and group.new_member_added and delay[1] != 0:
            # Kafka's initial rebalance: members keep arriving, so wait a little longer.
            group.new_member_added = False
            step = min(self.initial_rebalance_delay_ms, delay[1])
            group.initial_delay = (step, max(delay[1] - delay[0], 0))
            group.join_deadline_ms = at_ms + step
        else:
            self._complete_join(group, at_ms)

    def _sync_wait_ends(self, group: ClassicGroup, _: str | None, at_ms: int) -> None:
        group.sync_deadline_ms = None
        late = [group.members[m] for m in group.pending_sync]
        if late and group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            for member in late:
                self._remove_member(
                    group, member, at_ms, "did not send SyncGroup within the rebalance timeout"
                )
            self._prepare_rebalance(group, at_ms, "members did not sync in time")

    def _pending_member_expires(
        self, group: ClassicGroup, member_id: str | None, at_ms: int
    ) -> None:
        assert member_id is not None
        del group.pending_members[member_id]
        self._event(group, at_ms, "unused member id expired", member_id)
        if group.state is GroupState.PREPARING_REBALANCE and group.has_all_members_joined():
            self._complete_join(group, at_ms)

    def _session_ends(self, group: ClassicGroup, member_id: str | None, at_ms: int) -> None:
        assert member_id is not None
        member = group.members[member_id]
        member.heartbeat_deadline_ms = None
        if member.has_satisfied_heartbeat:
            return
        why = "join timed out" if member.is_new else "session timeout"
        self._remove_member(group, member, at_ms, why)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_rebalance(group, at_ms, f"{member_id}: {why}")
        elif group.state is GroupState.PREPARING_REBALANCE and group.has_all_members_joined():
            self._complete_join(group, at_ms)

    # --- offset commits: validation ------------------------------------------------------------

    def check_membership(
        self,
        group_id: str,
        *,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        transactional: bool,
    ) -> Answer:
        """Kafka's ``validateOffsetCommit``: may this committer commit for the group now?

        A member of the current generation may; so may a consumer outside the group
        (generation -1, no member id) while the group is Empty. A transactional commit without
        member and generation (the pre-KIP-447 form) is accepted in any state, as in Kafka.
        """
        group = self.groups.get(group_id)
        if group is None:
            if generation_id < 0 or not self.generation_fencing:
                return OK
            return (
                ErrorCode.ILLEGAL_GENERATION,
                f"there is no group {group_id!r}, so no generation {generation_id}: join the "
                "group first, or commit with generation -1 and no member id",
            )
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return OK
        claims_membership = generation_id >= 0 or member_id or group_instance_id is not None
        if claims_membership and self.generation_fencing:
            if not member_id:
                return (
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"a commit with generation {generation_id} needs the member id that group "
                    f"{group_id!r} gave; a consumer outside the group uses generation -1",
                )
            if group_instance_id is not None:
                return ErrorCode.UNKNOWN_MEMBER_ID, STATIC_MEMBERSHIP
            if member_id not in group.members:
                return (
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"group {group_id!r} has no member {member_id!r} (it was removed, or the "
                    "broker restarted); rejoin before committing",
                )
            if generation_id != group.generation_id:
                return (
                    ErrorCode.ILLEGAL_GENERATION,
                    f"generation {generation_id} is stale: group {group_id!r} is at "
                    f"generation {group.generation_id}; rejoin before committing",
                )
        elif not claims_membership and not transactional:
            return (
                ErrorCode.UNKNOWN_MEMBER_ID,
                f"group {group_id!r} has members ({group.state.value}); a consumer outside the "
                "group may commit only while the group is Empty",
            )
        if not transactional and group.state is GroupState.COMPLETING_REBALANCE:
            return (
                ErrorCode.REBALANCE_IN_PROGRESS,
                f"group {group_id!r} is completing a rebalance; commit after SyncGroup",
            )
        return OK

    # --- offset commits: partitions ---------------------------------------------------------

    def check_commit(
        self,
        group_id: str,
        partitions: Iterable[OffsetCommitPartition],
        *,
        generation_id: int = -1,
        member_id: str = "",
        group_instance_id: str | None = None,
        transactional: bool = False,
    ) -> tuple[ErrorCode, str | None, list[OffsetCommitPartitionResponse]]:
        """The membership check, then refusals per partition; any refusal writes nothing.

        Simplified: Kafka commits the partitions it can and fails only the others.
        """
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, "the group id must not be empty", []
        error, message = self.check_membership(
            group_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            transactional=transactional,
        )
        if error is not ErrorCode.NONE:
            return error, message, []
        refused = []
        for wanted in partitions:
            tp = TopicPartition(wanted.topic, wanted.partition)
            problem: tuple[ErrorCode, str] | None = None
            if not self._partition_exists(tp):
                problem = (
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    f"there is no partition {tp} to commit an offset for",
                )
            elif wanted.committed_offset < 0:
                problem = (
                    ErrorCode.INVALID_REQUEST,
                    f"offset {wanted.committed_offset} for {tp} is negative; commit the next "
                    "offset to consume, 0 or more",
                )
            elif (
                wanted.committed_metadata is not None
                and len(wanted.committed_metadata.encode()) > OFFSET_METADATA_MAX_BYTES
            ):
                problem = (
                    ErrorCode.OFFSET_METADATA_TOO_LARGE,
                    f"offset metadata for {tp} is over {OFFSET_METADATA_MAX_BYTES} bytes",
                )
            if problem is not None:
                refused.append(
                    OffsetCommitPartitionResponse(
                        wanted.topic, wanted.partition, problem[0], error_message=problem[1]
                    )
                )
        if refused:
            return refused[0].error_code, refused[0].error_message, refused
        return ErrorCode.NONE, None, []

    # --- writes ----------------------------------------------------------------------------

    def commit(
        self, group_id: str, partitions: tuple[OffsetCommitPartition, ...], now_ms: int
    ) -> None:
        """Write plain offset commits (already checked); they are current at once."""
        self._simple_group(group_id)
        batch = self._append(group_id, partitions, now_ms, producer=None)
        for position, wanted in enumerate(partitions):
            tp = TopicPartition(wanted.topic, wanted.partition)
            self.committed.setdefault(group_id, {})[tp] = OffsetAndMetadata(
                wanted.committed_offset,
                wanted.committed_metadata,
                now_ms,
                batch.base_offset + position,
            )

    def commit_transactional(
        self,
        group_id: str,
        partitions: tuple[OffsetCommitPartition, ...],
        now_ms: int,
        *,
        producer_id: int,
        producer_epoch: int,
    ) -> RecordBatch:
        """Write offsets inside a transaction (already checked); pending until the marker."""
        self._simple_group(group_id)
        batch = self._append(group_id, partitions, now_ms, producer=(producer_id, producer_epoch))
        for position, record in enumerate(batch.records):
            tp, offset = self._decode(record, batch.base_offset + position)
            self._hold(group_id, producer_id, tp, offset)
        return batch

    def _simple_group(self, group_id: str) -> None:
        """A commit for a group nobody joined creates it, Empty (Kafka's "simple" group)."""
        if group_id not in self.groups:
            self.groups[group_id] = ClassicGroup(group_id)

    def _append(
        self,
        group_id: str,
        partitions: tuple[OffsetCommitPartition, ...],
        now_ms: int,
        *,
        producer: tuple[int, int] | None,
    ) -> RecordBatch:
        records = tuple(
            Record(
                value=_value(p.committed_offset, p.committed_metadata, now_ms),
                key=_offset_key(group_id, TopicPartition(p.topic, p.partition)),
                timestamp=now_ms,
            )
            for p in partitions
        )
        if producer is None:
            batch = RecordBatch(records=records)
        else:
            batch = RecordBatch(
                records=records,
                producer_id=producer[0],
                producer_epoch=producer[1],
                is_transactional=True,
            )
        stamped = self.log.append(batch)
        self.log.flush()
        return stamped

    def _hold(
        self, group_id: str, producer_id: int, tp: TopicPartition, offset: OffsetAndMetadata
    ) -> None:
        if self.pending_offsets:
            self.pending.setdefault(group_id, {}).setdefault(producer_id, {})[tp] = offset
        else:
            self.committed.setdefault(group_id, {})[tp] = offset

    @staticmethod
    def _decode(record: Record, log_offset: int) -> tuple[TopicPartition, OffsetAndMetadata]:
        assert record.key is not None and record.value is not None
        _, topic, partition = json.loads(record.key)
        value = json.loads(record.value)
        return TopicPartition(topic, partition), OffsetAndMetadata(
            value["offset"], value["metadata"], value["timestamp"], log_offset
        )

    def complete_transaction(self, producer_id: int, result: ControlType) -> None:
        """The marker of ``producer_id`` reached the offsets log: settle its pending offsets.

        On COMMIT each pending offset becomes current unless a later commit already replaced
        it; on ABORT they are dropped (Kafka's ``replayEndTransactionMarker``).
        """
        for group_id in list(self.pending):
            offsets = self.pending[group_id].pop(producer_id, None)
            if not self.pending[group_id]:
                del self.pending[group_id]
            if offsets is None or result is not ControlType.COMMIT:
                continue
            committed = self.committed.setdefault(group_id, {})
            for tp, offset in offsets.items():
                existing = committed.get(tp)
                if existing is None or existing.log_offset < offset.log_offset:
                    committed[tp] = offset

    def load(self) -> None:
        """Rebuild groups and offsets by replaying the offsets log.

        Each group comes back Empty at its last stored generation, without members; committed
        offsets are current, transactional ones pending until their marker, tombstones delete.
        """
        self.groups = {}
        self.committed = {}
        self.pending = {}
        self.outbox = []
        for batch in self.log.batches():
            if batch.is_control:
                control_type = batch.control_type
                if control_type is not None:
                    self.complete_transaction(batch.producer_id, control_type)
                continue
            for position, record in enumerate(batch.records):
                if record.key is None:
                    continue
                key = json.loads(record.key)
                group_id = key[0]
                if len(key) == 1:
                    self._load_group(group_id, record.value)
                    continue
                self._simple_group(group_id)
                if record.value is None:
                    tp = TopicPartition(key[1], key[2])
                    self.committed.get(group_id, {}).pop(tp, None)
                    continue
                tp, offset = self._decode(record, batch.base_offset + position)
                if batch.is_transactional:
                    self._hold(group_id, batch.producer_id, tp, offset)
                else:
                    self.committed.setdefault(group_id, {})[tp] = offset
        self._update_deadline()

    def _load_group(self, group_id: str, value: bytes | None) -> None:
        if value is None:
            self.groups.pop(group_id, None)
            self.committed.pop(group_id, None)
            return
        fields = json.loads(value)
        group = ClassicGroup(group_id)
        group.generation_id = fields["generation"]
        group.protocol_type = fields["protocol_type"]
        self.groups[group_id] = group

    # --- reads -----------------------------------------------------------------------------

    def has_pending(self, group_id: str, tp: TopicPartition) -> bool:
        return any(tp in offsets for offsets in self.pending.get(group_id, {}).values())

    def fetch(
        self, group_id: str, partitions: tuple[TopicPartition, ...] | None, require_stable: bool
    ) -> list[OffsetFetchPartitionResponse]:
        committed = self.committed.get(group_id, {})
        wanted = sorted(committed) if partitions is None else list(partitions)
        results = []
        for tp in wanted:
            if require_stable and self.has_pending(group_id, tp):
                results.append(
                    OffsetFetchPartitionResponse(
                        tp.topic,
                        tp.partition,
                        error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT,
                        error_message=f"a transaction has offsets for {tp} waiting for its "
                        "marker; ask again shortly",
                    )
                )
                continue
            found = committed.get(tp)
            if found is None:
                results.append(OffsetFetchPartitionResponse(tp.topic, tp.partition))
            else:
                results.append(
                    OffsetFetchPartitionResponse(
                        tp.topic, tp.partition, found.offset, found.metadata
                    )
                )
        return results

    def snapshot(self) -> tuple[GroupSnapshot, ...]:
        return tuple(
            GroupSnapshot(
                group_id=group.group_id,
                state=group.state,
                generation_id=group.generation_id,
                protocol_type=group.protocol_type,
                protocol_name=group.protocol_name,
                leader_id=group.leader_id,
                members=tuple(
                    MemberSnapshot(
                        m.member_id,
                        m.client_id,
                        m.assignment,
                        m.awaiting_join is not None,
                        m.awaiting_sync is not None,
                        m.heartbeat_deadline_ms,
                        m.protocols,
                        m.session_timeout_ms,
                        m.rebalance_timeout_ms,
                        m.is_new,
                    )
                    for m in group.members.values()
                ),
                pending_members=tuple(group.pending_members),
                previous_state=group.previous_state,
                pending_deadlines_ms=tuple(group.pending_members.values()),
                pending_sync=tuple(group.pending_sync),
                join_deadline_ms=group.join_deadline_ms,
                sync_deadline_ms=group.sync_deadline_ms,
                initial_delay=group.initial_delay,
                new_member_added=group.new_member_added,
            )
            for group in self.groups.values()
        )
