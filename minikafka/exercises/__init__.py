"""Classroom exercises: a starter file for the student, a checker, a reference solution.

Each exercise is a module ``minikafka.exercises.exNN`` that defines ``EXERCISE`` (its number,
title, level and file name) and ``check(module) -> Verdict``: it runs the student's code (the
module loaded from their file) against minikafka, property-based where it fits, and says in
plain words what is still wrong, with a counterexample. The starter files live in
``tutorials/exercises/``; the reference solutions, under the same names, in
``tutorials/solutions/`` (a separate folder, so an instructor can remove it).

``minikafka exercises`` lists them; ``minikafka exercises check N [FILE]`` checks a file (by
default the starter in ``tutorials/exercises/``).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import attrs

from minikafka.tutorial import tutorials_dir

__all__ = ["Exercise", "Verdict", "find_exercises", "load_student_file", "run_check"]


@attrs.frozen
class Exercise:
    number: int
    title: str
    level: str
    """easy, medium or hard."""
    filename: str
    """The starter's (and the solution's) file name, e.g. ``01_at_least_once_loop.py``."""

    @property
    def starter(self) -> Path:
        return tutorials_dir() / "exercises" / self.filename

    @property
    def solution(self) -> Path:
        return tutorials_dir() / "solutions" / self.filename


@attrs.frozen
class Verdict:
    """What the checker found: passed or not, what is wrong in plain words, and the
    counterexample (as text that reproduces it), if there is one."""

    passed: bool
    message: str
    counterexample: str = ""


Checker = Callable[[ModuleType], Verdict]


def find_exercises() -> dict[int, tuple[Exercise, Checker]]:
    """Every exercise, by number."""
    found: dict[int, tuple[Exercise, Checker]] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("ex"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        exercise: Exercise = module.EXERCISE
        found[exercise.number] = (exercise, module.check)
    return dict(sorted(found.items()))


def load_student_file(path: Path) -> ModuleType:
    """Load the student's file as a module (a syntax error or a failing import comes out
    as itself, for the caller to report)."""
    name = f"minikafka_exercise_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_check(number: int, path: Path | None = None) -> Verdict:
    """Check ``path`` (by default the exercise's starter) against exercise ``number``."""
    exercises = find_exercises()
    if number not in exercises:
        raise KeyError(
            f"there is no exercise {number}; choose one of: {', '.join(map(str, exercises))}"
        )
    exercise, check = exercises[number]
    target = path or exercise.starter
    try:
        module = load_student_file(target)
    except Exception as error:  # the student's file does not even load
        return Verdict(False, f"{target.name} does not load: {type(error).__name__}: {error}")
    missing = getattr(check, "needs", ())
    absent = [name for name in missing if not hasattr(module, name)]
    if absent:
        return Verdict(False, f"{target.name} must define {', '.join(absent)}")
    try:
        return check(module)
    except Exception as error:  # the student's code raised where it should not
        return Verdict(False, f"your code raised {type(error).__name__}: {error}")
