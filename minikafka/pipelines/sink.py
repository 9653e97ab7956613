"""The external system the pipelines write to: an sqlite database, through ``sqlite3``.

It stands for what a real consumer updates besides Kafka (a ledger, an SMS gateway, a
balance). It is a separate system: a consumer's crash does not roll it back, and it knows
nothing of Kafka's transactions. Tables:

- ``effects``: one row per time an event's effect was applied (an SMS sent, a row posted).
  Nothing stops a second row for the same transaction id: that is a duplicate effect.
- ``processed``: the dedup table of ``at-least-once+dedup``; its primary key is the
  transaction id, so a second insert of the same id is refused.
- ``offsets``: the next offset to read per partition, written in the same database
  transaction as the effects (``at-least-once+dedup`` restores its positions from here).
- ``balance``: the non-idempotent update of ``exactly-once+external-db``
  ("add the amount to the balance").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping

from minikafka.core.records import TopicPartition

__all__ = ["Sink"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    transaction_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    applied_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed (transaction_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS balance (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
"""


STORE_OFFSET = (
    "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
    "ON CONFLICT(topic, partition) DO UPDATE SET next_offset = excluded.next_offset"
)


class Sink:
    """An sqlite database (a file, or ``":memory:"``) that outlives the consumers using it."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        # Autocommit mode: each method below opens and ends its own transaction explicitly.
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.on_effect: Callable[[str, str], object] | None = None
        """Called with (transaction id, who applied it) after each effect, to record it."""

    def close(self) -> None:
        self.db.close()

    # --- writes -----------------------------------------------------------------------------

    def apply(self, transaction_id: str, amount: int, *, by: str) -> None:
        """Apply an event's effect, with no check: a replay applies it again."""
        self.db.execute(
            "INSERT INTO effects (transaction_id, amount, applied_by) VALUES (?, ?, ?)",
            (transaction_id, amount, by),
        )
        if self.on_effect is not None:
            self.on_effect(transaction_id, by)

    def add_to_balance(self, amount: int, *, account: str = "merchant") -> None:
        """The non-idempotent update: ``balance = balance + amount``."""
        self.db.execute(
            "INSERT INTO balance (account, amount) VALUES (?, ?) "
            "ON CONFLICT(account) DO UPDATE SET amount = amount + excluded.amount",
            (account, amount),
        )

    def apply_once(
        self,
        events: Iterable[tuple[str, int]],
        offsets: Mapping[TopicPartition, int],
        *,
        by: str,
    ) -> int:
        """In one database transaction: apply each event whose transaction id is new, and
        store the next offsets. Returns how many effects were applied (the rest were
        duplicates the unique constraint refused)."""
        applied = 0
        self.db.execute("BEGIN")
        try:
            for transaction_id, amount in events:
                try:
                    self.db.execute(
                        "INSERT INTO processed (transaction_id) VALUES (?)", (transaction_id,)
                    )
                except sqlite3.IntegrityError:
                    continue  # already processed: the unique constraint says so
                self.apply(transaction_id, amount, by=by)
                applied += 1
            for tp, offset in offsets.items():
                self.db.execute(STORE_OFFSET, (tp.topic, tp.partition, offset))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return applied

    # --- reads --------------------------------------------------------------------------

    def stored_offset(self, tp: TopicPartition) -> int | None:
        row = self.db.execute(
            "SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?",
            (tp.topic, tp.partition),
        ).fetchone()
        return None if row is None else int(row[0])

    def effect_counts(self) -> dict[str, int]:
        """How many times each transaction id's effect was applied."""
        rows = self.db.execute(
            "SELECT transaction_id, COUNT(*) FROM effects GROUP BY transaction_id ORDER BY 1"
        )
        return {str(key): int(count) for key, count in rows}

    def balance(self, account: str = "merchant") -> int:
        row = self.db.execute("SELECT amount FROM balance WHERE account = ?", (account,)).fetchone()
        return 0 if row is None else int(row[0])
