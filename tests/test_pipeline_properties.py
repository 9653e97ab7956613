"""The delivery models under random fault plans: each keeps its promise, and hypothesis finds
the other side of each weaker promise (a lost event, a duplicate, a duplicate database effect),
and where exactly-once breaks when a broker safeguard is off.

A hundred drawn plans per model; ``--hypothesis-profile=dev`` or ``deep`` runs more.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from minikafka.core import Safeguard
from minikafka.pipelines import MODELS, PipelineResult, run_pipeline
from minikafka.sim.faults import FaultPlan
from minikafka.testing.faults import fault_plans
from minikafka.testing.pipelines import FAULTS_FOR, Workload, find_violation, workloads

EXAMPLES = 100


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_keeps_its_promise_under_random_faults(model: str) -> None:
    @settings(max_examples=EXAMPLES)
    @given(workloads(max_events=20), fault_plans(horizon=8.0))
    def keeps_its_promise(workload: Workload, plan: FaultPlan) -> None:
        result = workload.run(model, plan)
        assert result.kept_promise, (
            f"{model} on {workload} lost {result.lost} and duplicated {result.duplicated} "
            f"under {plan!r}\n{result.report}\n{result.trace.story().text()}"
        )

    keeps_its_promise()


@pytest.mark.parametrize(
    ("model", "violation"),
    [
        ("at-most-once", "lost"),
        ("at-least-once", "duplicated"),
        ("exactly-once+external-db", "database-duplicated"),
    ],
)
def test_hypothesis_finds_where_a_weaker_promise_ends(model: str, violation: str) -> None:
    found = find_violation(model, violation, max_examples=100)
    assert found is not None, f"no {violation} found for {model}"
    assert 1 <= len(found.plan) <= 5
    assert found.affected
    # The shrunk plan replays: pasted back, it breaks the model the same way.
    replayed = run_pipeline(model, events=10, faults=eval(repr(found.plan), _NAMES))
    assert replayed.effects == found.result.effects
    assert replayed.database == found.result.database


@pytest.mark.parametrize(
    "safeguard",
    [
        Safeguard.PRODUCER_DEDUP,
        Safeguard.PENDING_TXN_OFFSETS,
        Safeguard.ROLL_FORWARD,
        Safeguard.GENERATION_FENCING,
    ],
    ids=lambda safeguard: safeguard.value,
)
def test_hypothesis_finds_how_exactly_once_breaks_without_a_safeguard(
    safeguard: Safeguard,
) -> None:
    """Drawing only the faults the safeguard stands against. (The other two break in staged
    scenarios in test_pipelines.py: LAST_STABLE_OFFSET's search is slow to shrink, and
    EPOCH_FENCING's window is too narrow for a random search.)"""
    found = find_violation(
        "exactly-once",
        ["lost", "duplicated"],
        max_examples=300,
        kinds=FAULTS_FOR[safeguard],
        disabled_safeguards={safeguard},
    )
    assert found is not None, f"exactly-once held without {safeguard.value}"
    assert 1 <= len(found.plan) <= 5
    assert {fault.kind for fault in found.plan} <= set(FAULTS_FOR[safeguard])
    # With the safeguard on, the same plan leaves the output exact.
    safe = run_pipeline("exactly-once", events=10, faults=found.plan)
    assert safe.lost == [] and safe.duplicated == []


def _names() -> dict[str, object]:
    from minikafka import Fault

    return {"FaultPlan": FaultPlan, "Fault": Fault}


_NAMES = _names()


def test_a_keyed_workload_spreads_its_events_over_the_partitions() -> None:
    keyed = Workload(events=12, partitions=3, keyed=True).run("exactly-once")
    sticky = Workload(events=12, partitions=3, keyed=False).run("exactly-once")
    assert keyed.lost == keyed.duplicated == [] and len(keyed.sent) == 12

    def partitions(result: PipelineResult) -> set[str]:
        """The partitions the worker's polls returned records from ("payments-2:0-9, ...")."""
        polls = [e for e in result.trace if e.kind == "poll" and e.source == "worker-1"]
        return {part.split(":")[0] for e in polls for part in e.detail.split(", ")}

    assert len(partitions(keyed)) == 3
    assert len(partitions(sticky)) == 1


def test_the_search_hits_only_the_clients_it_is_given() -> None:
    """Crashes planned for a client that never exists miss; planned for the worker, they find
    its duplicate."""
    assert (
        find_violation(
            "at-most-once", "lost", kinds=("client_crash",), clients=("nobody",), max_examples=15
        )
        is None
    )
    found = find_violation(
        "at-least-once",
        "duplicated",
        kinds=("client_crash",),
        clients=("worker-1",),
        max_examples=50,
    )
    assert found is not None and {f.client for f in found.plan} == {"worker-1"}
