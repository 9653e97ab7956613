"""At-least-once: process first, crash before the commit, and the customer gets the SMS twice.

A notification service sends an SMS for every payment event, and commits the batch's offsets
only after the SMS went out. Its worker dies halfway through a batch; the next one starts at
the last committed offset and sends those SMS again. Kafka's default, auto-commit, behaves the
same way.

Run it: ``minikafka tutorial 3`` (or ``python tutorials/03_at_least_once.py``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import trio
from rich.table import Table

import minikafka
from minikafka import Cluster, Fault, FaultPlan, TopicPartition, Trace
from minikafka.pipelines import Event, payment_event
from minikafka.tutorial import Lesson

EVENTS = 6
BATCH = 3
SMS_SECONDS = 1.0
"""How long the SMS gateway takes to send one message (simulated seconds)."""
GROUP = "notifications"
PAYMENTS = TopicPartition("payments", 0)
PLAN = FaultPlan([Fault.client_crash(client="worker-1", at=8.5)])
"""worker-1 dies at t=8.5 s: its first batch is done and committed, and it is two SMS into its
second batch."""


@attrs.frozen
class Sms:
    time: float
    worker: str
    payment: str


@attrs.define
class Run:
    """What one run of the service did, noted for the lesson."""

    sms: list[Sms] = attrs.Factory(list)
    starts: dict[str, int | None] = attrs.Factory(dict)  # the committed offset each found
    trace: Trace = attrs.Factory(lambda: Trace(()))

    def counts(self) -> Counter[str]:
        return Counter(sms.payment for sms in self.sms)

    def twice(self) -> list[str]:
        return sorted(payment for payment, n in self.counts().items() if n > 1)


async def notification_worker(cluster: Cluster, name: str, run: Run, *, by_hand: bool) -> None:
    """One worker process: poll a batch, send an SMS per payment, then commit; until idle."""
    worker = cluster.consumer(
        "payments",
        client_id=name,
        group_id=GROUP,
        enable_auto_commit=not by_hand,  # Kafka's default is True: commit inside the next poll
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
    )
    with trio.CancelScope() as process:
        worker.when_crashed(lambda _: process.cancel())  # the whole process dies with it
        async with worker:
            run.starts[name] = await worker.committed(PAYMENTS)
            while batch := await worker.getmany(timeout=60.0):
                for record in batch[PAYMENTS]:  # 1. the work: an SMS per payment ...
                    await trio.sleep(SMS_SECONDS)
                    payment = Event.parse(record.value).transaction_id
                    run.sms.append(Sms(cluster.now(), name, payment))
                if by_hand:
                    await worker.commit()  # 2. ... then the commit


def run_service(*, by_hand: bool) -> Run:
    """Six payments; worker-1 crashes as ``PLAN`` says; then worker-2 runs until idle."""
    run = Run()

    async def scenario() -> None:
        async with minikafka.open_cluster(seed=3, faults=PLAN) as cluster:
            await cluster.create_topic("payments", partitions=1)
            async with cluster.producer(client_id="payment-service") as producer:
                for number in range(EVENTS):
                    await producer.send_and_wait("payments", payment_event(number))
            await notification_worker(cluster, "worker-1", run, by_hand=by_hand)
            await notification_worker(cluster, "worker-2", run, by_hand=by_hand)
            run.trace = cluster.trace

    minikafka.run(scenario)
    return run


def sms_table(run: Run) -> Table:
    table = Table(header_style="bold")
    for column in ("t (s)", "worker", "SMS for", ""):
        table.add_column(column)
    seen: set[str] = set()
    for sms in run.sms:
        again = "[bold red]again[/]" if sms.payment in seen else ""
        seen.add(sms.payment)
        table.add_row(f"{sms.time:.1f}", sms.worker, sms.payment, again)
    return table


def commits(run: Run, worker: str) -> list[tuple[float, str]]:
    """The offset commits ``worker`` made that the group accepted: (time, partition:offset)."""
    return [(e.time, e.detail) for e in run.trace.select(kind="commit", source=worker)]


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")

    lesson.step("A loop that commits last")
    lesson.say(
        f"The payment service writes {EVENTS} events to `payments`. The *notifications* "
        f"service reads them in the group `{GROUP}`: its loop polls at most {BATCH} events, "
        f"sends an SMS for each (the gateway takes {SMS_SECONDS:g} s per message), and only "
        "**then** commits the batch's offsets. The fault plan kills worker-1 at a fixed "
        "moment, as a deploy or an out-of-memory kill might:"
    )
    lesson.show(repr(PLAN))

    run = run_service(by_hand=True)
    first = [sms for sms in run.sms if sms.worker == "worker-1"]
    (crash,) = run.trace.select(kind="crash", source="worker-1")
    worker_1_commits = lesson.fact("worker_1_commits", commits(run, "worker-1"))
    lesson.step("worker-1: one batch committed, the next one half sent")
    lesson.say(
        f"worker-1 sent {len(first)} SMS, for {', '.join(s.payment for s in first)}. It "
        f"committed once, after its first batch (t={worker_1_commits[0][0]:.1f} s, "
        f"`{worker_1_commits[0][1]}`: the next offset to read). Then, at "
        f"t={crash.time:.1f} s, it died in the middle of its second batch, after those SMS "
        "had left and before the commit that would have recorded them:"
    )
    story = run.trace.story().between(0.0, crash.time)
    lesson.show(
        Trace(e for e in story if "worker-1" in (e.source, e.target)).timeline(
            title="worker-1 (faults and crashes in red)"
        )
    )

    lesson.step("worker-2 starts from the last committed offset")
    start = lesson.fact("committed_offset_found_by_worker_2", run.starts["worker-2"])
    lesson.say(
        f"worker-2 asks the group where to begin: offset **{start}**, the last commit. Once "
        "worker-1's session has timed out, the group hands it the partition, and it reads "
        f"from offset {start} on, so it processes again the payments worker-1 had already "
        "sent SMS for. Every SMS that went out:"
    )
    lesson.show(sms_table(run))
    twice = lesson.fact("sent_twice", run.twice())
    lesson.fact("sms_per_payment", dict(sorted(run.counts().items())))
    payments = [Event.parse(payment_event(number)).transaction_id for number in range(EVENTS)]
    lesson.fact("never_sent", [payment for payment in payments if not run.counts()[payment]])
    lesson.say(
        f"The customers of {' and '.join(twice)} got their SMS twice. No payment was "
        "skipped: a crash can only move the group back to its last commit, never past "
        "work that was not done. That is **at least once**: a duplicate is possible, a loss "
        "is not. It is the trade Kafka's defaults make: better an event handled twice than "
        "an event never handled."
    )

    lesson.step("Kafka's default, auto-commit, is at-least-once too")
    auto = run_service(by_hand=False)
    auto_commits = lesson.fact("auto_commit_worker_1_commits", commits(auto, "worker-1"))
    lesson.fact("auto_commit_sent_twice", auto.twice())
    auto_start = lesson.fact("auto_commit_offset_found_by_worker_2", auto.starts["worker-2"])
    (auto_crash,) = auto.trace.select(kind="crash", source="worker-1")
    lesson.say(
        "Now the same loop without `commit()`, and with `enable_auto_commit` left at "
        "Kafka's default, True. The consumer then commits by itself: inside a poll, once "
        "`auto_commit_interval` (5 s by default) has passed, it commits the positions of "
        "the records that earlier polls returned."
    )
    lesson.say(
        f"worker-1's only commit left at t={auto_commits[0][0]:.1f} s, inside its second "
        f"poll and before that poll returned a batch: `{auto_commits[0][1]}`, the end of the "
        f"first batch, which it had finished. The crash at t={auto_crash.time:.1f} s came before "
        f"the third poll, so worker-2 again started at offset {auto_start} and sent "
        f"{' and '.join(auto.twice())} twice:"
    )
    auto_worker_1 = Trace(
        e
        for e in auto.trace.between(0.0, auto_crash.time)
        if e.source == "worker-1"
        and (e.kind in ("poll", "commit", "crash") or (e.kind, e.api) == ("send", "OffsetCommit"))
    )
    lesson.show(auto_worker_1.timeline(title="worker-1 with auto-commit: polls and commits"))
    lesson.say(
        "Auto-commit is at-least-once only because this loop finishes a batch before it "
        "polls again. A loop that hands records to other threads and polls on at once would "
        "let auto-commit record work that was never done: a crash would then lose events."
    )

    lesson.point(
        "Processing *before* committing gives **at least once**: a crash between the work "
        "and the commit repeats the work since the last commit, so every effect must be "
        "able to happen twice, or be made harmless when it does (tutorial 5). Kafka's "
        "auto-commit gives the same promise, provided each batch is finished before the "
        "next poll."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
