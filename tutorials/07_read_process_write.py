"""Read-process-write: the input offsets commit in the output's transaction, and zombies are fenced.

A service reads payment events, writes a ledger line for each to another topic, and must
record how far it has read. If the ledger lines and the offsets were committed separately, a
crash between the two would repeat or lose work. Kafka lets the producer commit the consumer's
offsets *inside* its transaction, so they commit or abort with the output. This tutorial runs
that loop batch by batch, aborts one batch, and then starts a second copy of the service, as an
orchestrator does when the first stops answering: the old one is fenced.

Run it: ``minikafka tutorial 7`` (or ``python tutorials/07_read_process_write.py``).
"""

from __future__ import annotations

import inspect
from typing import Any

import trio
from rich.syntax import Syntax
from rich.table import Table

import minikafka
from minikafka import TopicPartition
from minikafka.pipelines import Event, payment_event
from minikafka.tutorial import Lesson
from minikafka.viz import batch_outcomes, offsets_table, partition_view

INPUT, OUTPUT, GROUP = "payments", "ledger", "ledger-service"
TRANSACTIONAL_ID = "ledger-service-0"
SOURCE = TopicPartition(INPUT, 0)
EVENTS, BATCH = 9, 3
MARKER_WAIT = 1.0
"""Simulated seconds to let the coordinator write its markers after a commit or an abort."""


async def start_batch(consumer: minikafka.Consumer, producer: minikafka.Producer) -> list[str]:
    """Read a batch, write a ledger line per event, and put the offsets in the transaction."""
    batch = await consumer.getmany(timeout=60.0, max_records=BATCH)
    producer.begin_transaction()
    for records in batch.values():
        for record in records:
            event = Event.parse(record.value)
            line = f"{event.transaction_id} merchant +{event.amount}"
            await producer.send(OUTPUT, line.encode())
    await producer.flush()  # the lines are in the log now, not only in the producer's buffer
    next_offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
    await producer.send_offsets_to_transaction(next_offsets, consumer.group_metadata())
    # ... and then: await producer.commit_transaction(), or abort_transaction()
    return [Event.parse(r.value).transaction_id for rs in batch.values() for r in rs]


def offsets(cluster: minikafka.Cluster) -> dict[str, int | None]:
    """The group's committed offset for the input partition, and a pending one, if any."""
    snapshot = cluster.broker.snapshot()
    committed = [o for g, tp, o in snapshot.committed_offsets if g == GROUP and tp == SOURCE]
    pending = [o for g, _, tp, o in snapshot.pending_offsets if g == GROUP and tp == SOURCE]
    return {
        "committed": committed[0] if committed else None,
        "pending": pending[0] if pending else None,
    }


def service(cluster: minikafka.Cluster, name: str) -> tuple[minikafka.Consumer, minikafka.Producer]:
    """One instance of the service: a read_committed consumer and a transactional producer."""
    consumer = cluster.consumer(
        INPUT,
        client_id=name,
        group_id=GROUP,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = cluster.producer(client_id=f"{name}-out", transactional_id=TRANSACTIONAL_ID)
    return consumer, producer


def fencing_timeline(trace: minikafka.Trace) -> Any:
    """The trace's lines about producer ids, commits, markers and fencing."""
    shown = [
        event
        for event in trace
        if event.kind in ("marker", "fatal")
        or (event.kind == "handle" and event.api in ("InitProducerId", "EndTxn"))
        or (event.kind == "txn" and event.api == "InitProducerId")
    ]
    return minikafka.Trace(shown).timeline(title="The fencing, from the cluster's trace")


async def read_ledger(cluster: minikafka.Cluster) -> list[str]:
    async with cluster.consumer(
        client_id="auditor", isolation_level="read_committed", auto_offset_reset="earliest"
    ) as auditor:
        auditor.assign([TopicPartition(OUTPUT, 0)])
        lines: list[str] = []
        while batch := await auditor.getmany(timeout=1.0):
            lines += [(r.value or b"").decode() for rs in batch.values() for r in rs]
        return lines


async def scenario(lesson: Lesson) -> None:
    async with minikafka.open_cluster(seed=7) as cluster:
        broker = cluster.broker
        await cluster.create_topic(INPUT, partitions=1)
        await cluster.create_topic(OUTPUT, partitions=1)
        async with cluster.producer(client_id="payment-service") as source:
            for number in range(EVENTS):
                await source.send_and_wait(INPUT, payment_event(number))

        lesson.step("The loop, and a commit")
        lesson.say(
            f"The `payments` topic holds {EVENTS} payment events. The service `processor-1` "
            "has a consumer in group `ledger-service`, reading with read_committed and no "
            f"auto-commit, and a producer with transactional id `{TRANSACTIONAL_ID}`. Each "
            f"batch of up to {BATCH} events goes through this function:"
        )
        lesson.show(Syntax(inspect.getsource(start_batch), "python", theme="ansi_dark"))
        history: list[tuple[str, dict[str, int | None]]] = []

        def note(moment: str) -> dict[str, int | None]:
            history.append((moment, offsets(cluster)))
            return history[-1][1]

        consumer, producer = service(cluster, "processor-1")
        await consumer.start()
        await producer.start()
        zombie_epoch = lesson.fact("first_epoch", producer.producer_epoch)
        first = await start_batch(consumer, producer)
        before = lesson.fact("offsets_before_commit", note("batch 1 sent, not committed"))
        lesson.show(offsets_table(broker, (GROUP,)))
        await producer.commit_transaction()
        await trio.sleep(MARKER_WAIT)
        after = lesson.fact("offsets_after_commit", note("batch 1 committed"))
        lesson.say(
            f"The batch was {', '.join(first)}. `send_offsets_to_transaction` handed the next "
            f"offset to read, {before['pending']}, to the group coordinator, which holds it as "
            f"*pending*: the group has no committed offset yet. The "
            "commit makes the coordinator write a COMMIT marker into every partition of the "
            "transaction: the ledger's, and the group's partition of `__consumer_offsets`, "
            f"where the marker turns the pending offset into the committed one: "
            f"{after['committed']}. Passing `consumer.group_metadata()` also lets the group "
            "coordinator refuse offsets from a consumer the group has replaced (KIP-447)."
        )

        lesson.step("An abort, and the seek back")
        second = await start_batch(consumer, producer)
        await producer.abort_transaction()
        await trio.sleep(MARKER_WAIT)
        aborted = lesson.fact("offsets_after_abort", note("batch 2 aborted"))
        position = lesson.fact("position_after_abort", await consumer.position(SOURCE))
        lesson.say(
            f"The next batch, {', '.join(second)}, goes through the same steps, but this time "
            f"the service aborts. The pending offset is dropped, so the committed offset is "
            f"still {aborted['committed']}, and the ledger lines are aborted with it. The "
            f"consumer's position, though, is {position}: Kafka does not rewind a consumer "
            "after an abort. The loop must seek back to the committed offset itself, or its "
            "next transaction would commit past events nobody processed."
        )
        committed_offset = await consumer.committed(SOURCE)
        assert committed_offset is not None
        consumer.seek(SOURCE, committed_offset)
        again = await start_batch(consumer, producer)
        await producer.commit_transaction()
        await trio.sleep(MARKER_WAIT)
        retried = lesson.fact("offsets_after_retry", note("batch 2 read again, committed"))
        lesson.say(
            f"After `seek(payments-0, {committed_offset})` the loop reads "
            f"{', '.join(again)} again and commits: the committed offset is now "
            f"{retried['committed']}."
        )

        lesson.step("A zombie, fenced by its epoch")
        third = await start_batch(consumer, producer)
        lesson.say(
            f"`processor-1` starts a transaction for {', '.join(third)}, writes the ledger "
            "lines and the offsets, and then freezes before it commits: a long "
            "garbage-collection pause, say (here the script just leaves it alone). The "
            "orchestrator gives up on it and starts `processor-2` with the same transactional "
            "id. Its producer's first request, InitProducerId, tells the coordinator that a "
            "new instance owns the id. Then `processor-1` wakes up and calls "
            "`commit_transaction()`."
        )
        fencing_starts = cluster.now()
        new_consumer, new_producer = service(cluster, "processor-2")
        async with new_producer:
            new_epoch = lesson.fact("new_epoch", new_producer.producer_epoch)
            outcome = "committed: the zombie was NOT fenced"
            try:
                await producer.commit_transaction()
            except minikafka.ProducerFencedError as error:
                outcome = f"{type(error).__name__}"
            lesson.fact("zombie_commit", outcome)
            await producer.close()  # a fenced producer can only be closed
            await consumer.close()
            await trio.sleep(MARKER_WAIT)
            fenced = lesson.fact("offsets_after_fencing", note("batch 3 of the zombie, fenced"))
            lesson.show(fencing_timeline(cluster.trace.between(fencing_starts, cluster.now())))
            async with new_consumer:
                replayed = await start_batch(new_consumer, new_producer)
                await new_producer.commit_transaction()
                await trio.sleep(MARKER_WAIT)
        final = lesson.fact("offsets_after_replacement", note("batch 3 of processor-2, committed"))
        init_requests = lesson.fact(
            "init_producer_id_requests_of_processor_2",
            len(
                cluster.trace.select(kind="handle", api="InitProducerId", source="processor-2-out")
            ),
        )
        log = broker.log(OUTPUT, 0)
        outcomes = batch_outcomes(log)
        batches = list(log.batches())
        fence_marker = batches[len(outcomes) - 1 - outcomes[::-1].index("ABORT marker")]
        lesson.fact("fence_marker_epoch", fence_marker.producer_epoch)
        lesson.say(
            f"`processor-1` had epoch {zombie_epoch}. When `processor-2`'s producer sent "
            "InitProducerId, the coordinator found the old instance's transaction still open: "
            f"it raised the epoch to {fence_marker.producer_epoch} and aborted that "
            "transaction, whose ABORT markers carry the new epoch. Until they were written it "
            "answered CONCURRENT_TRANSACTIONS, and the new producer retried: "
            f"{init_requests} InitProducerId requests in all. The last one raised the epoch "
            f"once more, to {new_epoch}, for `processor-2`. Then `processor-1`'s EndTxn came, "
            f"with epoch {zombie_epoch}, and was refused as fenced; `commit_transaction()` "
            f"raised {outcome}. A fenced producer can only be closed. Its offsets were "
            "aborted with its ledger lines, so the committed offset stayed "
            f"{fenced['committed']}; `processor-2` read {', '.join(replayed)} "
            f"from there and committed {final['committed']}. Kafka's coordinator does the "
            "same: bump, abort, answer CONCURRENT_TRANSACTIONS, bump again on the retry."
        )

        lesson.step("What the ledger holds")
        lesson.show(partition_view(log))
        ledger = lesson.fact("ledger_read_committed", await read_ledger(cluster))
        in_log = lesson.fact(
            "ledger_records_in_log", sum(b.record_count for b in batches if not b.is_control)
        )
        table = Table(header_style="bold")
        for column in ("moment", "committed offset", "pending offset"):
            table.add_column(column)
        for moment, seen in history:
            table.add_row(moment, *("-" if seen[k] is None else str(seen[k]) for k in seen))
        lesson.show(table)
        lesson.say(
            f"The ledger's log holds {in_log} lines, the aborted ones included, and a marker "
            f"after each transaction. A read_committed reader gets "
            f"{len(ledger)}: {', '.join(line.split()[0] for line in ledger)}, each once. The "
            "table above follows the group's offset for `payments-0`: it moved only when a "
            "transaction committed."
        )


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")
    minikafka.run(scenario, lesson)
    lesson.point(
        "Commit the input offsets *in* the output's transaction "
        "(`send_offsets_to_transaction`), read with read_committed, and the output and the "
        "progress commit together or not at all. After an abort, seek back to the committed "
        "offsets. A new producer with the same transactional id bumps the epoch, and the "
        "old instance's commit is refused with ProducerFencedError: a zombie cannot commit."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
