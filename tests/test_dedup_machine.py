"""The deduplication invariants hold under faults, and fail when the safeguard is off."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import invariant, run_state_machine_as_test

from minikafka.core import Safeguard
from minikafka.testing import IdempotenceMachine

TestIdempotence = IdempotenceMachine.TestCase


def find_counterexample(machine: type[IdempotenceMachine]) -> tuple[str, IdempotenceMachine]:
    """Run ``machine`` until hypothesis finds and shrinks a failure; return it and the run."""
    machines: list[IdempotenceMachine] = []

    def factory() -> IdempotenceMachine:
        machines.append(machine())
        return machines[-1]

    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(
            factory, settings=settings(print_blob=False, report_multiple_bugs=False)
        )
    return str(failure.value), machines[-1]


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
