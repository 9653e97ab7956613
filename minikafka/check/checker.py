"""The history checker: reads a ``History`` and names what went wrong, with Jepsen's words.

``check(history)`` is pure: it reads the operations twice (transactions first), builds a few
indexes (dicts keyed by value, by position and by partition) and then asks one small function
per anomaly. Every anomaly carries the least evidence that shows it: the value, the positions
(written ``topic-partition@offset``) and the indexes of the operations involved.

What each send's record became (its *fate*) decides most rules:

- *acknowledged*: outcome ``ok`` and either outside any transaction or in one whose final
  event is an ``ok`` commit. The record must be readable.
- *failed*: outcome ``failed``, or any send in a transaction whose final event is an ``ok``
  abort. Nobody may ever read it.
- *indefinite*: everything else (an ``unknown`` outcome, a commit whose outcome is unknown, a
  transaction never ended). The checker assumes nothing about these records.

A transaction of id T opens at a ``begin`` of T (or at the first send of T after the previous
one ended) and ends at the first ``commit``/``abort`` of T whose outcome is ``ok``; that is its
final event. End events with outcome ``unknown`` or ``failed`` do not end it, so a transaction
whose commit was only ``unknown`` stays undecided and its sends indefinite.

Values are assumed unique per topic (each logical write sends its own value; a client's
retries of that write may repeat it). The rules:

- ``duplicate``: one value at two or more positions, counting the positions polls returned it
  at and the positions acknowledged sends of it got.
- ``inconsistent-offsets``: one position holding two or more values, counting what polls
  returned there and what any ``ok`` send was told landed there.
- ``lost-write``: an acknowledged send whose value no poll returned, although some poll on its
  partition returned a higher offset.
- ``unseen``: acknowledged sends whose value no poll returned and that no poll read past; one
  anomaly with the count and a few examples. It is an error when ``final_polls_complete`` says
  the consumers read every partition to its end, and informational otherwise.
- ``aborted-read``: a polled record that must not exist: the send known at that position with
  that value is *failed*, or, when none is known there, every send of the value is *failed*.
- ``poll-skip``: within one process and one partition, with no ``assign`` of that process in
  between, a record at an offset more than one past the previous record's, while some *known*
  record lies in the gap. Known records are the offsets any poll returned and the positions of
  acknowledged sends, less those of failed sends. Gaps of markers and aborted records are fine.
- ``nonmonotonic-poll``: as for ``poll-skip``, a record at or below the previous record's
  offset (reading the same record twice, or going back).
- ``lost-effect`` / ``duplicate-effect``: an expected key with no effect in the sink, or any
  key with more than one.

Successive records are compared within one poll as well as across polls.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs
from rich.table import Table
from rich.text import Text

from minikafka.check.history import (
    AssignOp,
    EffectOp,
    History,
    Op,
    PollOp,
    SendOp,
    TxnOp,
    show_value,
)

__all__ = ["EXPLANATIONS", "Anomaly", "Report", "Severity", "check"]

Severity = Literal["error", "info"]
Fate = Literal["acknowledged", "failed", "indefinite"]
Partition = tuple[str, int]
"""A partition inside the checker: (topic, partition number)."""
Position = tuple[str, int, int]
"""Where a record is: (topic, partition number, offset)."""
ValueKey = tuple[str, bytes]
"""Values are compared within a topic: (topic, value)."""

EXAMPLES_MAX = 5
"""How many examples an anomaly that counts things (``unseen``, ``poll-skip``) lists."""

EXPLANATIONS: dict[str, str] = {
    "lost-write": "an acknowledged write was never read, though consumers read past its offset",
    "duplicate": "one value sits at two or more positions in the log",
    "aborted-read": "a consumer read a value whose write failed or whose transaction aborted",
    "inconsistent-offsets": "two different values were seen at the same partition and offset",
    "poll-skip": "a consumer jumped over records it should have read, with no reassignment",
    "nonmonotonic-poll": "a consumer read an offset at or before one it had read, no reassignment",
    "lost-effect": "an event that should have changed the sink left no effect there",
    "duplicate-effect": "an event's effect was applied to the sink more than once",
    "unseen": "acknowledged writes that no poll returned and no poll read past (lost or late)",
}
"""One line of plain English per anomaly name, in the order reports list them."""


def _partition(partition: Partition) -> str:
    return f"{partition[0]}-{partition[1]}"


def _position(position: Position) -> str:
    """``topic-partition@offset``, the way evidence names a position."""
    return f"{position[0]}-{position[1]}@{position[2]}"


@attrs.frozen(slots=True, kw_only=True)
class Anomaly:
    """One thing that went wrong, its name's explanation and the evidence (JSON-ready)."""

    name: str
    evidence: dict[str, Any]
    severity: Severity = "error"

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.name]

    def text(self) -> str:
        return f"{self.severity.upper():<5} {self.name}: {_evidence_text(self.evidence)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "explanation": self.explanation,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Anomaly:
        return cls(name=data["name"], evidence=dict(data["evidence"]), severity=data["severity"])


def _evidence_text(evidence: Mapping[str, Any]) -> str:
    def show(item: Any) -> str:
        if isinstance(item, list):
            return "[" + " ".join(show(x) for x in item) + "]"
        if isinstance(item, str):
            return repr(item)
        return str(item)

    return " ".join(f"{key}={show(value)}" for key, value in evidence.items())


def _anomalies(anomalies: Iterable[Anomaly]) -> tuple[Anomaly, ...]:
    return tuple(anomalies)


@attrs.frozen(slots=True, kw_only=True)
class Report:
    """What ``check`` found: the anomalies, effect counts per key, and a few totals."""

    anomalies: tuple[Anomaly, ...] = attrs.field(converter=_anomalies)
    effect_counts: dict[str, int] = attrs.field(factory=dict)
    stats: dict[str, int] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """No anomaly of severity ``error`` (informational ones are allowed)."""
        return all(anomaly.severity != "error" for anomaly in self.anomalies)

    def counts(self) -> dict[str, int]:
        """How many anomalies of each name were found (names with none are left out)."""
        return dict(Counter(anomaly.name for anomaly in self.anomalies))

    def named(self, name: str) -> list[Anomaly]:
        return [anomaly for anomaly in self.anomalies if anomaly.name == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts(),
            "anomalies": [anomaly.to_json() for anomaly in self.anomalies],
            "effect_counts": self.effect_counts,
            "stats": self.stats,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            anomalies=[Anomaly.from_json(item) for item in data["anomalies"]],
            effect_counts=dict(data["effect_counts"]),
            stats=dict(data["stats"]),
        )

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        counts = ", ".join(f"{name} x{n}" for name, n in self.counts().items())
        lines = [f"history check: {verdict}" + (f" ({counts})" if counts else "")]
        lines += [anomaly.text() for anomaly in self.anomalies]
        return "\n".join(lines)

    def render(self, *, limit: int | None = None, per_name: int | None = 3) -> Table:
        """A rich table, one row per anomaly (the first ``limit`` of them, and at most
        ``per_name`` of each name, with a count of the rest)."""
        verdict = "ok" if self.ok else "FAILED"
        table = Table(title=f"history check: {verdict}", header_style="bold")
        table.add_column("severity")
        table.add_column("anomaly")
        table.add_column("meaning", overflow="fold")
        table.add_column("evidence", overflow="fold")
        anomalies = self.anomalies if limit is None else self.anomalies[:limit]
        shown: Counter[str] = Counter()
        for anomaly in anomalies:
            shown[anomaly.name] += 1
            if per_name is not None and shown[anomaly.name] > per_name:
                continue
            style = "bold red" if anomaly.severity == "error" else "yellow"
            table.add_row(
                Text(anomaly.severity, style=style),
                Text(anomaly.name, style=style),
                anomaly.explanation,
                _evidence_text(anomaly.evidence),
            )
        totals = Counter(anomaly.name for anomaly in self.anomalies)
        for name, count in shown.items():
            hidden = totals[name] - min(count, per_name if per_name is not None else count)
            if hidden > 0:
                table.add_row("", Text(name, style="dim"), "", f"... and {hidden} more")
        if not self.anomalies:
            table.add_row(Text("-", style="green"), Text("none", style="green"), "", "")
        return table

    def __rich__(self) -> Table:
        return self.render()


# -- reading the history once -----------------------------------------------------------------


@attrs.define(eq=False)
class _Step:
    """Two successive records one process read on one partition (``before`` may equal ``op``)."""

    process: str
    partition: Partition
    before_offset: int
    before_op: int
    offset: int
    op: int


@attrs.define(eq=False)
class _Facts:
    """The indexes every rule reads; built in one pass over the history.

    Positions are plain (topic, partition, offset) tuples here: they hash much faster than
    ``TopicPartition`` objects, and a long history hashes millions of them.
    """

    # Sends of the judged topic(s), with their fate and their position when acknowledged.
    sends: list[tuple[SendOp, Fate, Position | None]] = attrs.field(factory=list)
    failed_positions: set[Position] = attrs.field(factory=set)
    failed_values: set[ValueKey] = attrs.field(factory=set)
    # Where each value was seen (polled or acknowledged), with the first op showing it there.
    value_positions: dict[ValueKey, dict[Position, int]] = attrs.field(factory=dict)
    # What each position held (polled, or told to an ok send), with the first op showing it.
    position_values: dict[Position, dict[bytes, int]] = attrs.field(factory=dict)
    polled_values: set[ValueKey] = attrs.field(factory=set)
    # Each distinct polled (position, value), with the first poll that returned it.
    polled: dict[tuple[Position, bytes], int] = attrs.field(factory=dict)
    highest_polled: dict[Partition, int] = attrs.field(factory=dict)
    steps: list[_Step] = attrs.field(factory=list)
    effects: dict[str, list[int]] = attrs.field(factory=dict)
    records_polled: int = 0


def _transaction_outcomes(ops: Iterable[Op]) -> dict[int, Literal["commit", "abort"] | None]:
    """For each transactional send, how its transaction ended (None: not known to have ended).

    A transaction of id T runs from a ``begin`` of T, or from the first send of T after the
    previous one ended, until an end event of T with outcome ``ok``.
    """
    open_txn: dict[str, int] = {}  # txn_id -> the op index that opened it
    members: dict[int, list[int]] = {}  # opening op -> its sends
    ended: dict[int, Literal["commit", "abort"] | None] = {}  # opening op -> final event
    for op in ops:
        if isinstance(op, SendOp) and op.txn is not None:
            opened = open_txn.setdefault(op.txn, op.index)
            members.setdefault(opened, []).append(op.index)
        elif isinstance(op, TxnOp):
            if op.event == "begin":
                open_txn[op.txn_id] = op.index
                continue
            # Only an ok end event ends a transaction; after an unknown one it stays undecided.
            opened = open_txn.get(op.txn_id, -1)
            if opened >= 0 and op.outcome == "ok":
                ended[opened] = op.event
                del open_txn[op.txn_id]
    return {send: ended.get(opened) for opened, sends in members.items() for send in sends}


def _fate(send: SendOp, txn_end: Literal["commit", "abort"] | None) -> Fate:
    if send.outcome == "failed" or (send.txn is not None and txn_end == "abort"):
        return "failed"
    if send.outcome == "ok" and (send.txn is None or txn_end == "commit"):
        return "acknowledged"
    return "indefinite"


def _read(history: History, topic: str | None) -> _Facts:
    facts = _Facts()
    txn_ends = _transaction_outcomes(history)
    # (process -> partition -> (offset, op index)) of the last record read since an assign.
    last_read: dict[str, dict[Partition, tuple[int, int]]] = {}
    for op in history:
        if isinstance(op, SendOp):
            if topic is None or op.topic == topic:
                _read_send(facts, op, _fate(op, txn_ends.get(op.index)))
        elif isinstance(op, PollOp):
            _read_poll(facts, op, topic, last_read.setdefault(op.process, {}))
        elif isinstance(op, AssignOp):
            last_read.pop(op.process, None)
        elif isinstance(op, EffectOp):
            facts.effects.setdefault(op.key, []).append(op.index)
    return facts


def _read_send(facts: _Facts, op: SendOp, fate: Fate) -> None:
    position = None
    if op.partition is not None and op.offset is not None:
        position = (op.topic, op.partition, op.offset)
    facts.sends.append((op, fate, position))
    if fate == "failed":
        facts.failed_values.add((op.topic, op.value))
    if position is None:
        return
    facts.position_values.setdefault(position, {}).setdefault(op.value, op.index)
    if fate == "failed":
        facts.failed_positions.add(position)
    elif fate == "acknowledged":
        positions = facts.value_positions.setdefault((op.topic, op.value), {})
        positions.setdefault(position, op.index)


def _read_poll(
    facts: _Facts,
    op: PollOp,
    topic: str | None,
    last_read: dict[Partition, tuple[int, int]],
) -> None:
    for tp, offset, value in op.records:
        if topic is not None and tp.topic != topic:
            continue
        facts.records_polled += 1
        partition = (tp.topic, tp.partition)
        position = (tp.topic, tp.partition, offset)
        key = (tp.topic, value)
        facts.polled_values.add(key)
        facts.polled.setdefault((position, value), op.index)
        facts.value_positions.setdefault(key, {}).setdefault(position, op.index)
        facts.position_values.setdefault(position, {}).setdefault(value, op.index)
        if offset > facts.highest_polled.get(partition, -1):
            facts.highest_polled[partition] = offset
        before = last_read.get(partition)
        if before is not None and before[0] + 1 != offset:
            facts.steps.append(_Step(op.process, partition, before[0], before[1], offset, op.index))
        last_read[partition] = (offset, op.index)


# -- one function per anomaly -----------------------------------------------------------------


def _duplicates(facts: _Facts) -> list[Anomaly]:
    return [
        Anomaly(
            name="duplicate",
            evidence={
                "value": show_value(value),
                "positions": [_position(p) for p in positions],
                "ops": list(positions.values()),
            },
        )
        for (_, value), positions in facts.value_positions.items()
        if len(positions) > 1
    ]


def _inconsistent_offsets(facts: _Facts) -> list[Anomaly]:
    return [
        Anomaly(
            name="inconsistent-offsets",
            evidence={
                "position": _position(position),
                "values": [show_value(v) for v in values],
                "ops": list(values.values()),
            },
        )
        for position, values in facts.position_values.items()
        if len(values) > 1
    ]


Unread = list[tuple[SendOp, Position]]


def _unread_acknowledged(facts: _Facts) -> tuple[Unread, Unread]:
    """Acknowledged sends nobody read: (those polls read past, those they did not)."""
    lost: Unread = []
    unseen: Unread = []
    for send, fate, position in facts.sends:
        if fate != "acknowledged" or position is None:
            continue
        if (send.topic, send.value) in facts.polled_values:
            continue
        topic, partition, offset = position
        read_past = facts.highest_polled.get((topic, partition), -1) > offset
        (lost if read_past else unseen).append((send, position))
    return lost, unseen


def _lost_writes(facts: _Facts, lost: Unread) -> list[Anomaly]:
    return [
        Anomaly(
            name="lost-write",
            evidence={
                "value": show_value(send.value),
                "position": _position(position),
                "highest_polled": facts.highest_polled[position[:2]],
                "send": send.index,
            },
        )
        for send, position in lost
    ]


def _unseen(unseen: Unread, *, final_polls_complete: bool) -> list[Anomaly]:
    if not unseen:
        return []
    examples = unseen[:EXAMPLES_MAX]
    evidence = {
        "count": len(unseen),
        "values": [show_value(send.value) for send, _ in examples],
        "positions": [_position(position) for _, position in examples],
        "sends": [send.index for send, _ in examples],
    }
    severity: Severity = "error" if final_polls_complete else "info"
    return [Anomaly(name="unseen", evidence=evidence, severity=severity)]


def _aborted_reads(facts: _Facts) -> list[Anomaly]:
    # Only a value with a failed send can be an aborted read; look at those values alone.
    suspects = {
        (position, value): poll
        for (position, value), poll in facts.polled.items()
        if (position[0], value) in facts.failed_values
    }
    if not suspects:
        return []
    sends_of: dict[ValueKey, list[tuple[SendOp, Fate, Position | None]]] = {}
    for send, fate, position in facts.sends:
        if (send.topic, send.value) in facts.failed_values:
            sends_of.setdefault((send.topic, send.value), []).append((send, fate, position))
    anomalies = []
    for (position, value), poll in suspects.items():
        sends = sends_of[(position[0], value)]
        # The send told it landed here is the one read; failing that, any send of the value.
        culprits = [s for s in sends if s[2] == position] or sends
        if all(fate == "failed" for _, fate, _ in culprits):
            anomalies.append(
                Anomaly(
                    name="aborted-read",
                    evidence={
                        "value": show_value(value),
                        "position": _position(position),
                        "sends": [send.index for send, _, _ in culprits],
                        "poll": poll,
                    },
                )
            )
    return anomalies


def _known_offsets(facts: _Facts) -> dict[Partition, list[int]]:
    """Per partition, the sorted offsets known to hold a readable record.

    Those are the offsets some poll returned and the positions of acknowledged sends, less
    the positions of failed sends (aborted records a read_uncommitted consumer may have seen).
    """
    readable = {position for position, _ in facts.polled}
    readable.update(p for _, fate, p in facts.sends if fate == "acknowledged" and p is not None)
    readable -= facts.failed_positions
    known: dict[Partition, list[int]] = {}
    for topic, partition, offset in readable:
        known.setdefault((topic, partition), []).append(offset)
    for offsets in known.values():
        offsets.sort()
    return known


def _poll_skips(facts: _Facts) -> list[Anomaly]:
    if not any(step.offset > step.before_offset + 1 for step in facts.steps):
        return []
    known = _known_offsets(facts)
    anomalies = []
    for step in facts.steps:
        if step.offset <= step.before_offset + 1:
            continue
        offsets = known.get(step.partition, [])
        start = bisect.bisect_right(offsets, step.before_offset)
        end = bisect.bisect_left(offsets, step.offset)
        if start == end:
            continue
        anomalies.append(
            Anomaly(
                name="poll-skip",
                evidence={
                    "process": step.process,
                    "partition": _partition(step.partition),
                    "from_offset": step.before_offset,
                    "to_offset": step.offset,
                    "skipped": end - start,
                    "skipped_offsets": offsets[start : min(end, start + EXAMPLES_MAX)],
                    "ops": [step.before_op, step.op],
                },
            )
        )
    return anomalies


def _nonmonotonic_polls(facts: _Facts) -> list[Anomaly]:
    return [
        Anomaly(
            name="nonmonotonic-poll",
            evidence={
                "process": step.process,
                "partition": _partition(step.partition),
                "from_offset": step.before_offset,
                "to_offset": step.offset,
                "ops": [step.before_op, step.op],
            },
        )
        for step in facts.steps
        if step.offset <= step.before_offset
    ]


def _effect_counts(facts: _Facts, expected_keys: Iterable[str] | None) -> dict[str, int]:
    """Effects per key: every expected key (even with none), then the others seen."""
    expected = sorted(set(expected_keys or ()))
    counts = {key: len(facts.effects.get(key, ())) for key in expected}
    for key in sorted(facts.effects):
        counts.setdefault(key, len(facts.effects[key]))
    return counts


def _lost_effects(counts: Mapping[str, int], expected_keys: Iterable[str] | None) -> list[Anomaly]:
    expected = set(expected_keys or ())
    return [
        Anomaly(name="lost-effect", evidence={"key": key})
        for key, count in counts.items()
        if key in expected and count == 0
    ]


def _duplicate_effects(facts: _Facts) -> list[Anomaly]:
    return [
        Anomaly(name="duplicate-effect", evidence={"key": key, "count": len(ops), "ops": ops})
        for key, ops in sorted(facts.effects.items())
        if len(ops) > 1
    ]


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    """Keep the cyclic garbage collector off inside the block (as it was, after it).

    ``check`` builds its indexes so: that allocates hundreds of thousands of small
    containers and frees none, which makes the collector rescan the whole (growing) heap
    again and again, about half the time of checking a long history. The indexes hold no
    reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check(
    history: History,
    *,
    topic: str | None = None,
    expected_keys: Iterable[str] | None = None,
    final_polls_complete: bool = True,
) -> Report:
    """Judge ``history`` and report its anomalies (the module docstring defines each).

    Args:
        history: the operations recorded during a run.
        topic: judge only sends and polled records of this topic (all topics when None).
        expected_keys: the keys (transaction ids) that should each have one effect in the
            sink; without them only duplicate effects are reported.
        final_polls_complete: the consumers read every partition to its end before the
            history stopped, so an acknowledged write nobody read is an error, not just late.

    Returns:
        a ``Report``; ``report.ok`` is False when an anomaly of severity ``error`` was found.
    """
    expected = None if expected_keys is None else list(expected_keys)
    with gc_off():
        facts = _read(history, topic)
        lost, unseen = _unread_acknowledged(facts)
        effect_counts = _effect_counts(facts, expected)
        anomalies = [
            *_lost_writes(facts, lost),
            *_duplicates(facts),
            *_aborted_reads(facts),
            *_inconsistent_offsets(facts),
            *_poll_skips(facts),
            *_nonmonotonic_polls(facts),
            *_lost_effects(effect_counts, expected),
            *_duplicate_effects(facts),
            *_unseen(unseen, final_polls_complete=final_polls_complete),
        ]
        fates = Counter(fate for _, fate, _ in facts.sends)
        stats = {
            "ops": len(history),
            "sends": len(facts.sends),
            "acknowledged": fates["acknowledged"],
            "failed": fates["failed"],
            "indefinite": fates["indefinite"],
            "records_polled": facts.records_polled,
            "effects": sum(len(ops) for ops in facts.effects.values()),
        }
        return Report(anomalies=anomalies, effect_counts=effect_counts, stats=stats)
