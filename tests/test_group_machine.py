"""The group invariants hold under pauses, departures and crashes, and fail without fencing."""

from __future__ import annotations

from minikafka.core import Safeguard
from minikafka.testing import GroupMachine, find_counterexample

TestGroups = GroupMachine.TestCase


def test_without_generation_fencing_hypothesis_finds_a_zombie_commit() -> None:
    message, minimal = find_counterexample(GroupMachine.breaking(Safeguard.GENERATION_FENCING))
    assert message.startswith("a commit that should have been refused was accepted"), message
    assert 1 <= len(minimal.steps) <= 8, [line.text for line in minimal.story]
    assert any(row.bad for row in minimal.log_rows())
