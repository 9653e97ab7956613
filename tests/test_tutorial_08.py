"""Tutorial 8: exactly-once stops at Kafka's edge; a dedup table and offsets in the database
make the database exact."""

from __future__ import annotations

from typing import Any

from minikafka.tutorial import Lesson, run_tutorial


def run(number: int) -> dict[str, Any]:
    return run_tutorial(number, Lesson(quiet=True))


def test_tutorial_8_the_topic_is_exact_the_database_is_not_and_dedup_is() -> None:
    facts = run(8)
    # exactly-once+external-db: Kafka's side exact, the database's doubled for the crashed part.
    assert facts["topic_lost"] == 0
    assert facts["topic_duplicated"] == 0
    assert facts["database_duplicated"] == 5
    assert facts["owed"] == 21000
    assert facts["balance"] == 22500  # TXN5001..TXN5005 (100 + ... + 500) added twice
    # at-least-once+dedup under the same crash: every payment once, the total owed.
    assert facts["dedup_lost"] == 0
    assert facts["dedup_duplicated"] == 0
    assert facts["dedup_effects"] == 20
    assert facts["dedup_processed"] == 20
    assert facts["dedup_total"] == facts["owed"]
    # A replay of applied payments is refused by the primary key.
    assert facts["replay_applied"] == 0
    assert facts["replay_changed_nothing"] is True
