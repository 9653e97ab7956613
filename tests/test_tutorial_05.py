"""Tutorial 5: a payment delivered twice; setting its status is idempotent, adding its amount
is not until a processed-ids table guards it."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 5


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


def test_the_same_record_is_delivered_twice_after_a_crash_before_the_commit() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["deliveries"] == [("ledger-1", 0), ("ledger-2", 0)]
    # ledger-1 crashed at once; ledger-2 got the partition after the 45 s session timeout.
    assert facts["delivered_at"] == [3.0, 48.0]


def test_the_status_is_right_and_the_balance_wrong_without_a_guard() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["handler_outcomes"] == ["applied", "applied"]
    assert facts["status_after_two_deliveries"] == "COMPLETED"
    assert facts["balance_owed"] == 6000
    assert facts["balance_after_two_deliveries"] == 7000


def test_the_processed_ids_table_makes_the_balance_right() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["guarded_handler_outcomes"] == [
        "applied",
        "skipped (UNIQUE constraint failed: processed.transaction_id)",
    ]
    assert facts["guarded_status_after_two_deliveries"] == "COMPLETED"
    assert facts["guarded_balance_after_two_deliveries"] == 6000
    assert facts["processed_ids"] == 1


def test_the_narration_tells_the_numbers_of_the_run() -> None:
    out = io.StringIO()
    run(Lesson("tutorial 5", console=Console(file=out, width=100, color_system=None)))
    text = " ".join(out.getvalue().split())
    assert "was delivered twice" in text
    assert "The balance is 7000, but the merchant is owed 6000" in text
    assert "Now the balance is 6000, as owed" in text
    assert "what to remember" in text
