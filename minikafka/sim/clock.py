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
