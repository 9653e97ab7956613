"""Negative controls: run a state machine until hypothesis finds, and shrinks, a failure.

A property test that cannot fail proves nothing. For each safeguard, a test switches it off
(``Machine.breaking(Safeguard.X)``) and asserts that this finds a counterexample.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import attrs
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from minikafka.core import BrokerConfig, Safeguard
from minikafka.testing.profiles import SEARCH_PHASES

__all__ = ["Breakable", "NoCounterexample", "find_counterexample"]


class Breakable:
    """A machine whose broker's configuration a subclass can change: ``breaking`` switches
    safeguards off, so the same machine serves as its own negative control."""

    broker_config: ClassVar[BrokerConfig] = BrokerConfig()

    @classmethod
    def with_config(cls, config: BrokerConfig, name: str | None = None) -> type[Self]:
        """A subclass that runs against a broker built from ``config``."""
        return type(name or f"{cls.__name__}WithConfig", (cls,), {"broker_config": config})

    @classmethod
    def breaking(cls, *safeguards: Safeguard) -> type[Self]:
        """A subclass whose broker has ``safeguards`` switched off (a negative control)."""
        config = attrs.evolve(cls.broker_config, disabled_safeguards=frozenset(safeguards))
        suffix = "".join(s.name.title().replace("_", "") for s in safeguards)
        return cls.with_config(config, f"{cls.__name__}Without{suffix}")


class NoCounterexample(AssertionError):
    """The machine held where a failure was expected: the negative control failed."""


def find_counterexample(machine: type[Any], **overrides: Any) -> tuple[str, Any]:
    """Run ``machine`` until hypothesis finds and shrinks a failure.

    Returns the failure's message and the machine of the shrunk run (its ``story`` and
    ``steps`` tell what happened). Raises ``NoCounterexample`` if the invariants held.
    ``overrides`` are hypothesis settings for this run.
    """
    machines: list[Any] = []

    def factory() -> Any:
        machines.append(machine())
        return machines[-1]

    overrides.setdefault("phases", SEARCH_PHASES)
    overrides.setdefault("database", None)  # no .hypothesis folder where a student runs it
    chosen = settings(print_blob=False, report_multiple_bugs=False, **overrides)
    try:
        run_state_machine_as_test(factory, settings=chosen)  # type: ignore[arg-type]
    except AssertionError as failure:
        return str(failure), machines[-1]
    raise NoCounterexample(f"{machine.__name__} held: hypothesis found no counterexample")
