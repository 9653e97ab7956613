"""Exercise 4: the last stable offset. The checker compares the student's rule with Kafka's on
cases drawn by hypothesis, then plugs it into the broker (``BrokerConfig.stable_offset``) and
runs the atomic-commit state machine against it."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import attrs
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from minikafka.core import BrokerConfig
from minikafka.exercises import Exercise, Verdict
from minikafka.testing import AtomicCommitMachine, NoCounterexample, find_counterexample

EXERCISE = Exercise(4, "Compute the last stable offset", "medium", "04_last_stable_offset.py")

CASES = 200
"""Hand-made cases per kind (a pure function: these are cheap)."""
MACHINE_EXAMPLES = 60
MACHINE_STEPS = 30
"""The state machine's budget: about 1 s to fail the starter, 3 s to pass the solution."""

Rule = Callable[[int, tuple[int, ...]], int]


def kafka_rule(high_watermark: int, open_first_offsets: tuple[int, ...]) -> int:
    """Kafka's LSO: the lower of the HW and the first offset of the earliest open transaction."""
    return min((high_watermark, *open_first_offsets))


@st.composite
def cases(draw: st.DrawFn, above: bool) -> tuple[int, tuple[int, ...]]:
    """A high watermark and the sorted, distinct first offsets of the open transactions:
    all below the HW, or (``above``) at least one at or above it."""
    high_watermark = draw(st.integers(0, 50))
    if above:
        at_or_above = draw(st.integers(high_watermark, high_watermark + 10))
        below = (
            draw(st.sets(st.integers(0, high_watermark - 1), max_size=4))
            if high_watermark
            else set()
        )
        rest = draw(st.sets(st.integers(high_watermark, high_watermark + 10), max_size=2))
        opens = below | rest | {at_or_above}
    else:
        opens = (
            draw(st.sets(st.integers(0, high_watermark - 1), max_size=5))
            if high_watermark
            else set()
        )
    return high_watermark, tuple(sorted(opens))


def _wrong(rule: Rule, case: tuple[int, tuple[int, ...]]) -> str | None:
    """What is wrong with ``rule``'s answer for ``case``, or None."""
    high_watermark, opens = case
    try:
        answer = rule(high_watermark, opens)
    except Exception as error:
        return f"raised {type(error).__name__}: {error}"
    expected = kafka_rule(high_watermark, opens)
    if not isinstance(answer, int) or isinstance(answer, bool):
        return f"returned {answer!r}, not an offset (an int); it should be {expected}"
    if answer == expected:
        return None
    if answer > high_watermark:
        why = (
            "which is above the high watermark: read_committed consumers would read records "
            "that are not durable yet"
        )
    elif answer > expected:
        why = (
            f"which lets read_committed consumers read offset {expected} and on, where the "
            "transaction that opened first is still undecided (it may yet abort)"
        )
    elif answer < 0:
        why = "which is not an offset at all (offsets start at 0)"
    else:
        hidden = (
            f"offset {answer}" if answer == expected - 1 else f"offsets {answer} to {expected - 1}"
        )
        why = (
            f"which hides {hidden} from read_committed consumers, though everything there is "
            "decided (and durable)"
        )
    return f"returned {answer}, {why}; it should be {expected}"


def _describe(case: tuple[int, tuple[int, ...]]) -> str:
    high_watermark, opens = case
    if not opens:
        return f"high watermark {high_watermark}, no open transaction"
    if len(opens) == 1:
        return (
            f"high watermark {high_watermark}, one open transaction starting at offset {opens[0]}"
        )
    return (
        f"high watermark {high_watermark}, open transactions starting at offsets "
        f"{', '.join(map(str, opens))}"
    )


def _check_cases(rule: Rule) -> Verdict | None:
    chosen = settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    for above in (False, True):
        try:
            case = find(cases(above), lambda case: _wrong(rule, case) is not None, settings=chosen)
        except NoSuchExample:
            continue
        note = (
            " A transaction can open above the high watermark: its first record is in the "
            "log but not yet replicated (acks=0 or 1)."
            if above
            else ""
        )
        return Verdict(
            False,
            f"For a {_describe(case)}, last_stable_offset {_wrong(rule, case)}.{note}",
            counterexample=f"last_stable_offset{case!r}",
        )
    return None


def _check_in_broker(rule: Rule) -> Verdict | None:
    machine = AtomicCommitMachine.with_config(BrokerConfig(stable_offset=rule), "StudentLSO")
    try:
        message, minimal = find_counterexample(
            machine,
            max_examples=MACHINE_EXAMPLES,
            stateful_step_count=MACHINE_STEPS,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    except NoCounterexample:
        return None
    steps = [f"{number}. {line.text}" for number, line in enumerate(minimal.steps, 1)]
    return Verdict(
        False,
        "Your rule is right on the hand-made cases, but in the broker a read_committed "
        f"consumer went wrong: {message.splitlines()[0]}",
        counterexample="\n".join([*steps, f"then: {message.splitlines()[0]}"]),
    )


def check(module: ModuleType) -> Verdict:
    rule: Rule = module.last_stable_offset
    verdict = _check_cases(rule)
    if verdict is not None:
        # Show what the wrong rule does in the broker too, when the machine finds it quickly.
        try:
            in_broker = _check_in_broker(rule)
        except Exception:  # the rule raised inside the broker: the case above says enough
            in_broker = None
        if in_broker is not None:
            verdict = attrs.evolve(
                verdict,
                counterexample=f"{verdict.counterexample}\n\nand in the broker, a run that "
                f"goes wrong with your rule:\n{in_broker.counterexample}",
            )
        return verdict
    verdict = _check_in_broker(rule)
    if verdict is not None:
        return verdict
    return Verdict(
        True,
        f"Your rule agrees with Kafka's on {2 * CASES} hand-made cases, and in the broker "
        f"read_committed consumers saw every committed record and nothing undecided through "
        f"{MACHINE_EXAMPLES} runs of the atomic-commit state machine.",
    )


check.needs = ("last_stable_offset",)  # type: ignore[attr-defined]
