"""The external database: exactly-once ends at Kafka's edge; effectively-once needs the database.

A worker writes each payment to the ``ledger`` topic inside a Kafka transaction and also adds
its amount to a balance in an sqlite database. It crashes partway through a batch. Kafka
undoes its own half of the work; nothing undoes the database's. Then the same crash hits a
worker that keeps its offsets in the database, next to the effects, and refuses any
transaction id it has already seen: every payment counts once.

Run it: ``minikafka tutorial 8`` (or ``python tutorials/08_external_database.py``).
"""

from __future__ import annotations

import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from rich.table import Table

from minikafka import Fault, FaultPlan, TopicPartition, Trace
from minikafka.pipelines import Event, Sink, payment_event, run_pipeline
from minikafka.tutorial import Lesson

EVENTS = 20
CRASH = FaultPlan([Fault.client_crash(client="worker-1", at=3.55)])


def amounts() -> dict[str, int]:
    """Each payment's amount, by transaction id: what the source writes."""
    events = [Event.parse(payment_event(number)) for number in range(EVENTS)]
    return {event.transaction_id: event.amount for event in events}


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")
    with tempfile.TemporaryDirectory() as folder:  # where the second worker's database lives
        teach(lesson, str(Path(folder) / "payments.sqlite"))
    return lesson.facts


def teach(lesson: Lesson, database_file: str) -> None:
    payments = amounts()
    lesson.step("One transaction in Kafka, one update outside it")
    lesson.say(
        f"The source writes {EVENTS} payment events. For each batch, the "
        "`exactly-once+external-db` worker begins a Kafka transaction and, event by event, "
        "writes the event to the `ledger` topic and adds its amount to the merchant's balance "
        "in sqlite. At the end of the batch it adds the consumer offsets to the transaction "
        "and commits. The transaction covers the topic and the offsets; the database is "
        "another system, which Kafka knows nothing about."
    )
    result = run_pipeline("exactly-once+external-db", events=EVENTS, faults=CRASH)
    first_poll = next(e.time for e in result.trace if e.kind == "poll")
    lesson.say(
        f"The worker polls its first batch at t={first_poll:g} s and crashes at "
        f"t={CRASH.faults[0].at} s, partway through it. A supervisor restarts it."
    )
    moments = Trace(e for e in result.trace if e.kind in ("crash", "restart", "marker"))
    lesson.show(moments.timeline(title="the crash, and what the broker did about it"))
    lesson.say(
        "The restarted producer asked for its producer id again, under the same "
        "transactional id. As in Kafka, the coordinator bumped the epoch and aborted the "
        "transaction the dead process had left open: the ABORT marker. read_committed "
        "readers skip aborted records. The dead process had committed no offsets, so the "
        "new one read the batch again from the start and committed it, output and offsets "
        "together."
    )

    lesson.step("Kafka's side is exact, the database's is not")
    topic_lost = lesson.fact("topic_lost", len(result.lost))
    topic_dup = lesson.fact("topic_duplicated", len(result.duplicated))
    db_dup = lesson.fact("database_duplicated", len(result.database_duplicated))
    balance = lesson.fact("balance", result.balance)
    owed = lesson.fact("owed", result.expected_balance)
    table = Table(title="sqlite: payments added to the balance more than once", header_style="bold")
    for heading in ("transaction id", "amount", "times added"):
        table.add_column(heading, justify="left" if heading == "transaction id" else "right")
    for key in result.database_duplicated:
        table.add_row(key, str(payments[key]), str(result.database[key]))
    lesson.show(table)
    lesson.say(
        f"The `ledger` topic holds each payment once ({topic_lost} lost, {topic_dup} "
        f"duplicated). The database does not: the {db_dup} payments added before the crash "
        "were added again by the new process, since an abort in Kafka cannot take back an "
        f"update in sqlite. The balance is **{balance}** where **{owed}** is owed: "
        f"{balance - owed} too much."
    )

    lesson.step("Effectively once: the offsets move into the database")
    lesson.say(
        "The `at-least-once+dedup` worker keeps its offsets in sqlite, not in Kafka. After "
        "processing a batch it runs one database transaction that, for each event, inserts "
        "the transaction id into `processed` (whose primary key admits each id once) and "
        "writes the effect, then stores the next offset in `offsets`. On getting its "
        "partitions it seeks to the offsets in the database. Effects and position now live "
        "in one system, so they change together or not at all."
    )
    dedup = run_pipeline("at-least-once+dedup", events=EVENTS, faults=CRASH, database=database_file)
    with closing(Sink(database_file)) as database:  # the worker's database, opened again
        effects = database.effect_counts()
        (total,) = database.db.execute("SELECT SUM(amount) FROM effects").fetchone()
        (processed,) = database.db.execute("SELECT COUNT(*) FROM processed").fetchone()
        offsets = {
            TopicPartition(topic, partition): next_offset
            for topic, partition, next_offset in database.db.execute(
                "SELECT topic, partition, next_offset FROM offsets"
            )
        }
        lesson.fact("dedup_lost", len(dedup.lost))
        lesson.fact("dedup_duplicated", len(dedup.duplicated))
        lesson.fact("dedup_effects", sum(effects.values()))
        lesson.fact("dedup_total", total)
        lesson.fact("dedup_processed", processed)
        table = Table(title="sqlite after the same crash", header_style="bold")
        table.add_column("table")
        table.add_column("holds")
        table.add_row("effects", f"{sum(effects.values())} rows, {total} in all")
        table.add_row("processed", f"{processed} transaction ids")
        table.add_row("offsets", ", ".join(f"{tp}: {n}" for tp, n in offsets.items()))
        lesson.show(table)
        lesson.say(
            f"Same crash, same moment: {len(dedup.lost)} lost, {len(dedup.duplicated)} "
            f"duplicated, and the effects add up to {total}, exactly what is owed. The crash "
            "came before the batch's database transaction, so it left nothing behind. The "
            "new process found no stored offsets, read from the start, and processed the "
            "first payments a second time. The *work* happened twice, the *effect* once: "
            "that is what engineers call effectively-once."
        )

        lesson.step("What the unique transaction id is for")
        lesson.say(
            "Under this crash the database transaction was enough. The primary key is for "
            "the repeats that do reach the database: a worker that froze, was replaced, and "
            "wakes up to finish a batch its replacement already applied; or a source that "
            "wrote an event twice. Here the first five payments arrive again:"
        )
        replay = [(key, payments[key]) for key in list(payments)[:5]]
        applied = lesson.fact("replay_applied", database.apply_once(replay, offsets, by="late"))
        unchanged = lesson.fact("replay_changed_nothing", database.effect_counts() == effects)
        lesson.show(f"Sink.apply_once({[key for key, _ in replay]}, ...) -> {applied} applied")
        lesson.say(
            f"Each insert into `processed` failed on the primary key, so {applied} effects "
            f"were applied and the effects table is {'unchanged' if unchanged else 'changed'}."
        )

    lesson.point(
        "Kafka's exactly-once covers Kafka: topics and consumer offsets. An update to a "
        "database made beside the transaction is not undone when it aborts, so a crash "
        "repeats it. To count each event once in a database, let the database decide: store "
        "the offsets with the effects in one database transaction, and key each effect by a "
        "unique id, so that a repeat is refused."
    )


if __name__ == "__main__":
    main()
