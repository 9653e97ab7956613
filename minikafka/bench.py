"""``minikafka bench``: how fast the simulation runs, in figures a class can compare.

Benchmarks print what they measure; they never assert it (the test suite has no timed
assertions). Wall-clock time is read here and only here: it measures the simulation, it never
steers it.

Suites:
- ``clients``: a producer sends N records (idempotence on, the default) through the simulated
  network, and a consumer reads them back; records per wall second for each side.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import trio

import minikafka
from minikafka.core.records import TopicPartition

__all__ = ["SUITES", "ClientsResult", "run_clients"]

SUITES = ("clients",)
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
