"""The async Producer through the public API: idempotence, transactions, fencing, crashes and
misuse, checked by reading the topic back with consumers."""

from __future__ import annotations

import contextlib
import itertools

import pytest
import trio
import trio.testing

import minikafka
from minikafka import (
    ClientCrashed,
    ConfigError,
    ConsumerRecord,
    Fault,
    FaultPlan,
    IllegalStateError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    TopicPartition,
)
from minikafka.core.partitioner import partition_for_key

TOPIC = "payments"


# --- helpers ----------------------------------------------------------------------------------


async def read_back(
    cluster: minikafka.Cluster,
    *,
    isolation_level: str,
    partitions: int = 3,
    topic: str = TOPIC,
) -> list[ConsumerRecord]:
    """Everything a consumer with ``isolation_level`` can read from the topic, from the start,
    by assigned partitions (no group); polls until 2 simulated seconds bring nothing new."""
    records: list[ConsumerRecord] = []
    async with cluster.consumer(
        isolation_level=isolation_level, auto_offset_reset="earliest"
    ) as consumer:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        while True:
            batches = await consumer.getmany(timeout=2.0)
            if not batches:
                break
            for batch in batches.values():
                records.extend(batch)
    return sorted(records, key=lambda r: (r.partition, r.offset))


def values(records: list[ConsumerRecord]) -> list[bytes | None]:
    return sorted((r.value for r in records), key=lambda value: value or b"")


async def committed_values(cluster: minikafka.Cluster, partitions: int = 3) -> list[bytes | None]:
    return values(await read_back(cluster, isolation_level="read_committed", partitions=partitions))


async def uncommitted_values(cluster: minikafka.Cluster, partitions: int = 3) -> list[bytes | None]:
    return values(
        await read_back(cluster, isolation_level="read_uncommitted", partitions=partitions)
    )


# --- 1. a lost acknowledgement ----------------------------------------------------------------


async def test_a_lost_ack_without_idempotence_writes_the_record_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1)])
    async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(enable_idempotence=False, retries=5) as producer:
            metadata = await producer.send_and_wait(TOPIC, b"pay 25", partition=0)
        assert metadata.offset == 1  # the retry's own offset: the first write is at 0
        records = await read_back(cluster, isolation_level="read_uncommitted", partitions=1)
        assert [(r.offset, r.value) for r in records] == [(0, b"pay 25"), (1, b"pay 25")]
        assert cluster.trace.select(kind="lost", api="Produce")


async def test_a_lost_ack_with_idempotence_writes_once_and_the_retry_gets_the_original_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1, client="producer-1")])
    async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer() as producer, cluster.producer() as other:
            handle = await producer.send(TOPIC, b"pay 25", partition=0)
            # While the first producer waits for the answer that never comes, another writes.
            await trio.sleep(1.0)
            assert not handle.done()
            other_metadata = await other.send_and_wait(TOPIC, b"other", partition=0)
            assert other_metadata.offset == 1
            metadata = await handle
        assert metadata.offset == 0  # the original offset, not the end of the log
        records = await read_back(cluster, isolation_level="read_uncommitted", partitions=1)
        assert [(r.offset, r.value) for r in records] == [(0, b"pay 25"), (1, b"other")]
        assert cluster.trace.select(kind="lost", api="Produce")


async def test_batches_in_flight_together_are_written_in_the_order_they_were_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Up to 5 requests in flight to one partition: the broker must see them in sequence order.
    sent = [b"record %02d" % n for n in range(40)]
    async with minikafka.open_cluster(seed=1) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(batch_size=100) as producer:
            handles = [await producer.send(TOPIC, value, partition=0) for value in sent]
            offsets = [(await handle).offset for handle in handles]
        assert offsets == list(range(len(sent)))
        records = await read_back(cluster, isolation_level="read_uncommitted", partitions=1)
        assert [r.value for r in records] == sent


@pytest.mark.parametrize("seed", range(6))
async def test_answers_that_arrive_together_are_taken_in_order_without_a_reconnect(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    # Ten requests go out at once and their answers arrive at one instant: whatever order
    # their tasks wake in, none may count as overtaking a lost one. A spurious reconnect would
    # retry them all, and without idempotence write them again.
    async with minikafka.open_cluster(seed=seed) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        settings = {"batch_size": 100, "linger": 0.05, "acks": 1, "enable_idempotence": False}
        async with cluster.producer(**settings) as producer:
            handles = [await producer.send(TOPIC, b"x" * 60, partition=0) for _ in range(10)]
            await producer.flush()
            offsets = [(await handle).offset for handle in handles]
        assert offsets == list(range(10))
        assert cluster.broker.log(TOPIC, 0).log_end_offset == 10
        reconnects = [e for e in cluster.trace.select(kind="disconnect") if e.detail != "closed"]
        assert not reconnects


# --- 2. aborted and committed transactions ------------------------------------------------------


async def test_an_aborted_transaction_is_seen_only_by_read_uncommitted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=2) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="pay-1") as producer:
            producer.begin_transaction()
            for n in range(3):
                await producer.send_and_wait(TOPIC, b"aborted %d" % n, partition=n)
            await producer.abort_transaction()
        assert await committed_values(cluster) == []
        assert await uncommitted_values(cluster) == [b"aborted 0", b"aborted 1", b"aborted 2"]


async def test_a_committed_transaction_is_seen_by_both_isolation_levels(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=2) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with (
            cluster.producer(transactional_id="pay-1") as producer,
            producer.transaction(),
        ):
            for n in range(3):
                await producer.send(TOPIC, b"committed %d" % n, key=b"TXN500%d" % n)
        expected = [b"committed 0", b"committed 1", b"committed 2"]
        assert await committed_values(cluster) == expected
        assert await uncommitted_values(cluster) == expected


async def test_a_transaction_begun_while_the_last_one_s_markers_are_written_retries_after_20_ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first AddPartitionsToTxn of a transaction meets CONCURRENT_TRANSACTIONS while the
    previous commit's markers are out; Kafka retries that one after 20 ms, not retry_backoff."""
    async with minikafka.open_cluster(seed=2) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="pay-1", retry_backoff=0.5) as producer:
            async with producer.transaction():
                await producer.send(TOPIC, b"first", partition=0)
            async with producer.transaction():
                await producer.send(TOPIC, b"second", partition=1)
        adds = [e for e in cluster.trace if e.api == "AddPartitionsToTxn" and e.kind == "deliver"]
        retried = adds[1:]
        assert [e.detail for e in retried[:-1]] == ["CONCURRENT_TRANSACTIONS"] * (len(retried) - 1)
        assert len(retried) >= 2 and retried[-1].detail == ""
        gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(retried)]
        assert gaps == pytest.approx([0.02] * len(gaps))
        assert await committed_values(cluster) == [b"first", b"second"]


async def test_the_first_add_partitions_to_a_down_broker_waits_retry_backoff_not_20_ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only a CONCURRENT_TRANSACTIONS answer shortens the first AddPartitionsToTxn's backoff;
    a broker that is down is retried at retry_backoff."""
    plan = FaultPlan([Fault.broker_crash(at=5.0, down_for=2.0)])
    async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(transactional_id="tx", retry_backoff=0.1) as producer:
            async with producer.transaction():  # the producer learns the topic's partitions
                await producer.send(TOPIC, b"x", partition=0)
            await trio.sleep(5.001 - cluster.now())
            async with producer.transaction():
                await producer.send(TOPIC, b"y", partition=0)
        tries = [
            e.time
            for e in cluster.trace
            if e.api == "AddPartitionsToTxn" and e.kind in ("send", "refused")
        ]
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        assert len(tries) > 10 and min(gaps) == pytest.approx(0.1)


async def test_a_batch_that_fills_up_goes_at_once_without_waiting_for_its_linger(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=1) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(batch_size=100, linger=5.0) as producer:
            first = await producer.send(TOPIC, b"x" * 60, partition=0)
            await trio.sleep(0.1)
            await producer.send(TOPIC, b"y" * 60, partition=0)  # no room: a second batch
            await first
            assert cluster.now() == pytest.approx(0.1)


async def test_after_an_abort_only_the_next_committed_transaction_is_visible(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=2) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="pay-1") as producer:
            producer.begin_transaction()
            await producer.send_and_wait(TOPIC, b"aborted", partition=1)
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(TOPIC, b"committed", partition=1)
        assert await committed_values(cluster) == [b"committed"]
        assert await uncommitted_values(cluster) == [b"aborted", b"committed"]


# --- 3. zombie fencing --------------------------------------------------------------------------


async def assert_fenced_for_good(zombie: minikafka.Producer) -> None:
    """Every call on a fenced producer raises ProducerFencedError."""
    with pytest.raises(ProducerFencedError):
        await zombie.send(TOPIC, b"late", partition=0)
    with pytest.raises(ProducerFencedError):
        await zombie.send_and_wait(TOPIC, b"late", partition=2)
    with pytest.raises(ProducerFencedError):
        zombie.begin_transaction()
    with pytest.raises(ProducerFencedError):
        await zombie.commit_transaction()
    with pytest.raises(ProducerFencedError):
        await zombie.abort_transaction()
    with pytest.raises(ProducerFencedError):
        await zombie.send_offsets_to_transaction({TopicPartition(TOPIC, 0): 1}, "group")


async def test_a_newer_producer_fences_the_zombie_whose_commit_then_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=3) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        zombie = cluster.producer(transactional_id="t")
        await zombie.start()
        zombie.begin_transaction()
        await zombie.send_and_wait(TOPIC, b"zombie", partition=0)
        async with cluster.producer(transactional_id="t") as successor:
            with pytest.raises(ProducerFencedError):
                await zombie.commit_transaction()
            await assert_fenced_for_good(zombie)
            async with successor.transaction():
                await successor.send(TOPIC, b"successor", partition=0)
        await zombie.close()
        assert await committed_values(cluster) == [b"successor"]


async def test_a_fenced_zombie_fails_on_its_next_send_to_a_new_partition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=3) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        zombie = cluster.producer(transactional_id="t")
        await zombie.start()
        zombie.begin_transaction()
        await zombie.send_and_wait(TOPIC, b"zombie 0", partition=0)
        async with cluster.producer(transactional_id="t") as successor:
            with pytest.raises(ProducerFencedError):
                await zombie.send_and_wait(TOPIC, b"zombie 1", partition=1)
            await assert_fenced_for_good(zombie)
            async with successor.transaction():
                await successor.send(TOPIC, b"successor", partition=1)
        await zombie.close()
        assert await committed_values(cluster) == [b"successor"]


async def test_a_fenced_zombie_writing_to_its_partition_is_refused_and_fenced_at_the_abort(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # KIP-588: a stale epoch on a write is abortable; the abort's EndTxn then says "fenced".
    async with minikafka.open_cluster(seed=3) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        zombie = cluster.producer(transactional_id="t")
        await zombie.start()
        zombie.begin_transaction()
        await zombie.send_and_wait(TOPIC, b"zombie 0", partition=0)
        async with cluster.producer(transactional_id="t") as successor:
            with pytest.raises(InvalidProducerEpochError):
                await zombie.send_and_wait(TOPIC, b"zombie 1", partition=0)
            with pytest.raises(InvalidProducerEpochError, match=r"abort_transaction\(\)"):
                await zombie.commit_transaction()
            with pytest.raises(ProducerFencedError):
                await zombie.abort_transaction()
            await assert_fenced_for_good(zombie)
            async with successor.transaction():
                await successor.send(TOPIC, b"successor", partition=0)
        await zombie.close()
        assert await committed_values(cluster) == [b"successor"]
        assert b"zombie 1" not in await uncommitted_values(cluster)


# --- 4. the broker restarting mid-transaction -----------------------------------------------------

ALL = [b"txn 0", b"txn 1", b"txn 2"]


async def run_transaction_across_a_crash(
    cluster: minikafka.Cluster, *, restart: str | None = None
) -> bool:
    """One transaction writing to all 3 partitions at 0 s, 1 s and 2 s, committed at 3 s (or
    aborted if the commit fails; errors allowed). ``restart`` restarts the broker "after the
    sends" or right "after the commit" returned. Returns whether the commit returned."""
    committed = False
    async with cluster.producer(transactional_id="t", delivery_timeout=30.0) as producer:
        try:
            producer.begin_transaction()
            for n in range(3):
                await producer.send(TOPIC, b"txn %d" % n, partition=n)
                await trio.sleep(1.0)
            if restart == "after the sends":
                await producer.flush()
                await cluster.restart_broker()
            await producer.commit_transaction()
            committed = True
            if restart == "after the commit":
                await cluster.restart_broker()  # before the markers are written
        except KafkaError:
            with contextlib.suppress(KafkaError):
                await producer.abort_transaction()
    return committed


async def check_all_or_nothing(cluster: minikafka.Cluster, *, committed: bool) -> None:
    """A read_committed consumer sees the whole transaction or none of it, and all of it if
    the producer was told it committed; the same after one more restart."""
    seen = await committed_values(cluster)
    assert seen in ([], ALL)
    if committed:
        assert seen == ALL
    await cluster.restart_broker()
    assert await committed_values(cluster) == seen


@pytest.mark.parametrize("restart", ["after the sends", "after the commit"])
async def test_a_broker_restart_leaves_the_transaction_whole(
    autojump_clock: trio.testing.MockClock, restart: str
) -> None:
    async with minikafka.open_cluster(seed=4) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        committed = await run_transaction_across_a_crash(cluster, restart=restart)
        await check_all_or_nothing(cluster, committed=committed)


async def test_without_roll_forward_a_restart_after_the_commit_loses_the_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The negative control of the test above: the check catches a broker that does not
    # finish a durable PrepareCommit after a crash.
    async with minikafka.open_cluster(seed=4, disabled_safeguards={"roll-forward"}) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        committed = await run_transaction_across_a_crash(cluster, restart="after the commit")
        assert committed
        assert await committed_values(cluster) == []
        assert await uncommitted_values(cluster) == ALL


@pytest.mark.parametrize(
    ("at", "down_for"),
    [
        (0.5, 0.3),  # between the first and the second write
        (1.5, 5.0),  # the third write waits for the broker
        (2.95, 0.5),  # just before the commit
        (3.0, 0.5),  # at the commit: EndTxn is lost
        (3.05, 0.5),  # after the commit
        (3.3, 2.0),
        (1.5, 90.0),  # longer than the producer waits: it gives up and aborts
    ],
)
async def test_a_broker_crash_during_a_transaction_never_shows_part_of_it(
    autojump_clock: trio.testing.MockClock, at: float, down_for: float
) -> None:
    plan = FaultPlan([Fault.broker_crash(at=at, down_for=down_for)])
    async with minikafka.open_cluster(seed=4, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        committed = await run_transaction_across_a_crash(cluster)
        await trio.sleep(max(0.0, at + down_for - cluster.now()) + 1.0)  # the broker is back
        await check_all_or_nothing(cluster, committed=committed)


# --- 5. misuse ---------------------------------------------------------------------------------


async def test_commit_without_begin_is_refused_and_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="t") as producer:
            with pytest.raises(IllegalStateError, match=r"begin_transaction\(\)"):
                await producer.commit_transaction()
            with pytest.raises(IllegalStateError, match=r"begin_transaction\(\)"):
                await producer.abort_transaction()
            with pytest.raises(IllegalStateError, match=r"begin_transaction\(\)"):
                await producer.send_offsets_to_transaction({TopicPartition(TOPIC, 0): 1}, "g")
            async with producer.transaction():
                await producer.send(TOPIC, b"after the refusal", partition=0)
        assert await committed_values(cluster) == [b"after the refusal"]


async def test_beginning_twice_is_refused_and_the_open_transaction_still_commits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="t") as producer:
            producer.begin_transaction()
            await producer.send(TOPIC, b"first", partition=0)
            with pytest.raises(IllegalStateError, match=r"commit_transaction\(\)"):
                producer.begin_transaction()
            await producer.send(TOPIC, b"second", partition=1)
            await producer.commit_transaction()
        assert await committed_values(cluster) == [b"first", b"second"]


async def test_a_transactional_producer_refuses_to_send_outside_a_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="t") as producer:
            with pytest.raises(IllegalStateError, match=r"begin_transaction\(\)"):
                await producer.send(TOPIC, b"outside", partition=0)
            async with producer.transaction():
                await producer.send(TOPIC, b"inside", partition=0)
            with pytest.raises(IllegalStateError, match=r"begin_transaction\(\)"):
                await producer.send_and_wait(TOPIC, b"outside again", partition=0)
        assert await uncommitted_values(cluster) == [b"inside"]


async def test_transactional_calls_on_a_plain_producer_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer() as producer:
            with pytest.raises(IllegalStateError, match="transactional_id"):
                await producer.send_offsets_to_transaction({TopicPartition(TOPIC, 0): 3}, "group")
            with pytest.raises(IllegalStateError, match="transactional_id"):
                producer.begin_transaction()
            with pytest.raises(IllegalStateError, match="transactional_id"):
                await producer.commit_transaction()
            metadata = await producer.send_and_wait(TOPIC, b"still works", partition=0)
            assert metadata.offset == 0


async def test_bad_settings_are_refused_with_a_hint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        with pytest.raises(ConfigError, match="'linger'"):
            cluster.producer(lingr=1)
        with pytest.raises(ConfigError, match='acks="all" or enable_idempotence=False'):
            cluster.producer(acks=0, enable_idempotence=True)
        with pytest.raises(ConfigError, match='acks="all"') as refused:
            cluster.producer(acks=1, transactional_id="t")
        assert "enable_idempotence=False" not in str(refused.value)  # that would be refused too
        with pytest.raises(ConfigError, match="enable_idempotence"):
            cluster.producer(enable_idempotence=False, transactional_id="t")
        with pytest.raises(ConfigError, match="acks must be 0, 1 or"):
            cluster.producer(acks=2)
        with pytest.raises(ConfigError, match=r"linger \+ request_timeout"):
            cluster.producer(delivery_timeout=10.0)  # below request_timeout's default 30 s
        # The refused producers took no client id: the next one is still producer-1.
        async with cluster.producer() as producer:
            assert producer.client_id == "producer-1"


async def test_bad_records_are_refused_at_once_and_queue_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="t") as producer:
            producer.begin_transaction()
            with pytest.raises(TypeError, match="bytes"):
                await producer.send(TOPIC, "a str", partition=0)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="bytes"):
                await producer.send(TOPIC, b"v", key="a str")  # type: ignore[arg-type]
            with pytest.raises(KafkaError, match="partitions 0 to 2"):
                await producer.send(TOPIC, b"v", partition=3)
            with pytest.raises(KafkaError, match="partitions 0 to 2"):
                await producer.send(TOPIC, b"v", partition=-1)
            # None of that touched the transaction: it still commits, with only this record.
            await producer.send(TOPIC, b"good", partition=1)
            await producer.commit_transaction()
        assert await uncommitted_values(cluster) == [b"good"]


async def test_a_closed_producer_refuses_every_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        producer = cluster.producer(transactional_id="t")
        with pytest.raises(IllegalStateError, match="start"):
            await producer.send(TOPIC, b"too early", partition=0)
        async with producer:
            pass
        with pytest.raises(IllegalStateError, match="closed"):
            await producer.send(TOPIC, b"too late", partition=0)
        with pytest.raises(IllegalStateError, match="closed"):
            producer.begin_transaction()
        with pytest.raises(IllegalStateError, match="closed"):
            await producer.flush()
        await producer.close()  # closing twice is fine


async def test_a_crashed_producer_raises_client_crashed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer() as producer:
            producer.crash()
            with pytest.raises(ClientCrashed, match="new client"):
                await producer.send(TOPIC, b"v", partition=0)
            with pytest.raises(ClientCrashed):
                await producer.flush()
        # Leaving the block (close) after a crash is quiet.
        assert await uncommitted_values(cluster) == []


# --- 6. acks=0 --------------------------------------------------------------------------------


async def test_acks_0_resolves_with_offset_minus_1_and_a_lost_request_is_lost_silently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_request(api="Produce", nth=2)])
    async with minikafka.open_cluster(seed=6, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(acks=0) as producer:
            handles = []
            for n in range(3):
                handles.append(await producer.send(TOPIC, b"fire %d" % n, partition=0))
                await trio.sleep(0.1)  # one request each
            await producer.flush()
            for handle in handles:
                metadata = await handle
                assert (metadata.partition, metadata.offset) == (0, -1)
        assert await uncommitted_values(cluster, partitions=1) == [b"fire 0", b"fire 2"]
        assert cluster.trace.select(kind="fault", api="Produce")


# --- 7. the partitioner -------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [3, 7])
async def test_keyed_records_land_on_kafkas_partition_for_the_key(
    autojump_clock: trio.testing.MockClock, partitions: int
) -> None:
    keys = [b"TXN%d" % n for n in range(5000, 5030)]
    async with minikafka.open_cluster(seed=7) as cluster:
        await cluster.create_topic(TOPIC, partitions=partitions)
        async with cluster.producer() as producer:
            handles = [await producer.send(TOPIC, b"v", key=key) for key in keys]
            landed = [(await handle).partition for handle in handles]
            explicit = await producer.send_and_wait(TOPIC, b"v", key=keys[0], partition=1)
        assert landed == [partition_for_key(key, partitions) for key in keys]
        assert len(set(landed)) > 1
        assert explicit.partition == 1
        records = await read_back(
            cluster, isolation_level="read_uncommitted", partitions=partitions
        )
        for record in records:
            if record.partition != 1 or record.offset != explicit.offset:
                assert record.key is not None
                assert record.partition == partition_for_key(record.key, partitions)


async def test_keyless_records_stick_to_a_partition_for_about_a_batch_then_move(
    autojump_clock: trio.testing.MockClock,
) -> None:
    value = b"x" * 100
    async with minikafka.open_cluster(seed=7) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(batch_size=1000) as producer:
            handles = [await producer.send(TOPIC, value) for _ in range(60)]
            landed = [(await handle).partition for handle in handles]
    runs = [1]
    for before, after in itertools.pairwise(landed):
        if after == before:
            runs[-1] += 1
        else:
            runs.append(1)
    # About 1000 bytes (some 8 records) per partition, then another one: several moves.
    assert len(runs) >= 3
    assert all(run >= 3 for run in runs[:-1])
    assert len(set(landed)) > 1


# --- 8. producer.crash() ----------------------------------------------------------------------


async def test_a_crash_fails_pending_handles_and_calls_in_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1)])
    async with minikafka.open_cluster(seed=8, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        producer = cluster.producer(linger=10.0)
        await producer.start()
        outcomes: list[str] = []

        async def waiting_send() -> None:
            try:
                await producer.send_and_wait(TOPIC, b"in flight", partition=0)
            except ClientCrashed:
                outcomes.append("ClientCrashed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting_send)
            await trio.sleep(1.0)
            queued = await producer.send(TOPIC, b"queued", partition=1)
            producer.crash()
        assert outcomes == ["ClientCrashed"]
        with pytest.raises(ClientCrashed):
            await queued
        with pytest.raises(ClientCrashed):
            await producer.send(TOPIC, b"after", partition=2)
        with pytest.raises(ClientCrashed):
            await producer.flush()
        await producer.close()


async def test_a_new_producer_takes_over_from_a_crashed_one_with_an_open_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=8) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        crashed = cluster.producer(transactional_id="t")
        await crashed.start()
        crashed.begin_transaction()
        for n in range(3):
            await crashed.send_and_wait(TOPIC, b"open %d" % n, partition=n)
        crashed.crash()
        with pytest.raises(ClientCrashed):
            await crashed.commit_transaction()
        with pytest.raises(ClientCrashed):
            crashed.begin_transaction()
        async with (
            cluster.producer(transactional_id="t") as successor,
            successor.transaction(),
        ):
            for n in range(3):
                await successor.send(TOPIC, b"next %d" % n, partition=n)
        # The open transaction was aborted, so it no longer holds the successor's back either.
        assert await committed_values(cluster) == [b"next 0", b"next 1", b"next 2"]
        uncommitted = await uncommitted_values(cluster)
        assert b"open 0" in uncommitted


# --- 9. a crash right after EndTxn --------------------------------------------------------------


async def test_a_commit_whose_answer_the_client_never_read_still_happened(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.client_crash(client="producer-1", after="EndTxn")])
    async with minikafka.open_cluster(seed=9, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        producer = cluster.producer(transactional_id="t")
        await producer.start()
        producer.begin_transaction()
        for n in range(3):
            await producer.send(TOPIC, b"txn %d" % n, partition=n)
        with pytest.raises(ClientCrashed):
            await producer.commit_transaction()
        assert await committed_values(cluster) == ALL
        # A successor starts cleanly: the commit was not undone.
        async with cluster.producer(transactional_id="t") as successor, successor.transaction():
            await successor.send(TOPIC, b"next", partition=0)
        assert await committed_values(cluster) == sorted([*ALL, b"next"])


# --- 10. an abortable error -------------------------------------------------------------------


async def test_a_write_that_fails_for_good_makes_the_transaction_abort_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.broker_crash(at=1.0, down_for=20.0)])
    async with minikafka.open_cluster(seed=10, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(
            transactional_id="t", request_timeout=1.0, delivery_timeout=5.0
        ) as producer:
            producer.begin_transaction()
            await producer.send_and_wait(TOPIC, b"before", partition=0)
            await trio.sleep(1.5)  # the broker is down now
            with pytest.raises(KafkaError):
                await producer.send_and_wait(TOPIC, b"lost", partition=0)
            assert cluster.now() < 21.0  # it failed by the delivery timeout
            with pytest.raises(KafkaError, match=r"abort_transaction\(\)") as refused:
                await producer.commit_transaction()
            assert not isinstance(refused.value, ProducerFencedError)
            with pytest.raises(KafkaError, match=r"abort_transaction\(\)"):
                await producer.send(TOPIC, b"more", partition=1)
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(TOPIC, b"after", partition=0)
                await producer.send(TOPIC, b"after", partition=1)
        assert await committed_values(cluster) == [b"after", b"after"]


async def test_a_record_that_expires_before_its_partition_is_added_makes_the_commit_fail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The broker is down while the partition of the second record is being added; the record
    # expires (delivery_timeout) before the broker is back. The commit must not go through
    # without it, although the application never awaited its handle.
    plan = FaultPlan([Fault.broker_crash(at=1.0, down_for=10.0)])
    async with minikafka.open_cluster(seed=10, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(
            transactional_id="t", delivery_timeout=5.0, request_timeout=5.0
        ) as producer:
            producer.begin_transaction()
            await producer.send_and_wait(TOPIC, b"first", partition=0)
            await trio.sleep(1.5)  # the broker is down now
            handle = await producer.send(TOPIC, b"second", partition=1)
            with pytest.raises(KafkaError, match=r"abort_transaction\(\)"):
                await producer.commit_transaction()
            assert handle.exception() is not None
            await producer.abort_transaction()
        assert await committed_values(cluster) == []


async def test_a_close_in_a_cancelled_task_still_aborts_and_disconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster(seed=1) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        with trio.move_on_after(1.0):
            async with cluster.producer(transactional_id="tx") as producer:
                producer.begin_transaction()
                await producer.send_and_wait(TOPIC, b"x", partition=0)
                await trio.sleep(10)
        assert producer.closed
        again = cluster.producer(client_id=producer.client_id, transactional_id="tx")
        async with again, again.transaction():
            await again.send(TOPIC, b"y", partition=0)
        assert await committed_values(cluster) == [b"y"]
        details = [e.detail for e in cluster.trace.select(kind="txn", source=producer.client_id)]
        assert details[details.index("abort") + 1].startswith("producer id")  # then the new one


async def test_send_blocks_while_the_buffer_is_full_and_gives_up_after_max_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.broker_crash(at=0.5, down_for=100.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer(buffer_memory=2000, max_block=10.0) as producer:
            await producer.send_and_wait(TOPIC, b"x" * 100, partition=0)
            await trio.sleep(1.0)  # the broker is down now: nothing is acknowledged
            handles = [await producer.send(TOPIC, b"x" * 100, partition=0) for _ in range(10)]
            started = trio.current_time()
            with pytest.raises(minikafka.KafkaTimeoutError, match="buffer_memory=2000"):
                await producer.send(TOPIC, b"x" * 1000, partition=0)
            assert trio.current_time() - started == pytest.approx(10.0, abs=1e-6)
            with pytest.raises(ValueError, match="does not fit"):
                await producer.send(TOPIC, b"x" * 3000, partition=0)
            for handle in handles:  # delivered once the broker is back
                assert (await handle).offset >= 1


async def test_lost_acknowledgements_among_many_in_flight_never_duplicate_or_fail_a_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The answers to the 2nd and 3rd Produce are lost while later ones arrive: the producer
    # must treat the connection as broken (as Kafka's NetworkClient does) and retry in order,
    # not pile new batches behind the lost one until its retry leaves the broker's window.
    plan = FaultPlan(
        [Fault.drop_response(api="Produce", nth=2), Fault.drop_response(api="Produce", nth=3)]
    )
    async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer() as producer:
            handles = []
            for i in range(10):
                handles.append(await producer.send(TOPIC, b"v%d" % i, partition=0))
                await trio.sleep(1.0)
            offsets = [(await handle).offset for handle in handles]
        assert offsets == list(range(10))
        log = cluster.broker.log(TOPIC, 0)
        assert [r.value for b in log.batches() for r in b.records] == [
            b"v%d" % i for i in range(10)
        ]
        assert len(cluster.trace.select(kind="send", api="Produce")) < 20


async def test_an_abort_waits_for_an_add_partitions_in_flight_and_ends_what_it_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The AddPartitionsToTxn answer is late; the abort must not decide "never started" before
    # it comes, or the coordinator keeps an open transaction that the next one would merge into.
    plan = FaultPlan([Fault.delay(api="AddPartitionsToTxn", nth=1, seconds=2.0)])
    async with minikafka.open_cluster(seed=2, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=3)
        async with cluster.producer(transactional_id="t") as producer:
            producer.begin_transaction()
            await producer.send(TOPIC, b"dropped", partition=0)
            await trio.sleep(0.5)  # the sender sent AddPartitionsToTxn; its answer comes at 2 s
            await producer.abort_transaction()
            assert cluster.trace.select(kind="send", api="EndTxn")  # it had started
            async with producer.transaction():
                await producer.send(TOPIC, b"kept", partition=1)
        assert await committed_values(cluster) == [b"kept"]


async def test_a_request_refused_by_a_down_broker_is_retried_after_the_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The InitProducerId is lost; the broker's crash breaks the connection, and the retry is
    # refused while it is down. The sender must try again after the backoff, not wait for
    # the delivery timeout.
    plan = FaultPlan(
        [Fault.drop_request(api="InitProducerId", nth=1), Fault.broker_crash(at=5.0, down_for=1.0)]
    )
    async with minikafka.open_cluster(seed=3, faults=plan) as cluster:
        await cluster.create_topic(TOPIC, partitions=1)
        async with cluster.producer() as producer:
            metadata = await producer.send_and_wait(TOPIC, b"x", partition=0)
        assert metadata.offset == 0
        assert 6.0 <= cluster.now() < 7.0
