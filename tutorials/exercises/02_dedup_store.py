"""Exercise 2 (easy-medium): make a consumer idempotent with a dedup store.

A payment consumer is at-least-once (exercise 1): after a crash, or a rebalance, some
payments are delivered again. ``apply_once`` below adds every delivery to the balance, so a
redelivered payment is counted twice. Make it idempotent:

* in ``setup``, add a table of processed transaction ids whose id is a PRIMARY KEY (or
  UNIQUE), next to the ``balance`` table you are given;
* in ``apply_once``, add ``amount`` to the balance only if ``transaction_id`` is not in that
  table yet, and record it there. Return True if you applied the payment, False for a repeat.

The check, the insert of the id and the balance update must be ONE database transaction: the
process can crash between any two statements, and afterwards the database must hold both
changes or neither, or a redelivery will be lost (the id is there, the money is not) or
counted twice (the money is there, the id is not).

The connection is opened with ``isolation_level=None`` (autocommit: every statement commits
on its own), so open the transaction yourself with ``db.execute("BEGIN")`` and end it with
``db.execute("COMMIT")``, or ``db.execute("ROLLBACK")`` on the way out for a repeat.
(``with db:`` does not begin a transaction in this mode.)

Check your work: ``minikafka exercises check 2 tutorials/exercises/02_dedup_store.py``
"""

from __future__ import annotations

import sqlite3


def setup(db: sqlite3.Connection) -> None:
    """Create the tables in an empty database."""
    db.execute("CREATE TABLE balance (amount INTEGER NOT NULL)")  # one row: the balance
    db.execute("INSERT INTO balance (amount) VALUES (0)")
    # ---- your part starts here ----------------------------------------------------------
    # create the table of processed transaction ids
    # ---- your part ends here ------------------------------------------------------------


def apply_once(db: sqlite3.Connection, transaction_id: str, amount: int) -> bool:
    """Add ``amount`` to the balance, at most once per ``transaction_id``; True if applied."""
    # ---- your part starts here ----------------------------------------------------------
    db.execute("UPDATE balance SET amount = amount + ?", (amount,))
    return True
    # ---- your part ends here ------------------------------------------------------------
