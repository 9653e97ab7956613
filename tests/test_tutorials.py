"""The tutorials: found, listed and run by ``minikafka tutorial``; tutorial 1's facts."""

from __future__ import annotations

import pytest

from minikafka.cli import main
from minikafka.tutorial import Lesson, find_tutorials, run_tutorial


def run(number: int) -> dict[str, object]:
    return run_tutorial(number, Lesson(quiet=True))


def test_the_tutorials_are_numbered_in_order_and_each_has_a_title() -> None:
    tutorials = find_tutorials()
    numbers = [info.number for info in tutorials]
    assert numbers == sorted(numbers) and numbers[0] == 1
    assert len(set(numbers)) == len(numbers)
    assert all(info.title and not info.title.startswith('"') for info in tutorials)


def test_the_command_lists_the_tutorials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tutorial"]) == 0
    out = capsys.readouterr().out
    for info in find_tutorials():
        assert info.path.name in out


def test_an_unknown_tutorial_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tutorial", "99"]) == 2
    assert "there is no tutorial 99" in capsys.readouterr().out


def test_the_command_runs_a_tutorial_and_narrates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tutorial", "1"]) == 0
    out = capsys.readouterr().out
    assert "what to remember" in out and "monitoring" in out


def test_tutorial_1_processes_payments_zero_one_and_two_times() -> None:
    facts = run(1)
    assert facts["monitoring"] == {"never": 7, "once": 3, "twice": 0}
    assert facts["notifications"] == {"never": 0, "once": 7, "twice": 3}
    assert facts["ledger"] == {"never": 0, "once": 10, "twice": 0}


def test_a_quiet_lesson_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run(1)
    assert capsys.readouterr().out == ""
