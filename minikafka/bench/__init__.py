"""``minikafka bench``: how fast the simulation runs, in figures a class can compare.

Benchmarks print what they measure and the targets they are held to; they never assert them
(the test suite has no timed assertions). Wall-clock time is read in this package and only
here: it measures the simulation, it never steers it. Targets are ratios or rates measured in
one run, so a slow machine shows slower figures but the same verdicts where it can.

Suites (each a module of this package, each ``run(progress=..., quick=...)``):

- ``core``: ``Broker.handle`` alone (produce requests, read_committed fetches).
- ``scale``: the same on logs of 10,000 to 1,000,000 records, transactions of 1 to 1,000
  partitions, and the memory a log of 1,000,000 records takes.
- ``clients``: a producer and a consumer through the simulated network, against
  mockafka-py when it is installed (``pip install minikafka[bench]``).
- ``eos``: each delivery model on the same events without faults, against at-least-once.
- ``explore``: hypothesis state-machine steps per second, and pipeline examples per second.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from minikafka.check.checker import gc_off

__all__ = ["SUITES", "Progress", "SuiteResult", "Target", "gc_paused", "no_progress", "run_suite"]

SUITES = ("core", "scale", "clients", "eos", "explore")
"""Every suite, in the order ``minikafka bench`` runs them."""


class Progress(Protocol):
    """Told how far a suite is: ``progress(task, done, total)``; a new ``task`` name starts
    a new bar."""

    def __call__(self, task: str, done: float, total: float) -> None: ...


def no_progress(task: str, done: float, total: float) -> None:
    """A ``Progress`` that shows nothing."""


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect the garbage, then keep the collector off while a timing runs, as ``timeit``
    does: a collection would charge the code being timed for garbage that others left."""
    gc.collect()
    with gc_off():
        yield


@attrs.frozen
class Target:
    """One goal of a suite: what it asks for, what was measured, whether it is met."""

    name: str
    goal: str
    measured: str
    met: bool


@attrs.frozen
class SuiteResult:
    """What a suite measured (name, value, unit), its targets, and notes on how it measured."""

    suite: str
    figures: tuple[tuple[str, float, str], ...]
    targets: tuple[Target, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    """Wall seconds the suite took, set by ``run_suite``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "seconds": round(self.seconds, 2),
            "figures": [
                {"name": name, "value": round(value, 3), "unit": unit}
                for name, value, unit in self.figures
            ],
            "targets": [attrs.asdict(target) for target in self.targets],
            "notes": list(self.notes),
        }

    def render(self) -> RenderableType:
        """The figures and targets as a table, with the notes below it."""
        table = Table(title=f"minikafka bench {self.suite}", header_style="bold")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("unit")
        for name, value, unit in self.figures:
            shown = f"{value:,.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:,.2f}"
            table.add_row(name, shown, unit)
        for target in self.targets:
            mark = Text("met", style="green") if target.met else Text("NOT MET", style="red")
            table.add_row(
                Text(f"target: {target.name}", style="bold"),
                target.measured,
                Text.assemble(target.goal, " ", mark),
            )
        notes = [Text(f"- {note}", style="dim") for note in self.notes]
        return Group(table, *notes, Text(""))


def run_suite(name: str, *, progress: Progress | None = None, quick: bool = False) -> SuiteResult:
    """Run the suite called ``name``. ``quick`` runs smaller workloads: a fast look whose
    figures are noisier (the targets are still judged, on the smaller workload)."""
    import time

    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; this version has: {', '.join(SUITES)}")
    module = importlib.import_module(f"minikafka.bench.{name}")
    run: Callable[..., SuiteResult] = module.run
    start = time.perf_counter()
    result = run(progress=progress or no_progress, quick=quick)
    return attrs.evolve(result, seconds=time.perf_counter() - start)
