"""The transaction invariants hold under faults, and each fails when its safeguard is off."""

from __future__ import annotations

import pytest

from minikafka.core import Safeguard
from minikafka.testing import (
    AtomicCommitMachine,
    FencingMachine,
    TransactionMachine,
    find_counterexample,
)

TestAtomicCommit = AtomicCommitMachine.TestCase
TestFencing = FencingMachine.TestCase


@pytest.mark.parametrize(
    ("machine", "safeguard", "expected"),
    [
        (AtomicCommitMachine, Safeguard.LAST_STABLE_OFFSET, ("uncommitted read:", "aborted read:")),
        (AtomicCommitMachine, Safeguard.PENDING_TXN_OFFSETS, ("offsets out of step:",)),
        (AtomicCommitMachine, Safeguard.ROLL_FORWARD, ("decision overturned:", "torn", "lost")),
        (FencingMachine, Safeguard.EPOCH_FENCING, ("zombie accepted:",)),
    ],
    ids=lambda value: value.value if isinstance(value, Safeguard) else None,
)
def test_without_the_safeguard_hypothesis_finds_a_short_counterexample(
    machine: type[TransactionMachine], safeguard: Safeguard, expected: tuple[str, ...]
) -> None:
    message, minimal = find_counterexample(machine.breaking(safeguard))
    assert message.startswith(expected), message
    assert 1 <= len(minimal.steps) <= 8, [line.text for line in minimal.story]


def test_the_counterexample_marks_its_evidence_in_the_log() -> None:
    message, minimal = find_counterexample(
        AtomicCommitMachine.breaking(Safeguard.PENDING_TXN_OFFSETS)
    )
    rows = minimal.log_rows()
    assert any(row.bad for row in rows), (message, rows)
    assert all(
        row.note in ("open", "aborted", "committed", "") or "marker" in row.note for row in rows
    )


def test_an_illegal_transition_is_caught() -> None:
    """The coordinator check is live: feed it a transition Kafka forbids."""
    from minikafka.core.transactions import TransactionState, Transition

    machine = AtomicCommitMachine()
    machine.setup()
    machine.broker.transaction_coordinator.transitions.append(
        Transition("tx-a", TransactionState.EMPTY, TransactionState.PREPARE_COMMIT, 0)
    )
    with pytest.raises(AssertionError, match="illegal transition: tx-a moved from Empty"):
        machine.check()
