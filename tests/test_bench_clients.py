"""The ``clients`` bench suite: the shape of what it reports, with and without mockafka-py.

The figures vary by machine and load: these tests check names, signs and the targets' form,
never a rate, a ratio or whether a target is met.
"""

from __future__ import annotations

import sys

import pytest

from minikafka.bench import SuiteResult, clients, no_progress

TARGETS = (
    "produce throughput against mockafka-py",
    "consume throughput against mockafka-py",
)
MINIKAFKA_FIGURES = (
    "records (100 bytes each)",
    "produce (idempotent)",
    "consume",
    "Produce requests",
    "Fetch requests",
)
MOCKAFKA_FIGURES = (
    "mockafka-py produce",
    "mockafka-py consume",
    "produce: minikafka / mockafka-py",
    "consume: minikafka / mockafka-py",
)


@pytest.fixture(autouse=True)
def one_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """One round is enough to check the shape, and keeps the tests quick."""
    monkeypatch.setattr(clients, "QUICK_ROUNDS", 1)


def quick_run() -> SuiteResult:
    return clients.run(progress=no_progress, quick=True)


def figures_of(result: SuiteResult) -> dict[str, float]:
    return {name: value for name, value, _unit in result.figures}


def test_minikafka_side_is_always_reported() -> None:
    result = quick_run()
    assert result.suite == "clients"
    figures = figures_of(result)
    for name in MINIKAFKA_FIGURES:
        assert figures[name] > 0, name
    assert figures["records (100 bytes each)"] == clients.RECORDS // 10
    assert [target.name for target in result.targets] == list(TARGETS)
    for target in result.targets:
        assert target.goal == ">= 1.5x"
        assert isinstance(target.measured, str) and target.measured
    assert any(note.startswith("minikafka, per record:") for note in result.notes)


def test_progress_bars_end_full() -> None:
    last: dict[str, tuple[float, float]] = {}

    def progress(task: str, done: float, total: float) -> None:
        assert 0 <= done <= total
        last[task] = (done, total)

    clients.run(progress=progress, quick=True)
    assert {"clients: minikafka produce", "clients: minikafka consume"} <= set(last)
    for task, (done, total) in last.items():
        assert done == total, task


def test_against_mockafka_reports_both_sides_and_the_ratios() -> None:
    pytest.importorskip("mockafka", reason="mockafka-py is not installed (minikafka[bench])")
    result = quick_run()
    figures = figures_of(result)
    for name in MOCKAFKA_FIGURES:
        assert figures[name] > 0, name
    ratios = (
        figures["produce: minikafka / mockafka-py"],
        figures["consume: minikafka / mockafka-py"],
    )
    for target, ratio in zip(result.targets, ratios, strict=True):
        assert target.measured == f"{ratio:.2f}x"
    assert any(note.startswith("mockafka-py, per record:") for note in result.notes)


def test_against_mockafka_leaves_its_store_empty() -> None:
    pytest.importorskip("mockafka", reason="mockafka-py is not installed (minikafka[bench])")
    from mockafka.kafka_store import KafkaStore

    run = clients.run_mockafka(100, no_progress)
    assert run is not None and run.records == 100 and run.produce_per_second > 0
    assert KafkaStore.topic_list() == []


def test_without_mockafka_the_targets_say_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes `import mockafka` raise ImportError.
    monkeypatch.setitem(sys.modules, "mockafka", None)
    assert clients.run_mockafka(100, no_progress) is None
    result = quick_run()
    assert not set(MOCKAFKA_FIGURES) & set(figures_of(result))
    assert [target.name for target in result.targets] == list(TARGETS)
    for target in result.targets:
        assert target.measured == "mockafka-py not installed (pip install minikafka[bench])"
        assert target.met is False
    assert any("mockafka-py not installed" in note for note in result.notes)
