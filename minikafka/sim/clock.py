"""Simulated time: ``run`` drives an async function on trio with a clock that jumps ahead.

``SimClock`` is trio's ``MockClock(autojump_threshold=0)`` made cheaper: whenever every task
is waiting, time jumps to the next deadline at once, so a session timeout of 45 s or a
transaction timeout of a minute passes in microseconds of real time, and always in the same
order. MockClock notices that every task waits in one pass of trio's scheduler and wakes the
sleepers in the next; SimClock jumps when trio asks how long to wait, so one pass does both.
A simulation spends most of its passes on such jumps, so this almost halves its cost. The
tasks run in the same order, batch by batch, as under MockClock.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
import trio.testing

__all__ = ["SimClock", "is_simulated", "run", "seed_scheduler"]

T = TypeVar("T")

IDLE_WAIT = 86_400.0
"""What SimClock answers when it must not jump: trio caps its waits at a day anyway."""


class SimClock(trio.abc.Clock):
    """A trio clock that starts at 0 and moves only by jumping to the next deadline when
    every task is blocked. It never moves on its own.

    Like MockClock, it leaves the turn to ``trio.testing.wait_all_tasks_blocked``: while a
    task waits for the others to block, the clock does not jump.
    """

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # trio asks this only when no task is ready to run: every task waits.
        if deadline <= self._now:
            return 0.0
        if deadline == math.inf or _waiting_for_idle():
            return IDLE_WAIT
        self._now = deadline
        return 0.0


def _waiting_for_idle() -> bool:
    """Whether a task sits in ``wait_all_tasks_blocked`` (trio keeps that private)."""
    from trio._core._run import GLOBAL_RUN_CONTEXT

    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    return bool(getattr(runner, "waiting_for_idle", None))


def is_simulated(clock: trio.abc.Clock) -> bool:
    """Whether ``clock`` is simulated time that jumps ahead: a SimClock, or a MockClock with
    an autojump threshold (pytest-trio's ``autojump_clock``)."""
    if isinstance(clock, SimClock):
        return True
    return isinstance(clock, trio.testing.MockClock) and not math.isinf(clock.autojump_threshold)


def run(async_fn: Callable[..., Awaitable[T]], *args: object) -> T:
    """``trio.run(async_fn, *args)`` on simulated time (a ``SimClock``)."""
    return trio.run(async_fn, *args, clock=SimClock())


def seed_scheduler(seed: str) -> None:
    """Make trio run ready tasks in an order fixed by ``seed``.

    trio shuffles the tasks that are ready at the same moment, on purpose. Once hypothesis is
    imported, trio's own hypothesis plugin switches that shuffle to a sorted order shuffled by
    one module-level generator, so that examples replay; seeding that generator makes every
    run of a cluster with the same seed schedule its tasks the same way. This reaches into
    trio's private ``_r``; a trio without it gets an error here, not a silent loss of
    determinism.
    """
    import hypothesis  # noqa: F401  (importing it turns trio's sorted scheduling on)
    from trio._core import _run

    generator = getattr(_run, "_r", None)
    if generator is None or not getattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", False):
        raise RuntimeError(
            "this version of trio cannot be made to schedule deterministically; "
            "install a trio version listed in minikafka's pyproject.toml"
        )
    generator.seed(seed)
