"""Transactions: two partitions, one decision, and the last stable offset.

A money transfer is two ledger lines: a credit to the merchant and a debit to the customer,
here on two partitions. A transactional producer writes both in one transaction, so a reader
that asks for committed data sees both lines or neither. This tutorial commits one transfer,
aborts another, leaves a third open, and reads the partitions with both isolation levels.

Run it: ``minikafka tutorial 6`` (or ``python tutorials/06_transactions.py``).
"""

from __future__ import annotations

from typing import Any

import trio
from rich.table import Table

import minikafka
from minikafka import TopicPartition
from minikafka.tutorial import Lesson
from minikafka.viz import batch_outcomes, partition_view, transactions_table

TOPIC = "ledger"
PARTITIONS = (TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1))
MARKER_WAIT = 1.0
"""Simulated seconds to let the coordinator write its markers after a commit or an abort."""


def lines(transaction_id: str, amount: int) -> tuple[bytes, bytes]:
    """A transfer's two ledger lines: the merchant's (partition 0), the customer's (1)."""
    return (
        f"{transaction_id} merchant +{amount}".encode(),
        f"{transaction_id} customer -{amount}".encode(),
    )


async def transfer(producer: minikafka.Producer, transaction_id: str, amount: int) -> None:
    """Write both lines of a transfer inside the producer's open transaction."""
    for tp, value in zip(PARTITIONS, lines(transaction_id, amount), strict=True):
        await producer.send_and_wait(TOPIC, value, partition=tp.partition)


async def read(cluster: minikafka.Cluster, isolation_level: str) -> dict[int, list[str]]:
    """Everything a fresh consumer with this isolation level reads: 'offset: value'."""
    seen: dict[int, list[str]] = {tp.partition: [] for tp in PARTITIONS}
    async with cluster.consumer(
        client_id=isolation_level.replace("_", "-"),
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
    ) as consumer:
        consumer.assign(PARTITIONS)
        while batch := await consumer.getmany(timeout=1.0):
            for tp, records in batch.items():
                seen[tp.partition] += [f"{r.offset}: {(r.value or b'').decode()}" for r in records]
    return seen


def marks(cluster: minikafka.Cluster) -> dict[str, tuple[int, int]]:
    """(high watermark, last stable offset) of each partition."""
    logs = [cluster.broker.log(tp.topic, tp.partition) for tp in PARTITIONS]
    return {
        f"{log.topic}-{log.partition}": (log.high_watermark, log.last_stable_offset) for log in logs
    }


def views(broker: minikafka.Broker) -> list[Any]:
    return [partition_view(broker.log(tp.topic, tp.partition)) for tp in PARTITIONS]


def reads_table(reads: dict[str, dict[int, list[str]]]) -> Table:
    table = Table(header_style="bold")
    table.add_column("isolation level")
    for tp in PARTITIONS:
        table.add_column(str(tp))
    for isolation_level, seen in reads.items():
        table.add_row(isolation_level, *("\n".join(seen[tp.partition]) for tp in PARTITIONS))
    return table


async def scenario(lesson: Lesson) -> None:
    async with minikafka.open_cluster(seed=6) as cluster:
        await cluster.create_topic(TOPIC, partitions=len(PARTITIONS))
        broker = cluster.broker

        lesson.step("Two partitions, one decision")
        lesson.say(
            "The producer `transfers` writes transfer TXN5001 (one line to each partition) in a "
            "transaction and commits. Then it writes TXN5002 the same way and aborts. Every "
            "record is in the log before the decision is taken."
        )
        async with cluster.producer(
            client_id="transfers", transactional_id="transfers"
        ) as producer:
            producer.begin_transaction()
            await transfer(producer, "TXN5001", 2500)
            await producer.commit_transaction()
            producer.begin_transaction()
            await transfer(producer, "TXN5002", 700)
            await producer.abort_transaction()
            await trio.sleep(MARKER_WAIT)
            lesson.show(*views(broker))
            lesson.fact(
                "outcomes",
                {str(tp): batch_outcomes(broker.log(tp.topic, tp.partition)) for tp in PARTITIONS},
            )
            lesson.say(
                "The coordinator wrote a marker into *each* partition the transaction touched: "
                "COMMIT after TXN5001's lines, ABORT after TXN5002's. The aborted lines stay "
                "in the log (Kafka deletes nothing at an abort); the marker tells readers to "
                "skip them. Each marker takes an offset of its own."
            )

            lesson.step("An open transaction holds the last stable offset back")
            producer.begin_transaction()
            await transfer(producer, "TXN5003", 120)
            async with cluster.producer(client_id="refunds") as plain:
                (value, _) = lines("TXN5004", 90)
                await plain.send_and_wait(TOPIC, value, partition=0)
            lesson.say(
                "`transfers` then writes TXN5003, and neither commits nor aborts yet. "
                "Meanwhile another producer, `refunds`, writes TXN5004 to partition 0 "
                "*without* a transaction."
            )
            lesson.show(*views(broker), transactions_table(broker))
            while_open = lesson.fact("hw_lso_while_open", marks(cluster))
            (hw0, lso0), (hw1, lso1) = while_open.values()
            lesson.say(
                f"The high watermarks, {hw0} and {hw1}, mark the end of what is safely stored "
                "(in Kafka: replicated to the in-sync replicas). The last stable offsets (LSO) are "
                f"lower, {lso0} and {lso1}: an LSO is the first offset of the oldest transaction "
                "still open in the partition, or the high watermark if none is. Below it, every "
                "transaction is decided. If `transfers` died now, the coordinator would abort "
                "TXN5003 once its `transaction_timeout` (60 s by default) ran out, and the LSO "
                "would move on."
            )

            lesson.step("read_uncommitted and read_committed")
            reads = {
                level: await read(cluster, level)
                for level in ("read_uncommitted", "read_committed")
            }
            lesson.show(reads_table(reads))
            lesson.fact("read_uncommitted_while_open", reads["read_uncommitted"])
            lesson.fact("read_committed_while_open", reads["read_committed"])
            lesson.say(
                "A `read_uncommitted` consumer (Kafka's default) reads up to the high watermark: "
                "the committed TXN5001, the *aborted* TXN5002, the undecided TXN5003, and the "
                "plain TXN5004. A `read_committed` consumer stops at the LSO, so it returns "
                "TXN5001 only. It skips the aborted lines below the LSO, and it stops before "
                "TXN5003 *and* before TXN5004, which was never part of a transaction: the LSO is "
                "a position in the log, and nothing past it is returned yet."
            )

            lesson.step("The commit moves the last stable offset")
            await producer.commit_transaction()
            just_after = lesson.fact("hw_lso_when_commit_returns", marks(cluster))
            await trio.sleep(MARKER_WAIT)
            after = lesson.fact("hw_lso_after_markers", marks(cluster))
            lesson.show(views(broker)[0])
            committed = lesson.fact(
                "read_committed_after_commit", await read(cluster, "read_committed")
            )
            lesson.show(reads_table({"read_committed": committed}))
            lesson.say(
                f"When `commit_transaction()` returned, the LSO of {TOPIC}-0 was still "
                f"{just_after[f'{TOPIC}-0'][1]}: the coordinator answers once its decision is "
                "durable, and writes the markers just after. Once they are written, LSO and high "
                f"watermark meet ({after[f'{TOPIC}-0'][0]} on {TOPIC}-0, "
                f"{after[f'{TOPIC}-1'][0]} on {TOPIC}-1), and a "
                "read_committed consumer gets TXN5003 and TXN5004 too. TXN5002 never shows. "
                "The offsets it returns have gaps, where the markers and the aborted lines are."
            )


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")
    minikafka.run(scenario, lesson)
    lesson.point(
        "A transaction's writes to several partitions commit or abort together, through "
        "markers the coordinator writes into each partition. read_committed readers stop at "
        "the last stable offset, the start of the oldest open transaction, so they never see "
        "aborted or undecided data; an open transaction also delays everything written after "
        "it. read_uncommitted readers see it all, aborted lines included."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
