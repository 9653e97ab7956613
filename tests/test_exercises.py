"""The exercises: every reference solution passes its checker, every untouched starter fails it
with a message (and a counterexample where the checker searches), and the command says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from minikafka.cli import main
from minikafka.exercises import find_exercises, run_check

EXERCISES = find_exercises()


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_reference_solution_passes(number: int) -> None:
    exercise, _ = EXERCISES[number]
    verdict = run_check(number, exercise.solution)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_untouched_starter_fails_with_a_message(number: int) -> None:
    verdict = run_check(number)
    assert not verdict.passed
    assert len(verdict.message) > 40, "say in plain words what is still wrong"


def test_the_starters_and_solutions_are_where_the_exercises_say() -> None:
    for exercise, _ in EXERCISES.values():
        assert exercise.starter.is_file() and exercise.solution.is_file()
        assert exercise.starter.parent.name == "exercises"
        assert exercise.solution.parent.name == "solutions"
        assert "your part" in exercise.starter.read_text(), "mark the student's part"


def test_the_command_lists_and_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises"]) == 0
    assert "01_at_least_once_loop.py" in capsys.readouterr().out
    assert main(["exercises", "check", "1"]) == 1
    out = capsys.readouterr().out
    assert "not yet" in out and "FaultPlan([" in out
    solution = EXERCISES[1][0].solution
    assert main(["exercises", "check", "1", str(solution)]) == 0
    assert "passed" in capsys.readouterr().out


def test_the_command_refuses_what_it_cannot_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exercises", "check", "99"]) == 2
    assert "there is no exercise 99" in capsys.readouterr().out
    assert main(["exercises", "check", "1", str(tmp_path / "missing.py")]) == 2
    broken = tmp_path / "broken.py"
    broken.write_text("def run(:\n")
    assert main(["exercises", "check", "1", str(broken)]) == 1
    assert "does not load: SyntaxError" in capsys.readouterr().out
    empty = tmp_path / "empty.py"
    empty.write_text("")
    assert main(["exercises", "check", "1", str(empty)]) == 1
    assert "must define run" in capsys.readouterr().out
