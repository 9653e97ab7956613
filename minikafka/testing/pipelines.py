"""Search for the fault plan that breaks a pipeline, and show it so that it teaches.

``find_violation(model, violation)`` asks hypothesis for a fault plan under which the model's
run shows ``violation`` ("lost", "duplicated" or "database-duplicated"), shrunk to the fewest
and simplest faults; it returns the plan and the run, or None when the search found nothing.
The plan prints as the ``FaultPlan([...])`` code that replays it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from minikafka.check.history import PollOp
from minikafka.core import Safeguard
from minikafka.pipelines import PipelineResult, run_pipeline
from minikafka.sim.faults import KINDS, FaultPlan
from minikafka.sim.trace import Trace
from minikafka.testing.faults import fault_plans
from minikafka.testing.profiles import SEARCH_PHASES

__all__ = ["FAULTS_FOR", "VIOLATIONS", "Counterexample", "Workload", "find_violation", "workloads"]

VIOLATIONS: dict[str, Callable[[PipelineResult], list[str]]] = {
    "lost": lambda result: result.lost,
    "duplicated": lambda result: result.duplicated,
    "database-duplicated": lambda result: result.database_duplicated,
}
"""What a run can show that a model promises not to, by name: the transaction ids affected."""


FAULTS_FOR: dict[Safeguard, tuple[str, ...]] = {
    Safeguard.PRODUCER_DEDUP: ("duplicate_request", "drop_response"),
    Safeguard.LAST_STABLE_OFFSET: ("client_crash",),
    Safeguard.PENDING_TXN_OFFSETS: ("drop_response", "drop_request"),
    Safeguard.ROLL_FORWARD: ("broker_crash",),
    Safeguard.GENERATION_FENCING: ("pause",),
    Safeguard.EPOCH_FENCING: ("delay", "client_crash"),
}
"""The kinds of fault each safeguard stands against: a search with the safeguard off draws
only these, so it spends its examples where the failure is. (For EPOCH_FENCING the failure
needs a late request of a dead process to land inside its successor's transaction, a window
of about a second that a random search rarely hits; tests/test_pipelines.py stages it.)"""


@attrs.frozen
class Workload:
    """What the source writes before the pipeline runs, and the cluster's seed."""

    events: int = 10
    """How many payment events (each with its own transaction id)."""
    partitions: int = 3
    """The input topic's partitions."""
    keyed: bool = False
    """Key each event by its transaction id (spread by hash), or not (sticky batches)."""
    seed: int = 0
    """The cluster's seed: the partitioner's and the scheduler's choices."""

    def run(
        self, model: str, faults: FaultPlan | None = None, **broker_config: Any
    ) -> PipelineResult:
        """Run ``model`` on this workload under ``faults``."""
        return run_pipeline(
            model,
            events=self.events,
            partitions=self.partitions,
            keyed=self.keyed,
            seed=self.seed,
            faults=faults,
            **broker_config,
        )


def workloads(*, max_events: int = 20, max_partitions: int = 3) -> st.SearchStrategy[Workload]:
    """Workloads that shrink toward one event, one partition, no keys and seed 0."""
    return st.builds(
        Workload,
        events=st.integers(1, max_events),
        partitions=st.integers(1, max_partitions),
        keyed=st.booleans(),
        seed=st.integers(0, 2**16),
    )


@attrs.frozen
class Counterexample:
    """A shrunk fault plan and the run it gives."""

    model: str
    violation: str
    plan: FaultPlan
    result: PipelineResult

    @property
    def affected(self) -> list[str]:
        return VIOLATIONS[self.violation](self.result)

    def story(self) -> Trace:
        """The trace's story (``Trace.story``) from the first fault until the work on the
        affected events was over: two seconds after they were last polled, or the last
        transaction's markers, whichever is later (the final audit left out)."""
        trace = self.result.trace
        faults = [e.time for e in trace if e.kind in ("fault", "crash")]
        start = min(faults) if faults else 0.0
        affected = [key.encode() for key in self.affected]
        polls = [op for op in self.result.history if isinstance(op, PollOp)]
        touching = [
            op.time
            for op in polls
            if any(key in value for _, _, value in op.records for key in affected)
        ]
        ends = [max(touching or [op.time for op in polls] or [start]) + 2.0]
        ends += [e.time for e in trace if e.kind == "marker"]
        return trace.between(start - 0.5, max(start, *ends)).story()


def find_violation(
    model: str,
    violation: str | Sequence[str],
    *,
    events: int = 10,
    max_examples: int = 100,
    horizon: float = 8.0,
    kinds: Sequence[str] = KINDS,
    clients: Sequence[str] = ("worker-1",),
    on_run: Callable[[int], None] | None = None,
    loop: Callable[[Any], Awaitable[None]] | None = None,
    **broker_config: Any,
) -> Counterexample | None:
    """The smallest fault plan under which ``model`` shows ``violation`` (or any of several),
    or None. ``kinds`` narrows the faults drawn and ``clients`` names the clients that client
    faults hit (``worker-1-out`` is the worker's producer); ``on_run(count)`` is called after
    each run, for a progress bar; ``loop`` runs in place of the model's own loop (an
    exercise's)."""
    names = [violation] if isinstance(violation, str) else list(violation)
    runs = 0

    def violated(plan: FaultPlan) -> bool:
        nonlocal runs
        result = run_pipeline(model, events=events, faults=plan, loop=loop, **broker_config)
        runs += 1
        if on_run is not None:
            on_run(runs)
        return any(VIOLATIONS[name](result) for name in names)

    try:
        plan = find(
            fault_plans(horizon=horizon, kinds=kinds, clients=clients),
            violated,
            settings=settings(
                max_examples=max_examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=SEARCH_PHASES,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except NoSuchExample:
        return None
    result = run_pipeline(model, events=events, faults=plan, loop=loop, **broker_config)
    shown = next(name for name in names if VIOLATIONS[name](result))
    return Counterexample(model, shown, plan, result)
