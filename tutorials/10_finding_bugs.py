"""Finding bugs with hypothesis: break a safeguard, watch the failure shrink, add an invariant.

minikafka's tests do not list the crashes and lost messages to try: a hypothesis state machine
draws them. ``IdempotenceMachine`` plays producers against a broker over a network that loses,
delays and doubles requests, and checks its invariants after every step. Switch the broker's
duplicate check off and hypothesis finds a run that breaks them, then shrinks it to a few
steps. Then you add an invariant of your own and check that it has teeth.

Run it: ``minikafka tutorial 10`` (or ``python tutorials/10_finding_bugs.py``).
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from hypothesis import HealthCheck
from hypothesis.stateful import invariant
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from minikafka import Safeguard
from minikafka.testing import IdempotenceMachine, NoCounterexample, find_counterexample
from minikafka.tutorial import Lesson

SEARCH = {
    "max_examples": 20,  # runs to try; `minikafka explore dedup` tries 200
    "stateful_step_count": 10,  # at most 10 steps per run
    "derandomize": True,  # the same search every time
    "database": None,  # remember nothing between searches
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
"""hypothesis settings small enough for a lesson that runs in a few seconds."""


class MyMachine(IdempotenceMachine):
    """The same machine, with one more invariant: yours."""

    @invariant()
    def log_never_outgrows_what_was_sent(self) -> None:
        records = sum(
            self.broker.log("payments", partition).log_end_offset
            for partition in range(self.partitions)
        )
        assert records <= len(self.sent), (
            f"the log holds {records} records, but the producers sent only {len(self.sent)}"
        )


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")

    lesson.step("A machine that makes its own faults")
    lesson.say(
        "Each run of `IdempotenceMachine` sets up one to three producers and a topic of one "
        "to three partitions, then takes steps that hypothesis chooses: a producer sends "
        "records; the network delivers, loses or doubles the request at the head of a "
        "connection, or loses its response; requests time out and are retried; the broker "
        "crashes and recovers; a producer restarts with a new producer id. After every "
        "step it checks that each record is in the log at most once, and each acknowledged "
        "one exactly once, at the offset its acknowledgement gave."
    )

    lesson.step("Switch producer dedup off, and search")
    lesson.say(
        "`IdempotenceMachine.breaking(Safeguard.PRODUCER_DEDUP)` is the same machine against "
        "a broker that no longer checks producer ids and sequence numbers. "
        "`find_counterexample` runs it until an invariant fails, then shrinks the failing "
        "run: it deletes steps and simplifies arguments for as long as the failure remains."
    )
    broken = IdempotenceMachine.breaking(Safeguard.PRODUCER_DEDUP)
    message, shrunk = find_counterexample(broken, **SEARCH)
    lesson.fact("counterexample_found", True)
    lesson.fact("message", message)
    steps = lesson.fact("steps", len(shrunk.steps))
    table = Table(title="the shrunk counterexample", show_header=False, box=None)
    table.add_column(justify="right", style="bold")
    table.add_column()
    numbers = iter(range(1, steps + 1))
    for line in shrunk.story:
        if not line.detail:
            label = {"setup": "set-up", "heal": "then"}.get(line.phase) or f"{next(numbers)}."
            table.add_row(label, line.text)
    lesson.show(table, Text(message, style="red"))
    lesson.say(
        f"Shrunk, the failure takes {steps} steps. Lines marked *then* are the machine's "
        "clean-up at the end of a run, which heals the network and lets every request "
        "arrive. Read the Produce requests: the same batch, with the same producer id, "
        "epoch and sequence number, reached the broker twice, and this broker appended it "
        "twice. A real Kafka broker keeps the last five batches of each producer per "
        "partition; it would recognise the second copy, append nothing and answer with the "
        "first copy's offset. `minikafka explore dedup --break producer-dedup` runs a "
        "larger version of this search and draws the partition log."
    )

    lesson.step("Your own invariant")
    lesson.say(
        "Subclass the machine and add a method marked `@invariant()`: hypothesis calls it "
        "after every step. It may read `self.broker` (the broker under test), `self.sent` "
        "(every record sent so far, by value) and `self.partitions`. This one says the log "
        "can never hold more records than the producers sent:"
    )
    source = inspect.getsource(MyMachine.log_never_outgrows_what_was_sent)
    lesson.show(Syntax(textwrap.dedent(source), "python"))
    try:
        find_counterexample(MyMachine, **SEARCH)
        held = False
    except NoCounterexample:
        held = True
    lesson.fact("my_invariant_held", held)
    lesson.say(
        f"With every safeguard on, {SEARCH['max_examples']} runs "
        + ("found nothing: the invariant held." if held else "found a failure.")
        + " But an invariant that cannot fail proves nothing, so point it at the broken "
        "run hypothesis found above:"
    )
    try:
        MyMachine.log_never_outgrows_what_was_sent(shrunk)
        caught = ""
    except AssertionError as failure:
        caught = str(failure)
    lesson.fact("my_invariant_catches_the_bug", bool(caught))
    lesson.show(Text(caught or "it passed", style="red"))
    lesson.say(
        ("It fails: it sees the bug too. " if caught else "It passes: it cannot see this bug. ")
        + "To keep it, put `TestMyMachine = MyMachine.TestCase` in a test file; in this "
        "repository pytest runs it with the `ci` hypothesis profile, 200 runs of up to 50 "
        "steps."
    )

    lesson.point(
        "Describe what must always be true, let hypothesis choose the faults, and switch a "
        "safeguard off to check that the search can fail. The counterexample it shrinks is "
        "the shortest story of the bug, ready to read or to replay as a plain test."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
