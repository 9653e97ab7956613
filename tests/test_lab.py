"""The lab: every delivery model on the same events under the same faults, measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from minikafka.cli import main
from minikafka.lab import PRODUCER_ROWS, LabResult, lab_plan, run_lab
from minikafka.pipelines import MODELS, run_pipeline

TIMING = {"events_per_second", "cost_vs_at_least_once"}


def without_timing(result: LabResult) -> dict[str, Any]:
    data = result.to_json()
    for row in data["models"] + data["producer"]:
        for field in TIMING:
            row.pop(field)
    return data


def test_the_plan_is_fixed_by_its_seed_and_grows_with_the_rate() -> None:
    assert lab_plan(seed=3, rate=0.01, events=500) == lab_plan(seed=3, rate=0.01, events=500)
    assert lab_plan(seed=3, rate=0.01, events=500) != lab_plan(seed=4, rate=0.01, events=500)
    assert len(lab_plan(seed=3, rate=0.0, events=500)) == 0
    assert len(lab_plan(seed=3, rate=0.05, events=500)) > len(
        lab_plan(seed=3, rate=0.01, events=500)
    )
    kinds = {f.kind for f in lab_plan(seed=0, rate=0.05, events=1000)}
    assert {"client_crash", "pause", "broker_crash", "drop_response"} <= kinds
    with pytest.raises(ValueError, match="between 0 and 1"):
        lab_plan(seed=0, rate=2.0, events=10)


def test_a_crash_after_an_output_producer_call_is_planned_for_the_output_producer() -> None:
    """The worker's consumer never sends Produce, TxnOffsetCommit or EndTxn: a crash right
    after one of those must name the client that does, or it never fires."""
    crashes = [
        f
        for f in lab_plan(seed=0, rate=0.2, events=1000)
        if f.kind == "client_crash" and f.after is not None
    ]
    by_client = {f.after: f.client for f in crashes}
    assert by_client == {
        "OffsetCommit": "worker-1",
        "Fetch": "worker-1",
        "Produce": "worker-1-out",
        "TxnOffsetCommit": "worker-1-out",
        "EndTxn": "worker-1-out",
    }


def test_the_default_lab_shows_what_the_article_says() -> None:
    """The issue's acceptance: losses only for at-most-once, duplicates only for at-least-once
    and the external database, neither for dedup and exactly-once; retries duplicate only
    without idempotence."""
    result = run_lab(workers=2)
    rows = {row.name: row for row in result.rows}
    assert list(rows) == [*MODELS, *PRODUCER_ROWS]
    assert rows["at-most-once"].lost > 0 and rows["at-most-once"].duplicated == 0
    assert rows["at-least-once"].lost == 0 and rows["at-least-once"].duplicated > 0
    for exact in ("at-least-once+dedup", "exactly-once"):
        assert rows[exact].correct, exact
    external = rows["exactly-once+external-db"]
    assert external.lost == 0 and external.duplicated > 0
    assert "output topic: 0 lost, 0 duplicated" in external.detail
    assert rows[PRODUCER_ROWS[0]].duplicated > 0 and rows[PRODUCER_ROWS[1]].correct
    assert result.promises_kept
    assert all(row.events == 1000 for row in result.rows)
    # The README shows this table: its seed-fixed columns must be what the lab prints.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    shown = {
        cells[0]: cells[1:6] + cells[7:9]
        for line in readme.splitlines()
        if line.startswith("│")
        for cells in [[cell.strip() for cell in line.strip("│").split("│")]]
    }
    for row in result.rows:
        correct = "yes" if row.correct else "no"
        measured = [str(row.events), str(row.effects), str(row.lost), str(row.duplicated)]
        latency = [f"{row.latency_p50:.2f}", f"{row.latency_p99:.2f}"]
        assert shown[row.name] == [*measured, correct, *latency], row.name


def test_the_same_seed_gives_the_same_numbers_timing_aside() -> None:
    first = run_lab(events=120, seed=5, fault_rate=0.05)
    second = run_lab(events=120, seed=5, fault_rate=0.05)
    assert without_timing(first) == without_timing(second)
    assert first.plan == second.plan


def test_without_faults_every_row_is_correct_and_fast_to_the_effect() -> None:
    result = run_lab(events=80, fault_rate=0.0, models=["at-least-once", "exactly-once"])
    assert [row.name for row in result.rows] == ["at-least-once", "exactly-once", *PRODUCER_ROWS]
    assert all(row.correct and row.promise_kept for row in result.rows)
    by_name = {row.name: row for row in result.rows}
    # A transaction makes its output visible only at its commit marker: later than a
    # database write made while processing.
    assert by_name["exactly-once"].latency_p50 > by_name["at-least-once"].latency_p50  # type: ignore[operator]


def test_unknown_models_and_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown models"):
        run_lab(events=10, models=["exactly-twice"])
    with pytest.raises(ValueError, match="positive number of events"):
        run_lab(events=0)


def test_the_command_prints_json_and_saves_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "lab.svg"
    options = ["--events", "60", "--workers", "1", "--models", "at-most-once,exactly-once"]
    code = main(["lab", *options, "--json", "--svg", str(picture)])
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["promises_kept"] else 1)
    assert set(data) >= {"seed", "events", "fault_rate", "models"}
    assert [row["model"] for row in data["models"]] == ["at-most-once", "exactly-once"]
    assert set(data["models"][0]) >= {
        "model",
        "events",
        "effects",
        "lost",
        "duplicated",
        "correct",
        "events_per_second",
        "latency_p50",
        "latency_p99",
    }
    assert picture.read_text().lstrip().startswith("<svg")


def test_the_command_draws_the_table_and_a_line_per_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lab", "--events", "40", "--workers", "1", "--fault-rate", "0"]) == 0
    out = capsys.readouterr().out
    for name in [*MODELS, *PRODUCER_ROWS]:
        assert f"{name}: expected" in out
    assert "fault rate 0.0" in out


def test_the_command_refuses_unknown_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "--models", "exactly-twice"]) == 2
    assert "exactly-twice" in capsys.readouterr().out


def test_a_run_that_cannot_finish_is_a_row_with_its_error_not_a_crash() -> None:
    """At a fault rate of 1 the worker never gets through; the lab says so and goes on."""
    result = run_lab(events=20, fault_rate=1.0, models=["at-least-once"], producers=False)
    (row,) = result.rows
    assert row.error.startswith("the worker was restarted")
    assert not row.correct and not row.promise_kept and not result.promises_kept
    assert result.to_json()["models"][0]["error"] == row.error


def test_latency_counts_from_the_send_and_waits_for_the_last_stable_offset() -> None:
    """A lost acknowledgement makes the source's acknowledgement come after the effect, so
    latency counts from the send; and a record is readable only once every transaction
    before it in the partition is decided, not at its own COMMIT marker."""
    plan = lab_plan(seed=1, rate=0.05, events=200)
    for model in ("at-least-once", "exactly-once"):
        result = run_pipeline(model, events=200, faults=plan, rate=8.0)
        assert min(result.latencies()) >= 0, model


def test_a_record_is_readable_only_once_every_earlier_transaction_is_decided() -> None:
    """Two producers' transactions interleave: B commits at 3 s, but A, which began before
    B's record, is decided only at 5 s (an abort). read_committed reads B's record from 5 s."""
    from minikafka.core import PartitionLog, Record, RecordBatch
    from minikafka.core.records import ControlType, control_batch
    from minikafka.pipelines import payment_event
    from minikafka.pipelines.runner import _visible_at

    def data(pid: int, number: int, at: float) -> RecordBatch:
        record = Record(payment_event(number), timestamp=int(at * 1000))
        return RecordBatch(
            records=(record,),
            producer_id=pid,
            producer_epoch=0,
            base_sequence=0,
            is_transactional=True,
        )

    log = PartitionLog("ledger", 0)
    log.append(data(1, 0, 1.0))  # A: TXN5001, will abort
    log.append(data(2, 1, 2.0))  # B: TXN5002
    log.append(control_batch(ControlType.COMMIT, producer_id=2, producer_epoch=0, timestamp=3000))
    log.append(control_batch(ControlType.ABORT, producer_id=1, producer_epoch=0, timestamp=5000))
    log.append(data(2, 2, 6.0))  # B again: TXN5003, never decided
    assert _visible_at(log) == {"TXN5002": 5.0}
