"""Hypothesis profiles: ``ci`` (the default: fast and derandomized), ``dev`` and ``deep``.

Select one with ``--hypothesis-profile NAME`` under pytest or the ``HYPOTHESIS_PROFILE``
environment variable. ``deep`` is for long explorations outside CI.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["DEFAULT_PROFILE", "load_profile", "register_profiles"]

DEFAULT_PROFILE = "ci"


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
