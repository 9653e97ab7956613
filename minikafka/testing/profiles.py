"""Hypothesis profiles: ``ci`` (the default: fast and derandomized), ``dev`` and ``deep``.

Select one with ``--hypothesis-profile NAME`` under pytest or the ``HYPOTHESIS_PROFILE``
environment variable. ``deep`` is for long explorations outside CI.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["DEFAULT_PROFILE", "SEARCH_PHASES", "load_profile", "register_profiles"]

DEFAULT_PROFILE = "ci"

SEARCH_PHASES = tuple(phase for phase in Phase if phase is not Phase.explain)
"""Every phase but ``explain``: to explain a failure, hypothesis traces each line the code runs,
which makes a simulated run about five times slower, and our counterexamples carry their own
story (the steps, the trace, the checker's report)."""


def register_profiles() -> None:
    slow_is_fine = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci",
        max_examples=200,
        stateful_step_count=50,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        phases=SEARCH_PHASES,
        suppress_health_check=slow_is_fine,
    )
    settings.register_profile(
        "dev",
        max_examples=500,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=slow_is_fine,
    )
    settings.register_profile(
        "deep",
        max_examples=10_000,
        stateful_step_count=200,
        deadline=None,
        suppress_health_check=slow_is_fine,
    )


def load_profile(name: str | None = None) -> str:
    """Register the profiles and load ``name`` (or ``$HYPOTHESIS_PROFILE``, or ``ci``)."""
    register_profiles()
    chosen = name or os.environ.get("HYPOTHESIS_PROFILE") or DEFAULT_PROFILE
    settings.load_profile(chosen)
    return chosen
