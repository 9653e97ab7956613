"""The ``scale`` bench suite: the shape of what it reports.

The figures vary by machine and load: these tests check names, signs and the targets' form,
never a time, a ratio, a size in memory or whether a target is met.
"""

from __future__ import annotations

import pytest

from minikafka.bench import SuiteResult, no_progress, scale
from minikafka.core import Broker

TARGETS = (
    "produce cost per record flat from the smallest log to the largest",
    "fetch cost per record flat from the smallest log to the largest",
    "commit cost linear in the transaction's partitions",
    "memory of a log of 1,000,000 records of 100 bytes",
)
QUICK_FIGURES = (
    "produce on a log of 1,000 records",
    "fetch on a log of 1,000 records",
    "produce on a log of 100,000 records",
    "fetch on a log of 100,000 records",
    "commit of 1 partition",
    "commit of 10 partitions, per partition",
    "commit of 100 partitions",
    "commit: each added partition, 1 to 10",
    "commit: each added partition, 10 to 100",
    "memory of a log of 100,000 records",
    "memory per record",
)


@pytest.fixture(scope="module")
def quick_result() -> SuiteResult:
    """One quick run of the suite (a few seconds), shared by the tests of this module."""
    return scale.run(progress=no_progress, quick=True)


def test_scale_reports_every_figure_once_with_a_positive_value(
    quick_result: SuiteResult,
) -> None:
    assert quick_result.suite == "scale"
    names = [name for name, _, _ in quick_result.figures]
    assert len(names) == len(set(names))
    for name in QUICK_FIGURES:
        assert name in names
    for name, value, unit in quick_result.figures:
        assert value > 0, name
        assert unit, name


def test_scale_judges_each_target_on_a_measured_value(quick_result: SuiteResult) -> None:
    assert tuple(target.name for target in quick_result.targets) == TARGETS
    for target in quick_result.targets:
        assert target.goal and target.measured
        assert isinstance(target.met, bool)
    # The quick run measures a tenth of the memory workload and says so.
    assert "from 100,000 records" in quick_result.targets[-1].measured
    assert quick_result.notes
    assert quick_result.to_json()["suite"] == "scale"


def test_build_log_fills_whole_batches_through_produce_requests() -> None:
    broker = Broker()
    broker.create_topic(scale.TOPIC)
    producer_id, _ = scale._init_producer(broker)
    reported: list[int] = []
    scale.build_log(broker, producer_id, 250, now=0.0, report=reported.append)
    log = broker.log(scale.TOPIC, 0)
    assert log.log_end_offset == 300
    assert log.batch_count == 3
    assert len({record.value for batch in log.batches() for record in batch.records}) == 300
    assert reported == []  # fewer records than REPORT_EVERY
