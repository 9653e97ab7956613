"""Exercise 2, a reference solution: a processed-ids table with a primary key, and one
transaction for the insert of the id and the balance update."""

from __future__ import annotations

import sqlite3


def setup(db: sqlite3.Connection) -> None:
    """Create the tables in an empty database."""
    db.execute("CREATE TABLE balance (amount INTEGER NOT NULL)")  # one row: the balance
    db.execute("INSERT INTO balance (amount) VALUES (0)")
    db.execute("CREATE TABLE processed (transaction_id TEXT PRIMARY KEY)")


def apply_once(db: sqlite3.Connection, transaction_id: str, amount: int) -> bool:
    """Add ``amount`` to the balance, at most once per ``transaction_id``; True if applied."""
    db.execute("BEGIN IMMEDIATE")  # take the write lock now: no one else can slip in between
    try:
        inserted = db.execute(
            "INSERT INTO processed (transaction_id) VALUES (?) ON CONFLICT DO NOTHING",
            (transaction_id,),
        ).rowcount
        if inserted == 0:  # seen before: a redelivery
            db.execute("ROLLBACK")
            return False
        db.execute("UPDATE balance SET amount = amount + ?", (amount,))
        db.execute("COMMIT")  # the id and the money, together
        return True
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
