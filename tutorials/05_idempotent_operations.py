"""Idempotent operations: a payment delivered twice, its status set twice, its amount added twice.

At-least-once delivery means a consumer can get the same event again after a crash. Whether
that does harm depends on what the consumer does with it. Setting a payment's status to
COMPLETED a second time leaves the same status; adding the amount to a balance a second time
adds it twice. This tutorial has minikafka deliver one payment twice, applies both kinds of
operation to an sqlite database, then makes the balance update safe to repeat.

Run it: ``minikafka tutorial 5`` (or ``python tutorials/05_idempotent_operations.py``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from rich.table import Table

import minikafka
from minikafka.tutorial import Lesson

TRANSACTION_ID, AMOUNT = "TXN5001", 1000
EVENT = {"eventType": "PaymentCompleted", "transactionId": TRANSACTION_ID, "amount": AMOUNT}
OPENING_BALANCE = 5000

SET_STATUS = "UPDATE payments SET status = 'COMPLETED' WHERE transaction_id = ?"
ADD_TO_BALANCE = "UPDATE accounts SET balance = balance + ? WHERE account = 'merchant'"
REMEMBER_ID = "INSERT INTO processed (transaction_id) VALUES (?)"


async def deliver_twice() -> list[dict[str, Any]]:
    """One event, two consumers of one group: the first crashes before it commits."""
    deliveries: list[dict[str, Any]] = []
    async with minikafka.open_cluster(seed=5) as cluster:
        await cluster.create_topic("payments", partitions=1)
        async with cluster.producer(client_id="payment-service") as producer:
            await producer.send_and_wait("payments", json.dumps(EVENT).encode())
        for name in ("ledger-1", "ledger-2"):
            consumer = cluster.consumer(
                "payments",
                client_id=name,
                group_id="ledger",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            async with consumer:
                batch = await consumer.getmany(timeout=60.0)
                for records in batch.values():
                    for record in records:
                        event = json.loads(record.value or b"{}")
                        deliveries.append(
                            {
                                "consumer": name,
                                "offset": record.offset,
                                "at": cluster.now(),
                                "event": event,
                            }
                        )
                if name == "ledger-1":
                    consumer.crash()  # processed, not committed: no offset reaches the group
    return deliveries


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def open_database(*, guarded: bool) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE payments (transaction_id TEXT PRIMARY KEY, status TEXT NOT NULL)")
    db.execute("CREATE TABLE accounts (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("INSERT INTO payments VALUES (?, 'PENDING')", (TRANSACTION_ID,))
    db.execute("INSERT INTO accounts VALUES ('merchant', ?)", (OPENING_BALANCE,))
    if guarded:
        db.execute("CREATE TABLE processed (transaction_id TEXT PRIMARY KEY)")
    return db


def handle(db: sqlite3.Connection, event: dict[str, Any]) -> str:
    """The consumer's handler, with no guard: both updates, every time."""
    db.execute(SET_STATUS, (event["transactionId"],))
    db.execute(ADD_TO_BALANCE, (event["amount"],))
    return "applied"


def handle_once(db: sqlite3.Connection, event: dict[str, Any]) -> str:
    """The same updates, in one database transaction with the id of the event they apply."""
    db.execute("BEGIN")
    try:
        db.execute(REMEMBER_ID, (event["transactionId"],))
    except sqlite3.IntegrityError as error:
        db.execute("ROLLBACK")
        return f"skipped ({error})"
    db.execute(SET_STATUS, (event["transactionId"],))
    db.execute(ADD_TO_BALANCE, (event["amount"],))
    db.execute("COMMIT")
    return "applied"


def state(db: sqlite3.Connection) -> tuple[str, int]:
    (status,) = db.execute("SELECT status FROM payments").fetchone()
    (balance,) = db.execute("SELECT balance FROM accounts").fetchone()
    return str(status), int(balance)


def apply_all(
    handler: Any, db: sqlite3.Connection, deliveries: list[dict[str, Any]]
) -> tuple[Table, list[str]]:
    """Run ``handler`` once per delivery: a table of the database after each, and what the
    handler said each time."""
    table, outcomes = Table(header_style="bold"), []
    for column in ("after", "handler", "payment status", "merchant balance"):
        table.add_column(column, justify="right" if column == "merchant balance" else "left")
    table.add_row("(start)", "", *map(str, state(db)))
    for number, delivery in enumerate(deliveries, start=1):
        outcome = handler(db, delivery["event"])
        outcomes.append(outcome)
        table.add_row(f"delivery {number} ({delivery['consumer']})", outcome, *map(str, state(db)))
    return table, outcomes


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")

    lesson.step("One payment, delivered twice")
    lesson.say(
        "The payment service writes one event to the `payments` topic. The ledger service's "
        "consumer, `ledger-1`, reads it, handles it, and crashes before it commits its offset. "
        "The group gives the partition to `ledger-2`, which starts from the committed offset: "
        "there is none, so it reads from the beginning."
    )
    deliveries = minikafka.run(deliver_twice)
    table = Table(header_style="bold")
    for column in ("consumer", "offset", "at (simulated s)", "event"):
        table.add_column(column)
    for delivery in deliveries:
        table.add_row(
            delivery["consumer"],
            str(delivery["offset"]),
            f"{delivery['at']:g}",
            json.dumps(delivery["event"]),
        )
    lesson.show(table)
    lesson.fact("deliveries", [(d["consumer"], d["offset"]) for d in deliveries])
    first, last = deliveries[0], deliveries[-1]
    lesson.fact("delivered_at", [d["at"] for d in deliveries])
    lesson.say(
        f"The same record, at offset {last['offset']}, was delivered {times(len(deliveries))}. "
        f"`ledger-1` got it at t={first['at']:g} s and crashed; `ledger-2` got it at "
        f"t={last['at']:g} s, once the group had waited out `ledger-1`'s session timeout "
        "(45 s, the default). This is at-least-once delivery working as designed: nothing is "
        "lost, but a crash between the work and the commit means the work is done again."
    )

    lesson.step("Set the status, add to the balance: each twice")
    lesson.say(
        "The ledger service's handler makes two updates to its database. The first *sets* "
        "a value; the second *adds* to one. Here it runs once per delivery, as it did in "
        "`ledger-1` and then in `ledger-2`:"
    )
    lesson.show(f"  {SET_STATUS}\n  {ADD_TO_BALANCE}")
    plain = open_database(guarded=False)
    table, outcomes = apply_all(handle, plain, deliveries)
    lesson.show(table)
    lesson.fact("handler_outcomes", outcomes)
    status, balance = state(plain)
    lesson.fact("status_after_two_deliveries", status)
    lesson.fact("balance_after_two_deliveries", balance)
    owed = OPENING_BALANCE + AMOUNT
    lesson.fact("balance_owed", owed)
    lesson.say(
        f"The status is {status}, which is right: setting it again changed nothing, so the "
        f"update is *idempotent*. The balance is {balance}, but the merchant is owed {owed}: "
        f"each delivery added {AMOUNT}, so one payment was credited twice."
    )

    lesson.step("A guard: record each transaction id, in the same database transaction")
    lesson.say(
        "The event carries its own identity, the `transactionId`. The guarded handler first "
        "inserts that id into a `processed` table whose primary key is the id, then makes the "
        "two updates, all in one database transaction. A second insert of the same id breaks "
        "the unique constraint; the handler rolls back and skips the event."
    )
    lesson.show(f"  {REMEMBER_ID}   -- transaction_id is the primary key")
    guarded = open_database(guarded=True)
    table, outcomes = apply_all(handle_once, guarded, deliveries)
    lesson.show(table)
    lesson.fact("guarded_handler_outcomes", outcomes)
    guarded_status, guarded_balance = state(guarded)
    (remembered,) = guarded.execute("SELECT COUNT(*) FROM processed").fetchone()
    lesson.fact("guarded_status_after_two_deliveries", guarded_status)
    lesson.fact("guarded_balance_after_two_deliveries", guarded_balance)
    lesson.fact("processed_ids", remembered)
    lesson.say(
        f"Now the balance is {guarded_balance}, as owed, and the `processed` table holds "
        f"{remembered} id. Two details make the guard work. The id and the updates commit "
        "together: recorded apart, a crash between them could either skip the update for "
        "good or let it happen twice. And the key is the payment's own id, not the Kafka "
        "offset: a producer that retried without idempotence would write the same payment "
        "at a new offset, and only its id would show it is a copy. The lab's "
        "`at-least-once+dedup` model works the same way, and stores its offsets in that "
        "transaction too."
    )

    lesson.point(
        "Redelivery is normal under at-least-once. An operation that *sets* a state can be "
        "repeated safely; one that *adds* to a state cannot. Make it safe by recording the "
        "event's unique id, with a unique constraint, in the same database transaction as "
        "the change. At-least-once delivery plus idempotent processing applies each effect "
        "once: *effectively once*."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
