"""Why delivery semantics matter: the same payments, three services, zero, one and two times.

Three services read the same stream of payment events. Each one's worker crashes once, at the
same moment: in the middle of its first batch. How many times each payment is processed
depends only on where each service commits its offsets, and the three answers differ.

Run it: ``minikafka tutorial 1`` (or ``python tutorials/01_why_semantics.py``).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from minikafka import Fault, FaultPlan
from minikafka.pipelines import payment_event, run_pipeline
from minikafka.tutorial import Lesson

EVENTS = 10
SERVICES = (
    ("monitoring", "at-most-once", "commits the offsets, then processes the batch"),
    ("notifications", "at-least-once", "processes the batch (an SMS each), then commits"),
    ("ledger", "exactly-once", "writes its output and its offsets in one Kafka transaction"),
)


def crash_mid_batch() -> FaultPlan:
    """The worker dies 0.35 s after its first poll: three events into a batch of ten."""
    plain = run_pipeline("at-least-once", events=EVENTS)
    first_poll = next(e.time for e in plain.trace if e.kind == "poll" and e.source == "worker-1")
    return FaultPlan([Fault.client_crash(client="worker-1", at=round(first_poll + 0.35, 2))])


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")

    lesson.step("The event")
    lesson.say(
        "A payment service writes one event per completed payment to the `payments` topic. "
        "This is the first of ten:"
    )
    lesson.show(payment_event(0).decode())
    lesson.say(
        "Three services consume the topic, each in its own consumer group, so each reads "
        "every event. They differ in one line: where the consumer commits its offsets."
    )

    lesson.step("The same crash for everyone")
    plan = crash_mid_batch()
    lesson.say(
        f"Every service's worker crashes at t={plan.faults[0].at} s (simulated), while it "
        "works through its first batch. A supervisor restarts it a second later; the new "
        "process resumes from the offsets its group committed."
    )
    lesson.show(repr(plan))

    lesson.step("How many times each service processed each payment")
    table = Table(header_style="bold")
    table.add_column("service")
    table.add_column("loop")
    for heading in ("0 times", "once", "twice"):
        table.add_column(heading, justify="right")
    for service, model, loop in SERVICES:
        result = run_pipeline(model, events=EVENTS, faults=plan)
        counts = [result.effects.get(key, 0) for key in result.sent]
        spread = [sum(1 for n in counts if n == times) for times in (0, 1, 2)]
        table.add_row(service, loop, *(str(n) for n in spread))
        lesson.fact(service, {"never": spread[0], "once": spread[1], "twice": spread[2]})
    lesson.show(table)
    lesson.say(
        "*monitoring* committed the whole batch before processing it, so the restarted "
        "worker went on after it: the seven payments it had not reached were never "
        "processed. *notifications* had sent three SMS but committed nothing, so the "
        "restarted worker sent those three again. *ledger* lost its half-done transaction "
        "in the crash and redid it: one ledger line per payment."
    )

    lesson.point(
        "A crash between *processing* and *committing* is always possible. Committing first "
        "risks zero; committing after risks two; only a commit that is part of the same "
        "atomic write as the output gives one. The next tutorials take each case in turn."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
