"""Simulated time: ``run`` drives an async function on trio with a clock that jumps ahead.

With ``MockClock(autojump_threshold=0)``, whenever every task is waiting, trio's clock jumps to
the next deadline at once, so a session timeout of 45 s or a transaction timeout of a minute
passes in microseconds of real time, and always in the same order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
import trio.testing

__all__ = ["run"]

T = TypeVar("T")


def run(async_fn: Callable[..., Awaitable[T]], *args: object) -> T:
    """``trio.run(async_fn, *args)`` on simulated time (``MockClock(autojump_threshold=0)``)."""
    return trio.run(async_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


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
