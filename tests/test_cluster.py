"""The simulated cluster as a whole: determinism, client faults, time, and the trace."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from rich.console import Console

import minikafka
from minikafka import ClientCrashed, Fault, FaultPlan, KafkaError, TopicPartition

CLIENTS = ["producer-1", "consumer-1", "consumer-2"]


async def workload(seed: int, plan: FaultPlan) -> tuple[str, list[str]]:
    """A producer and a group of two consumers under ``plan``; returns the trace and outcomes."""
    outcomes: list[str] = []
    async with minikafka.open_cluster(seed=seed, faults=plan, time_limit=600) as cluster:
        await cluster.create_topic("payments", partitions=3)

        async def produce() -> None:
            try:
                async with cluster.producer(
                    delivery_timeout=20.0, request_timeout=10.0
                ) as producer:
                    handles = [
                        await producer.send("payments", b"%d" % i, key=b"k%d" % (i % 7))
                        for i in range(20)
                    ]
                    for handle in handles:
                        try:
                            metadata = await handle
                            outcomes.append(f"sent {metadata.partition}@{metadata.offset}")
                        except KafkaError as error:
                            outcomes.append(f"failed {error.code.name}")
            except (KafkaError, ClientCrashed) as error:
                outcomes.append(f"producer {type(error).__name__}")

        async def consume(name: str) -> None:
            try:
                async with cluster.consumer(
                    "payments", client_id=name, group_id="g", auto_offset_reset="earliest"
                ) as consumer:
                    for _ in range(8):
                        batch = await consumer.getmany(timeout=5.0)
                        for tp, records in sorted(batch.items()):
                            outcomes.append(f"{name} {tp} {[r.offset for r in records]}")
            except (KafkaError, ClientCrashed) as error:
                outcomes.append(f"{name} {type(error).__name__}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(consume, "consumer-1")
            nursery.start_soon(consume, "consumer-2")
        return cluster.trace.text(), outcomes


@pytest.mark.parametrize("seed", range(20))
def test_the_same_seed_and_plan_give_the_same_trace_byte_for_byte(seed: int) -> None:
    plan = FaultPlan.random(
        seed=seed,
        rate=0.1,
        kinds={
            "drop_request",
            "drop_response",
            "duplicate_request",
            "delay",
            "broker_crash",
            "client_crash",
            "pause",
        },
        apis=("Produce", "Fetch", "OffsetCommit", "JoinGroup", "Heartbeat", "SyncGroup"),
        clients=CLIENTS,
        calls=30,
        horizon=40,
    )
    # Each run on its own clock from 0, as minikafka.run gives: simulated times are floats,
    # and the same sums from another starting point can round differently.
    first = minikafka.run(workload, seed, plan)
    second = minikafka.run(workload, seed, plan)
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert len(first[0].splitlines()) > 20


def test_a_different_seed_may_schedule_differently_but_each_replays() -> None:
    traces = {minikafka.run(workload, seed, FaultPlan())[0] for seed in (1, 1, 2, 2)}
    assert 1 <= len(traces) <= 2


async def test_a_client_crash_at_a_time_stops_the_client_and_is_in_the_trace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.client_crash(client="producer-1", at=1.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        producer = cluster.producer()
        await producer.start()
        await producer.send_and_wait("t", b"before")
        with pytest.raises(ClientCrashed, match="crashed"):
            await trio.sleep(2.0)
            await producer.send("t", b"after")
        assert producer.crashed
        crash = cluster.trace.select(kind="crash", source="producer-1")
        assert [event.time for event in crash] == [1.0]
        assert "Fault.client_crash" in crash[0].detail


async def test_a_crash_during_a_call_interrupts_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.client_crash(client="consumer-1", at=7.5)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.consumer("t", group_id="g") as consumer:
            with pytest.raises(ClientCrashed):
                await consumer.getmany(timeout=60.0)
            assert trio.current_time() == pytest.approx(7.5)


async def test_a_crash_after_an_api_replaces_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.client_crash(client="producer-1", after="Produce")])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        producer = cluster.producer()
        await producer.start()
        with pytest.raises(ClientCrashed):
            await producer.send_and_wait("t", b"landed")
        # The broker wrote it; the producer never heard.
        assert cluster.broker.log("t", 0).log_end_offset == 1
        kinds = cluster.trace.select(source="broker").kinds()
        assert "answered" in kinds


async def test_a_fault_for_a_client_that_does_not_exist_is_written_down_as_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="nobody", at=0.5, seconds=3.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await trio.sleep(1.0)
        (missed,) = cluster.trace.select(kind="missed")
        assert "nobody" in missed.target


async def test_a_paused_client_sends_nothing_until_the_pause_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="producer-1", at=1.0, seconds=40.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            await trio.sleep(2.0)
            metadata = await producer.send_and_wait("t", b"late")
            assert metadata.offset == 0
            assert trio.current_time() == pytest.approx(41.0)


async def test_restart_broker_breaks_connections_and_the_clients_carry_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster() as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            await producer.send_and_wait("t", b"one")
            await cluster.restart_broker(down_for=2.0)
            metadata = await producer.send_and_wait("t", b"two")
            assert metadata.offset == 1
        kinds = cluster.trace.kinds()
        assert kinds.index("crash") < kinds.index("recover")


async def test_a_run_that_waits_forever_stops_at_the_time_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(minikafka.SimulationTimeLimit, match="time_limit=100"):
        async with minikafka.open_cluster(time_limit=100) as cluster:
            await cluster.create_topic("t")
            async with cluster.consumer("t", group_id="g") as consumer:
                await consumer.getone()


async def test_open_cluster_refuses_a_real_clock() -> None:
    with pytest.raises(RuntimeError, match=r"minikafka\.run"):
        async with minikafka.open_cluster():
            pass


async def test_unknown_broker_settings_are_refused_with_a_suggestion(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(minikafka.ConfigError, match="auto_create_topics_enable"):
        async with minikafka.open_cluster(auto_create_topic_enable=False):
            pass


async def test_two_live_clients_cannot_share_a_client_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster() as cluster, cluster.producer(client_id="p"):
        with pytest.raises(ValueError, match="already connected"):
            await cluster.producer(client_id="p").start()


async def test_the_trace_renders_as_a_timeline_and_as_json(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            await producer.send_and_wait("t", b"x")
        trace = cluster.trace
    console = Console(record=True, width=160)
    console.print(trace)
    shown = console.export_text()
    assert "Fault.drop_response(api='Produce', nth=1)" in shown
    assert "request timed out" in shown
    rows = trace.to_json()
    assert rows[0]["kind"] == "admin" and {"time", "api", "detail"} <= set(rows[0])
    assert trace.select(kind="fault", api="Produce")[0].time == 0.0


def test_run_drives_a_whole_cluster_on_simulated_time() -> None:
    async def main() -> list[bytes | None]:
        async with minikafka.open_cluster(seed=3) as cluster:
            await cluster.create_topic("payments", partitions=3)
            producer = cluster.producer(transactional_id="pay-1")
            async with producer, producer.transaction():
                await producer.send("payments", b"2500", key=b"TXN5001")
            async with cluster.consumer(
                "payments",
                group_id="ledger",
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            ) as consumer:
                batches = await consumer.getmany(timeout=10.0)
                await consumer.commit()
                tp = TopicPartition("payments", 0)
                assert await consumer.committed(tp) is not None
                return [r.value for records in batches.values() for r in records]

    assert minikafka.run(main) == [b"2500"]


async def test_a_cluster_opened_late_in_a_run_still_moves_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The network's time 0 is not trio's: waits near a deadline must not spin at one instant.
    await trio.sleep(1000.3)
    plan = FaultPlan([Fault.pause(client="producer-1", at=0.2, seconds=0.7)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer(linger=0.3) as producer:
            for value in (b"a", b"b", b"c"):
                await producer.send_and_wait("t", value)
                await trio.sleep(0.1)
        assert cluster.broker.log("t", 0).log_end_offset == 3


async def test_requests_on_their_way_when_the_broker_crashes_are_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(
        [Fault.delay(api="Produce", nth=1, seconds=5.0), Fault.broker_crash(at=1.0, down_for=1.0)]
    )
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer(enable_idempotence=False, acks=1) as producer:
            await producer.send_and_wait("t", b"once")
        await trio.sleep(10.0)  # past the time the delayed copy arrives
        assert cluster.broker.log("t", 0).log_end_offset == 1  # the stale copy never lands
        (lost,) = cluster.trace.select(kind="lost", api="Produce")
        assert lost.time == 5.0 and lost.detail == "the broker crashed"


async def test_overlapping_broker_crashes_keep_the_broker_down_until_the_later_recovery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(
        [Fault.broker_crash(at=1.0, down_for=5.0), Fault.broker_crash(at=2.0, down_for=0.5)]
    )
    async with minikafka.open_cluster(faults=plan) as cluster:
        await trio.sleep(10.0)
        trace = cluster.trace
    assert [e.time for e in trace.select(kind="crash")] == [1.0]
    assert [e.time for e in trace.select(kind="recover")] == [6.0]
    assert "already down" in trace.select(kind="fault")[0].detail


async def test_a_crash_after_an_api_fires_on_the_first_answer_even_to_a_doubled_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(
        [
            Fault.duplicate_request(api="OffsetCommit", nth=1),
            Fault.client_crash(client="c1", after="OffsetCommit"),
        ]
    )
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            await producer.send_and_wait("t", b"x")
        consumer = cluster.consumer(
            "t",
            client_id="c1",
            group_id="g",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        with pytest.raises(ClientCrashed):
            async with consumer:
                while not await consumer.getmany(timeout=1.0):
                    pass
                await consumer.commit()
        assert len(cluster.trace.select(kind="crash", source="c1")) == 1


async def test_a_new_client_with_a_crashed_one_s_id_never_gets_its_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with minikafka.open_cluster() as cluster:
        await cluster.create_topic("t")
        old = cluster.consumer("t", client_id="c1", group_id="g")

        async def run_old() -> None:
            with pytest.raises(ClientCrashed):
                async with old:
                    await old.getmany(timeout=10.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_old)
            await trio.sleep(1.0)  # the old one's JoinGroup is held by the rebalance delay
            old.crash()
            async with cluster.consumer("t", client_id="c1", group_id="g") as new:
                await new.getmany(timeout=60.0)
                assert new.assignment() == {TopicPartition("t", 0)}
        lost = cluster.trace.select(kind="lost", api="JoinGroup")
        assert [e.detail for e in lost] == ["connection closed"]


async def test_time_spent_paused_does_not_count_against_a_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(
        [
            Fault.delay(api="Produce", nth=1, seconds=5.0),
            Fault.pause(client="producer-1", at=1.0, seconds=60.0),
        ]
    )
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer(acks=1) as producer:  # no idempotence: a retry duplicates
            metadata = await producer.send_and_wait("t", b"x")
        assert metadata.offset == 0
        assert cluster.broker.log("t", 0).log_end_offset == 1
        assert not cluster.trace.select(kind="timeout")


def test_faults_refuse_fields_their_kind_does_not_take() -> None:
    with pytest.raises(ValueError, match="a drop_request fault has no seconds"):
        Fault(kind="drop_request", api="Produce", nth=1, seconds=3.0)
    assert FaultPlan.random(seed=1, rate=1.0, kinds="delay", apis="Produce", calls=2) == FaultPlan(
        FaultPlan.random(seed=1, rate=1.0, kinds=["delay"], apis=["Produce"], calls=2)
    )


async def test_a_broker_crash_after_a_call_comes_once_the_client_has_its_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.broker_crash(after="Produce", down_for=2.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            metadata = await producer.send_and_wait("t", b"landed")
            assert metadata.offset == 0
            assert not cluster.broker.running
            await trio.sleep(2.5)  # it recovers at 2.0
            assert cluster.broker.running
            assert (await producer.send_and_wait("t", b"after")).offset == 1
        trace = cluster.trace
    kinds = [(e.kind, e.api) for e in trace]
    crash = trace[kinds.index(("deliver", "Produce")) + 1]  # right after the first answer
    assert crash.kind == "crash" and crash.time == 0.0
    assert crash.detail == "Fault.broker_crash(after='Produce', down_for=2.0)"
    assert [e.time for e in trace.select(kind="recover")] == [2.0]


async def test_a_broker_crash_after_a_call_counts_the_answers_clients_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The doubled Produce's second answer is read by nobody, so it is not the second."""
    plan = FaultPlan(
        [
            Fault.duplicate_request(api="Produce", nth=1),
            Fault.broker_crash(after="Produce", nth=2, down_for=1.0),
        ]
    )
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer() as producer:
            await producer.send_and_wait("t", b"one")
            assert cluster.broker.running
            await producer.send_and_wait("t", b"two")
            assert not cluster.broker.running


async def committed_transaction(plan: FaultPlan) -> tuple[minikafka.Trace, list[bytes]]:
    """One transaction over two partitions under ``plan``; what read_committed reads after."""
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t", partitions=2)
        producer = cluster.producer(transactional_id="pay-1")
        async with producer, producer.transaction():
            await producer.send("t", b"a", partition=0)
            await producer.send("t", b"b", partition=1)
        await trio.sleep(5.0)
        async with cluster.consumer(
            "t", group_id="g", isolation_level="read_committed", auto_offset_reset="earliest"
        ) as consumer:
            batch = await consumer.getmany(timeout=10.0)
        return cluster.trace, sorted(r.value or b"" for records in batch.values() for r in records)


async def test_the_markers_of_a_transaction_are_written_one_per_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    trace, read = await committed_transaction(FaultPlan())
    markers = trace.select(kind="marker")
    assert [(e.time, e.target, e.detail) for e in markers] == [
        (0.01, "t-0", "COMMIT of pay-1"),
        (0.02, "t-1", "COMMIT of pay-1"),
    ]
    assert read == [b"a", b"b"]


@pytest.mark.parametrize(
    "crash",
    [
        Fault.broker_crash(at=0.01, down_for=1.0),  # at the first marker's tick
        Fault.broker_crash(after="WriteTxnMarkers", nth=1, down_for=1.0),
    ],
    ids=["at", "after"],
)
async def test_a_broker_crash_between_two_markers_leaves_the_second_for_recovery(
    autojump_clock: trio.testing.MockClock, crash: Fault
) -> None:
    trace, read = await committed_transaction(FaultPlan([crash]))
    crashed = trace.select(kind="crash")[0].time
    recover = trace.select(kind="recover")[0].time
    markers = trace.select(kind="marker")
    assert [e.target for e in markers if e.time <= crashed] == ["t-0"]
    assert "t-1" in [e.target for e in markers if e.time > recover]
    assert read == [b"a", b"b"]  # rolled forward: the transaction still commits


async def test_a_pause_of_a_process_freezes_every_client_in_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="worker-9", at=1.0, seconds=10.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        worker = cluster.producer(client_id="worker-9")
        helper = cluster.producer(client_id="worker-9-out")
        helper.process = "worker-9"
        async with worker, helper, cluster.producer(client_id="outsider") as outsider:
            await trio.sleep(2.0)
            assert cluster.network.is_paused("worker-9")
            assert cluster.network.is_paused("worker-9-out")
            await outsider.send_and_wait("t", b"now")
            assert cluster.now() == pytest.approx(2.0)
            await helper.send_and_wait("t", b"later")
            assert cluster.now() == pytest.approx(11.0)
            assert not cluster.network.is_paused("worker-9")


async def test_a_pause_of_a_process_freezes_it_when_no_client_bears_its_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.pause(client="worker-9", at=1.0, seconds=10.0)])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        producer = cluster.producer(client_id="worker-9-out")
        producer.process = "worker-9"
        async with producer:
            await trio.sleep(2.0)
            assert cluster.network.is_paused("worker-9")
            await producer.send_and_wait("t", b"later")
            assert cluster.now() == pytest.approx(11.0)


def event(time: float, kind: str, api: str | None = None) -> minikafka.TraceEvent:
    return minikafka.TraceEvent(time, kind, "c1", "broker", api, "")


STORY = minikafka.Trace(
    [
        event(0.0, "send", "Produce"),
        event(0.0, "handle", "Produce"),
        event(0.0, "deliver", "Produce"),
        event(0.5, "handle", "Heartbeat"),
        event(1.0, "fault", "EndTxn"),
        event(1.0, "handle", "EndTxn"),
        event(1.0, "txn"),
        event(1.1, "marker"),
        event(1.5, "handle", "Fetch"),
        event(1.5, "poll"),
        event(2.0, "crash"),
        event(2.0, "handle", "Metadata"),
        event(2.5, "handle", "ListOffsets"),
        event(2.5, "handle", "FindCoordinator"),
        event(3.0, "recover"),
    ]
)


def test_between_keeps_the_events_of_a_time_span_both_ends_included() -> None:
    assert [e.time for e in STORY.between(1.0, 1.5)] == [1.0, 1.0, 1.0, 1.1, 1.5, 1.5]
    assert STORY.between(3.5, 9.0) == minikafka.Trace([])


def test_the_story_leaves_out_routine_traffic() -> None:
    story = STORY.story()
    assert [(e.kind, e.api) for e in story] == [
        ("fault", "EndTxn"),
        ("handle", "EndTxn"),
        ("txn", None),
        ("marker", None),
        ("poll", None),
        ("crash", None),
        ("recover", None),
    ]
    assert isinstance(story, minikafka.Trace)


async def test_a_crash_after_a_call_from_a_time_on_waits_for_that_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """client_crash(at=, after=): the first Produce answered at or after 5 s, not the first."""
    plan = FaultPlan([Fault.client_crash(client="p", at=5.0, after="Produce")])
    async with minikafka.open_cluster(faults=plan) as cluster:
        await cluster.create_topic("t")
        async with cluster.producer(client_id="p") as producer:
            await producer.send_and_wait("t", b"early")
            await trio.sleep(6.0)
            with pytest.raises(minikafka.ClientCrashed):
                await producer.send_and_wait("t", b"late")
        crash = cluster.trace.select(kind="crash")
    assert [e.time for e in crash] == [6.0]
