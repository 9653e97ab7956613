"""The async ``Consumer``: aiokafka's API, with Kafka's group protocol and fetch rules, on trio.

Group membership is the sans-IO ``GroupMemberProtocol``; reading is the core's isolation
helper (``visible_records``). This module adds the I/O and Kafka's consumer timing:

- Heartbeats run in the background every ``heartbeat_interval``. An answer that means
  "rejoin" is remembered; the join itself happens inside the next poll, as in Kafka, so a
  consumer busy between polls delays the rebalance (up to ``max_poll_interval``). Until that
  poll the consumer keeps its partitions and its generation: ``assignment()``, ``position()``
  and ``commit()`` work on them, and the group accepts the commit.
- Before it rejoins, the consumer commits what it consumed (when auto-commit is on) and calls
  ``on_partitions_revoked``; after the join it calls ``on_partitions_assigned``.
- A poll waits no longer than its timeout, a join included (``poll(Duration)``, KIP-266): the
  JoinGroup (and the SyncGroup its answer leads to) stays out across polls, and the poll that
  finds the answer takes it.
- A partition's first position is its committed offset (asked with ``require_stable``, so a
  transaction still open on it makes the consumer wait), else ``auto_offset_reset``.
- Auto-commit (``enable_auto_commit``, default on) commits, inside a poll, the positions of
  the records that earlier polls returned, once ``auto_commit_interval`` has passed; and on
  close and before a rebalance. That is exactly where Kafka's loses or repeats records. The
  poll does not wait for the answer, but its OffsetCommit is on the wire before it returns.
- ``commit()`` of a member the group evicted raises ``CommitFailedError``; it never commits
  nothing, silently.
- ``close()`` ends calls in progress in other tasks, and runs even in a cancelled task
  (shielded, for at most ``request_timeout``), so that the member always leaves.
- A fetch that finds nothing waits ``fetch_max_wait`` before the next one (the broker's long
  poll, seen from the client).
- A consumer that does not poll within ``max_poll_interval`` leaves the group from its
  heartbeat task, as Kafka's does.

Simplified: one broker, so there is no FindCoordinator and no leader lookup; no static
membership; ``getmany`` returns at most ``max_poll_records`` records in all.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from minikafka.client.base import ClientBase, check_settings
from minikafka.client.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
    error_for,
)
from minikafka.core.assignors import ASSIGNORS
from minikafka.core.config import ConfigError
from minikafka.core.errors import ErrorCode
from minikafka.core.group_member import ConsumerGroupMetadata, GroupMemberProtocol, MemberState
from minikafka.core.isolation import visible_records
from minikafka.core.messages import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    HeartbeatResponse,
    IsolationLevel,
    JoinGroupRequest,
    JoinGroupResponse,
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    OffsetCommitPartition,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Request,
    Response,
    SyncGroupResponse,
)
from minikafka.core.records import ConsumerRecord, TopicPartition
from minikafka.sim.network import ConnectionBroken, RequestTimedOut

if TYPE_CHECKING:
    from minikafka.client.cluster import Cluster

__all__ = ["CONSUMER_DEFAULTS", "Consumer", "ConsumerRebalanceListener"]

CONSUMER_DEFAULTS: dict[str, Any] = {
    "client_id": None,
    "group_id": None,
    "isolation_level": "read_uncommitted",
    "enable_auto_commit": True,
    "auto_commit_interval": 5.0,
    "auto_offset_reset": "latest",
    "session_timeout": 45.0,
    "heartbeat_interval": 3.0,
    "max_poll_interval": 300.0,
    "partition_assignment_strategy": ("range", "cooperative-sticky"),
    "request_timeout": 30.0,
    "retry_backoff": 0.1,
    "fetch_max_wait": 0.5,
    "max_poll_records": 500,
    "max_partition_fetch_bytes": 1_048_576,
    "default_api_timeout": 60.0,
}
"""Kafka's consumer settings and defaults, in snake case; times in seconds."""

_RETRIABLE_GROUP = frozenset(
    {
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.UNSTABLE_OFFSET_COMMIT,
    }
)
_MEMBERSHIP = frozenset(
    {
        ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.ILLEGAL_GENERATION,
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.FENCED_INSTANCE_ID,
    }
)
_SUBSCRIBE_NEEDS_GROUP = (
    "subscribe() needs a group_id (the group hands out the partitions); use "
    "assign([...]) to read chosen partitions without a group"
)
JOIN_GROUP_TIMEOUT_LAPSE_S = 5.0
"""Kafka waits this much longer than the rebalance timeout for a JoinGroup answer."""


class ConsumerRebalanceListener(Protocol):
    """What ``subscribe(listener=...)`` calls around a rebalance (plain or async methods)."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> Any: ...

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> Any: ...


async def _call(listener: Any, name: str, partitions: set[TopicPartition]) -> None:
    method = getattr(listener, name, None) if listener is not None else None
    if method is None:
        return
    result = method(partitions)
    if inspect.isawaitable(result):
        await result


def _setting_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


@attrs.define(eq=False)
class _GroupCall:
    """A JoinGroup or SyncGroup that is out, and its answer once it came (None: it failed)."""

    member: GroupMemberProtocol
    request: Request
    counts: dict[str, int]
    """Partitions per subscribed topic when the JoinGroup went out (the leader assigns them)."""
    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None


class Consumer(ClientBase):
    """An aiokafka-style consumer on the simulated cluster (create it with
    ``cluster.consumer(*topics, **config)``; settings and defaults in ``CONSUMER_DEFAULTS``)."""

    kind = "consumer"

    def __init__(self, cluster: Cluster, *topics: str, **config: Any) -> None:
        check_settings("consumer", config, CONSUMER_DEFAULTS)
        settings = {**CONSUMER_DEFAULTS, **config}
        _setting_choice(
            "isolation_level", settings["isolation_level"], ("read_uncommitted", "read_committed")
        )
        _setting_choice(
            "auto_offset_reset", settings["auto_offset_reset"], ("earliest", "latest", "none")
        )
        strategies = settings["partition_assignment_strategy"]
        if isinstance(strategies, str):
            strategies = (strategies,)
        for name in strategies:
            _setting_choice("partition_assignment_strategy", name, ASSIGNORS)
        settings["partition_assignment_strategy"] = tuple(strategies)
        group_id = settings["group_id"]
        if group_id is None and topics:
            # Here, not in start(): a client that fails half-way through starting stays
            # connected, and nobody closes it.
            raise IllegalStateError(_SUBSCRIBE_NEEDS_GROUP)
        if group_id is None and config.get("enable_auto_commit"):
            raise ConfigError(
                "enable_auto_commit=True needs a group_id: offsets are committed for a group"
            )
        if group_id is None:
            settings["enable_auto_commit"] = False  # Kafka's rule when no group is given
        for name in (
            "session_timeout",
            "heartbeat_interval",
            "max_poll_interval",
            "request_timeout",
            "auto_commit_interval",
            "default_api_timeout",
        ):
            if not settings[name] > 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if settings["heartbeat_interval"] >= settings["session_timeout"]:
            raise ConfigError(
                "heartbeat_interval must be lower than session_timeout (Kafka advises a third)"
            )
        if not settings["max_poll_records"] >= 1:
            raise ConfigError("max_poll_records must be at least 1")
        client_id = settings["client_id"] or cluster.client_id("consumer")
        super().__init__(cluster, client_id)
        self.settings = settings
        self.group_id: str | None = group_id
        self._isolation = (
            IsolationLevel.READ_COMMITTED
            if settings["isolation_level"] == "read_committed"
            else IsolationLevel.READ_UNCOMMITTED
        )
        self._request_timeout: float = settings["request_timeout"]
        self._backoff: float = settings["retry_backoff"]
        self._api_timeout: float = settings["default_api_timeout"]
        self._member: GroupMemberProtocol | None = None
        self._listener: Any = None
        self._manual: tuple[TopicPartition, ...] | None = None
        self._positions: dict[TopicPartition, int] = {}
        # Fetched records not yet handed out: the records, the index of the next one to hand
        # out, and the position after the fetch (past markers and skipped batches).
        self._buffers: dict[TopicPartition, list[ConsumerRecord]] = {}
        self._buffer_at: dict[TopicPartition, int] = {}
        self._buffer_next: dict[TopicPartition, int] = {}
        self._end: dict[TopicPartition, int] = {}
        """Per partition, the end the last fetch reported: the high watermark, or the last
        stable offset under read_committed (what ``current_lag`` counts to)."""
        self._pending_group: Request | None = None
        self._to_revoke: set[TopicPartition] = set()
        self._revoke_commits = True
        self._last_poll = 0.0
        self._next_auto_commit = 0.0
        self._partition_counts: dict[str, int] = {}
        self._initial_topics = tuple(topics)
        self._closing = False
        self._group_call: _GroupCall | None = None
        self._group_retry_at = 0.0

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, and subscribe to the topics given at creation (the join happens in the
        first poll, as in Kafka)."""
        await self._connect()
        now = self._network.now()
        self._last_poll = now
        self._next_auto_commit = now + self.settings["auto_commit_interval"]
        if self._initial_topics:
            self.subscribe(self._initial_topics)

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit what was consumed (with auto-commit), leave the group, and disconnect.

        Calls in progress in other tasks (a ``getmany`` in a polling loop) end at once with
        ``IllegalStateError``: a closing consumer must not rejoin the group after it left, or
        the group would wait a whole session timeout for the member that never comes.

        A close in a cancelled task (an ``async with`` block whose task trio cancels) still
        runs, shielded, for at most ``request_timeout`` (Kafka's close timeout), and the
        consumer is disconnected in any case: else its heartbeat would keep a member that
        reads nothing in the group, for ever.
        """
        if self.closed or self._closing:
            return
        self._check_running()
        for scope in list(self._calls):
            scope.cancel()
        try:
            shielded = trio.CancelScope(
                shield=True, deadline=trio.current_time() + self._request_timeout
            )
            with shielded, self._guard():
                self._closing = True
                consumed = self._committable()
                if self.settings["enable_auto_commit"] and consumed:
                    await self._commit_quietly(consumed)
                member = self._member
                if member is not None:
                    leave = member.leave_request()
                    if leave is not None:
                        await self._request_once(leave, timeout=self._request_timeout)
        except (KafkaError, RequestTimedOut, ConnectionBroken):
            pass  # closing anyway; the group will time the member out
        finally:
            if not self.closed:
                self._network.note("close", self.client_id)
                self._disconnect(crashed=False)

    def _start_background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._heartbeat_loop)

    def _check_running(self) -> None:
        super()._check_running()
        if self._closing:
            raise IllegalStateError(f"{self.client_id} is closed; create a new client")

    # --- what to read -------------------------------------------------------------------

    def subscribe(
        self, topics: Iterable[str], *, listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Join the group for ``topics``; partitions come from the group's assignment."""
        self._check_running()
        if isinstance(topics, str):
            topics = (topics,)
        topics = tuple(topics)
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        if self.group_id is None:
            raise IllegalStateError(_SUBSCRIBE_NEEDS_GROUP)
        if self._manual is not None:
            raise IllegalStateError(
                "this consumer reads assigned partitions; subscribe() and assign() do not mix"
            )
        member = self._member
        if member is not None and tuple(sorted(set(topics))) == member.topics:
            self._listener = listener
            return
        assignors = tuple(self.settings["partition_assignment_strategy"])
        self._member = GroupMemberProtocol(
            self.group_id,
            topics,
            client_id=self.client_id,
            assignors=assignors,
            session_timeout_ms=int(self.settings["session_timeout"] * 1000),
            rebalance_timeout_ms=int(self.settings["max_poll_interval"] * 1000),
            heartbeat_interval_ms=int(self.settings["heartbeat_interval"] * 1000),
        )
        self._listener = listener
        self._network.note("subscribe", self.client_id, ", ".join(topics))

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, with no group membership."""
        self._check_running()
        if self._member is not None:
            raise IllegalStateError(
                "this consumer is subscribed; subscribe() and assign() do not mix"
            )
        chosen = tuple(sorted(set(partitions)))
        for tp in chosen:
            if not isinstance(tp, TopicPartition):
                raise TypeError(f"assign takes TopicPartition values, not {tp!r}")
        self._manual = chosen
        for tp in list(self._positions):
            if tp not in chosen:
                self._drop(tp)
        self._network.note("assign", self.client_id, ", ".join(map(str, chosen)))

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads now (as far as it knows)."""
        return set(self._owned())

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This consumer's group, generation and member id, for
        ``producer.send_offsets_to_transaction`` (KIP-447)."""
        if self.group_id is None:
            raise IllegalStateError("group_metadata() needs a consumer with a group_id")
        if self._member is None:
            return ConsumerGroupMetadata(self.group_id)
        return self._member.group_metadata()

    @property
    def member(self) -> GroupMemberProtocol | None:
        """The sans-IO group membership (for pictures and tests)."""
        return self._member

    # --- polling --------------------------------------------------------------------------

    async def getmany(
        self,
        *partitions: TopicPartition,
        timeout: float = 0.0,
        max_records: int | None = None,
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records from the assigned partitions (or just ``partitions``), waiting up to
        ``timeout`` simulated seconds for some to arrive; ``{}`` if none did."""
        with self._guard():
            self._check_reading("getmany()")
            limit = max_records if max_records is not None else self.settings["max_poll_records"]
            if limit < 1:
                raise ValueError("max_records must be at least 1")
            deadline = self._network.now() + timeout
            while True:
                await self._network.wait_if_paused(self.client_id)
                self._last_poll = self._network.now()
                if await self._poll_housekeeping(deadline):
                    records = self._take(limit, partitions)
                    if records:
                        self._network.note(
                            "poll",
                            self.client_id,
                            ", ".join(
                                f"{tp}:{rs[0].offset}-{rs[-1].offset}" for tp, rs in records.items()
                            ),
                        )
                        return records
                    fetched = await self._fetch(partitions)
                    if fetched:
                        continue
                now = self._network.now()
                if now >= deadline:
                    return {}
                # Until a deadline through Network.at, not trio.sleep(deadline - now): a
                # difference of rounded times can be too small to move trio's clock.
                wake = min(now + self.settings["fetch_max_wait"], deadline)
                await trio.sleep_until(self._network.at(wake))

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord:
        """The next record, waiting as long as it takes."""
        while True:
            batch = await self.getmany(*partitions, timeout=math.inf, max_records=1)
            for records in batch.values():
                return records[0]

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self

    async def __anext__(self) -> ConsumerRecord:
        return await self.getone()

    # --- positions and offsets --------------------------------------------------------------

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record a poll would return from ``tp``."""
        with self._guard():
            self._check_owned(tp, "position()")
            if tp not in self._positions:
                await self._initialise_positions([tp])
            return self._positions[tp]

    def current_lag(self, tp: TopicPartition) -> int | None:
        """How many records ``tp`` has past this consumer's position, as of its last fetch
        (KIP-695): up to the high watermark, or to the last stable offset under
        read_committed. None while it is not known here: no position yet, or no fetch."""
        self._check_running()
        if tp not in self._positions or tp not in self._end:
            return None
        return max(0, self._end[tp] - self._positions[tp])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next poll read ``tp`` from ``offset``."""
        self._check_running()
        self._check_owned(tp, "seek()")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"seek needs an offset >= 0, not {offset!r}")
        self._positions[tp] = offset
        self._buffers.pop(tp, None)
        self._buffer_at.pop(tp, None)
        self._buffer_next.pop(tp, None)

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (None if nothing was committed)."""
        with self._guard():
            group = self._require_group("committed()")
            offsets = await self._fetch_committed(group, [tp])
            return offsets.get(tp)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read, per partition), or by default the
        positions of everything polls have returned so far. Waits for the answer."""
        with self._guard():
            self._require_group("commit()")
            if offsets is None:
                chosen = self._committable()
            else:
                chosen = {}
                for tp, offset in offsets.items():
                    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                        raise ValueError(f"the offset for {tp} must be an integer >= 0")
                    chosen[tp] = offset
            if chosen:
                await self._commit(chosen)

    # --- internals: checks ------------------------------------------------------------------

    def _require_group(self, call: str) -> str:
        if self.group_id is None:
            raise IllegalStateError(
                f"{call} needs a consumer created with a group_id: offsets belong to a group"
            )
        return self.group_id

    def _check_reading(self, call: str) -> None:
        if self._member is None and self._manual is None:
            raise IllegalStateError(
                f"{call} before subscribe() or assign(): tell the consumer what to read first "
                "(cluster.consumer('topic', group_id=...) subscribes for you)"
            )

    def _check_owned(self, tp: TopicPartition, call: str) -> None:
        if tp not in self._owned():
            raise IllegalStateError(
                f"{call} for {tp}, which this consumer is not assigned (it has "
                f"{', '.join(map(str, self._owned())) or 'none'})"
            )

    def _owned(self) -> tuple[TopicPartition, ...]:
        if self._manual is not None:
            return self._manual
        if self._member is not None and self._member.state is MemberState.STABLE:
            return self._member.assignment
        return ()

    def _consumed(self) -> dict[TopicPartition, int]:
        owned = set(self._owned())
        return {tp: offset for tp, offset in sorted(self._positions.items()) if tp in owned}

    def _committable(self) -> dict[TopicPartition, int]:
        """What ``commit()`` commits: the positions of the partitions the consumer still holds,
        including those it gives up in the next poll (a heartbeat said "rebalance", or that
        the member is gone). Kafka revokes them only inside that poll: until then a commit of
        them goes out with the generation the member had, and the group accepts it, or refuses
        it (CommitFailedError) if the member was evicted. Never nothing, silently."""
        held = set(self._owned()) | self._to_revoke
        return {tp: offset for tp, offset in sorted(self._positions.items()) if tp in held}

    def _drop(self, tp: TopicPartition) -> None:
        self._positions.pop(tp, None)
        self._end.pop(tp, None)
        self._buffers.pop(tp, None)
        self._buffer_at.pop(tp, None)
        self._buffer_next.pop(tp, None)

    # --- internals: one poll ----------------------------------------------------------------

    async def _poll_housekeeping(self, deadline: float) -> bool:
        """What a Kafka poll does before it fetches: auto-commit, rebalance, positions.

        True when the consumer is ready to fetch. False when the poll's ``deadline`` came
        first (Kafka's ``poll(Duration)``, KIP-266): a group request still out stays out, and
        a later poll takes its answer; an OffsetFetch or ListOffsets is simply asked again.
        """
        self._check_running()  # a close() in another task may have begun meanwhile
        now = self._network.now()
        if self.settings["enable_auto_commit"] and now >= self._next_auto_commit:
            self._next_auto_commit = now + self.settings["auto_commit_interval"]
            consumed = self._consumed()
            if consumed:
                await self._start_commit_in_background(consumed)
        if self._member is not None and not await self._ensure_group(deadline):
            return False
        missing = [tp for tp in self._owned() if tp not in self._positions]
        if missing:
            # A poll without a timeout (getone) keeps asking, as Kafka's poll does, while
            # pending transactional offsets hold the OffsetFetch back.
            with (
                trio.move_on_at(self._network.at(deadline)),
                contextlib.suppress(KafkaTimeoutError),
            ):
                await self._initialise_positions(missing)
            return all(tp in self._positions for tp in missing)
        return True

    async def _start_commit_in_background(self, offsets: dict[TopicPartition, int]) -> None:
        """Start an asynchronous commit whose request is sent before this returns.

        Kafka's auto-commit does not wait for its answer, but the poll puts the OffsetCommit on
        the coordinator's connection before it returns: whatever the application sends next
        (a ``committed()``, a close) comes after it, and a crash right after the poll does not
        undo it. ``nursery.start`` gives that order: the task runs until its first checkpoint,
        which is after the network queued the request, before this call resumes.
        """
        assert self._nursery is not None
        await self._nursery.start(self._commit_in_background, offsets)

    async def _commit_in_background(
        self, offsets: dict[TopicPartition, int], task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await self._commit_quietly(offsets)

    async def _commit_quietly(self, offsets: dict[TopicPartition, int]) -> None:
        """An asynchronous auto-commit: a failure is written to the trace, not raised."""
        try:
            await self._commit(offsets)
        except (KafkaError, CommitFailedError) as error:
            self._network.note("commit", self.client_id, f"auto-commit failed: {error}")

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        group = self._require_group("commit()")
        deadline = self._network.now() + self._api_timeout
        shown = ", ".join(f"{tp}:{offset}" for tp, offset in sorted(offsets.items()))
        while True:
            member = self._member
            if member is not None and member.generation_id < 0:
                # Kafka's client sends no commit outside a stable generation.
                raise CommitFailedError(
                    f"cannot commit {shown}: this consumer is not a member of a generation of "
                    f"group {group!r} now (the group evicted it, or it is rejoining), so its "
                    "partitions may belong to someone else. It rejoins on the next poll; the "
                    "records since the last commit will be read again",
                    code=ErrorCode.REBALANCE_IN_PROGRESS,
                )
            if member is not None:
                request = member.commit_request(offsets)
            else:
                request = OffsetCommitRequest(
                    group_id=group,
                    partitions=tuple(
                        OffsetCommitPartition(tp.topic, tp.partition, offset)
                        for tp, offset in sorted(offsets.items())
                    ),
                )
            response = await self._request(
                request,
                timeout=self._request_timeout,
                deadline=deadline,
                backoff=self._backoff,
            )
            assert isinstance(response, OffsetCommitResponse)
            codes = [
                p.error_code for p in response.partitions if p.error_code is not ErrorCode.NONE
            ]
            if not codes:
                self._network.note("commit", self.client_id, shown, api="OffsetCommit")
                return
            code = codes[0]
            message = next(p.error_message for p in response.partitions if p.error_code is code)
            if code in _MEMBERSHIP and member is not None:
                before = set(member.assignment)
                again = member.on_commit_response(response)
                self._after_membership_change(before, again)
                raise CommitFailedError(
                    f"the group refused the commit of {shown} ({message or code.name}): this "
                    "consumer is no longer a member of that generation, and its partitions "
                    "may belong to someone else now. It rejoins on the next poll; the records "
                    "since the last commit will be read again",
                    code=code,
                )
            if code not in _RETRIABLE_GROUP:
                raise error_for(code, message)
            if self._network.now() + self._backoff > deadline:
                raise KafkaTimeoutError(f"the commit of {shown} did not succeed in time")
            await trio.sleep(self._backoff)

    def _after_membership_change(
        self, before: set[TopicPartition], request: JoinGroupRequest | None
    ) -> None:
        """The member decided to rejoin: remember its request and what it gave up."""
        member = self._member
        assert member is not None
        if request is not None:
            self._pending_group = request
        gone = before - set(member.assignment)
        if gone:
            # Lost (not revoked) when the member was reset: no commit can succeed for them.
            self._revoke_commits = member.generation_id >= 0
            self._to_revoke |= gone

    async def _ensure_group(self, deadline: float) -> bool:
        """Join (or rejoin) until the member is stable, running the listener around it.

        False if ``deadline`` (simulated seconds) passed first. A JoinGroup or SyncGroup goes
        out from a background task and stays out across polls, as Kafka's join future does;
        each answer is taken inside a poll, which sends the next request.
        """
        member = self._member
        assert member is not None
        if (
            member.state is MemberState.STABLE
            and self._pending_group is None
            and self._group_call is None
            and not member.rejoin_needed
        ):
            return True
        if self._group_call is None:
            before = set(member.assignment)
            if member.state is MemberState.STABLE and self._pending_group is None:
                await self._commit_before_rejoin()
                self._pending_group = member.join_request()
                self._after_membership_change(before, None)
            await self._revoke()
        while True:
            call = self._group_call
            if call is None:
                if self._network.now() < self._group_retry_at:
                    with trio.move_on_at(self._network.at(deadline)):
                        await trio.sleep_until(self._network.at(self._group_retry_at))
                    if self._network.now() < self._group_retry_at:
                        return False
                request = self._pending_group
                self._pending_group = None
                if request is None:
                    if member.state is MemberState.STABLE and not member.rejoin_needed:
                        break
                    if member.state is MemberState.STABLE:
                        await self._commit_before_rejoin()
                    before = set(member.assignment)
                    request = member.join_request()
                    self._after_membership_change(before, None)
                    await self._revoke()
                counts: dict[str, int] = {}
                if isinstance(request, JoinGroupRequest):
                    counts = await self._topic_partitions(member.topics)
                call = await self._send_group_request(request, counts)
            with trio.move_on_at(self._network.at(deadline)):
                await call.done.wait()
            if not call.done.is_set():
                return False  # the answer is still to come; a later poll takes it
            self._group_call = None
            response = call.response
            if response is None:  # timed out, or the connection broke
                member.on_request_failed()
                self._group_retry_at = self._network.now() + self._backoff
                continue
            before = set(member.assignment)
            following: Request | None
            if isinstance(response, JoinGroupResponse):  # an error (a success was chained)
                following = member.on_join_response(response, call.counts)
            else:
                assert isinstance(response, SyncGroupResponse)
                following = member.on_sync_response(response)
            gone = before - set(member.assignment)
            if gone:
                self._to_revoke |= gone
                self._revoke_commits = False
                await self._revoke()
            if following is None and member.state is not MemberState.STABLE:
                # An error: wait, then join again.
                self._group_retry_at = self._network.now() + self._backoff
            self._pending_group = following
            if member.state is MemberState.STABLE and following is None:
                break
        assigned = set(member.assignment) - set(self._positions)
        self._network.note(
            "assigned",
            self.client_id,
            f"generation {member.generation_id}: "
            + (", ".join(map(str, member.assignment)) or "nothing"),
        )
        await _call(self._listener, "on_partitions_assigned", assigned)
        return True

    async def _commit_before_rejoin(self) -> None:
        """Kafka's ``onJoinPrepare``: with auto-commit, commit what was consumed before the
        member rejoins. An eager member gives up everything in the join, and ``_revoke``
        commits it; a cooperative one keeps its partitions into the join, and those the new
        assignment takes away go to their new owner without another commit, so commit here."""
        member = self._member
        assert member is not None
        if not (self.settings["enable_auto_commit"] and member.cooperative):
            return
        consumed = self._consumed()
        if consumed and member.generation_id >= 0:
            await self._commit_quietly(consumed)

    async def _send_group_request(self, request: Request, counts: dict[str, int]) -> _GroupCall:
        """Send a JoinGroup or SyncGroup from a background task (a JoinGroup that succeeds is
        followed by its SyncGroup there); the poll waits for the last answer as long as it
        may, and a later poll as long as it may after that."""
        assert self._member is not None
        call = _GroupCall(self._member, request, counts)
        self._group_call = call
        assert self._nursery is not None
        await self._nursery.start(self._group_request_task, call)
        return call

    async def _group_request_task(
        self, call: _GroupCall, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        # The coordinator holds a JoinGroup until the rebalance completes, up to the
        # rebalance timeout (max_poll_interval): Kafka waits that long and a little more.
        timeout = max(
            self._request_timeout, self.settings["max_poll_interval"] + JOIN_GROUP_TIMEOUT_LAPSE_S
        )
        request = call.request
        try:
            while True:
                response = await self._request_once(request, timeout=timeout)
                if (
                    isinstance(response, JoinGroupResponse)
                    and response.error_code is ErrorCode.NONE
                    and call.member is self._member
                ):
                    # Kafka sends the SyncGroup from the JoinGroup answer's handler, whether or
                    # not the application is polling; a success changes no partitions.
                    following = call.member.on_join_response(response, call.counts)
                    if following is not None:
                        request = following
                        continue
                call.response = response
                return
        except (RequestTimedOut, ConnectionBroken):
            call.response = None
        finally:
            call.done.set()

    async def _revoke(self) -> None:
        """Give up partitions: commit them first (auto-commit), then tell the listener."""
        revoked, self._to_revoke = self._to_revoke, set()
        if not revoked:
            return
        if self.settings["enable_auto_commit"] and self._revoke_commits:
            offsets = {tp: o for tp, o in self._positions.items() if tp in revoked}
            if offsets:
                try:
                    await self._commit(offsets)
                except KafkaError as error:
                    self._network.note(
                        "commit", self.client_id, f"commit on revoke failed: {error}"
                    )
        self._revoke_commits = True
        for tp in revoked:
            self._drop(tp)
        self._network.note("revoked", self.client_id, ", ".join(map(str, sorted(revoked))))
        await _call(self._listener, "on_partitions_revoked", revoked)

    async def _topic_partitions(self, topics: Iterable[str]) -> dict[str, int]:
        wanted = tuple(sorted(set(topics)))
        missing = tuple(t for t in wanted if t not in self._partition_counts)
        if missing:
            response = await self._request(
                MetadataRequest(topics=missing, allow_auto_topic_creation=False),
                timeout=self._request_timeout,
                deadline=self._network.now() + self._api_timeout,
                backoff=self._backoff,
            )
            assert isinstance(response, MetadataResponse)
            for topic in response.topics:
                if topic.error_code is ErrorCode.NONE:
                    self._partition_counts[topic.name] = len(topic.partitions)
        return {t: self._partition_counts[t] for t in wanted if t in self._partition_counts}

    async def _fetch_committed(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        response = await self._request(
            OffsetFetchRequest(group_id=group, partitions=tuple(partitions), require_stable=True),
            timeout=self._request_timeout,
            deadline=self._network.now() + self._api_timeout,
            backoff=self._backoff,
            retry_if=lambda r: (
                r.error_code in _RETRIABLE_GROUP
                or any(p.error_code in _RETRIABLE_GROUP for p in r.partitions)
            ),
        )
        assert isinstance(response, OffsetFetchResponse)
        if response.error_code is not ErrorCode.NONE:
            raise error_for(response.error_code, response.error_message)
        found = {}
        for part in response.partitions:
            if part.error_code is not ErrorCode.NONE:
                raise error_for(part.error_code, part.error_message)
            if part.committed_offset >= 0:
                found[TopicPartition(part.topic, part.partition)] = part.committed_offset
        return found

    async def _initialise_positions(self, partitions: list[TopicPartition]) -> None:
        """Committed offsets first; the rest by ``auto_offset_reset``."""
        committed: dict[TopicPartition, int] = {}
        if self.group_id is not None:
            committed = await self._fetch_committed(self.group_id, partitions)
        self._positions.update(committed)
        rest = [tp for tp in partitions if tp not in committed]
        if rest:
            await self._reset(rest)

    async def _reset(self, partitions: list[TopicPartition]) -> None:
        policy = self.settings["auto_offset_reset"]
        if policy == "none":
            raise OffsetOutOfRangeError(
                f"no committed offset for {', '.join(map(str, partitions))} and "
                "auto_offset_reset='none'; seek() to an offset, or choose 'earliest' or 'latest'"
            )
        timestamp = EARLIEST_TIMESTAMP if policy == "earliest" else LATEST_TIMESTAMP
        response = await self._request(
            ListOffsetsRequest(
                partitions=tuple(
                    ListOffsetsPartition(tp.topic, tp.partition, timestamp) for tp in partitions
                ),
                isolation_level=self._isolation,
            ),
            timeout=self._request_timeout,
            deadline=self._network.now() + self._api_timeout,
            backoff=self._backoff,
        )
        assert isinstance(response, ListOffsetsResponse)
        for part in response.partitions:
            tp = TopicPartition(part.topic, part.partition)
            if part.error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                raise UnknownTopicOrPartitionError(
                    f"{tp} does not exist; create the topic first, or assign partitions it has"
                )
            if part.error_code is not ErrorCode.NONE:
                raise error_for(part.error_code, part.error_message)
            self._positions[tp] = part.offset

    def _take(
        self, limit: int, only: tuple[TopicPartition, ...]
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out buffered records, moving positions past them."""
        taken: dict[TopicPartition, list[ConsumerRecord]] = {}
        owned = set(self._owned())
        for tp in sorted(self._buffers):
            if limit <= 0:
                break
            if (only and tp not in only) or tp not in owned:
                continue
            buffer = self._buffers[tp]
            # A read index, not a slice of the rest: handing out a large buffer a poll at a
            # time would otherwise copy what is left on every poll.
            at = self._buffer_at[tp]
            chunk = buffer[at : at + limit]
            if chunk:
                taken[tp] = chunk
                limit -= len(chunk)
                at += len(chunk)
                self._positions[tp] = chunk[-1].offset + 1
            if at < len(buffer):
                self._buffer_at[tp] = at
            else:
                del self._buffers[tp]
                del self._buffer_at[tp]
                self._positions[tp] = self._buffer_next.pop(tp, self._positions[tp])
        return taken

    async def _fetch(self, only: tuple[TopicPartition, ...]) -> bool:
        """One fetch for the partitions with no buffered records; True if records came."""
        wanted = [
            tp
            for tp in self._owned()
            if tp in self._positions and tp not in self._buffers and (not only or tp in only)
        ]
        if not wanted:
            return False
        request = FetchRequest(
            partitions=tuple(
                FetchPartition(
                    tp.topic,
                    tp.partition,
                    self._positions[tp],
                    self.settings["max_partition_fetch_bytes"],
                )
                for tp in wanted
            ),
            isolation_level=self._isolation,
        )
        try:
            response = await self._request_once(request, timeout=self._request_timeout)
        except (RequestTimedOut, ConnectionBroken):
            await trio.sleep(self._backoff)
            return False
        assert isinstance(response, FetchResponse)
        got = False
        for part in response.partitions:
            tp = TopicPartition(part.topic, part.partition)
            if tp not in self._positions or tp not in set(self._owned()):
                continue  # revoked or moved meanwhile
            position = self._positions[tp]
            if part.error_code is ErrorCode.OFFSET_OUT_OF_RANGE:
                self._network.note("reset", self.client_id, f"{tp}: offset {position} out of range")
                del self._positions[tp]
                await self._reset([tp])
                continue
            if part.error_code is not ErrorCode.NONE:
                continue  # retried on the next poll
            committed_only = self._isolation is IsolationLevel.READ_COMMITTED
            self._end[tp] = part.last_stable_offset if committed_only else part.high_watermark
            visible = visible_records(
                part.batches, part.aborted_transactions, position, self._isolation
            )
            if visible.slices:
                # Each record becomes a ConsumerRecord once, here; polls hand out slices.
                topic, partition = tp.topic, tp.partition
                self._buffers[tp] = [
                    ConsumerRecord(
                        topic,
                        partition,
                        offset,
                        record.timestamp,
                        record.key,
                        record.value,
                        record.headers,
                    )
                    for first, records in visible.slices
                    for offset, record in enumerate(records, first)
                ]
                self._buffer_at[tp] = 0
                self._buffer_next[tp] = visible.next_offset
                got = True
            else:
                self._positions[tp] = visible.next_offset
        return got

    # --- internals: the heartbeat ---------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Heartbeat while a member; leave when the application stops polling."""
        interval = self.settings["heartbeat_interval"]
        while True:
            await trio.sleep(interval)
            member = self._member
            if member is None:
                continue
            await self._network.wait_if_paused(self.client_id)
            now = self._network.now()
            if (
                member.state is MemberState.STABLE
                and now - self._last_poll > self.settings["max_poll_interval"]
            ):
                self._network.note(
                    "leave",
                    self.client_id,
                    f"no poll for {now - self._last_poll:.1f}s > max_poll_interval",
                )
                before = set(member.assignment)
                leave = member.leave_request()
                self._after_membership_change(before, None)
                self._revoke_commits = False
                if leave is not None:
                    with contextlib.suppress(RequestTimedOut, ConnectionBroken):
                        await self._request_once(leave, timeout=self._request_timeout)
                continue
            request = member.heartbeat_request()
            if request is None:
                continue
            try:
                response = await self._request_once(request, timeout=self._request_timeout)
            except (RequestTimedOut, ConnectionBroken):
                continue
            if member is not self._member or member.generation_id != request.generation_id:
                continue  # the member moved on while the heartbeat was out
            assert isinstance(response, HeartbeatResponse)
            if (
                response.error_code is ErrorCode.REBALANCE_IN_PROGRESS
                and member.state is MemberState.STABLE
            ):
                # Kafka only asks for a rejoin here: the next poll revokes and joins, and until
                # then the consumer holds its partitions (assignment, position, commit).
                member.request_rejoin(response.error_code)
                continue
            before = set(member.assignment)
            again = member.on_heartbeat_response(response)
            if again is not None or before - set(member.assignment):
                self._after_membership_change(before, again)
