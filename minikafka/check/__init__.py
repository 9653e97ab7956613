"""Histories of what clients saw, and a checker that names anomalies as Jepsen does.

Record a run with ``History`` (sends, polls, assignments, commits, transaction boundaries,
effects in a sink), then ``check(history)`` returns a ``Report`` of anomalies: ``lost-write``,
``duplicate``, ``aborted-read``, ``inconsistent-offsets``, ``poll-skip``,
``nonmonotonic-poll``, ``unseen``, and for sinks ``lost-effect`` and ``duplicate-effect``.
"""

from minikafka.check.checker import EXPLANATIONS, Anomaly, Report, Severity, check
from minikafka.check.history import (
    AssignOp,
    CommitOp,
    EffectOp,
    History,
    Op,
    Outcome,
    PolledRecord,
    PollOp,
    SendOp,
    TxnEvent,
    TxnOp,
)

__all__ = [
    "EXPLANATIONS",
    "Anomaly",
    "AssignOp",
    "CommitOp",
    "EffectOp",
    "History",
    "Op",
    "Outcome",
    "PollOp",
    "PolledRecord",
    "Report",
    "SendOp",
    "Severity",
    "TxnEvent",
    "TxnOp",
    "check",
]
