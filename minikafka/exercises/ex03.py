"""Exercise 3: the broker's sequence check, written by the student and plugged into the broker.

The checker works in two parts. First it draws a producer's state on a partition (batches fed
through a ``ProducerStateTable``, as the broker records them) and a next batch (a retry, the
next sequence, a gap, an older or newer epoch, ...) and compares the student's answer with the
broker's own ``ProducerStateTable.validate``; hypothesis shrinks the first difference to the
smallest case, told in plain words. Then it runs ``IdempotenceMachine`` (producers, a faulty
network, broker crashes) against a broker that uses the student's check, and reports the
machine's failure and steps if an invariant breaks.

The broker's own ``validate`` and ``ProducerStateEntry.find_duplicate`` are switched off (they
raise) while the student's check runs: the exercise is to write them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minikafka.core.config import BrokerConfig
from minikafka.core.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    Append,
    Duplicate,
    ProducerStateEntry,
    ProducerStateTable,
    Rejected,
)
from minikafka.core.records import (
    MAX_SEQUENCE,
    ControlType,
    Record,
    RecordBatch,
    add_sequence,
    control_batch,
)
from minikafka.exercises import Exercise, Verdict
from minikafka.testing import IdempotenceMachine, NoCounterexample, find_counterexample
from minikafka.testing.profiles import SEARCH_PHASES

EXERCISE = Exercise(
    3,
    "Implement the broker's sequence check and plug it into the broker",
    "medium-hard",
    "03_sequence_check.py",
)

PRODUCER_ID = 1000
CASES = 300
MACHINE_EXAMPLES = 100
MACHINE_STEPS = 40

# --- the broker's own check is off limits while the student's runs --------------------------


class _BuiltInCalled(Exception):
    """The student's check called the broker's own check."""


@contextmanager
def _built_in_check_switched_off() -> Iterator[None]:
    originals = (ProducerStateTable.validate, ProducerStateEntry.find_duplicate)

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise _BuiltInCalled(name)

        return refused

    ProducerStateTable.validate = refuse("ProducerStateTable.validate")  # type: ignore[method-assign]
    ProducerStateEntry.find_duplicate = refuse("ProducerStateEntry.find_duplicate")  # type: ignore[method-assign]
    try:
        yield
    finally:
        ProducerStateTable.validate, ProducerStateEntry.find_duplicate = originals  # type: ignore[method-assign]


def _guarded(student_check: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(entry: ProducerStateEntry | None, batch: RecordBatch) -> Any:
        with _built_in_check_switched_off():
            return student_check(entry, batch)

    return guarded


# --- the drawn cases -----------------------------------------------------------------------


@attrs.frozen
class Case:
    """A producer's history on the partition and the batch that arrives next."""

    history: tuple[tuple[str, int, int, int], ...]
    """("batch", epoch, first sequence, records) or ("marker", epoch, 0, 0), in log order."""
    kind: str
    """What the next batch is, in words: "a retry", "the next batch", "a gap", ..."""
    epoch: int
    first_sequence: int
    records: int

    def state(self) -> ProducerStateEntry | None:
        """The producer's entry, built as the broker builds it: every batch through ``update``."""
        table = ProducerStateTable()
        offset = 0
        for what, epoch, first, records in self.history:
            if what == "marker":
                batch = control_batch(
                    ControlType.ABORT, producer_id=PRODUCER_ID, producer_epoch=epoch
                )
            else:
                batch = _batch(epoch, first, records)
            table.update(attrs.evolve(batch, base_offset=offset))
            offset += batch.record_count
        return table.entries.get(PRODUCER_ID)

    def batch(self) -> RecordBatch:
        return _batch(self.epoch, self.first_sequence, self.records)


def _batch(epoch: int, first: int, records: int) -> RecordBatch:
    return RecordBatch(
        records=tuple(Record(f"v{i}".encode()) for i in range(records)),
        producer_id=PRODUCER_ID,
        producer_epoch=epoch,
        base_sequence=first,
    )


def _seqs(first: int, records: int) -> str:
    return _range(first, add_sequence(first, records - 1))


def _range(first: int, last: int) -> str:
    return f"sequence {first}" if first == last else f"sequences {first}-{last}"


KINDS = (
    "a retry",
    "the next batch",
    "a gap",
    "an older epoch",
    "a new epoch",
    "a retry with another length",
    "an old sequence",
    "a retry of an evicted batch",
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    history: list[tuple[str, int, int, int]] = []
    if draw(st.integers(0, 9)) == 0:  # a producer the partition has not seen (KIP-360)
        epoch = draw(st.integers(0, 3))
        first = draw(st.integers(0, 5) | st.integers(MAX_SEQUENCE - 3, MAX_SEQUENCE))
        return Case((), "a first batch", epoch, first, draw(st.integers(1, 3)))
    epoch = draw(st.integers(0, 2))
    # No state accepts any sequence, so a producer's history may start anywhere, even at the wrap.
    sequence = draw(st.integers(0, 5) | st.integers(MAX_SEQUENCE - 6, MAX_SEQUENCE))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(("batch", "batch", "batch", "new epoch", "marker")))
        if action == "new epoch" and history:
            epoch += 1
            sequence = 0
        elif action == "marker" and history:
            epoch += 1  # a transaction marker that bumps the epoch: the entry keeps no batches
            sequence = 0
            history.append(("marker", epoch, 0, 0))
            continue
        records = draw(st.integers(1, 3))
        history.append(("batch", epoch, sequence, records))
        sequence = add_sequence(sequence, records)
    cached = [h for h in history if h[0] == "batch" and h[1] == epoch][-NUM_BATCHES_TO_RETAIN:]
    evicted = [h for h in history if h[0] == "batch" and h[1] == epoch][:-NUM_BATCHES_TO_RETAIN]
    kind = draw(st.sampled_from(KINDS))
    records = draw(st.integers(1, 3))
    if kind == "a retry" and cached:
        _, _, first, records = draw(st.sampled_from(cached))
        return Case(tuple(history), kind, epoch, first, records)
    if kind == "a retry with another length" and cached:
        _, _, first, length = draw(st.sampled_from(cached))
        other = draw(st.integers(1, 4).filter(lambda n: n != length))
        return Case(tuple(history), kind, epoch, first, other)
    if kind == "a retry of an evicted batch" and evicted:
        _, _, first, records = draw(st.sampled_from(evicted))
        return Case(tuple(history), kind, epoch, first, records)
    if kind == "a gap":
        skip = draw(st.integers(1, 3))
        return Case(tuple(history), kind, epoch, add_sequence(sequence, skip), records)
    if kind == "an old sequence" and cached:
        back = draw(st.integers(1, 3))
        return Case(tuple(history), kind, epoch, add_sequence(sequence, -back), records)
    if kind == "an older epoch" and epoch > 0:
        older = draw(st.integers(0, epoch - 1))
        first = draw(st.sampled_from((0, sequence)))
        return Case(tuple(history), kind, older, first, records)
    if kind == "a new epoch":
        newer = epoch + draw(st.integers(1, 2))
        first = draw(st.sampled_from((0, 0, sequence, 1)))
        return Case(tuple(history), kind, newer, first, records)
    return Case(tuple(history), "the next batch", epoch, sequence, records)


# --- telling a case in plain words -------------------------------------------------------


def _describe_state(entry: ProducerStateEntry | None) -> str:
    if entry is None:
        return "The partition has no state for the producer (a producer it has not seen)."
    if not entry.batches:
        return (
            f"The producer's state: epoch {entry.producer_epoch}, no batches yet in this epoch "
            "(a transaction marker moved it to this epoch), so last_sequence is -1."
        )
    kept = "; ".join(
        f"{_range(b.first_sequence, b.last_sequence)} at offset {b.first_offset}"
        for b in entry.batches
    )
    return (
        f"The producer's state: epoch {entry.producer_epoch}, its last batches: {kept} "
        f"(last_sequence {entry.last_sequence})."
    )


def _describe_batch(case: Case, entry: ProducerStateEntry | None, batch: RecordBatch) -> str:
    seqs = _seqs(case.first_sequence, case.records)
    where = f"{seqs} at epoch {case.epoch}"
    if case.kind == "an old sequence" and entry is not None and entry.find_duplicate(batch):
        return f"a retry of the batch with {where}"
    if case.kind in ("a retry", "a retry of an evicted batch"):
        return f"{case.kind} of the batch with {where}"
    if case.kind == "a retry with another length":
        return f"a batch with {where} (it starts where a kept batch starts, but ends elsewhere)"
    if case.kind == "a gap" and entry is not None:
        return f"a batch with {where} (after a gap: the last sequence is {entry.last_sequence})"
    if case.kind == "an old sequence" and entry is not None:
        return (
            f"a batch with {where} (from before the last sequence {entry.last_sequence}, "
            "but not a retry of a kept batch)"
        )
    if case.kind == "an older epoch" and entry is not None:
        return f"a batch with {where} (older than the current epoch {entry.producer_epoch})"
    if case.kind == "a new epoch" and entry is not None:
        return f"a batch with {where} (newer than the current epoch {entry.producer_epoch})"
    return f"{case.kind} with {where}"


def _describe_verdict(verdict: object) -> str:
    if isinstance(verdict, Append):
        return "Append"
    if isinstance(verdict, Duplicate):
        return f"Duplicate (offset {verdict.original.first_offset})"
    if isinstance(verdict, Rejected):
        return f"Rejected with {verdict.error.name}"
    return repr(verdict)


def _expected_words(verdict: object) -> str:
    if isinstance(verdict, Duplicate):
        return f"should get back offset {verdict.original.first_offset} (Duplicate)"
    if isinstance(verdict, Rejected):
        return f"should be rejected with {verdict.error.name}"
    return "should be appended (APPEND)"


def _reproduce(case: Case, entry: ProducerStateEntry | None, expected: object) -> str:
    lines = [
        "from collections import deque",
        "from minikafka.core.producer_state import BatchMetadata, ProducerStateEntry",
        "from minikafka.core.records import Record, RecordBatch",
    ]
    if entry is None:
        lines.append("entry = None")
    else:
        kept = ", ".join(repr(b) for b in entry.batches)
        lines.append(
            f"entry = ProducerStateEntry({entry.producer_id}, {entry.producer_epoch}, "
            f"deque([{kept}], maxlen={NUM_BATCHES_TO_RETAIN}))"
        )
    lines.append(
        f"batch = RecordBatch(records=(Record(b'v'),) * {case.records}, "
        f"producer_id={PRODUCER_ID}, producer_epoch={case.epoch}, "
        f"base_sequence={case.first_sequence})"
    )
    lines.append(f"check(entry, batch)  # expected: {expected!r}")
    return "\n".join(lines)


def _snapshot(entry: ProducerStateEntry | None) -> object:
    if entry is None:
        return None
    return (entry.producer_epoch, tuple(entry.batches))


class _Differs(Exception):
    """Not an error: the signal that makes hypothesis shrink a differing case."""

    def __init__(self, message: str, counterexample: str) -> None:
        super().__init__(message)
        self.message = message
        self.counterexample = counterexample


def _compare(student_check: Callable[..., Any], case: Case) -> None:
    entry = case.state()
    batch = case.batch()
    expected = ProducerStateTable({PRODUCER_ID: entry} if entry else {}).validate(batch)
    state = _describe_state(entry)
    what = _describe_batch(case, entry, batch)  # before the built-in check is switched off
    reproduce = _reproduce(case, entry, expected)
    before = _snapshot(entry)
    try:
        with _built_in_check_switched_off():
            answer = student_check(entry, batch)
    except _BuiltInCalled as called:
        raise _Differs(
            f"your check called the broker's own {called.args[0]}: the exercise is to "
            "write that check yourself, so compare the epochs and sequences in your own code.",
            reproduce,
        ) from None
    except Exception as error:
        raise _Differs(
            f"{state} For {what}, your check raised {type(error).__name__}: {error}. "
            f"It {_expected_words(expected)}.",
            reproduce,
        ) from None
    if _snapshot(entry) != before:
        raise _Differs(
            f"{state} For {what}, your check changed the producer's state. It must only look: "
            "the broker records an appended batch itself, after the check said Append.",
            reproduce,
        )
    if not isinstance(answer, Append | Duplicate | Rejected):
        raise _Differs(
            f"{state} For {what}, your check returned {answer!r}: return APPEND, "
            f"Duplicate(original) or Rejected(error, message). It {_expected_words(expected)}.",
            reproduce,
        )
    same = (
        type(answer) is type(expected)
        and (not isinstance(expected, Duplicate) or answer == expected)
        and (not isinstance(expected, Rejected) or answer.error is expected.error)  # type: ignore[union-attr]
    )
    if not same:
        raise _Differs(
            f"{state} Then {what} {_expected_words(expected)}; your check said "
            f"{_describe_verdict(answer)}.",
            reproduce,
        )
    if isinstance(answer, Rejected) and not (isinstance(answer.message, str) and answer.message):
        raise _Differs(
            f"{state} For {what}, your check rejected it rightly, but with no message: say in "
            "the message why, as the broker does, for the producer's log.",
            reproduce,
        )


def _first_difference(student_check: Callable[..., Any]) -> _Differs | None:
    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        report_multiple_bugs=False,
        phases=SEARCH_PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(cases())
    def compare(case: Case) -> None:
        _compare(student_check, case)

    try:
        compare()
    except _Differs as differs:
        return differs
    return None


# --- the check -----------------------------------------------------------------------------


def check(module: ModuleType) -> Verdict:
    started = time.monotonic()
    differs = _first_difference(module.check)
    if differs is not None:
        return Verdict(False, differs.message, counterexample=differs.counterexample)
    machine = IdempotenceMachine.with_config(
        BrokerConfig(sequence_check=_guarded(module.check)), "StudentSequenceCheck"
    )
    try:
        failure, run = find_counterexample(
            machine,
            max_examples=MACHINE_EXAMPLES,
            stateful_step_count=MACHINE_STEPS,
            derandomize=True,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
    except NoCounterexample:
        seconds = time.monotonic() - started
        return Verdict(
            True,
            f"Your check agreed with the broker's on {CASES} drawn cases (retries, gaps, "
            f"epochs, the 2**31 wrap), and a broker using it kept every record exactly once "
            f"through {MACHINE_EXAMPLES} runs of lost, duplicated and late requests and "
            f"crashes ({seconds:.1f} s).",
        )
    steps = [line.text for line in run.steps]
    setup = [line.text for line in run.story if line.phase == "setup"]
    story = "\n".join(
        [f"set-up: {line}" for line in setup]
        + [f"{number}. {line}" for number, line in enumerate(steps, 1)]
    )
    return Verdict(
        False,
        "Your check agreed with the broker's on the drawn cases, but a broker using it broke "
        f"an invariant with producers over a faulty network: {failure}",
        counterexample=story,
    )


check.needs = ("check",)  # type: ignore[attr-defined]
