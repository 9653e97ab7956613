"""The ``explore`` suite: how fast hypothesis explores minikafka.

State machines: the dedup machine (``IdempotenceMachine``) and the atomic-commit machine
(``AtomicCommitMachine``) run under hypothesis, as the tests run them (derandomized, no
database, no deadline, 50 steps an example), for a fixed number of examples. A step is one
rule executed, set-up rules included; the suite counts them with an invariant of its own,
which hypothesis checks once before the first step of an example and once after every step.
The time includes what hypothesis itself spends (drawing the steps, checking the invariants,
tearing down).

Pipelines: ``run_pipeline`` on 200 events under fault plans that hypothesis draws
(``fault_plans()``, as the property tests draw them), one cluster seed drawn per example,
for exactly-once (the model the explorer exercises most, which the target is judged on) and
at-least-once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test

from minikafka.bench import Progress, SuiteResult, Target
from minikafka.pipelines import run_pipeline
from minikafka.sim.faults import FaultPlan
from minikafka.testing.dedup import IdempotenceMachine
from minikafka.testing.faults import fault_plans
from minikafka.testing.transactions import AtomicCommitMachine

__all__ = ["MachineRun", "PipelineRun", "machine_rate", "pipeline_rate", "run"]

MACHINES: tuple[tuple[str, type[RuleBasedStateMachine]], ...] = (
    ("dedup", IdempotenceMachine),
    ("atomic-commit", AtomicCommitMachine),
)
"""The core machines, by the names ``minikafka explore`` gives them."""
STEPS_PER_EXAMPLE = 50
"""Hypothesis's ``stateful_step_count``, as the ci profile sets it."""
MACHINE_EXAMPLES = 200
"""Examples of each machine, as the ci profile runs them."""
QUICK_MACHINE_EXAMPLES = 20
STEPS_TARGET = 2_000
"""Steps per second, for each core machine."""

PIPELINE_MODELS = ("exactly-once", "at-least-once")
TARGET_MODEL = "exactly-once"
PIPELINE_EVENTS = 200
PIPELINE_EXAMPLES = 30
QUICK_PIPELINE_EXAMPLES = 5
HORIZON = 20.0
"""Faults are drawn within the first 20 simulated seconds: as long as the worker takes to
process 200 events (0.1 s each)."""
PIPELINE_TARGET = 20.0
"""Pipeline examples of 200 events per second."""
WARM_UP = 2
"""Examples run before any timing, so that imports and hypothesis's first-use set-up are not
counted."""


def _settings(examples: int) -> settings:
    """The settings the tests run the machines with: derandomized, no example database, no
    deadline, generation only (no shrinking: nothing is expected to fail)."""
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS_PER_EXAMPLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


@attrs.frozen
class MachineRun:
    """One machine under hypothesis: examples, steps (rules executed) and wall seconds."""

    examples: int
    steps: int
    seconds: float
    problem: str | None = None


def machine_rate(machine: type[RuleBasedStateMachine], examples: int) -> MachineRun:
    """Run ``machine`` under hypothesis for ``examples`` examples and count its steps."""
    counts = {"examples": 0, "checks": 0}

    def count_step(self: RuleBasedStateMachine) -> None:
        counts["checks"] += 1

    counted: type[RuleBasedStateMachine] = type(
        f"Counted{machine.__name__}",
        (machine,),
        {"count_step": invariant(check_during_init=True)(count_step)},
    )

    def factory() -> RuleBasedStateMachine:
        counts["examples"] += 1
        return counted()

    problem = None
    start = time.perf_counter()
    try:
        run_state_machine_as_test(factory, settings=_settings(examples))  # type: ignore[arg-type]
    except Exception as error:  # an invariant failed: a bug, which the suite reports
        first_line = next(iter(str(error).splitlines()), "")
        problem = f"{type(error).__name__}: {first_line}"
    seconds = time.perf_counter() - start
    # The count invariant runs once before an example's first step and once after each step.
    return MachineRun(counts["examples"], counts["checks"] - counts["examples"], seconds, problem)


@attrs.frozen
class PipelineRun:
    """Pipeline examples under hypothesis: how many, in how many wall seconds, how many broke
    the model's promise, and how many the runner gave up (the worker restarted too often)."""

    examples: int
    seconds: float
    broken: int = 0
    given_up: int = 0


def pipeline_rate(model: str, examples: int, *, events: int | None = None) -> PipelineRun:
    """Run ``model`` on ``events`` events (by default ``PIPELINE_EVENTS``) under ``examples``
    fault plans hypothesis draws."""
    events = PIPELINE_EVENTS if events is None else events
    counts = {"examples": 0, "broken": 0, "given_up": 0}

    @_settings(examples)
    @given(fault_plans(horizon=HORIZON), st.integers(0, 2**16))
    def one(plan: FaultPlan, seed: int) -> None:
        counts["examples"] += 1
        try:
            result = run_pipeline(model, events=events, seed=seed, faults=plan)
        except RuntimeError:  # the supervisor gave the worker up
            counts["given_up"] += 1
            return
        if not result.kept_promise:
            counts["broken"] += 1

    start = time.perf_counter()
    one()
    seconds = time.perf_counter() - start
    return PipelineRun(counts["examples"], seconds, counts["broken"], counts["given_up"])


def _warm_up() -> None:
    for _, machine in MACHINES:
        machine_rate(machine, WARM_UP)
    pipeline_rate(TARGET_MODEL, WARM_UP, events=10)


def run(*, progress: Progress, quick: bool = False) -> SuiteResult:
    """Hypothesis state-machine steps per second for the dedup and atomic-commit machines, and
    pipeline examples of 200 events per second for exactly-once and at-least-once. Targets:
    2,000 steps a second for each machine, 20 exactly-once examples a second."""
    machine_examples = QUICK_MACHINE_EXAMPLES if quick else MACHINE_EXAMPLES
    pipeline_examples = QUICK_PIPELINE_EXAMPLES if quick else PIPELINE_EXAMPLES
    jobs: list[tuple[str, Callable[[], Any]]] = [("warm-up", _warm_up)]
    jobs += [(name, partial(machine_rate, machine, machine_examples)) for name, machine in MACHINES]
    jobs += [(model, partial(pipeline_rate, model, pipeline_examples)) for model in PIPELINE_MODELS]
    task = "explore: machines and pipelines"
    results: dict[str, Any] = {}
    for done, (name, job) in enumerate(jobs):
        progress(task, done, len(jobs))
        results[name] = job()
    progress(task, len(jobs), len(jobs))

    figures: list[tuple[str, float, str]] = []
    targets: list[Target] = []
    notes: list[str] = []
    for name, _ in MACHINES:
        machine: MachineRun = results[name]
        rate = machine.steps / machine.seconds
        figures.append((f"{name} machine: steps", rate, "steps/s"))
        figures.append((f"{name} machine: examples", machine.examples / machine.seconds, "ex/s"))
        figures.append((f"{name} machine: steps per example", machine.steps / machine.examples, ""))
        if machine.problem is not None:
            notes.append(f"ERROR: the {name} machine failed: {machine.problem}")
        targets.append(
            Target(
                f"{name} machine steps per second",
                f">= {STEPS_TARGET:,}",
                f"{rate:,.0f} ({machine.steps:,} steps in {machine.seconds:.1f} s)",
                machine.problem is None and rate >= STEPS_TARGET,
            )
        )
    for model in PIPELINE_MODELS:
        pipeline: PipelineRun = results[model]
        rate = pipeline.examples / pipeline.seconds
        label = f"{model} pipeline, {PIPELINE_EVENTS} events"
        figures.append((f"{label}: examples", rate, "ex/s"))
        figures.append((f"{label}: seconds per example", pipeline.seconds / pipeline.examples, "s"))
        if pipeline.given_up:
            notes.append(
                f"{model}: the runner gave the worker up in {pipeline.given_up} of "
                f"{pipeline.examples} examples (restarted too often); they count as examples."
            )
        if pipeline.broken:
            notes.append(f"ERROR: {model} broke its promise in {pipeline.broken} examples.")
        if model == TARGET_MODEL:
            targets.append(
                Target(
                    f"{model} pipeline examples of {PIPELINE_EVENTS} events per second",
                    f">= {PIPELINE_TARGET:g}",
                    f"{rate:.2f} ({pipeline.examples} examples in {pipeline.seconds:.1f} s)",
                    pipeline.broken == 0 and rate >= PIPELINE_TARGET,
                )
            )
    notes += [
        f"Machines: {machine_examples} examples each of up to {STEPS_PER_EXAMPLE} steps, "
        "derandomized, generation only; a step is a rule executed (set-up rules included), "
        "counted by an invariant hypothesis checks after every step. Examples count every "
        "machine hypothesis built, the ones it discarded too. The time includes hypothesis's "
        "own work.",
        f"Pipelines: {pipeline_examples} examples per model, each run_pipeline on "
        f"{PIPELINE_EVENTS} events under a fault plan drawn by fault_plans(horizon="
        f"{HORIZON:g}) and a drawn seed; the target is judged on {TARGET_MODEL}.",
    ]
    return SuiteResult("explore", tuple(figures), tuple(targets), tuple(notes))
