"""The simulated network: faults from the plan, FIFO connections, crashes, and determinism."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import trio
import trio.testing

import minikafka
from minikafka import Fault, FaultPlan
from minikafka.core import (
    Broker,
    ErrorCode,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProducePartitionData,
    ProduceRequest,
    ProduceResponse,
    Record,
    RecordBatch,
)
from minikafka.pipelines import run_pipeline
from minikafka.sim.clock import SimClock
from minikafka.sim.network import ConnectionBroken, Network, RequestTimedOut, TraceEvent


def produce(pid: int, sequence: int) -> ProduceRequest:
    batch = RecordBatch(
        records=(Record(b"v%d" % sequence),),
        producer_id=pid,
        producer_epoch=0,
        base_sequence=sequence,
    )
    return ProduceRequest(partitions=(ProducePartitionData("payments", 0, batch),))


async def scenario(plan: FaultPlan) -> tuple[Broker, list[TraceEvent], list[str]]:
    """One idempotent producer sends three batches, retrying each on a timeout."""
    broker = Broker()
    broker.create_topic("payments", 1)
    network = Network(broker, plan)
    outcomes: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(network.run)
        init = await network.request("p1", InitProducerIdRequest(), timeout=5.0)
        assert isinstance(init, InitProducerIdResponse)
        for sequence in range(3):
            for _attempt in range(5):
                try:
                    response = await network.request(
                        "p1", produce(init.producer_id, sequence), timeout=2.0
                    )
                except (RequestTimedOut, ConnectionBroken) as error:
                    outcomes.append(type(error).__name__)
                    await trio.sleep(1.0)
                    continue
                assert isinstance(response, ProduceResponse)
                part = response.partitions[0]
                outcomes.append(f"{part.error_code.name}@{part.base_offset}")
                if part.error_code is ErrorCode.NONE:
                    break
        nursery.cancel_scope.cancel()
    return broker, network.trace, outcomes


async def test_a_lost_answer_times_out_and_the_retry_gets_the_original_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_response(api="Produce", nth=1)])
    broker, trace, outcomes = await scenario(plan)
    assert outcomes == ["RequestTimedOut", "NONE@0", "NONE@1", "NONE@2"]
    assert broker.log("payments", 0).log_end_offset == 3
    assert any(e.kind == "lost" and e.api == "Produce" for e in trace)


async def test_a_lost_request_never_reaches_the_broker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.drop_request(api="Produce", nth=2)])
    broker, _, outcomes = await scenario(plan)
    assert outcomes == ["NONE@0", "RequestTimedOut", "NONE@1", "NONE@2"]
    assert broker.log("payments", 0).log_end_offset == 3


async def test_a_duplicated_request_is_deduplicated_by_the_broker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.duplicate_request(api="Produce", nth=1)])
    broker, trace, outcomes = await scenario(plan)
    assert outcomes == ["NONE@0", "NONE@1", "NONE@2"]
    assert broker.log("payments", 0).log_end_offset == 3
    assert [e.kind for e in trace if e.api == "Produce"].count("handle") == 4


async def test_a_delay_holds_the_connection_back_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan([Fault.delay(api="Produce", nth=1, seconds=1.5)])
    _, trace, outcomes = await scenario(plan)
    assert outcomes == ["NONE@0", "NONE@1", "NONE@2"]
    handled = [e.time for e in trace if e.kind == "handle" and e.api == "Produce"]
    assert handled[0] == pytest.approx(1.5) and handled == sorted(handled)


async def test_a_broker_crash_breaks_the_connection_until_it_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(
        [Fault.delay(api="Produce", nth=1, seconds=1.0), Fault.broker_crash(at=0.5, down_for=2.0)]
    )
    broker, trace, outcomes = await scenario(plan)
    assert outcomes[0] == "ConnectionBroken"
    assert "NONE@0" in outcomes and broker.log("payments", 0).log_end_offset == 3
    kinds = [e.kind for e in trace]
    assert kinds.index("crash") < kinds.index("recover")


async def test_the_same_plan_gives_the_same_trace(autojump_clock: trio.testing.MockClock) -> None:
    for seed in range(5):
        plan = FaultPlan.random(
            seed=seed,
            rate=0.3,
            kinds={"drop_request", "drop_response", "duplicate_request", "delay", "broker_crash"},
            calls=10,
            horizon=20,
        )
        first = await scenario(plan)
        second = await scenario(plan)
        assert first[1] == second[1] and first[2] == second[2]


async def test_a_request_with_no_fault_is_answered_before_send_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Nothing stands between a request and the broker but the faults: without one, the
    broker handles it and its answer is in when ``send`` returns; a delayed one waits."""
    broker = Broker()
    broker.create_topic("payments", 1)
    network = Network(broker, FaultPlan([Fault.delay(api="Produce", nth=2, seconds=1.0)]))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(network.run)
        init = await network.request("p1", InitProducerIdRequest(), timeout=5.0)
        assert isinstance(init, InitProducerIdResponse)
        prompt = network.send("p1", produce(init.producer_id, 0))
        assert prompt is not None and prompt.done.is_set()
        late = network.send("p1", produce(init.producer_id, 1))
        assert late is not None and not late.done.is_set()
        first = await network.wait(prompt, timeout=5.0)
        assert trio.current_time() == 0.0
        second = await network.wait(late, timeout=5.0)
        assert trio.current_time() == 1.0
        assert isinstance(first, ProduceResponse) and isinstance(second, ProduceResponse)
        assert [first.partitions[0].base_offset, second.partitions[0].base_offset] == [0, 1]
        nursery.cancel_scope.cancel()


def test_run_makes_minutes_of_simulated_time_pass_at_once() -> None:
    async def wait_an_hour() -> tuple[float, bool]:
        clock = trio.lowlevel.current_clock()
        start = trio.current_time()
        await trio.sleep(3600)
        return trio.current_time() - start, isinstance(clock, SimClock)

    assert minikafka.run(wait_an_hour) == (3600, True)


def test_the_sim_clock_schedules_a_pipeline_as_trio_s_mock_clock_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SimClock saves trio's idle passes, nothing else: a pipeline under faults runs the same
    steps at the same times as under MockClock(autojump_threshold=0)."""
    plan = FaultPlan(
        [
            Fault.drop_response(api="Produce", nth=3),
            Fault.client_crash(client="worker-1", at=4.0),
            Fault.delay(api="Fetch", nth=5, seconds=0.7),
        ]
    )
    fast = run_pipeline("exactly-once", events=30, seed=7, faults=plan)

    def run_on_mock_clock(async_fn: Any, *args: object) -> Any:
        return trio.run(async_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))

    monkeypatch.setattr(minikafka, "run", run_on_mock_clock)
    slow = run_pipeline("exactly-once", events=30, seed=7, faults=plan)
    assert fast.restarts == slow.restarts >= 1
    assert list(fast.trace) == list(slow.trace)


def test_the_sim_clock_lets_a_task_waiting_for_the_others_to_block_go_first() -> None:
    async def main() -> list[str]:
        seen: list[str] = []

        async def sleeper() -> None:
            await trio.sleep(5)
            seen.append(f"slept until {trio.current_time()}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            seen.append(f"all blocked at {trio.current_time()}")
        return seen

    assert minikafka.run(main) == ["all blocked at 0.0", "slept until 5.0"]


def test_a_flush_tick_due_between_two_nanoseconds_runs_once() -> None:
    """A tick planned for a time that rounds below itself must not be planned again at the
    same instant, forever (the pump would never yield). Run in a child process, so that a
    regression fails on its timeout instead of hanging the suite."""
    script = """
import trio, minikafka
async def main():
    async with minikafka.open_cluster() as cluster:
        await cluster.create_topic("t")
        async with cluster.producer(enable_idempotence=False, acks=1) as producer:
            await trio.sleep(0.543 - cluster.network.now())
            await producer.send_and_wait("t", b"x")
            await trio.sleep(5)
        assert cluster.broker.log("t", 0).high_watermark == 1
minikafka.run(main)
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
