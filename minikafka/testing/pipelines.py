"""Search for the fault plan that breaks a pipeline, and show it so that it teaches.

``find_violation(model, violation)`` asks hypothesis for a fault plan under which the model's
run shows ``violation`` ("lost", "duplicated" or "database-duplicated"), shrunk to the fewest
and simplest faults; it returns the plan and the run, or None when the search found nothing.
The plan prints as the ``FaultPlan([...])`` code that replays it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from hypothesis import HealthCheck, find, settings
from hypothesis.errors import NoSuchExample

from minikafka.pipelines import PipelineResult, run_pipeline
from minikafka.sim.faults import FaultPlan
from minikafka.testing.faults import fault_plans
from minikafka.testing.profiles import SEARCH_PHASES

__all__ = ["VIOLATIONS", "Counterexample", "find_violation"]

VIOLATIONS: dict[str, Callable[[PipelineResult], list[str]]] = {
    "lost": lambda result: result.lost,
    "duplicated": lambda result: result.duplicated,
    "database-duplicated": lambda result: result.database_duplicated,
}
"""What a run can show that a model promises not to, by name: the transaction ids affected."""


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


def find_violation(
    model: str,
    violation: str | Sequence[str],
    *,
    events: int = 10,
    max_examples: int = 100,
    horizon: float = 8.0,
    on_run: Callable[[int], None] | None = None,
    **broker_config: Any,
) -> Counterexample | None:
    """The smallest fault plan under which ``model`` shows ``violation`` (or any of several),
    or None. ``on_run(count)`` is called after each run, for a progress bar."""
    names = [violation] if isinstance(violation, str) else list(violation)
    runs = 0

    def violated(plan: FaultPlan) -> bool:
        nonlocal runs
        result = run_pipeline(model, events=events, faults=plan, **broker_config)
        runs += 1
        if on_run is not None:
            on_run(runs)
        return any(VIOLATIONS[name](result) for name in names)

    try:
        plan = find(
            fault_plans(horizon=horizon),
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
    result = run_pipeline(model, events=events, faults=plan, **broker_config)
    shown = next(name for name in names if VIOLATIONS[name](result))
    return Counterexample(model, shown, plan, result)
