"""Tutorial 6: a transaction over two partitions commits or aborts as one; an open transaction
holds the last stable offset back, and read_committed stops there."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from minikafka.client import PRODUCER_DEFAULTS
from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 6


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


def test_both_partitions_get_the_same_decision() -> None:
    facts = run(Lesson(quiet=True))
    both = ["committed", "COMMIT marker", "aborted", "ABORT marker"]
    assert facts["outcomes"] == {"ledger-0": both, "ledger-1": both}


def test_an_open_transaction_holds_the_last_stable_offset_below_the_high_watermark() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["hw_lso_while_open"] == {"ledger-0": (6, 4), "ledger-1": (5, 4)}
    # The commit is answered before the markers are written; then LSO and HW meet.
    assert facts["hw_lso_when_commit_returns"] == {"ledger-0": (6, 4), "ledger-1": (5, 4)}
    assert facts["hw_lso_after_markers"] == {"ledger-0": (7, 7), "ledger-1": (6, 6)}


def test_each_isolation_level_reads_what_the_tutorial_says() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["read_uncommitted_while_open"] == {
        0: [
            "0: TXN5001 merchant +2500",
            "2: TXN5002 merchant +700",
            "4: TXN5003 merchant +120",
            "5: TXN5004 merchant +90",
        ],
        1: ["0: TXN5001 customer -2500", "2: TXN5002 customer -700", "4: TXN5003 customer -120"],
    }
    assert facts["read_committed_while_open"] == {
        0: ["0: TXN5001 merchant +2500"],
        1: ["0: TXN5001 customer -2500"],
    }
    assert facts["read_committed_after_commit"] == {
        0: ["0: TXN5001 merchant +2500", "4: TXN5003 merchant +120", "5: TXN5004 merchant +90"],
        1: ["0: TXN5001 customer -2500", "4: TXN5003 customer -120"],
    }


def test_the_transaction_timeout_the_narration_names_is_the_default() -> None:
    assert PRODUCER_DEFAULTS["transaction_timeout"] == 60.0


def test_the_narration_tells_the_marks_of_the_run() -> None:
    out = io.StringIO()
    run(Lesson("tutorial 6", console=Console(file=out, width=100, color_system=None)))
    text = " ".join(out.getvalue().split())
    assert "The high watermarks, 6 and 5," in text
    assert "lower, 4 and 4" in text
    assert "the LSO of ledger-0 was still 4" in text
    assert "(7 on ledger-0, 6 on ledger-1)" in text
