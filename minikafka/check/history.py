"""A history: what clients and pipelines did and saw, written down as it happened.

The checker (``minikafka.check.checker``) judges a history after the run, so a history is
plain data: an append-only list of operations, each with its position in the list (``index``),
the process that did it (a client id or a pipeline worker's name) and the simulated time.
It knows nothing of brokers; it records only what a client could observe.

Operations:

- ``SendOp``: one value sent to a topic, with its outcome. ``ok`` means acknowledged at a
  (partition, offset); ``failed`` means it certainly did not land; ``unknown`` means nobody
  knows (a timeout, a crash, a lost answer).
- ``PollOp``: the records one poll returned, in order, as (partition, offset, value).
- ``AssignOp``: the consumer's partitions changed (a rebalance, a restart). Successive polls
  are compared only when no assignment happened between them.
- ``CommitOp``: consumed offsets committed (the next offset to read, per partition).
- ``TxnOp``: a transaction boundary (``begin``, ``commit``, ``abort``) with its outcome.
- ``EffectOp``: a side effect applied in an external sink, named by a key.

A send with ``txn=ID`` belongs to the latest ``begin`` of ``ID`` recorded before it (or to
an implicit transaction opened at the start, if there was none), so a transactional id can be
reused for one transaction after another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, overload

import attrs

from minikafka.core.records import TopicPartition

__all__ = [
    "AssignOp",
    "CommitOp",
    "EffectOp",
    "History",
    "Op",
    "Outcome",
    "PollOp",
    "PolledRecord",
    "SendOp",
    "TxnEvent",
    "TxnOp",
    "decode_value",
    "encode_value",
    "show_value",
]

Outcome = Literal["ok", "failed", "unknown"]
TxnEvent = Literal["begin", "commit", "abort"]
PolledRecord = tuple[TopicPartition, int, bytes]
"""One record a poll returned: where it was (partition, offset) and its value."""

OUTCOMES: tuple[Outcome, ...] = ("ok", "failed", "unknown")
TXN_EVENTS: tuple[TxnEvent, ...] = ("begin", "commit", "abort")
POLL_SHOWN_MAX = 6
"""A poll's text line lists this many records, then says how many more there were."""


def show_value(value: bytes) -> str:
    """A value as people read it: text when it is UTF-8, escapes for the other bytes."""
    return value.decode("utf-8", "backslashreplace")


def encode_value(value: bytes) -> str | dict[str, str]:
    """A value for JSON: the text itself when it is UTF-8, else ``{"hex": ...}``."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": value.hex()}


def decode_value(data: str | Mapping[str, str]) -> bytes:
    """The inverse of ``encode_value``."""
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes.fromhex(data["hex"])


def _check_outcome(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in OUTCOMES:
        raise ValueError(f"{attribute.name} must be one of {OUTCOMES}, not {value!r}")


def _records(records: Iterable[PolledRecord]) -> tuple[PolledRecord, ...]:
    return tuple(records)


def _partitions(partitions: Iterable[TopicPartition]) -> tuple[TopicPartition, ...]:
    return tuple(sorted(partitions))


def _offsets(
    offsets: Iterable[tuple[TopicPartition, int]],
) -> tuple[tuple[TopicPartition, int], ...]:
    return tuple(sorted(offsets))


@attrs.frozen(slots=True, kw_only=True)
class SendOp:
    """A value sent to ``topic``; ``partition``/``offset`` say where it landed when ``ok``."""

    kind: ClassVar[str] = "send"
    index: int
    process: str
    time: float
    topic: str
    value: bytes
    outcome: Outcome = attrs.field(validator=_check_outcome)
    partition: int | None = None
    offset: int | None = None
    txn: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.outcome == "ok" and (self.partition is None or self.offset is None):
            raise ValueError("an acknowledged send needs its partition and offset")

    @property
    def position(self) -> tuple[TopicPartition, int] | None:
        """Where the record is, when the send was acknowledged."""
        if self.partition is None or self.offset is None:
            return None
        return TopicPartition(self.topic, self.partition), self.offset

    def text(self) -> str:
        where = self.topic if self.position is None else _position(*self.position)
        txn = f" txn={self.txn}" if self.txn is not None else ""
        return f"send   {where} {show_value(self.value)!r} {self.outcome}{txn}"


@attrs.frozen(slots=True, kw_only=True)
class PollOp:
    """The records one poll returned, in the order it returned them."""

    kind: ClassVar[str] = "poll"
    index: int
    process: str
    time: float
    records: tuple[PolledRecord, ...] = attrs.field(converter=_records)

    def text(self) -> str:
        shown = [
            f"{_position(tp, offset)} {show_value(value)!r}"
            for tp, offset, value in self.records[:POLL_SHOWN_MAX]
        ]
        more = len(self.records) - POLL_SHOWN_MAX
        if more > 0:
            shown.append(f"+{more} more")
        return "poll   " + (", ".join(shown) if shown else "(nothing)")


@attrs.frozen(slots=True, kw_only=True)
class AssignOp:
    """The partitions a consumer owns from now on (after a rebalance or a restart), or owns
    afresh after the application moved its positions (a seek)."""

    kind: ClassVar[str] = "assign"
    index: int
    process: str
    time: float
    partitions: tuple[TopicPartition, ...] = attrs.field(converter=_partitions)

    def text(self) -> str:
        return "assign " + (" ".join(str(tp) for tp in self.partitions) or "(nothing)")


@attrs.frozen(slots=True, kw_only=True)
class CommitOp:
    """Consumed offsets committed: the next offset to read, per partition."""

    kind: ClassVar[str] = "commit"
    index: int
    process: str
    time: float
    offsets: tuple[tuple[TopicPartition, int], ...] = attrs.field(converter=_offsets)
    outcome: Outcome = attrs.field(validator=_check_outcome)
    txn: str | None = None

    def text(self) -> str:
        offsets = " ".join(f"{tp}={offset}" for tp, offset in self.offsets)
        txn = f" txn={self.txn}" if self.txn is not None else ""
        return f"commit {offsets} {self.outcome}{txn}"


def _check_event(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in TXN_EVENTS:
        raise ValueError(f"{attribute.name} must be one of {TXN_EVENTS}, not {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class TxnOp:
    """A transaction boundary: ``begin``, ``commit`` or ``abort``, and how it ended."""

    kind: ClassVar[str] = "txn"
    index: int
    process: str
    time: float
    txn_id: str
    event: TxnEvent = attrs.field(validator=_check_event)
    outcome: Outcome = attrs.field(default="ok", validator=_check_outcome)

    def text(self) -> str:
        return f"txn    {self.txn_id} {self.event} {self.outcome}"


@attrs.frozen(slots=True, kw_only=True)
class EffectOp:
    """A side effect applied in an external sink (a row, an SMS) for the event ``key``."""

    kind: ClassVar[str] = "effect"
    index: int
    process: str
    time: float
    key: str

    def text(self) -> str:
        return f"effect {self.key}"


Op = SendOp | PollOp | AssignOp | CommitOp | TxnOp | EffectOp


def _position(tp: TopicPartition, offset: int) -> str:
    return f"{tp}@{offset}"


class History(Sequence[Op]):
    """The operations of one run, in the order they were recorded; append only.

    Each recording method builds the operation, appends it and returns it.
    """

    def __init__(self, ops: Iterable[Op] = ()) -> None:
        self._ops: list[Op] = []
        for op in ops:
            if op.index != len(self._ops):
                raise ValueError(f"op {op.index} out of order: expected index {len(self._ops)}")
            self._ops.append(op)

    # -- recording ------------------------------------------------------------------------

    def send(
        self,
        process: str,
        value: bytes,
        *,
        topic: str,
        outcome: Outcome,
        partition: int | None = None,
        offset: int | None = None,
        time: float = 0.0,
        txn: str | None = None,
    ) -> SendOp:
        op = SendOp(
            index=len(self._ops),
            process=process,
            time=time,
            topic=topic,
            value=value,
            outcome=outcome,
            partition=partition,
            offset=offset,
            txn=txn,
        )
        self._ops.append(op)
        return op

    def poll(self, process: str, records: Sequence[PolledRecord], *, time: float = 0.0) -> PollOp:
        op = PollOp(index=len(self._ops), process=process, time=time, records=records)
        self._ops.append(op)
        return op

    def assign(
        self, process: str, partitions: Iterable[TopicPartition], *, time: float = 0.0
    ) -> AssignOp:
        op = AssignOp(index=len(self._ops), process=process, time=time, partitions=partitions)
        self._ops.append(op)
        return op

    def commit(
        self,
        process: str,
        offsets: Mapping[TopicPartition, int],
        *,
        outcome: Outcome,
        time: float = 0.0,
        txn: str | None = None,
    ) -> CommitOp:
        op = CommitOp(
            index=len(self._ops),
            process=process,
            time=time,
            offsets=offsets.items(),
            outcome=outcome,
            txn=txn,
        )
        self._ops.append(op)
        return op

    def txn(
        self,
        process: str,
        txn_id: str,
        event: TxnEvent,
        *,
        outcome: Outcome = "ok",
        time: float = 0.0,
    ) -> TxnOp:
        op = TxnOp(
            index=len(self._ops),
            process=process,
            time=time,
            txn_id=txn_id,
            event=event,
            outcome=outcome,
        )
        self._ops.append(op)
        return op

    def effect(self, process: str, key: str, *, time: float = 0.0) -> EffectOp:
        op = EffectOp(index=len(self._ops), process=process, time=time, key=key)
        self._ops.append(op)
        return op

    # -- reading --------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> Op: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Op]: ...
    def __getitem__(self, index: int | slice) -> Op | Sequence[Op]:
        if isinstance(index, slice):
            return tuple(self._ops[index])
        return self._ops[index]

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def __repr__(self) -> str:
        return f"History({len(self._ops)} ops)"

    def text(self) -> str:
        """One line per operation: index, simulated time, process, what happened."""
        width = max((len(op.process) for op in self._ops), default=0)
        return "".join(
            f"#{op.index:<5} T={op.time:8.3f} {op.process:<{width}} {op.text()}\n"
            for op in self._ops
        )

    def __str__(self) -> str:
        return self.text()

    # -- JSON -----------------------------------------------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        """The operations as JSON-ready dicts (``from_json`` rebuilds the history)."""
        return [_op_to_json(op) for op in self._ops]

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> History:
        return cls(_op_from_json(index, item) for index, item in enumerate(data))


def _tp_to_json(tp: TopicPartition) -> list[str | int]:
    return [tp.topic, tp.partition]


def _tp_from_json(data: Sequence[Any]) -> TopicPartition:
    return TopicPartition(str(data[0]), int(data[1]))


def _op_to_json(op: Op) -> dict[str, Any]:
    head: dict[str, Any] = {"type": op.kind, "process": op.process, "time": op.time}
    match op:
        case SendOp():
            body: dict[str, Any] = {
                "topic": op.topic,
                "value": encode_value(op.value),
                "outcome": op.outcome,
                "partition": op.partition,
                "offset": op.offset,
                "txn": op.txn,
            }
        case PollOp():
            body = {
                "records": [
                    [tp.topic, tp.partition, offset, encode_value(value)]
                    for tp, offset, value in op.records
                ]
            }
        case AssignOp():
            body = {"partitions": [_tp_to_json(tp) for tp in op.partitions]}
        case CommitOp():
            body = {
                "offsets": [[*_tp_to_json(tp), offset] for tp, offset in op.offsets],
                "outcome": op.outcome,
                "txn": op.txn,
            }
        case TxnOp():
            body = {"txn_id": op.txn_id, "event": op.event, "outcome": op.outcome}
        case EffectOp():
            body = {"key": op.key}
    return head | body


def _op_from_json(index: int, data: Mapping[str, Any]) -> Op:
    common: dict[str, Any] = {
        "index": index,
        "process": data["process"],
        "time": float(data["time"]),
    }
    kind = data["type"]
    if kind == "send":
        return SendOp(
            **common,
            topic=data["topic"],
            value=decode_value(data["value"]),
            outcome=data["outcome"],
            partition=data.get("partition"),
            offset=data.get("offset"),
            txn=data.get("txn"),
        )
    if kind == "poll":
        return PollOp(
            **common,
            records=[
                (TopicPartition(topic, partition), offset, decode_value(value))
                for topic, partition, offset, value in data["records"]
            ],
        )
    if kind == "assign":
        return AssignOp(**common, partitions=[_tp_from_json(tp) for tp in data["partitions"]])
    if kind == "commit":
        return CommitOp(
            **common,
            offsets=[(_tp_from_json(item[:2]), int(item[2])) for item in data["offsets"]],
            outcome=data["outcome"],
            txn=data.get("txn"),
        )
    if kind == "txn":
        return TxnOp(**common, txn_id=data["txn_id"], event=data["event"], outcome=data["outcome"])
    if kind == "effect":
        return EffectOp(**common, key=data["key"])
    raise ValueError(f"unknown operation type {kind!r}")
