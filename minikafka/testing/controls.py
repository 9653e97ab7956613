"""Negative controls: run a state machine until hypothesis finds, and shrinks, a failure.

A property test that cannot fail proves nothing. For each safeguard, a test switches it off
(``Machine.breaking(Safeguard.X)``) and asserts that this finds a counterexample.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

__all__ = ["NoCounterexample", "find_counterexample"]


class NoCounterexample(AssertionError):
    """The machine held where a failure was expected: the negative control failed."""


def find_counterexample(machine: type[Any], **overrides: Any) -> tuple[str, Any]:
    """Run ``machine`` until hypothesis finds and shrinks a failure.

    Returns the failure's message and the machine of the shrunk run (its ``story`` and
    ``steps`` tell what happened). Raises ``NoCounterexample`` if the invariants held.
    ``overrides`` are hypothesis settings for this run.
    """
    machines: list[Any] = []

    def factory() -> Any:
        machines.append(machine())
        return machines[-1]

    chosen = settings(print_blob=False, report_multiple_bugs=False, **overrides)
    try:
        run_state_machine_as_test(factory, settings=chosen)  # type: ignore[arg-type]
    except AssertionError as failure:
        return str(failure), machines[-1]
    raise NoCounterexample(f"{machine.__name__} held: hypothesis found no counterexample")
