"""The deduplication invariants hold under faults, and fail when the safeguard is off."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import invariant

from minikafka.core import Safeguard
from minikafka.testing import IdempotenceMachine, find_counterexample

TestIdempotence = IdempotenceMachine.TestCase


def test_without_producer_dedup_hypothesis_finds_a_short_duplicate() -> None:
    message, minimal = find_counterexample(IdempotenceMachine.breaking(Safeguard.PRODUCER_DEDUP))
    assert message.startswith("duplicate:"), message
    assert 1 <= len(minimal.steps) <= 10, minimal.story


class WithDurableAcks(IdempotenceMachine):
    """A user's extension: with acks="all", everything in the log is below the high watermark."""

    @invariant()
    def acks_all_leaves_nothing_unflushed(self) -> None:
        for partition in range(self.partitions):
            log = self.broker.log("payments", partition)
            assert log.high_watermark == log.log_end_offset


TestWithDurableAcks = WithDurableAcks.TestCase
TestWithDurableAcks.settings = settings(max_examples=50)


def test_a_subclass_invariant_is_checked_too() -> None:
    class AlwaysFails(IdempotenceMachine):
        @invariant()
        def never(self) -> None:
            raise AssertionError("my invariant ran")

    message, _ = find_counterexample(AlwaysFails)
    assert message == "my invariant ran"
