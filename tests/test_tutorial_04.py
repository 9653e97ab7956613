"""Tutorial 4 (producer retries) teaches what its run shows: a lost acknowledgement and a retry
write the payment twice without idempotence, once with it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from minikafka.client.producer import PRODUCER_DEFAULTS
from minikafka.core.producer_state import NUM_BATCHES_TO_RETAIN
from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 4


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return run(Lesson(quiet=True))


def test_the_retry_comes_after_the_request_timeout(facts: dict[str, Any]) -> None:
    assert PRODUCER_DEFAULTS["request_timeout"] == 30.0
    assert PRODUCER_DEFAULTS["retry_backoff"] == 0.1
    assert facts["retry_at"] == 30.1  # request_timeout 30 s, then retry_backoff 0.1 s


def test_the_numbers_the_narration_quotes() -> None:
    # "the broker remembers the last 5 batches"; "at most 5 requests in flight"
    assert NUM_BATCHES_TO_RETAIN == 5
    assert PRODUCER_DEFAULTS["max_in_flight_requests_per_connection"] == 5
    assert PRODUCER_DEFAULTS["enable_idempotence"] is True  # "Kafka's default"


def test_without_idempotence_the_retry_is_a_second_copy(facts: dict[str, Any]) -> None:
    assert facts["producer_id_without_idempotence"] == -1
    assert facts["txn5001_offsets_without_idempotence"] == [0, 1]
    assert facts["copies_without_idempotence"] == 2
    assert facts["retry_answer_without_idempotence"] == 1


def test_with_idempotence_the_retry_gets_the_original_offset(facts: dict[str, Any]) -> None:
    assert facts["producer_id"] == 0
    assert facts["producer_epoch"] == 0
    assert facts["txn5001_offsets_with_idempotence"] == [0]
    assert facts["copies_with_idempotence"] == 1
    assert facts["retry_answer_with_idempotence"] == 0
    assert facts["sequences_with_idempotence"] == [0, 1]
    assert facts["txn5002_offset_with_idempotence"] == 1
    # The retry reached the broker and was handled, yet appended nothing.
    assert facts["produce_requests_handled_with_idempotence"] == 3
    assert facts["batches_in_log_with_idempotence"] == 2


def test_the_narration_renders_and_says_so() -> None:
    out = io.StringIO()
    run(Lesson("tutorial 4", console=Console(file=out, width=120, color_system=None)))
    text = " ".join(out.getvalue().split())  # the console wraps lines; words stay in order
    assert "sends the same batch again, at t=30.1 s" in text
    assert "It appended it at offset 1, and that is the answer the producer got." in text
    assert "2 copies of TXN5001, at offsets 0 and 1" in text
    assert "(InitProducerId): it got 0, with epoch 0" in text
    assert "carried producer 0, sequence 0; the broker found it" in text
    assert "answered offset 0. TXN5001 sits in the log once" in text
