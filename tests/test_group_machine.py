"""The group invariants hold under pauses, departures and crashes, and fail without fencing."""

from __future__ import annotations

import pytest

from minikafka.core import Safeguard
from minikafka.testing import GroupMachine, find_counterexample

TestGroups = GroupMachine.TestCase


def test_without_generation_fencing_hypothesis_finds_a_zombie_commit() -> None:
    message, minimal = find_counterexample(GroupMachine.breaking(Safeguard.GENERATION_FENCING))
    assert message.startswith("a commit that should have been refused was accepted"), message
    assert 1 <= len(minimal.steps) <= 8, [line.text for line in minimal.story]
    assert any(row.bad for row in minimal.log_rows())


def test_a_zombie_cannot_commit_in_a_transaction_either() -> None:
    """KIP-447 in the machine: after a restart the group has forgotten c0, whose transactional
    commit, sent with its old group metadata, is refused; without fencing it goes through."""
    fenced = GroupMachine()
    fenced.setup(consumers=2, partitions=1, strategy="range")
    fenced.crash_broker()
    fenced.commit(index=0, pick=0, read=1, how="in a transaction")
    assert fenced.committed == {}
    assert "UNKNOWN_MEMBER_ID" in fenced.story[-1].text

    unfenced = GroupMachine.breaking(Safeguard.GENERATION_FENCING)()
    unfenced.setup(consumers=2, partitions=1, strategy="range")
    unfenced.crash_broker()
    with pytest.raises(AssertionError, match="should have been refused was accepted"):
        unfenced.commit(index=0, pick=0, read=1, how="in a transaction")
