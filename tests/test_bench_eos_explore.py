"""The eos and explore bench suites return figures and targets of the right shape (their
timings and verdicts are never asserted), and run_pipeline's ``max_poll_records`` sets the
size of exactly-once's transactions."""

from __future__ import annotations

import math

import pytest

from minikafka.bench import SuiteResult, eos, explore, no_progress
from minikafka.core.records import ControlType
from minikafka.pipelines import run_pipeline
from minikafka.pipelines.base import OUTPUT_TOPIC
from minikafka.testing import IdempotenceMachine


def check_shape(result: SuiteResult, suite: str) -> None:
    assert result.suite == suite
    names = [name for name, _, _ in result.figures]
    assert len(names) == len(set(names)), "figure names are unique"
    for name, value, unit in result.figures:
        assert math.isfinite(value) and value > 0, (name, value)
        assert isinstance(unit, str)
    assert result.targets
    for target in result.targets:
        assert target.name and target.goal and target.measured
    assert result.notes
    assert not any(note.startswith("ERROR") for note in result.notes), result.notes
    result.to_json()


def test_eos_suite_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eos, "QUICK_EVENTS", 30)
    result = eos.run(progress=no_progress, quick=True)
    check_shape(result, "eos")
    names = {name for name, _, _ in result.figures}
    assert "exactly-once, 10-record polls, 30 events: records per transaction" in names
    assert "exactly-once, 100-record polls, 30 events: loop against at-least-once" in names


def test_explore_suite_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explore, "QUICK_MACHINE_EXAMPLES", 3)
    monkeypatch.setattr(explore, "QUICK_PIPELINE_EXAMPLES", 2)
    monkeypatch.setattr(explore, "PIPELINE_EVENTS", 20)
    monkeypatch.setattr(explore, "WARM_UP", 1)
    result = explore.run(progress=no_progress, quick=True)
    check_shape(result, "explore")
    names = {name for name, _, _ in result.figures}
    assert {"dedup machine: steps", "atomic-commit machine: steps"} <= names


def test_machine_steps_are_rules_executed() -> None:
    run = explore.machine_rate(IdempotenceMachine, 5)
    assert run.problem is None
    assert run.examples >= 5
    # At least the set-up rule in each example, and at most the step count in each.
    assert run.examples <= run.steps <= run.examples * explore.STEPS_PER_EXAMPLE


def test_max_poll_records_bounds_exactly_once_transactions() -> None:
    result = run_pipeline("exactly-once", events=35, max_poll_records=10)
    assert result.kept_promise and not result.lost and not result.duplicated
    assert result.broker is not None
    sizes, records = [], 0
    for batch in result.broker.log(OUTPUT_TOPIC, 0).batches():
        if batch.is_control:
            assert batch.control_type is ControlType.COMMIT
            sizes.append(records)
            records = 0
        else:
            records += len(batch.records)
    assert sum(sizes) == 35
    assert max(sizes) == 10
    assert len(sizes) >= 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_poll_records_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="max_poll_records"):
        run_pipeline("exactly-once", max_poll_records=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan, "0.1"])
def test_processing_time_must_be_finite_and_not_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="processing_time"):
        run_pipeline("exactly-once", processing_time=bad)  # type: ignore[arg-type]
