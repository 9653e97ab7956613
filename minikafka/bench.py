"""``minikafka bench``: how fast the simulation runs, in figures a class can compare.

Benchmarks print what they measure; they never assert it (the test suite has no timed
assertions). Wall-clock time is read here and only here: it measures the simulation, it never
steers it.

Suites:
- ``core``: ``Broker.handle`` alone: idempotent produce requests of 1, 10 and 100 records,
  and read_committed fetches of 500 records from a log of committed and aborted transactions,
  against a plain loop that copies 500 records.
- ``clients``: a producer sends N records (idempotence on, the default) through the simulated
  network, and a consumer reads them back; records per wall second for each side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import trio
from rich.table import Table
from rich.text import Text

import minikafka
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

__all__ = ["SUITES", "ClientsResult", "SuiteResult", "Target", "run_clients", "run_core"]

SUITES = ("core", "clients")
"""The suites this version has; a later version grows the list."""

PARTITIONS = 3
VALUE = b"x" * 100


@attrs.frozen
class ClientsResult:
    """What the ``clients`` suite measured."""

    records: int
    produce_seconds: float
    consume_seconds: float
    simulated_seconds: float
    produce_requests: int
    fetch_requests: int

    @property
    def produce_per_second(self) -> float:
        return self.records / self.produce_seconds if self.produce_seconds else float("inf")

    @property
    def consume_per_second(self) -> float:
        return self.records / self.consume_seconds if self.consume_seconds else float("inf")

    def to_json(self) -> dict[str, float | int | str]:
        return {
            "suite": "clients",
            "records": self.records,
            "produce_seconds": round(self.produce_seconds, 3),
            "consume_seconds": round(self.consume_seconds, 3),
            "produce_records_per_second": round(self.produce_per_second),
            "consume_records_per_second": round(self.consume_per_second),
            "simulated_seconds": round(self.simulated_seconds, 3),
            "produce_requests": self.produce_requests,
            "fetch_requests": self.fetch_requests,
        }


def run_clients(
    records: int = 100_000, progress: Callable[[str, int], None] | None = None
) -> ClientsResult:
    """Send ``records`` records with an idempotent producer and read them back with an
    assigned consumer; ``progress(phase, done)`` is called as records go and come."""
    report = progress or (lambda phase, done: None)

    async def main() -> ClientsResult:
        async with minikafka.open_cluster(seed=0) as cluster:
            await cluster.create_topic("bench", partitions=PARTITIONS)
            start = time.perf_counter()
            async with cluster.producer() as producer:
                for number in range(records):
                    await producer.send("bench", VALUE)
                    if number % 1000 == 999:
                        report("produce", number + 1)
                        await trio.lowlevel.checkpoint()
                await producer.flush()
            report("produce", records)
            produced = time.perf_counter()
            read = 0
            async with cluster.consumer(
                auto_offset_reset="earliest", max_poll_records=5000
            ) as consumer:
                consumer.assign([TopicPartition("bench", p) for p in range(PARTITIONS)])
                while read < records:
                    batch = await consumer.getmany(timeout=1.0)
                    read += sum(len(rs) for rs in batch.values())
                    report("consume", read)
            consumed = time.perf_counter()
            trace = cluster.trace
            return ClientsResult(
                records=records,
                produce_seconds=produced - start,
                consume_seconds=consumed - produced,
                simulated_seconds=cluster.now(),
                produce_requests=len(trace.select(kind="handle", api="Produce")),
                fetch_requests=len(trace.select(kind="handle", api="Fetch")),
            )

    return minikafka.run(main)


# --- the core suite: Broker.handle alone ------------------------------------------------------


@attrs.frozen
class Target:
    """One goal of a suite: what it asks for, what was measured, whether it is met."""

    name: str
    goal: str
    measured: str
    met: bool


@attrs.frozen
class SuiteResult:
    """What a suite measured (name, value, unit) and its targets."""

    suite: str
    figures: tuple[tuple[str, float, str], ...]
    targets: tuple[Target, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "figures": [
                {"name": name, "value": round(value, 3), "unit": unit}
                for name, value, unit in self.figures
            ],
            "targets": [attrs.asdict(target) for target in self.targets],
        }

    def render(self) -> Table:
        table = Table(title=f"minikafka bench {self.suite}", header_style="bold")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("unit")
        for name, value, unit in self.figures:
            table.add_row(name, f"{value:,.2f}" if value < 100 else f"{value:,.0f}", unit)
        for target in self.targets:
            mark = Text("met", style="green") if target.met else Text("NOT MET", style="red")
            table.add_row(
                Text(f"target: {target.name}", style="bold"),
                target.measured,
                Text.assemble(target.goal, " ", mark),
            )
        return table


PRODUCE_TARGET_PER_SECOND = 100_000
FETCH_TARGET_RATIO = 3.0


def _produce_requests(pid: int, size: int, count: int) -> list[ProduceRequest]:
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


def _produce_rate(size: int, count: int) -> float:
    """Requests per second that ``Broker.handle`` takes for ``size``-record batches."""
    broker = Broker()
    broker.create_topic("bench")
    pid = broker.handle(InitProducerIdRequest(), now=0.0).producer_id  # type: ignore[union-attr]
    requests = _produce_requests(pid, size, count)
    start = time.perf_counter()
    for request in requests:
        broker.handle(request, now=1.0)
    return count / (time.perf_counter() - start)


def _transactional_log(records: int, per_transaction: int = 50) -> Broker:
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


def _read_committed_cost(broker: Broker, visible: int = 500) -> float:
    """Seconds to fetch ``visible`` committed records with read_committed and filter them as
    the consumer does, averaged over a sweep of the whole log."""
    log = broker.log("bench", 0)
    position, shown, seconds = 0, 0, 0.0
    while position < log.high_watermark:
        start = time.perf_counter()
        answer = broker.handle(
            FetchRequest(
                partitions=(FetchPartition("bench", 0, position, 64 * 1024),),
                isolation_level=IsolationLevel.READ_COMMITTED,
            ),
            now=2.0,
        )
        assert isinstance(answer, FetchResponse)
        part = answer.partitions[0]
        result = visible_records(part.batches, part.aborted_transactions, position)
        seconds += time.perf_counter() - start
        shown += len(result.records)
        position = result.next_offset
    return seconds / shown * visible


def _copy_cost(visible: int = 500, rounds: int = 200) -> float:
    """Seconds for a plain Python loop that copies ``visible`` records out of a list."""
    source = [Record(VALUE) for _ in range(visible)]
    start = time.perf_counter()
    for _ in range(rounds):
        copied = []
        for record in source:
            copied.append(record)
    return (time.perf_counter() - start) / rounds


def run_core() -> SuiteResult:
    """``Broker.handle`` on its own: idempotent produce requests of 1, 10 and 100 records, and
    read_committed fetches of 500 records from a log of committed and aborted transactions."""
    figures: list[tuple[str, float, str]] = []
    rates = {}
    for size, count in ((1, 20_000), (10, 5_000), (100, 1_000)):
        rate = _produce_rate(size, count)
        rates[size] = rate
        figures.append((f"produce, {size}-record batches", rate, "requests/s"))
        figures.append((f"produce, {size}-record batches ", rate * size, "records/s"))
    broker = _transactional_log(10_000)
    fetch = _read_committed_cost(broker)
    copy = _copy_cost()
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
            f"<= {FETCH_TARGET_RATIO}x",
            f"{ratio:.2f}x",
            ratio <= FETCH_TARGET_RATIO,
        ),
    )
    return SuiteResult("core", tuple(figures), targets)
