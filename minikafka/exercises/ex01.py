"""Exercise 1: an at-least-once consumer loop. The checker searches crash plans (hypothesis)
for one under which the student's loop loses a payment."""

from __future__ import annotations

from types import ModuleType

from minikafka.exercises import Exercise, Verdict
from minikafka.testing.pipelines import find_violation

EXERCISE = Exercise(
    1, "Reorder a consumer loop into at-least-once", "easy", "01_at_least_once_loop.py"
)


def check(module: ModuleType) -> Verdict:
    found = find_violation(
        "at-least-once", "lost", max_examples=60, kinds=("client_crash",), loop=module.run
    )
    if found is None:
        return Verdict(
            True,
            "No payment was lost under 60 crash plans: your loop is at-least-once. (Some "
            "payments may be processed twice after a crash: that is the price.)",
        )
    return Verdict(
        False,
        f"Payments were lost: {', '.join(found.affected[:5])}. The worker crashed after the "
        "offsets were committed but before those payments were processed, so its successor "
        "started after them. Commit only what you have processed.",
        counterexample=repr(found.plan),
    )


check.needs = ("run",)  # type: ignore[attr-defined]
