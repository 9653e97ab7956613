"""At-most-once: commit first, crash before processing, and the payments are never checked.

A fraud-detection service reads payment events in a consumer group. Its worker commits the
offsets of each batch the moment it has polled it, and only then checks the payments. One
worker dies between the two; the next one starts where the group's committed offset points,
after that batch, and nobody ever checks those payments.

Run it: ``minikafka tutorial 2`` (or ``python tutorials/02_at_most_once.py``).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

import minikafka
from minikafka import Cluster, Fault, FaultPlan, TopicPartition, Trace
from minikafka.pipelines import Event, payment_event
from minikafka.tutorial import Lesson
from minikafka.viz import offsets_table, partition_view

EVENTS = 6
BATCH = 3
GROUP = "fraud-detection"
PAYMENTS = TopicPartition("payments", 0)
SESSION_TIMEOUT = 45.0
"""Kafka's default session timeout: how long the group waits for a silent member."""
PLAN = FaultPlan([Fault.client_crash(client="worker-1", after="OffsetCommit")])
"""worker-1 dies right after the broker accepts its first commit, before it reads the answer."""


class Service:
    """What the fraud-detection workers did, noted for the lesson."""

    def __init__(self) -> None:
        self.starts: dict[str, int | None] = {}  # worker -> the committed offset it found
        self.polled: dict[int, str] = {}  # offset -> the worker that polled it
        self.checked: dict[str, str] = {}  # transaction id -> the worker that checked it


async def fraud_worker(cluster: Cluster, name: str, service: Service) -> None:
    """One worker of the service, for one batch: poll, commit, then check each payment."""
    worker = cluster.consumer(
        "payments",
        client_id=name,
        group_id=GROUP,
        enable_auto_commit=False,  # this loop commits by hand ...
        auto_offset_reset="earliest",  # ... and starts at offset 0 if nothing was committed
        max_poll_records=BATCH,
        session_timeout=SESSION_TIMEOUT,
    )
    async with worker:
        service.starts[name] = await worker.committed(PAYMENTS)
        batch = await worker.getmany(timeout=120.0)
        for record in batch.get(PAYMENTS, []):
            service.polled[record.offset] = name
        await worker.commit()  # 1. commit: "this group is done with these offsets"
        for record in batch.get(PAYMENTS, []):  # 2. then the work
            service.checked[Event.parse(record.value).transaction_id] = name


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")
    service = Service()

    async def scenario() -> None:
        async with minikafka.open_cluster(seed=2, faults=PLAN) as cluster:
            await cluster.create_topic("payments", partitions=1)
            async with cluster.producer(client_id="payment-service") as producer:
                for number in range(EVENTS):
                    await producer.send_and_wait("payments", payment_event(number))
            log = cluster.broker.log("payments", 0)

            lesson.step("Six payments in the log")
            lesson.say(
                f"The payment service has written {log.log_end_offset} events to `payments`, "
                "a topic with one partition. Each event sits at an *offset*, its position in "
                "the partition's log:"
            )
            lesson.show(partition_view(log))
            lesson.say(
                "(The producer, epoch and sequence columns are the subject of tutorial 4, and "
                "the watermarks matter once transactions appear; here every event is plain "
                "and readable.)"
            )
            lesson.say(
                "The *fraud-detection* service reads them in the consumer group "
                f"`{GROUP}`. Its loop polls a batch of at most {BATCH} events, **commits** "
                "the offsets, and only **then** checks each payment. A committed offset is "
                "the offset of the next event to read: the group's note of where to carry on."
            )

            lesson.step("worker-1 commits, then crashes")
            lesson.say("The fault plan crashes worker-1 right after its first offset commit:")
            lesson.show(repr(PLAN))
            try:
                await fraud_worker(cluster, "worker-1", service)
            except minikafka.ClientCrashed:
                crashed_at = cluster.now()
            polled = sorted(o for o, name in service.polled.items() if name == "worker-1")
            lesson.fact("polled_by_worker_1", polled)
            first = service.starts["worker-1"]
            lesson.say(
                "worker-1 joined the group (an empty group's first rebalance waits 3 s for "
                "more members: Kafka's `group.initial.rebalance.delay.ms`). It found "
                + (
                    "no committed offset, so it began at the earliest one"
                    if first is None
                    else f"committed offset {first}"
                )
                + f", and polled offsets {polled[0]} to {polled[-1]}. It committed offset "
                f"{polled[-1] + 1}, and the broker stored that commit; then, at "
                f"t={crashed_at:.1f} s (simulated), the process died before it checked a "
                "single payment. The trace of those moments (the first JoinGroup only fetches "
                "a member id):"
            )
            story = cluster.trace.story()
            lesson.show(
                Trace(e for e in story if "worker-1" in (e.source, e.target)).timeline(
                    title="worker-1 (faults and crashes in red)"
                )
            )
            lesson.say("What the group has stored for `payments-0` now:")
            lesson.show(offsets_table(cluster.broker, (GROUP,)))
            lesson.fact("crashed_at", crashed_at)

            lesson.step("worker-2 takes over from the committed offset")
            await fraud_worker(cluster, "worker-2", service)
            start = lesson.fact("committed_offset_found_by_worker_2", service.starts["worker-2"])
            (assigned,) = cluster.trace.select(kind="assigned", source="worker-2")
            lesson.fact("worker_2_assigned_at", assigned.time)
            lesson.say(
                f"worker-2 asks the group for its committed offset on {PAYMENTS}: "
                f"**{start}**. It cannot read yet: worker-1 crashed without leaving the group, "
                "so the group coordinator waits until worker-1's session times out "
                f"({SESSION_TIMEOUT:g} s, Kafka's default) before it "
                f"hands the partition to worker-2, at t={assigned.time:.1f} s. worker-2 then "
                f"polls from offset {start} on, commits, and checks what it polled."
            )

            lesson.step("What became of each payment")
            table = Table(header_style="bold")
            for column in ("offset", "payment", "polled by", "checked by"):
                table.add_column(column)
            never = []
            for offset in range(log.log_end_offset):
                payment = Event.parse(log.record_at(offset).value).transaction_id
                checker = service.checked.get(payment)
                if checker is None:
                    never.append(payment)
                table.add_row(
                    str(offset),
                    payment,
                    service.polled.get(offset, "-"),
                    checker or "[bold red]nobody[/]",
                )
            lesson.show(table)
            lesson.fact("never_checked", never)
            lesson.fact("checked", sorted(service.checked))
            lesson.fact("events_in_log", log.log_end_offset)
            lesson.say(
                f"{', '.join(never)} were never checked for fraud, and nothing reports them "
                "missing: the broker did its job, the commit succeeded, and worker-2 carried "
                "on exactly where the group said. The events are still in the log (Kafka "
                "deleted nothing); the group's committed offset simply points past them. "
                "Nothing was checked twice either, and that is the whole promise of "
                "at-most-once."
            )

    minikafka.run(scenario)

    lesson.point(
        "Committing *before* processing gives **at most once**: a crash between the commit "
        "and the work skips those events for good, silently; no event is ever processed "
        "twice. That is a fair deal for metrics or monitoring, where a missing sample does "
        "little harm, and a bad one for payments, fraud checks or stock counts."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
