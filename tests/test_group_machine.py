"""The group invariants hold under pauses, departures and crashes, and fail without fencing."""

from __future__ import annotations

import pytest

from minikafka.core import Safeguard
from minikafka.testing import GroupMachine, find_counterexample

TestGroups = GroupMachine.TestCase
GENERATION = Safeguard.GENERATION_FENCING


def test_without_generation_fencing_hypothesis_finds_a_zombie_commit() -> None:
    message, minimal = find_counterexample(GroupMachine.breaking(Safeguard.GENERATION_FENCING))
    assert message.startswith("a commit that should have been refused was accepted"), message
    assert 1 <= len(minimal.steps) <= 8, [line.text for line in minimal.story]
    assert any(row.bad for row in minimal.log_rows())


def test_a_zombie_cannot_commit_in_a_transaction_either() -> None:
    """KIP-447 in the machine: c0 freezes, is evicted, and c1 takes its partition; c0's
    transactional commit, sent with its old group metadata, is refused. Without fencing it
    goes through and overwrites c1's progress."""
    for machine, fenced in ((GroupMachine, True), (GroupMachine.breaking(GENERATION), False)):
        run = machine()
        run.setup(consumers=2, partitions=1, strategy="range")
        run.pause(index=0, seconds=15)
        if fenced:
            run.commit(index=0, pick=0, read=1, how="in a transaction")
            assert "UNKNOWN_MEMBER_ID" in run.story[-1].text
            assert run.committed == {}
        else:
            with pytest.raises(AssertionError, match="which belongs to c1-0-2"):
                run.commit(index=0, pick=0, read=1, how="in a transaction")
