"""Tutorial 7: read-process-write with the offsets in the transaction; the committed offset
moves only on a commit, and a second producer with the same transactional id fences the first."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 7


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


def test_the_committed_offset_moves_only_when_a_transaction_commits() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["offsets_before_commit"] == {"committed": None, "pending": 3}
    assert facts["offsets_after_commit"] == {"committed": 3, "pending": None}
    assert facts["offsets_after_abort"] == {"committed": 3, "pending": None}
    assert facts["position_after_abort"] == 6  # Kafka does not rewind the consumer
    assert facts["offsets_after_retry"] == {"committed": 6, "pending": None}
    assert facts["offsets_after_fencing"] == {"committed": 6, "pending": None}
    assert facts["offsets_after_replacement"] == {"committed": 9, "pending": None}


def test_the_new_instance_fences_the_zombie_by_epoch() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["first_epoch"] == 0
    assert facts["fence_marker_epoch"] == 1
    assert facts["new_epoch"] == 2
    assert facts["init_producer_id_requests_of_processor_2"] == 2
    assert facts["zombie_commit"] == "ProducerFencedError"


def test_read_committed_sees_each_payment_once() -> None:
    facts = run(Lesson(quiet=True))
    assert facts["ledger_read_committed"] == [
        f"TXN{5001 + n} merchant +{100 * (n + 1)}" for n in range(9)
    ]
    assert facts["ledger_records_in_log"] == 15


def test_the_narration_tells_the_offsets_and_epochs_of_the_run() -> None:
    out = io.StringIO()
    run(Lesson("tutorial 7", console=Console(file=out, width=100, color_system=None)))
    text = " ".join(out.getvalue().split())
    assert "the committed one: 3" in text
    assert "The consumer's position, though, is 6" in text
    assert "After seek(payments-0, 3)" in text
    assert "it raised the epoch to 1" in text
    assert "2 InitProducerId requests in all" in text
    assert "commit_transaction() raised ProducerFencedError" in text
    assert "read_committed reader gets 9" in text
