"""The async Consumer, through the public API only: crashes and takeovers, auto-commit's losses
and repeats, assign() without a group, misuse, rebalances, pauses, max_poll_interval, the
read-process-write loop, read_committed and the LSO, and how long polls wait.

Every test runs on simulated time (the autojump_clock fixture), so session timeouts of 45 s
cost nothing. Each states what Kafka's consumer would do in the same place.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import minikafka
from minikafka import ConsumerRecord, Fault, FaultPlan, TopicPartition

TOPIC = "payments"
SESSION = 45.0  # CONSUMER_DEFAULTS["session_timeout"]
HEARTBEAT = 3.0  # CONSUMER_DEFAULTS["heartbeat_interval"]
INITIAL_REBALANCE_DELAY = 3.0  # the broker's group_initial_rebalance_delay

Batches = dict[TopicPartition, list[ConsumerRecord]]


def tp(partition: int = 0, topic: str = TOPIC) -> TopicPartition:
    return TopicPartition(topic, partition)


def offsets(batches: Batches) -> dict[TopicPartition, list[int]]:
    return {part: [r.offset for r in records] for part, records in batches.items()}


def values(records: list[ConsumerRecord]) -> list[bytes | None]:
    return [r.value for r in records]


def flat(batches: Batches) -> list[ConsumerRecord]:
    return [r for part in sorted(batches) for r in batches[part]]


async def produce(
    cluster: minikafka.Cluster,
    count: int,
    *,
    topic: str = TOPIC,
    partition: int = 0,
    first: int = 0,
) -> None:
    """Write values v{first} .. v{first+count-1} to one partition, acknowledged."""
    async with cluster.producer() as producer:
        for i in range(first, first + count):
            await producer.send_and_wait(topic, b"v%d" % i, partition=partition)


async def read(consumer: Any, count: int, *, within: float = 120.0) -> list[ConsumerRecord]:
    """Poll until ``count`` records came (in the order polls returned them), or fail."""
    got: list[ConsumerRecord] = []
    with trio.fail_after(within):
        while len(got) < count:
            got.extend(flat(await consumer.getmany(timeout=1.0)))
    assert len(got) == count, f"expected {count} records, got {[r.offset for r in got]}"
    return got


def group_consumer(cluster: minikafka.Cluster, **config: Any) -> Any:
    """A consumer of TOPIC in group "g" that commits only when told, from the earliest offset."""
    settings: dict[str, Any] = {
        "group_id": "g",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    settings.update(config)
    return cluster.consumer(TOPIC, **settings)


def events(cluster: minikafka.Cluster, kind: str, source: str) -> list[minikafka.TraceEvent]:
    return list(cluster.trace.select(kind=kind, source=source))


# --- 1. a crash between processing and committing -----------------------------------------


async def test_a_crash_before_commit_is_taken_over_after_the_session_timeout_and_rereads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=1) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 6)
        first = group_consumer(cluster)
        await first.start()
        assert offsets(await first.getmany(timeout=10.0, max_records=3)) == {tp(): [0, 1, 2]}
        await first.commit()
        assert offsets(await first.getmany(timeout=10.0)) == {tp(): [3, 4, 5]}
        # 3..5 processed (their output is out), and the process dies before it commits.
        first.crash()
        crashed_at = trio.current_time()
        with pytest.raises(minikafka.ClientCrashed):
            await first.commit()

        async with group_consumer(cluster) as second:
            reread = await read(second, 3)
            taken_over = trio.current_time() - crashed_at
            assert second.assignment() == {tp()}
            assert await second.committed(tp()) == 3
    assert [r.offset for r in reread] == [3, 4, 5]
    assert values(reread) == [b"v3", b"v4", b"v5"]
    # The group waits for the dead member's session to end: not before, and not much after.
    assert SESSION - HEARTBEAT <= taken_over <= SESSION + 1.0


async def test_a_crash_fault_while_processing_makes_the_successor_reread_everything_uncommitted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = 20.0
    plan = FaultPlan([Fault.client_crash(client="consumer-1", at=10.0)])
    async with minikafka.open_cluster(seed=2, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 4)
        first = group_consumer(cluster, session_timeout=session, heartbeat_interval=2.0)
        await first.start()
        assert offsets(await first.getmany(timeout=10.0)) == {tp(): [0, 1, 2, 3]}
        await trio.sleep(20.0)  # processing; the plan crashes the process at 10 s
        with pytest.raises(minikafka.ClientCrashed):
            await first.commit()

        second = group_consumer(cluster, session_timeout=session, heartbeat_interval=2.0)
        assert second.client_id == "consumer-2"
        async with second:
            reread = await read(second, 4)
        crash = events(cluster, "crash", "consumer-1")
        assigned = events(cluster, "assigned", "consumer-2")
    assert [r.offset for r in reread] == [0, 1, 2, 3]
    assert [e.time for e in crash] == [10.0]
    assert len(assigned) == 1
    assert session - 2.0 <= assigned[0].time - crash[0].time <= session + 1.0


async def test_a_crash_right_after_the_commit_reached_the_broker_keeps_that_commit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.client_crash(client="consumer-1", after="OffsetCommit")])
    async with minikafka.open_cluster(seed=3, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 6)
        async with group_consumer(cluster) as first:
            assert offsets(await first.getmany(timeout=10.0, max_records=3)) == {tp(): [0, 1, 2]}
            with pytest.raises(minikafka.ClientCrashed):
                await first.commit()  # the broker wrote it; the answer was never read
        async with group_consumer(cluster) as second:
            assert await second.committed(tp()) == 3
            rest = await read(second, 3)
    assert [r.offset for r in rest] == [3, 4, 5]


# --- 2. auto-commit: where Kafka's loses and repeats records -------------------------------


async def test_auto_commit_repeats_records_processed_after_the_last_poll_when_the_consumer_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=4) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 6)
        first = group_consumer(cluster, enable_auto_commit=True, auto_commit_interval=5.0)
        await first.start()
        assert offsets(await first.getmany(timeout=10.0, max_records=3)) == {tp(): [0, 1, 2]}
        await trio.sleep(6.0)  # process 0..2; the auto-commit interval passes
        # This poll commits 3 (what the previous poll returned) and returns 3..5.
        assert offsets(await first.getmany(timeout=10.0)) == {tp(): [3, 4, 5]}
        await trio.sleep(1.0)  # 3..5 processed, then the process dies before its next poll
        first.crash()
        async with group_consumer(cluster) as second:
            assert await second.committed(tp()) == 3
            again = await read(second, 3)
    assert [r.offset for r in again] == [3, 4, 5]


async def test_auto_commit_inside_a_poll_carries_the_positions_after_the_previous_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 9)
        async with group_consumer(
            cluster, enable_auto_commit=True, auto_commit_interval=5.0
        ) as consumer:
            assert offsets(await consumer.getmany(timeout=10.0, max_records=3)) == {tp(): [0, 1, 2]}
            assert await consumer.committed(tp()) is None  # the interval has not passed yet
            await trio.sleep(5.0)
            assert offsets(await consumer.getmany(timeout=10.0, max_records=3)) == {tp(): [3, 4, 5]}
            assert await consumer.committed(tp()) == 3  # poll 1's positions, not 6
            await trio.sleep(1.0)
            # Too early for the next auto-commit: a poll commits nothing.
            assert offsets(await consumer.getmany(timeout=10.0, max_records=3)) == {tp(): [6, 7, 8]}
            assert await consumer.committed(tp()) == 3
            await trio.sleep(5.0)
            assert await consumer.getmany(timeout=0) == {}
            assert await consumer.committed(tp()) == 9
            commits = [e.detail for e in events(cluster, "commit", "consumer-1")]
    assert commits == ["payments-0:3", "payments-0:9"]


async def test_auto_commit_loses_records_the_application_buffered_but_had_not_processed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=6) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 6)
        first = group_consumer(cluster, enable_auto_commit=True, auto_commit_interval=5.0)
        await first.start()
        buffered = flat(await first.getmany(timeout=10.0, max_records=3))  # kept for later
        await trio.sleep(6.0)
        # The application polls again before it processed 0..2: this poll commits 3.
        buffered += flat(await first.getmany(timeout=10.0))
        assert [r.offset for r in buffered] == [0, 1, 2, 3, 4, 5]
        await trio.sleep(1.0)
        first.crash()  # nothing of the buffer was processed
        async with group_consumer(cluster) as second:
            seen = await read(second, 3)
            assert await second.getmany(timeout=5.0) == {}
    # 0..2 are lost: committed, never processed, and the successor starts after them.
    assert [r.offset for r in seen] == [3, 4, 5]


async def test_close_commits_the_consumed_positions_with_auto_commit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=7) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 5)
        async with group_consumer(cluster, enable_auto_commit=True) as first:
            assert offsets(await first.getmany(timeout=10.0, max_records=4)) == {tp(): [0, 1, 2, 3]}
            assert await first.committed(tp()) is None
        # close() committed position 4, and left the group at once.
        async with group_consumer(cluster) as second:
            assert await second.committed(tp()) == 4
            rest = await read(second, 1)
    assert [r.offset for r in rest] == [4]


async def test_close_without_auto_commit_commits_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=8) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 3)
        async with group_consumer(cluster) as first:
            await read(first, 3)
        async with group_consumer(cluster) as second:
            assert await second.committed(tp()) is None


# --- 3. assign() without a group -----------------------------------------------------------


async def test_assign_without_a_group_reads_only_the_given_partitions_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=9) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 3, partition=0)
        await produce(cluster, 2, partition=1, first=10)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp(1)])
            assert consumer.assignment() == {tp(1)}
            started = trio.current_time()
            batches = await consumer.getmany(timeout=10.0)
            waited = trio.current_time() - started
    assert offsets(batches) == {tp(1): [0, 1]}
    assert values(batches[tp(1)]) == [b"v10", b"v11"]
    assert waited == 0.0  # no group, so no join and no initial rebalance delay


async def test_assign_with_latest_reads_only_records_written_afterwards(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=10) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 3)
        async with cluster.consumer(group_id=None, auto_offset_reset="latest") as consumer:
            consumer.assign([tp()])
            assert await consumer.position(tp()) == 3
            assert await consumer.getmany(timeout=1.0) == {}
            await produce(cluster, 2, first=3)
            batches = await consumer.getmany(timeout=1.0)
    assert offsets(batches) == {tp(): [3, 4]}


async def test_assign_with_auto_offset_reset_none_raises_until_the_application_seeks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=11) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 3)
        async with cluster.consumer(group_id=None, auto_offset_reset="none") as consumer:
            consumer.assign([tp()])
            with pytest.raises(minikafka.OffsetOutOfRangeError, match="seek"):
                await consumer.getmany(timeout=1.0)
            with pytest.raises(minikafka.OffsetOutOfRangeError, match="auto_offset_reset"):
                await consumer.position(tp())
            consumer.seek(tp(), 1)
            batches = await consumer.getmany(timeout=1.0)
    assert offsets(batches) == {tp(): [1, 2]}


async def test_seek_moves_the_position_and_the_next_poll_reads_from_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=12) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 5)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp()])
            assert await consumer.position(tp()) == 0
            consumer.seek(tp(), 3)
            assert await consumer.position(tp()) == 3
            assert offsets(await consumer.getmany(timeout=1.0)) == {tp(): [3, 4]}
            assert await consumer.position(tp()) == 5
            consumer.seek(tp(), 1)  # backwards: read again
            assert offsets(await consumer.getmany(timeout=1.0, max_records=2)) == {tp(): [1, 2]}
            assert await consumer.position(tp()) == 3
            # A seek drops records fetched for the old position.
            consumer.seek(tp(), 0)
            assert offsets(await consumer.getmany(timeout=1.0)) == {tp(): [0, 1, 2, 3, 4]}


async def test_commit_and_committed_without_a_group_raise_illegal_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=13) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 1)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp()])
            await read(consumer, 1)
            with pytest.raises(minikafka.IllegalStateError, match="group_id"):
                await consumer.commit()
            with pytest.raises(minikafka.IllegalStateError, match="group_id"):
                await consumer.commit({tp(): 1})
            with pytest.raises(minikafka.IllegalStateError, match="group_id"):
                await consumer.committed(tp())
            with pytest.raises(minikafka.IllegalStateError, match="group_id"):
                consumer.group_metadata()


# --- 4. misuse raises at once, saying what to do -------------------------------------------


async def test_getmany_before_subscribe_or_assign_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=14) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer(group_id="g") as consumer:
            started = trio.current_time()
            with pytest.raises(minikafka.IllegalStateError, match=r"subscribe\(\) or assign\(\)"):
                await consumer.getmany(timeout=10.0)
            with pytest.raises(minikafka.IllegalStateError, match=r"subscribe\(\) or assign\(\)"):
                await consumer.getone()
            assert trio.current_time() == started


async def test_subscribe_without_a_group_id_raises_and_points_to_assign(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=15) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer() as consumer:
            with pytest.raises(minikafka.IllegalStateError, match=r"group_id.*assign\("):
                consumer.subscribe([TOPIC])
        # Topics given at creation subscribe: refused there, before anything connects.
        with pytest.raises(minikafka.IllegalStateError, match=r"group_id.*assign\("):
            cluster.consumer(TOPIC)
        assert [e.source for e in cluster.trace.select(kind="start")] == ["consumer-1"]


async def test_subscribe_after_assign_and_assign_after_subscribe_raise(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=16) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer(group_id="g", enable_auto_commit=False) as consumer:
            consumer.assign([tp()])
            with pytest.raises(minikafka.IllegalStateError, match="do not mix"):
                consumer.subscribe([TOPIC])
        async with cluster.consumer(TOPIC, group_id="g", enable_auto_commit=False) as consumer:
            with pytest.raises(minikafka.IllegalStateError, match="do not mix"):
                consumer.assign([tp()])


async def test_an_unknown_setting_is_refused_with_the_closest_valid_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=17) as cluster:
        with pytest.raises(minikafka.ConfigError, match="'enable_auto_commit'"):
            cluster.consumer(TOPIC, group_id="g", enable_autocommit=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"enable_auto_commit": True}, "needs a group_id"),
        ({"group_id": "g", "isolation_level": "committed"}, "'read_committed'"),
        ({"group_id": "g", "auto_offset_reset": "smallest"}, "'earliest'"),
        ({"group_id": "g", "session_timeout": 3.0, "heartbeat_interval": 3.0}, "lower than"),
    ],
)
async def test_bad_settings_are_refused_when_the_consumer_is_created(
    autojump_clock: trio.testing.MockClock, config: dict[str, Any], message: str
) -> None:
    async with minikafka.open_cluster(seed=18) as cluster:
        with pytest.raises(minikafka.ConfigError, match=message):
            cluster.consumer(**config)


async def test_seek_on_an_unassigned_partition_or_to_a_negative_offset_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=19) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        async with cluster.consumer(group_id=None) as consumer:
            consumer.assign([tp(0)])
            with pytest.raises(minikafka.IllegalStateError, match="not assigned"):
                consumer.seek(tp(1), 0)
            with pytest.raises(minikafka.IllegalStateError, match="not assigned"):
                await consumer.position(tp(1))
            with pytest.raises(ValueError, match=">= 0"):
                consumer.seek(tp(0), -1)


async def test_a_consumer_used_before_start_or_after_close_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=20) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        consumer = cluster.consumer(group_id=None)
        with pytest.raises(minikafka.IllegalStateError, match="start"):
            consumer.assign([tp()])
        await consumer.start()
        consumer.assign([tp()])
        await consumer.close()
        with pytest.raises(minikafka.IllegalStateError, match="closed"):
            await consumer.getmany(timeout=1.0)


# --- 5. a rebalance between two members ----------------------------------------------------


class Listener:
    """Records the rebalance callbacks, in the order they came."""

    def __init__(self, name: str, log: list[tuple[str, str, frozenset[TopicPartition]]]) -> None:
        self.name = name
        self.log = log

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.log.append((self.name, "revoked", frozenset(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.log.append((self.name, "assigned", frozenset(assigned)))


class Poller:
    """Polls a consumer in a background task (as an application's loop would) until stopped."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.seen: list[ConsumerRecord] = []
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def run(self) -> None:
        try:
            with self._scope:
                while True:
                    self.seen.extend(flat(await self.consumer.getmany(timeout=1.0)))
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        self._scope.cancel()
        await self._stopped.wait()


async def wait_until(condition: Any, *, within: float) -> float:
    """Wait (in steps of 0.1 simulated s) until ``condition()``; return how long it took."""
    started = trio.current_time()
    with trio.fail_after(within):
        while not condition():
            await trio.sleep(0.1)
    return trio.current_time() - started


async def test_two_members_share_the_partitions_and_the_survivor_takes_all_when_one_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    partitions = {tp(p) for p in range(4)}
    log: list[tuple[str, str, frozenset[TopicPartition]]] = []
    f = frozenset
    async with minikafka.open_cluster(seed=21) as cluster:
        await cluster.create_topic(TOPIC, partitions=4)
        first = cluster.consumer(group_id="g", enable_auto_commit=False)
        second = cluster.consumer(group_id="g", enable_auto_commit=False)
        async with trio.open_nursery() as nursery:
            await first.start()
            first.subscribe([TOPIC], listener=Listener("first", log))
            nursery.start_soon(Poller(first).run)
            await wait_until(lambda: first.assignment() == partitions, within=10.0)
            assert log == [("first", "assigned", f(partitions))]

            await second.start()
            second.subscribe([TOPIC], listener=Listener("second", log))
            second_poller = Poller(second)
            nursery.start_soon(second_poller.run)
            await wait_until(lambda: second.assignment() and first.assignment(), within=SESSION)
            mine, theirs = first.assignment(), second.assignment()
            assert mine | theirs == partitions and not mine & theirs
            assert len(mine) == len(theirs) == 2
            assert first.group_metadata().generation_id == 2
            assert second.group_metadata().generation_id == 2
            # The old owner gave everything up before the new generation handed anything out.
            assert log[:2] == [
                ("first", "assigned", f(partitions)),
                ("first", "revoked", f(partitions)),
            ]
            assert sorted(log[2:]) == [
                ("first", "assigned", f(mine)),
                ("second", "assigned", f(theirs)),
            ]

            await second_poller.stop()
            del log[:]
            await second.close()  # LeaveGroup: no session timeout to wait for
            taken_all = await wait_until(lambda: first.assignment() == partitions, within=SESSION)
            assert first.group_metadata().generation_id == 3
            nursery.cancel_scope.cancel()
    assert log == [("first", "revoked", f(mine)), ("first", "assigned", f(partitions))]
    assert len(cluster.trace.select(kind="send", api="LeaveGroup", source="consumer-2")) == 1
    # The survivor hears of the rebalance by its next heartbeat, long before a session timeout.
    assert taken_all <= HEARTBEAT + 1.0


async def test_closing_a_consumer_while_another_task_polls_it_does_not_rejoin_the_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    partitions = {tp(p) for p in range(2)}
    raised: list[BaseException] = []

    async def poll_until_closed(consumer: Any) -> None:
        try:
            while True:
                await consumer.getmany(timeout=1.0)
        except minikafka.IllegalStateError as error:
            raised.append(error)

    async with minikafka.open_cluster(seed=22) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        first = group_consumer(cluster)
        second = group_consumer(cluster)
        async with trio.open_nursery() as nursery:
            await first.start()
            await second.start()
            nursery.start_soon(Poller(first).run)
            nursery.start_soon(poll_until_closed, second)
            await wait_until(lambda: len(second.assignment()) == 1, within=10.0)
            await second.close()
            taken_all = await wait_until(lambda: first.assignment() == partitions, within=SESSION)
            await wait_until(lambda: bool(raised), within=5.0)
            nursery.cancel_scope.cancel()
        joins = cluster.trace.select(kind="send", api="JoinGroup", source="consumer-2")
        left = cluster.trace.select(kind="send", api="LeaveGroup", source="consumer-2")
    # The poll in progress ends with "closed"; it does not join again as a new member, which
    # would hold the group's next rebalance for a whole session timeout.
    assert "closed" in str(raised[0])
    assert len(left) == 1
    assert all(join.time < left[0].time for join in joins)
    assert taken_all <= HEARTBEAT + 1.0


# --- 6. pauses: evicted after the session timeout, untouched before it ----------------------


async def test_a_pause_longer_than_the_session_timeout_evicts_the_member_and_its_commit_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="consumer-1", at=10.0, seconds=60.0)])
    partitions = {tp(0), tp(1)}
    async with minikafka.open_cluster(seed=23, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 3, partition=0)
        await produce(cluster, 3, partition=1)
        paused = group_consumer(cluster)
        other = group_consumer(cluster)
        async with trio.open_nursery() as nursery:
            await paused.start()
            await other.start()
            nursery.start_soon(Poller(other).run)
            got = flat(await paused.getmany(timeout=10.0))
            await wait_until(lambda: len(other.assignment()) == 1, within=1.0)
            assert len(paused.assignment()) == 1
            assert [r.offset for r in got] == [0, 1, 2]
            mine = {TopicPartition(r.topic, r.partition) for r in got}
            assert trio.current_time() < 10.0
            # The process freezes from 10 s to 70 s; the group evicts it after its session.
            await wait_until(lambda: other.assignment() == partitions, within=60.0)
            taken_over = trio.current_time()
            assert 10.0 + SESSION - HEARTBEAT <= taken_over <= 10.0 + SESSION + 1.0
            await trio.sleep(70.0 - trio.current_time() + 1.0)
            # The paused process wakes up and commits what it processed: the group refuses.
            with pytest.raises(minikafka.CommitFailedError, match="next poll"):
                await paused.commit()
            # Its next poll rejoins, and the group splits the partitions again.
            reread = await paused.getmany(timeout=30.0)
            paused_assignment = paused.assignment()
            await wait_until(lambda: len(other.assignment()) == 1, within=5.0)
            assert len(paused_assignment) == 1
            assert paused.group_metadata().generation_id == 3
            nursery.cancel_scope.cancel()
        joins = cluster.trace.select(kind="assigned", source="consumer-1")
    assert len(joins) == 2
    # Nothing was committed: the partition it has now is read again from the start.
    assert offsets(reread) == {next(iter(paused_assignment)): [0, 1, 2]}
    assert mine


async def test_a_pause_shorter_than_the_session_timeout_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="consumer-1", at=10.0, seconds=30.0)])
    async with minikafka.open_cluster(seed=24, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 3, partition=0)
        await produce(cluster, 3, partition=1)
        paused = group_consumer(cluster)
        other = group_consumer(cluster)
        async with trio.open_nursery() as nursery:
            await paused.start()
            await other.start()
            nursery.start_soon(Poller(other).run)
            got = flat(await paused.getmany(timeout=10.0))
            await wait_until(lambda: len(other.assignment()) == 1, within=1.0)
            before = (paused.assignment(), other.assignment(), paused.group_metadata())
            await trio.sleep(45.0)  # paused from 10 s to 40 s
            await paused.commit()
            assert await paused.committed(tp(got[0].partition)) == 3
            assert flat(await paused.getmany(timeout=1.0)) == []
            after = (paused.assignment(), other.assignment(), paused.group_metadata())
            nursery.cancel_scope.cancel()
        assigned = cluster.trace.select(kind="assigned")
    assert after == before
    assert before[2].generation_id == 1
    assert len(assigned) == 2  # one generation: nobody was evicted, nothing moved


async def test_a_commit_after_a_heartbeat_announced_a_rebalance_but_before_the_next_poll_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Kafka revokes partitions inside the next poll. Until then the member still has its
    # generation, and the group accepts its commit while it waits for the member to rejoin.
    async with minikafka.open_cluster(seed=25) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 3, partition=0)
        await produce(cluster, 3, partition=1)
        first = group_consumer(cluster)
        await first.start()
        assert offsets(await first.getmany(timeout=10.0)) == {tp(0): [0, 1, 2], tp(1): [0, 1, 2]}
        async with trio.open_nursery() as nursery:
            second = group_consumer(cluster)
            await second.start()
            nursery.start_soon(Poller(second).run)
            await trio.sleep(2 * HEARTBEAT)  # processing; a heartbeat hears of the rebalance
            heard = [e for e in events(cluster, "deliver", "broker") if e.api == "Heartbeat"]
            assert any(e.target == "consumer-1" and e.time > 3.0 for e in heard)
            # Until its next poll the consumer still holds its partitions, as Kafka's does.
            assert events(cluster, "revoked", "consumer-1") == []
            assert first.assignment() == {tp(0), tp(1)}
            assert await first.position(tp(0)) == 3
            await first.commit()
            assert await first.committed(tp(0)) == 3
            assert await first.committed(tp(1)) == 3
            await first.getmany(timeout=5.0)  # rejoins
            await wait_until(lambda: len(second.assignment()) == 1, within=10.0)
            assert second.group_metadata().generation_id == 2
            nursery.cancel_scope.cancel()
        commits = [e.detail for e in events(cluster, "commit", "consumer-1")]
    assert commits == ["payments-0:3, payments-1:3"]


# --- 7. max_poll_interval: a consumer that stops polling leaves ------------------------------


async def test_a_consumer_that_does_not_poll_within_max_poll_interval_leaves_and_rejoins_on_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    max_poll = 20.0
    partitions = {tp(0), tp(1)}
    async with minikafka.open_cluster(seed=26) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 2, partition=0)
        await produce(cluster, 2, partition=1)
        slow = group_consumer(cluster, max_poll_interval=max_poll)
        other = group_consumer(cluster, max_poll_interval=max_poll)
        async with trio.open_nursery() as nursery:
            await slow.start()
            await other.start()
            nursery.start_soon(Poller(other).run)
            first_read = await slow.getmany(timeout=10.0)
            last_poll = trio.current_time()
            await wait_until(lambda: len(other.assignment()) == 1, within=1.0)
            assert len(first_read) == 1
            # The application is stuck for 40 s; its heartbeat task notices after 20 s.
            await wait_until(lambda: other.assignment() == partitions, within=40.0)
            took = trio.current_time() - last_poll
            await trio.sleep(last_poll + 40.0 - trio.current_time())
            leave = events(cluster, "leave", "consumer-1")
            assert len(leave) == 1
            assert "max_poll_interval" in leave[0].detail
            # Left, not evicted: the LeaveGroup went out, long before a session timeout.
            assert cluster.trace.select(kind="send", api="LeaveGroup", source="consumer-1")
            # The heartbeat task checks once a heartbeat interval, and the other member learns
            # of the rebalance at its next heartbeat: at most two intervals past max_poll.
            assert max_poll <= took <= max_poll + 2 * HEARTBEAT + 1.0
            assert slow.assignment() == set()
            # The next poll joins again and reads what it never committed.
            again = await slow.getmany(timeout=30.0)
            assert len(slow.assignment()) == 1
            nursery.cancel_scope.cancel()
        joins = [e.time for e in cluster.trace.select(kind="send", api="JoinGroup")]
    assert any(t >= last_poll + 40.0 for t in joins)
    assert [r.offset for r in flat(again)] == [0, 1]


# --- 8. read-process-write: offsets in the producer's transaction ---------------------------


async def test_read_process_write_offsets_count_when_the_transaction_commits_and_not_on_abort(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=27) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await cluster.create_topic("ledger", partitions=1)
        await produce(cluster, 5)
        async with (
            group_consumer(cluster, isolation_level="read_committed") as consumer,
            cluster.producer(transactional_id="ledger-1") as producer,
        ):
            batch = await consumer.getmany(timeout=10.0, max_records=3)
            assert offsets(batch) == {tp(): [0, 1, 2]}
            async with producer.transaction():
                for record in batch[tp()]:
                    await producer.send("ledger", record.value.upper(), partition=0)
                await producer.send_offsets_to_transaction({tp(): 3}, consumer.group_metadata())
            assert await consumer.committed(tp()) == 3

            batch = await consumer.getmany(timeout=10.0)
            assert offsets(batch) == {tp(): [3, 4]}
            producer.begin_transaction()
            for record in batch[tp()]:
                await producer.send("ledger", record.value.upper(), partition=0)
            await producer.send_offsets_to_transaction({tp(): 5}, consumer.group_metadata())
            await producer.abort_transaction()
            assert await consumer.committed(tp()) == 3

        # A successor starts at the transaction's offsets, and sees only committed output.
        async with group_consumer(cluster, isolation_level="read_committed") as successor:
            redo = await read(successor, 2)
        async with cluster.consumer(
            group_id=None, isolation_level="read_committed", auto_offset_reset="earliest"
        ) as reader:
            reader.assign([TopicPartition("ledger", 0)])
            output = await reader.getmany(timeout=1.0)
            assert await reader.getmany(timeout=1.0) == {}
    assert [r.offset for r in redo] == [3, 4]
    assert values(flat(output)) == [b"V0", b"V1", b"V2"]


# --- 9. read_committed stops at the last stable offset --------------------------------------


async def test_read_committed_waits_for_an_open_transaction_before_reading_past_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=28) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with (
            cluster.producer(transactional_id="pay-1") as transactional,
            cluster.consumer(
                group_id=None, isolation_level="read_committed", auto_offset_reset="earliest"
            ) as committed_reader,
            cluster.consumer(group_id=None, auto_offset_reset="earliest") as dirty_reader,
        ):
            committed_reader.assign([tp()])
            dirty_reader.assign([tp()])
            transactional.begin_transaction()
            await transactional.send(TOPIC, b"in-txn", partition=0)
            await transactional.flush()
            await produce(cluster, 2, first=1)  # plain writes after the open transaction
            assert values(flat(await dirty_reader.getmany(timeout=1.0))) == [
                b"in-txn",
                b"v1",
                b"v2",
            ]
            started = trio.current_time()
            assert await committed_reader.getmany(timeout=5.0) == {}
            assert trio.current_time() - started == pytest.approx(5.0, abs=1e-6)
            assert await committed_reader.position(tp()) == 0
            await transactional.commit_transaction()
            records = await read(committed_reader, 3)
    assert [(r.offset, r.value) for r in records] == [(0, b"in-txn"), (1, b"v1"), (2, b"v2")]


async def test_read_committed_skips_an_aborted_transaction_and_its_marker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=29) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(transactional_id="pay-1") as transactional:
            transactional.begin_transaction()
            await transactional.send(TOPIC, b"aborted", partition=0)
            await transactional.flush()
            await transactional.abort_transaction()
        await trio.sleep(1.0)  # the coordinator writes the ABORT marker in the background
        await produce(cluster, 1, first=9)
        async with cluster.consumer(
            group_id=None, isolation_level="read_committed", auto_offset_reset="earliest"
        ) as consumer:
            consumer.assign([tp()])
            records = await read(consumer, 1)
            assert await consumer.position(tp()) == 3
    # offset 0 aborted, 1 its ABORT marker: the gap in the offsets is Kafka's too.
    assert [(r.offset, r.value) for r in records] == [(2, b"v9")]


# --- 10. getone, async for, and how long polls wait -----------------------------------------


async def test_getone_and_async_for_return_records_one_at_a_time_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=30) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 4)
        async with group_consumer(cluster) as consumer:
            first = await consumer.getone()
            rest = []
            async for record in consumer:
                rest.append(record)
                if len(rest) == 3:
                    break
            assert await consumer.position(tp()) == 4
    assert first.offset == 0 and first.value == b"v0" and first.topic == TOPIC
    assert [r.offset for r in rest] == [1, 2, 3]
    assert isinstance(first, ConsumerRecord)


async def test_getone_waits_for_a_record_that_arrives_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=31) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp()])

            async def write_later() -> None:
                await trio.sleep(30.0)
                await produce(cluster, 1)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_later)
                record = await consumer.getone()
                arrived = trio.current_time()
    assert record.offset == 0
    assert 30.0 <= arrived <= 31.0


async def test_getmany_with_timeout_zero_returns_at_once_on_an_empty_topic(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=32) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp()])
            started = trio.current_time()
            assert await consumer.getmany(timeout=0) == {}
            assert trio.current_time() == started


@pytest.mark.parametrize("timeout", [0.25, 1.0, 7.5])
async def test_getmany_on_an_empty_topic_waits_exactly_its_timeout(
    autojump_clock: trio.testing.MockClock, timeout: float
) -> None:
    async with minikafka.open_cluster(seed=33) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.consumer(group_id=None, auto_offset_reset="earliest") as consumer:
            consumer.assign([tp()])
            started = trio.current_time()
            assert await consumer.getmany(timeout=timeout) == {}
            assert trio.current_time() - started == pytest.approx(timeout)


async def test_a_subscribed_consumer_s_poll_waits_no_longer_than_its_timeout_while_it_joins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Kafka's poll(Duration) (KIP-266) returns empty when its timeout passes during a join;
    # the JoinGroup stays out, and a later poll picks up its answer.
    async with minikafka.open_cluster(seed=34) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 2)
        async with group_consumer(cluster) as consumer:
            started = trio.current_time()
            assert await consumer.getmany(timeout=0) == {}
            assert trio.current_time() == started
            assert await consumer.getmany(timeout=1.0) == {}
            assert trio.current_time() - started == pytest.approx(1.0)
            assert consumer.assignment() == set()
            batches = await consumer.getmany(timeout=10.0)
            joined = trio.current_time() - started
        joins = cluster.trace.select(kind="send", api="JoinGroup", source="consumer-1")
    assert offsets(batches) == {tp(): [0, 1]}
    assert joined == pytest.approx(INITIAL_REBALANCE_DELAY)
    # One JoinGroup for the member id (MEMBER_ID_REQUIRED), one the group held: not one a poll.
    assert len(joins) == 2


async def test_a_new_member_waits_for_transactional_offsets_to_be_decided_before_it_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # KIP-447: positions come from OffsetFetch with require_stable, so pending transactional
    # offsets make the consumer wait instead of starting from older ones. Its polls still
    # return when their timeout passes.
    async with minikafka.open_cluster(seed=35) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 4)
        async with cluster.producer(transactional_id="ledger-1") as producer:
            producer.begin_transaction()
            await producer.send_offsets_to_transaction({tp(): 2}, "g")
            async with group_consumer(cluster) as consumer:
                started = trio.current_time()
                assert await consumer.getmany(timeout=10.0) == {}
                assert trio.current_time() - started == pytest.approx(10.0)
                assert consumer.assignment() == {tp()}
                await producer.commit_transaction()
                records = await read(consumer, 2)
    assert [r.offset for r in records] == [2, 3]


async def test_auto_commit_commits_the_positions_of_revoked_partitions_before_the_rebalance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=36) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 3, partition=0)
        await produce(cluster, 3, partition=1)
        # An interval longer than the test: only the revoke can commit.
        first = group_consumer(cluster, enable_auto_commit=True, auto_commit_interval=600.0)
        second = group_consumer(cluster, enable_auto_commit=True, auto_commit_interval=600.0)
        async with trio.open_nursery() as nursery:
            await first.start()
            first_poller = Poller(first)
            nursery.start_soon(first_poller.run)
            await wait_until(lambda: len(first_poller.seen) == 6, within=10.0)
            await second.start()
            second_poller = Poller(second)
            nursery.start_soon(second_poller.run)
            await wait_until(lambda: len(second.assignment()) == 1, within=SESSION)
            await trio.sleep(5.0)
            nursery.cancel_scope.cancel()
        commits = [e.detail for e in events(cluster, "commit", "consumer-1")]
    assert commits == ["payments-0:3, payments-1:3"]
    assert second_poller.seen == []  # it starts at the committed offsets: nothing twice


async def test_cooperative_rebalance_with_auto_commit_hands_over_partitions_without_rereads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Kafka commits the consumed positions before every rejoin (onJoinPrepare), eager or
    # cooperative, so the partitions a cooperative rebalance moves are not read twice.
    partitions = {tp(p) for p in range(4)}
    log: list[tuple[str, str, frozenset[TopicPartition]]] = []
    async with minikafka.open_cluster(seed=37) as cluster:
        await cluster.create_topic(TOPIC, partitions=4)
        for p in range(4):
            await produce(cluster, 2, partition=p)
        settings: dict[str, Any] = {
            "enable_auto_commit": True,
            "auto_commit_interval": 600.0,
            "partition_assignment_strategy": "cooperative-sticky",
        }
        first = cluster.consumer(group_id="g", auto_offset_reset="earliest", **settings)
        second = cluster.consumer(group_id="g", auto_offset_reset="earliest", **settings)
        async with trio.open_nursery() as nursery:
            await first.start()
            first.subscribe([TOPIC], listener=Listener("first", log))
            first_poller = Poller(first)
            nursery.start_soon(first_poller.run)
            await wait_until(lambda: len(first_poller.seen) == 8, within=10.0)
            await second.start()
            second.subscribe([TOPIC], listener=Listener("second", log))
            second_poller = Poller(second)
            nursery.start_soon(second_poller.run)
            await wait_until(lambda: len(second.assignment()) == 2, within=SESSION)
            await trio.sleep(5.0)
            kept, moved = first.assignment(), second.assignment()
            nursery.cancel_scope.cancel()
    f = frozenset
    assert kept | moved == partitions and len(kept) == 2
    # Cooperative: the first member keeps two partitions throughout and gives up only two.
    assert ("first", "revoked", f(moved)) in log
    assert ("first", "revoked", f(partitions)) not in log
    assert second_poller.seen == []


async def test_a_consumer_block_cancelled_by_its_task_still_closes_and_leaves_the_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # trio cancels a task's `async with` body; its close() must still run (shielded, and
    # bounded): else the consumer's heartbeat keeps a member that reads nothing in the group.
    partitions = {tp(0), tp(1)}
    async with minikafka.open_cluster(seed=38) as cluster:
        await cluster.create_topic(TOPIC, partitions=2)
        await produce(cluster, 2, partition=0)
        await produce(cluster, 2, partition=1)
        consumers: list[Any] = []

        async def consume(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                task_status.started(scope)
                async with group_consumer(cluster, enable_auto_commit=True) as consumer:
                    consumers.append(consumer)
                    while True:
                        await consumer.getmany(timeout=1.0)

        async with trio.open_nursery() as nursery:
            survivor = group_consumer(cluster)
            await survivor.start()
            survivor_poller = Poller(survivor)
            nursery.start_soon(survivor_poller.run)
            scope = await nursery.start(consume)
            await wait_until(lambda: len(survivor.assignment()) == 1, within=10.0)
            await trio.sleep(2.0)
            (theirs,) = consumers[0].assignment()
            scope.cancel()
            taken_all = await wait_until(lambda: survivor.assignment() == partitions, within=60.0)
            await trio.sleep(5.0)
            nursery.cancel_scope.cancel()
    assert consumers[0].closed
    # close() committed what the cancelled consumer had read: the survivor does not read its
    # partition again (its own, never committed, it does read again after the rebalance).
    assert [r for r in survivor_poller.seen if r.partition == theirs.partition] == []
    assert len(cluster.trace.select(kind="send", api="LeaveGroup", source="consumer-2")) == 1
    assert taken_all <= HEARTBEAT + 1.0


async def test_getone_waits_out_pending_transactional_offsets_however_long_they_take(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=4) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 3)
        producer = cluster.producer(transactional_id="t", transaction_timeout=300.0)
        async with producer:
            producer.begin_transaction()
            await producer.send_offsets_to_transaction({tp(): 2}, "g")

            async def commit_later() -> None:
                await trio.sleep(90.0)  # longer than the consumer's default_api_timeout (60 s)
                await producer.commit_transaction()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(commit_later)
                async with group_consumer(cluster) as consumer:
                    record = await consumer.getone()
            assert record.offset == 2  # from the offset the transaction committed
            assert trio.current_time() >= 90.0


async def test_current_lag_is_unknown_until_a_fetch_and_counts_to_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KIP-695: None before the consumer has a position and a fetch; then the records left."""
    async with minikafka.open_cluster(seed=7) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 5)
        async with group_consumer(cluster) as consumer:
            assert consumer.current_lag(tp()) is None
            assert offsets(await consumer.getmany(timeout=10.0, max_records=2)) == {tp(): [0, 1]}
            assert consumer.current_lag(tp()) == 3
            await read(consumer, 3)
            assert consumer.current_lag(tp()) == 0
            consumer.seek(tp(), 1)
            assert consumer.current_lag(tp()) == 4


async def test_current_lag_under_read_committed_counts_to_the_last_stable_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=7) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        await produce(cluster, 2)
        producer = cluster.producer(transactional_id="open")
        async with producer:
            producer.begin_transaction()
            await producer.send_and_wait(TOPIC, b"pending", partition=0)
            async with group_consumer(cluster, isolation_level="read_committed") as consumer:
                await read(consumer, 2)
                assert consumer.current_lag(tp()) == 0  # the open transaction holds the LSO
            await producer.abort_transaction()
