"""Tutorial 3 (at-least-once) teaches what its run shows: process, crash, the SMS sent twice."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from minikafka.client.consumer import CONSUMER_DEFAULTS
from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 3


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return run(Lesson(quiet=True))


def test_a_crash_before_the_commit_sends_the_sms_twice(facts: dict[str, Any]) -> None:
    # One commit after the first batch (three SMS of a second each, from t=3 s) ...
    assert facts["worker_1_commits"] == [(6.0, "payments-0:3")]
    # ... and none for the second batch, which the crash at t=8.5 s cut after two SMS.
    assert facts["committed_offset_found_by_worker_2"] == 3
    assert facts["sent_twice"] == ["TXN5004", "TXN5005"]
    assert facts["never_sent"] == []
    assert facts["sms_per_payment"] == {
        "TXN5001": 1,
        "TXN5002": 1,
        "TXN5003": 1,
        "TXN5004": 2,
        "TXN5005": 2,
        "TXN5006": 1,
    }


def test_auto_commit_commits_the_previous_poll_inside_the_next_one(facts: dict[str, Any]) -> None:
    assert CONSUMER_DEFAULTS["enable_auto_commit"] is True  # "Kafka's default, True"
    assert CONSUMER_DEFAULTS["auto_commit_interval"] == 5.0  # "5 s by default"
    # The interval (5 s from the start) has passed at the second poll, at t=6 s: it commits
    # the end of the first batch, the positions the first poll returned.
    assert facts["auto_commit_worker_1_commits"] == [(6.0, "payments-0:3")]
    assert facts["auto_commit_offset_found_by_worker_2"] == 3
    assert facts["auto_commit_sent_twice"] == ["TXN5004", "TXN5005"]


def test_the_narration_renders_and_says_so() -> None:
    out = io.StringIO()
    run(Lesson("tutorial 3", console=Console(file=out, width=120, color_system=None)))
    text = " ".join(out.getvalue().split())  # the console wraps lines; words stay in order
    assert "worker-1 sent 5 SMS, for TXN5001, TXN5002, TXN5003, TXN5004, TXN5005." in text
    assert "begin: offset 3, the last commit" in text
    assert "The customers of TXN5004 and TXN5005 got their SMS twice." in text
    assert "worker-2 again started at offset 3 and sent TXN5004 and TXN5005 twice" in text
