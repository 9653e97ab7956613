"""The ``clients`` suite: a producer sends records through the simulated network (idempotence
on, the default) and a consumer reads them back; records per wall second for each side."""

from __future__ import annotations

import time

import attrs
import trio

import minikafka
from minikafka.bench import Progress, SuiteResult
from minikafka.bench.core import VALUE
from minikafka.core.records import TopicPartition

__all__ = ["ClientsRun", "run", "run_minikafka"]

PARTITIONS = 3
RECORDS = 100_000


@attrs.frozen
class ClientsRun:
    """One run of the workload: wall seconds for each side, and what it took."""

    records: int
    produce_seconds: float
    consume_seconds: float
    simulated_seconds: float = 0.0
    produce_requests: int = 0
    fetch_requests: int = 0

    @property
    def produce_per_second(self) -> float:
        return self.records / self.produce_seconds if self.produce_seconds else float("inf")

    @property
    def consume_per_second(self) -> float:
        return self.records / self.consume_seconds if self.consume_seconds else float("inf")


def run_minikafka(records: int, progress: Progress) -> ClientsRun:
    """Send ``records`` records with an idempotent producer and read them back with an
    assigned consumer."""

    async def main() -> ClientsRun:
        async with minikafka.open_cluster(seed=0) as cluster:
            await cluster.create_topic("bench", partitions=PARTITIONS)
            start = time.perf_counter()
            async with cluster.producer() as producer:
                for number in range(records):
                    await producer.send("bench", VALUE)
                    if number % 1000 == 999:
                        progress("clients: minikafka produce", number + 1, records)
                        await trio.lowlevel.checkpoint()
                await producer.flush()
            progress("clients: minikafka produce", records, records)
            produced = time.perf_counter()
            read = 0
            async with cluster.consumer(
                auto_offset_reset="earliest", max_poll_records=5000
            ) as consumer:
                consumer.assign([TopicPartition("bench", p) for p in range(PARTITIONS)])
                while read < records:
                    batch = await consumer.getmany(timeout=1.0)
                    read += sum(len(rs) for rs in batch.values())
                    progress("clients: minikafka consume", read, records)
            consumed = time.perf_counter()
            trace = cluster.trace
            return ClientsRun(
                records=records,
                produce_seconds=produced - start,
                consume_seconds=consumed - produced,
                simulated_seconds=cluster.now(),
                produce_requests=len(trace.select(kind="handle", api="Produce")),
                fetch_requests=len(trace.select(kind="handle", api="Fetch")),
            )

    return minikafka.run(main)


def run(*, progress: Progress, quick: bool = False) -> SuiteResult:
    """The clients workload on minikafka."""
    records = RECORDS // 10 if quick else RECORDS
    ours = run_minikafka(records, progress)
    figures = (
        ("records (100 bytes each)", float(records), "records"),
        ("produce (idempotent)", ours.produce_per_second, "records/s"),
        ("consume", ours.consume_per_second, "records/s"),
        ("Produce requests", float(ours.produce_requests), "requests"),
        ("Fetch requests", float(ours.fetch_requests), "requests"),
    )
    return SuiteResult("clients", figures, ())
