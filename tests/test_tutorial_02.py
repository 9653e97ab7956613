"""Tutorial 2 (at-most-once) teaches what its run shows: commit first, crash, events skipped."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from minikafka.client.consumer import CONSUMER_DEFAULTS
from minikafka.core import BrokerConfig
from minikafka.tutorial import Lesson, run_tutorial

NUMBER = 2


def run(lesson: Lesson) -> dict[str, Any]:
    return run_tutorial(NUMBER, lesson)


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return run(Lesson(quiet=True))


def test_the_committed_batch_is_never_processed(facts: dict[str, Any]) -> None:
    assert facts["polled_by_worker_1"] == [0, 1, 2]
    # The first rebalance of an empty group waits 3 s; the crash follows the commit at once.
    assert BrokerConfig().group_initial_rebalance_delay_ms == 3_000
    assert facts["crashed_at"] == 3.0
    assert facts["committed_offset_found_by_worker_2"] == 3
    # worker-1 never left: the group hands its partition on once its 45 s session runs out.
    assert CONSUMER_DEFAULTS["session_timeout"] == 45.0  # "45 s, Kafka's default"
    assert facts["worker_2_assigned_at"] == 3.0 + 45.0
    assert facts["events_in_log"] == 6
    assert facts["never_checked"] == ["TXN5001", "TXN5002", "TXN5003"]
    assert facts["checked"] == ["TXN5004", "TXN5005", "TXN5006"]


def test_the_narration_renders_and_says_so() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    run(Lesson("tutorial 2", console=console))
    text = " ".join(out.getvalue().split())  # the console wraps lines; words stay in order
    assert "polled offsets 0 to 2. It committed offset 3" in text
    assert "committed offset on payments-0: 3." in text
    assert "TXN5001, TXN5002, TXN5003 were never checked" in text
    assert "what to remember" in text
