"""Tutorial 10: hypothesis finds and shrinks the duplicate that a broker without producer dedup
allows, and the student's own invariant holds with the safeguard on and catches the bug."""

from __future__ import annotations

from typing import Any

from minikafka.tutorial import Lesson, run_tutorial


def run(number: int) -> dict[str, Any]:
    return run_tutorial(number, Lesson(quiet=True))


def test_tutorial_10_finds_the_bug_and_the_students_invariant_holds() -> None:
    facts = run(10)
    assert facts["counterexample_found"] is True
    assert facts["message"].startswith("duplicate:"), facts["message"]
    assert 1 <= facts["steps"] <= 3  # shrunk: a send, and a retry or a doubled request
    assert facts["my_invariant_held"] is True
    assert facts["my_invariant_catches_the_bug"] is True
