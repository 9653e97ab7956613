"""What a state machine tells about its run: the story of its steps, and the logs it left.

``explore`` shows both with a counterexample, so a person reads what happened in words and
then sees the partition logs as they ended up.
"""

from __future__ import annotations

import attrs

__all__ = ["LogRow", "StoryLine", "TransactionRow"]


@attrs.frozen
class StoryLine:
    """One line of a run's story: ``phase`` is "setup", "step" or "heal"."""

    phase: str
    text: str
    detail: bool = False


@attrs.frozen
class LogRow:
    """One record of a partition log, as a counterexample shows it.

    ``note`` says what is wrong or notable about it ("duplicate", "aborted", "COMMIT marker").
    ``bad`` marks the rows that are the evidence of the failure.
    """

    topic: str
    partition: int
    offset: int
    value: str
    producer_id: int
    producer_epoch: int
    sequence: int
    note: str = ""
    bad: bool = False


@attrs.frozen
class TransactionRow:
    """One transactional id as the coordinator holds it at the end of a run."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    state: str
    partitions: tuple[str, ...]
    markers_pending: int
