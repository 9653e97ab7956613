"""The ``clients`` suite: a producer sends records through the simulated network (idempotence
on, the default) and a consumer reads them back; records per wall second for each side.

When mockafka-py is installed (``pip install minikafka[bench]``), its ``FakeProducer`` and
``FakeConsumer`` run the same workload in the same run, and the suite reports minikafka's
throughput as a multiple of theirs. mockafka-py is imported only inside ``run_mockafka``, so
minikafka works without it.
"""

from __future__ import annotations

import time

import attrs
import trio

import minikafka
from minikafka.bench import Progress, SuiteResult, Target
from minikafka.bench.core import VALUE
from minikafka.core.records import TopicPartition

__all__ = ["ClientsRun", "run", "run_minikafka", "run_mockafka"]

PARTITIONS = 3
RECORDS = 100_000
POLL_RECORDS = 5000
"""Records one poll returns at most, on both sides."""
ROUNDS = 2
"""Rounds of each side; each figure is the best round."""
QUICK_ROUNDS = 3
"""Rounds of each side in quick mode, whose workload is a tenth of the full one."""
TARGET_RATIO = 1.5
"""minikafka's produce and consume throughput, each at least this multiple of mockafka-py's."""
NOT_INSTALLED = "mockafka-py not installed (pip install minikafka[bench])"


@attrs.frozen
class ClientsRun:
    """One run of the workload: wall seconds for each side, and what it took."""

    records: int
    produce_seconds: float
    consume_seconds: float
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
                auto_offset_reset="earliest", max_poll_records=POLL_RECORDS
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
                produce_requests=len(trace.select(kind="handle", api="Produce")),
                fetch_requests=len(trace.select(kind="handle", api="Fetch")),
            )

    return minikafka.run(main)


def run_mockafka(records: int, progress: Progress) -> ClientsRun | None:
    """The same workload on mockafka-py: a ``FakeProducer`` produces ``records`` records of
    100 bytes to a topic of 3 partitions (round robin, since its ``produce`` needs a
    partition), and a ``FakeConsumer`` subscribed to the topic reads them back with
    ``consume(num_messages=5000)``. Its ``flush()`` does nothing, so there is none to wait
    for. None when mockafka-py is not installed.

    mockafka-py keeps every topic in one process-wide store; it is emptied before the run and
    again after it.
    """
    # The ignores let mypy pass where mockafka-py is not installed (the names are then Any).
    try:
        from confluent_kafka.cimpl import NewTopic  # type: ignore[import-not-found, unused-ignore]
        from mockafka import (  # type: ignore[import-not-found, unused-ignore]
            FakeAdminClientImpl,
            FakeConsumer,
            FakeProducer,
        )
        from mockafka.kafka_store import KafkaStore  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        FakeAdminClientImpl(clean=True).create_topics(
            [NewTopic("bench", num_partitions=PARTITIONS)]
        )
        start = time.perf_counter()
        producer = FakeProducer()
        for number in range(records):
            producer.produce("bench", value=VALUE, partition=number % PARTITIONS)
            if number % 1000 == 999:
                progress("clients: mockafka-py produce", number + 1, records)
        progress("clients: mockafka-py produce", records, records)
        produced = time.perf_counter()
        consumer = FakeConsumer()
        # mockafka-py leaves subscribe() unannotated; it takes a list of topic names.
        consumer.subscribe(["bench"])  # type: ignore[no-untyped-call, unused-ignore]
        read = 0
        while read < records:
            got = len(consumer.consume(num_messages=POLL_RECORDS))
            if not got:
                raise RuntimeError(f"mockafka-py returned {read} of {records} records")
            read += got
            progress("clients: mockafka-py consume", read, records)
        consumed = time.perf_counter()
        return ClientsRun(
            records=records,
            produce_seconds=produced - start,
            consume_seconds=consumed - produced,
        )
    finally:
        KafkaStore.fresh()


def _rounds(round_: int, rounds: int, progress: Progress) -> Progress:
    """A ``Progress`` for one round that shows every round of a side on one bar per phase."""

    def shown(task: str, done: float, total: float) -> None:
        progress(task, round_ * total + done, rounds * total)

    return shown


def _best(runs: list[ClientsRun]) -> tuple[float, float]:
    """The best produce rate and the best consume rate over ``runs`` (each may come from a
    different round)."""
    return (
        max(run.produce_per_second for run in runs),
        max(run.consume_per_second for run in runs),
    )


def run(*, progress: Progress, quick: bool = False) -> SuiteResult:
    """The clients workload on minikafka and, if it is installed, on mockafka-py: 100,000
    records of 100 bytes (10,000 when ``quick``) produced to 3 partitions, then consumed.
    The sides take turns for two rounds (three when ``quick``), so a slow spell of the machine
    hits both; each figure is the best round."""
    records = RECORDS // 10 if quick else RECORDS
    ours: list[ClientsRun] = []
    theirs: list[ClientsRun] = []
    rounds = QUICK_ROUNDS if quick else ROUNDS
    for round_ in range(rounds):
        ours.append(run_minikafka(records, _rounds(round_, rounds, progress)))
        other = run_mockafka(records, _rounds(round_, rounds, progress))
        if other is not None:
            theirs.append(other)
    produce, consume = _best(ours)
    figures: list[tuple[str, float, str]] = [
        ("records (100 bytes each)", float(records), "records"),
        ("produce (idempotent)", produce, "records/s"),
        ("consume", consume, "records/s"),
        ("Produce requests", float(ours[0].produce_requests), "requests"),
        ("Fetch requests", float(ours[0].fetch_requests), "requests"),
    ]
    notes = [
        f"Best of {rounds} rounds for each figure; the two libraries take turns.",
        "minikafka, per record: send() checks the producer's state and the value, picks a "
        "partition (sticky, as Kafka's default partitioner without a key), builds a Record "
        "and appends it to the accumulator's batch for its partition (16 KiB, about 150 "
        "records here); the sender task drains the batches, one per partition, into "
        "idempotent Produce requests (at most 5 in flight) that cross the simulated network; "
        "the broker checks each batch's producer id, epoch and sequence numbers before it "
        "appends it, and each answer becomes a RecordMetadata, a delivery report and a "
        "resolved delivery handle for every record. "
        "The consumer sends Fetch requests across the same network and turns each batch's "
        "records into ConsumerRecords, up to 5,000 per getmany().",
    ]
    goal = f">= {TARGET_RATIO:g}x"
    if theirs:
        their_produce, their_consume = _best(theirs)
        produce_ratio, consume_ratio = produce / their_produce, consume / their_consume
        figures += [
            ("mockafka-py produce", their_produce, "records/s"),
            ("mockafka-py consume", their_consume, "records/s"),
            ("produce: minikafka / mockafka-py", produce_ratio, "x"),
            ("consume: minikafka / mockafka-py", consume_ratio, "x"),
        ]
        targets = (
            Target(
                "produce throughput against mockafka-py",
                goal,
                f"{produce_ratio:.2f}x",
                produce_ratio >= TARGET_RATIO,
            ),
            Target(
                "consume throughput against mockafka-py",
                goal,
                f"{consume_ratio:.2f}x",
                consume_ratio >= TARGET_RATIO,
            ),
        )
        notes.append(
            "mockafka-py, per record: FakeProducer.produce() builds a Message (a dict of "
            "keyword arguments and two time.time() calls), and its process-wide KafkaStore "
            "appends it to a list in a module-level dict and adds 1 to the partition's next "
            "offset, kept under a 'topic*partition' string key: no batches, no sequence "
            "numbers, no offsets on the message, nothing crossing a network. "
            "FakeConsumer.consume(n) calls poll() n times; each poll deep-copies the list of "
            "subscribed topics and the topic's partition list, shuffles the topics, and "
            "returns the message at the consumer's position in the first partition it has not "
            "finished (its assign() does nothing, so the consumer subscribes)."
        )
    else:
        targets = (
            Target("produce throughput against mockafka-py", goal, NOT_INSTALLED, False),
            Target("consume throughput against mockafka-py", goal, NOT_INSTALLED, False),
        )
        notes.append(
            f"{NOT_INSTALLED}: only minikafka's side ran, and the targets against it cannot "
            "be judged."
        )
    return SuiteResult("clients", tuple(figures), targets, tuple(notes))
