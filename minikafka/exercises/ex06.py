"""Exercise 6: write an invariant of your own for the idempotence machine. The checker switches
the machine's built-in invariants off, so that only the student's can fail, then asks for a
counterexample against a broker without producer dedup (there must be one) and against a
correct broker (there must be none)."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck
from hypothesis.stateful import INVARIANT_MARKER

from minikafka.core import Safeguard
from minikafka.exercises import Exercise, Verdict
from minikafka.testing.controls import NoCounterexample, find_counterexample
from minikafka.testing.dedup import IdempotenceMachine

EXERCISE = Exercise(6, "Write an invariant that catches a broken broker", "hard", "06_invariant.py")

SEARCH: dict[str, Any] = {
    "max_examples": 40,
    "stateful_step_count": 10,
    "derandomize": True,
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
}
"""Small and derandomized: the same search, a few seconds, every time."""


def _invariants(machine: type[Any]) -> set[str]:
    """The names of the methods hypothesis treats as ``machine``'s invariants."""
    return {
        name
        for name, member in inspect.getmembers(machine)
        if getattr(member, INVARIANT_MARKER, None) is not None
    }


BUILT_IN = frozenset(_invariants(IdempotenceMachine))


def _nothing(self: Any) -> None:
    """A built-in invariant, switched off (a plain method: no longer an invariant)."""


def _probe(student: type[Any]) -> type[Any]:
    """The student's machine with the built-in invariants switched off. ``teardown`` calls two
    of them directly, so they stay quiet there too; its own checks (nothing stuck, nothing
    refused) are not the student's, so the probe skips it."""
    overrides: dict[str, Any] = dict.fromkeys(BUILT_IN, _nothing)
    overrides["teardown"] = _nothing
    return type(f"{student.__name__}Probe", (student,), overrides)


def check(module: ModuleType) -> Verdict:
    student = module.MyMachine
    if not (isinstance(student, type) and issubclass(student, IdempotenceMachine)):
        return Verdict(False, "MyMachine must be a subclass of IdempotenceMachine")
    own = _invariants(student) - BUILT_IN
    if not own:
        return Verdict(
            False,
            "MyMachine has no invariant of its own: add a method marked @invariant() "
            "(from hypothesis.stateful) that checks the log.",
        )
    probe = _probe(student)
    left = _invariants(probe)
    if left != own:  # the built-in ones must be gone, the student's kept
        raise AssertionError(f"the probe's invariants are {sorted(left)}, not {sorted(own)}")
    names = ", ".join(sorted(own))
    try:
        find_counterexample(probe.breaking(Safeguard.PRODUCER_DEDUP), **SEARCH)
    except NoCounterexample:
        return Verdict(
            False,
            f"Your invariant did not notice a broker that keeps duplicates: with producer "
            f"dedup off, {SEARCH['max_examples']} runs of up to "
            f"{SEARCH['stateful_step_count']} steps put acknowledged records into the log "
            f"twice, and {names} passed every time. Count each acknowledged record's copies "
            "in the partition logs.",
        )
    try:
        message, shrunk = find_counterexample(probe, **SEARCH)
    except NoCounterexample:
        return Verdict(
            True,
            f"{names} caught the broker without producer dedup, and held on a correct broker "
            f"for {SEARCH['max_examples']} runs: it has teeth and no false alarms.",
        )
    story = "\n".join(f"{line.phase}: {line.text}" for line in shrunk.story if not line.detail)
    return Verdict(
        False,
        f"Your invariant fails on a correct broker (every safeguard on): {message}. A "
        "record that was never acknowledged may be in the log (its acknowledgement was "
        "lost), and a record may be acknowledged only after it is appended: check what "
        "must always hold, and nothing more.",
        counterexample=story,
    )


check.needs = ("MyMachine",)  # type: ignore[attr-defined]
