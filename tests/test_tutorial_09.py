"""Tutorial 9: what exactly-once costs against at-least-once. Only what the seed fixes is
checked here (request counts, correctness, simulated latencies), never wall-clock timings."""

from __future__ import annotations

from typing import Any

from minikafka.tutorial import Lesson, run_tutorial


def run(number: int) -> dict[str, Any]:
    return run_tutorial(number, Lesson(quiet=True))


def test_tutorial_9_counts_what_exactly_once_adds_and_measures_it() -> None:
    facts = run(9)
    requests = facts["requests"]
    # One batch of 20: at-least-once commits once; dedup keeps its offsets in sqlite.
    assert requests["at-least-once"]["OffsetCommit"] == 1
    assert sum(requests["at-least-once+dedup"].values()) == 0
    # exactly-once: one transaction's requests, each output record, and two COMMIT markers.
    eos = requests["exactly-once"]
    assert eos["OffsetCommit"] == 0
    for api in ("InitProducerId", "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit"):
        assert eos[api] == 1, api
    assert eos["EndTxn"] == 1
    # The output producer lingers 1 s, and processing takes 0.1 s an event: records share
    # requests, a few a request.
    assert 2 <= eos["Produce"] < 20
    assert eos["markers"] == 2
    # The timed runs: every model correct without faults; exactly-once's output waits for the
    # commit, so its simulated latencies are higher. Wall figures vary: only their presence.
    assert facts["all_correct"] is True
    assert facts["exactly_once_p50_higher"] is True
    assert facts["exactly_once_p99_higher"] is True
    measured = facts["measured"]
    assert set(measured) == {"at-least-once", "at-least-once+dedup", "exactly-once"}
    assert measured["exactly-once"]["p50"] > measured["at-least-once"]["p50"]
    assert all(row["correct"] for row in measured.values())
    assert all(row["ms_per_event"] > 0 and row["cost"] > 0 for row in measured.values())
    # The bench eos runs: clean (no restart, no abort, every event once); the ratio is a
    # wall-clock figure, so only its presence is checked.
    assert facts["bench_clean"] is True and facts["bench_ratio"] > 0
