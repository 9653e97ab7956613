"""The ``core`` suite: ``Broker.handle`` alone, with no network, no trio and no clients.

Idempotent produce requests of 1, 10 and 100 records, and read_committed fetches of 500
records from a log of committed and aborted transactions, filtered as a consumer filters them,
against a plain loop that copies 500 records out of a list. The helpers here build the
workloads the ``scale`` suite reuses.
"""

from __future__ import annotations

import time

from minikafka.bench import Progress, SuiteResult, Target, gc_paused
from minikafka.core import Broker
from minikafka.core.isolation import visible_records
from minikafka.core.messages import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    IsolationLevel,
    ProducePartitionData,
    ProduceRequest,
)
from minikafka.core.records import Record, RecordBatch, TopicPartition

__all__ = [
    "VALUE",
    "produce_requests",
    "read_committed_cost",
    "run",
    "transactional_log",
]

VALUE = b"x" * 100
"""Every benchmark record's value: 100 bytes."""

PRODUCE_TARGET_PER_SECOND = 100_000
FETCH_TARGET_RATIO = 3.0
ROUNDS = 7


def produce_requests(pid: int, size: int, count: int) -> list[ProduceRequest]:
    """``count`` idempotent requests of ``size`` records each, in sequence order."""
    records = tuple(Record(VALUE) for _ in range(size))
    return [
        ProduceRequest(
            partitions=(
                ProducePartitionData(
                    "bench",
                    0,
                    RecordBatch(
                        records=records,
                        producer_id=pid,
                        producer_epoch=0,
                        base_sequence=number * size,
                    ),
                ),
            ),
            acks=1,
        )
        for number in range(count)
    ]


def produce_rate(size: int, count: int, rounds: int = ROUNDS, chunk: int = 200) -> float:
    """Requests per second that ``Broker.handle`` takes for ``size``-record batches.

    ``count`` requests go to a fresh broker, ``rounds`` times; each run of ``chunk`` requests
    is timed on its own, and for each the quickest round counts (so a pause of the machine
    does not), as the fetches are measured."""
    best: list[float] = []
    for _ in range(rounds):
        broker = Broker()
        broker.create_topic("bench")
        answer = broker.handle(InitProducerIdRequest(), now=0.0)
        pid = answer.producer_id  # type: ignore[union-attr]
        requests = produce_requests(pid, size, count)
        with gc_paused():
            for number, first in enumerate(range(0, count, chunk)):
                start = time.perf_counter()
                for request in requests[first : first + chunk]:
                    broker.handle(request, now=1.0)
                seconds = time.perf_counter() - start
                if number < len(best):
                    best[number] = min(best[number], seconds)
                else:
                    best.append(seconds)
    return count / sum(best)


def transactional_log(records: int, per_transaction: int = 50) -> Broker:
    """A log of ``records`` records in transactions of ``per_transaction``, committed and
    aborted in turn, from two producers."""
    broker = Broker()
    broker.create_topic("bench")
    tp = TopicPartition("bench", 0)
    producers = []
    for name in ("committer", "aborter"):
        answer = broker.handle(InitProducerIdRequest(transactional_id=name), now=0.0)
        producers.append((name, answer.producer_id, answer.producer_epoch))  # type: ignore[union-attr]
    sequences = [0, 0]
    written = 0
    turn = 0
    while written < records:
        index = turn % 2
        name, pid, epoch = producers[index]
        broker.handle(
            AddPartitionsToTxnRequest(
                transactional_id=name, producer_id=pid, producer_epoch=epoch, partitions=(tp,)
            ),
            now=1.0,
        )
        batch = RecordBatch(
            records=tuple(Record(VALUE) for _ in range(per_transaction)),
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequences[index],
            is_transactional=True,
        )
        sequences[index] += per_transaction
        broker.handle(
            ProduceRequest(partitions=(ProducePartitionData("bench", 0, batch),)), now=1.0
        )
        broker.handle(
            EndTxnRequest(
                transactional_id=name, producer_id=pid, producer_epoch=epoch, committed=index == 0
            ),
            now=1.0,
        )
        broker.tick(1.0)
        written += per_transaction
        turn += 1
    return broker


def read_committed_cost(
    broker: Broker, visible: int = 500, sweeps: int = 40
) -> tuple[float, float]:
    """Seconds for a read_committed fetch that shows ``visible`` records, filtered as the
    consumer filters them, over a sweep of the whole log; and seconds for a plain Python loop
    that copies ``visible`` records out of a list, timed between the fetches so that both
    meet the same moods of the machine.

    Each fetch asks for twice the bytes of ``visible`` records, as committed and aborted
    transactions alternate in the log. Each fetch is timed on its own, ``sweeps`` times, and
    the quickest time counts (so a pause of the machine does not); so for the copy loop. The
    filter hands out the records as slices of whole batches; building the consumer's own
    record objects is the client's cost, which the ``clients`` suite measures.
    """
    log = broker.log("bench", 0)
    wanted = 2 * visible * Record(VALUE).size_bytes
    source = [Record(VALUE) for _ in range(visible)]
    best: dict[int, float] = {}
    shown: dict[int, int] = {}
    copy = float("inf")
    with gc_paused():
        for _ in range(sweeps):
            position = 0
            while position < log.high_watermark:
                start = time.perf_counter()
                answer = broker.handle(
                    FetchRequest(
                        partitions=(FetchPartition("bench", 0, position, wanted),),
                        isolation_level=IsolationLevel.READ_COMMITTED,
                    ),
                    now=2.0,
                )
                assert isinstance(answer, FetchResponse)
                part = answer.partitions[0]
                result = visible_records(part.batches, part.aborted_transactions, position)
                seconds = time.perf_counter() - start
                best[position] = min(seconds, best.get(position, seconds))
                shown[position] = result.count
                position = result.next_offset
                start = time.perf_counter()
                copied = []
                for record in source:
                    copied.append(record)
                copy = min(copy, time.perf_counter() - start)
    return sum(best.values()) / sum(shown.values()) * visible, copy


def run(*, progress: Progress, quick: bool = False) -> SuiteResult:
    """``Broker.handle`` on its own: idempotent produce requests of 1, 10 and 100 records, and
    read_committed fetches of 500 records from a log of committed and aborted transactions.
    Each timing is the quickest of several rounds, so one hiccup of the machine does not set
    it, and runs with the garbage collector off, as ``timeit`` does."""
    scale = 10 if quick else 1
    figures: list[tuple[str, float, str]] = []
    rates = {}
    plan = ((1, 20_000 // scale), (10, 5_000 // scale), (100, 1_000 // scale))
    for step, (size, count) in enumerate(plan):
        progress("core: produce", step, len(plan) + 1)
        rate = produce_rate(size, count)
        rates[size] = rate
        figures.append((f"produce, {size}-record batches", rate, "requests/s"))
        figures.append((f"produce, {size}-record batches: records", rate * size, "records/s"))
    progress("core: produce", len(plan), len(plan) + 1)
    broker = transactional_log(10_000 // scale)
    fetch, copy = read_committed_cost(broker)
    progress("core: produce", len(plan) + 1, len(plan) + 1)
    figures.append(("read_committed fetch of 500 records", fetch * 1e6, "µs"))
    figures.append(("plain loop copying 500 records", copy * 1e6, "µs"))
    ratio = fetch / copy
    targets = (
        Target(
            "produce requests per second (1-record batches)",
            f">= {PRODUCE_TARGET_PER_SECOND:,}",
            f"{rates[1]:,.0f}",
            rates[1] >= PRODUCE_TARGET_PER_SECOND,
        ),
        Target(
            "read_committed fetch of 500 records against a copy loop",
            f"<= {FETCH_TARGET_RATIO:g}x",
            f"{ratio:.2f}x",
            ratio <= FETCH_TARGET_RATIO,
        ),
    )
    return SuiteResult("core", tuple(figures), targets)
