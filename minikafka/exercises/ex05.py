"""Exercise 5: the read-process-write loop with transactional offsets. The checker searches
fault plans (hypothesis) for one under which the student's loop loses a payment or writes one
to the ledger twice, then stages an aborted transaction to see that the loop reads the aborted
batch again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from minikafka.client.errors import KafkaError
from minikafka.core.errors import ErrorCode
from minikafka.exercises import Exercise, Verdict
from minikafka.pipelines import run_pipeline
from minikafka.pipelines.base import Worker
from minikafka.testing.pipelines import find_violation

EXERCISE = Exercise(
    5,
    "Write the read-process-write loop with transactional offsets",
    "hard",
    "05_read_process_write.py",
)

EXAMPLES = 60
KINDS = ("client_crash", "drop_response", "drop_request")
"""Crashes of the worker (at a time, after a call) and lost requests and answers: a lost
EndTxn answer or OffsetCommit request is where offsets committed outside the transaction
part from its output."""
EVENTS = 10

STAGED = (
    "no fault plan: the checker made the loop's first send_offsets_to_transaction(...) raise "
    "KafkaError(COORDINATOR_NOT_AVAILABLE), as when the broker refuses the offsets, so the "
    "loop must abort that transaction (the consumer keeps its partitions)"
)


class _StagedWorker:
    """The worker the loop sees: the real one (a slotted class, so it is wrapped, not
    patched), except that the first ``send_offsets_to_transaction`` of its producers fails
    before it reaches the broker."""

    def __init__(self, worker: Worker, failed: list[bool]) -> None:
        self._worker = worker
        self._failed = failed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker, name)

    def producer(self, **config: Any) -> Any:
        made = self._worker.producer(**config)
        real = made.send_offsets_to_transaction
        failed = self._failed

        async def send_offsets(offsets: Mapping[Any, int], metadata: Any) -> None:
            if not failed:
                failed.append(True)
                raise KafkaError(
                    "the offsets were refused (staged by the checker)",
                    code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                )
            await real(offsets, metadata)

        made.send_offsets_to_transaction = send_offsets  # type: ignore[method-assign, assignment]
        return made


def _abort_once(run: Callable[[Any], Awaitable[None]]) -> Callable[[Worker], Awaitable[None]]:
    """``run``, with the first ``send_offsets_to_transaction`` failing: an abort with no
    crash and no rebalance."""
    failed: list[bool] = []

    async def staged(worker: Worker) -> None:
        await run(_StagedWorker(worker, failed))

    return staged


def _names(affected: list[str]) -> str:
    shown = ", ".join(affected[:5])
    return shown + (f" and {len(affected) - 5} more" if len(affected) > 5 else "")


def check(module: ModuleType) -> Verdict:
    found = find_violation(
        "exactly-once",
        ["lost", "duplicated"],
        events=EVENTS,
        max_examples=EXAMPLES,
        kinds=KINDS,
        loop=module.run,
    )
    if found is not None:
        if found.violation == "duplicated":
            why = (
                "A batch's output was committed but its input offsets were not, so the batch "
                "was read and written again. Commit the offsets inside the transaction: "
                "producer.send_offsets_to_transaction(next_offsets(batch), "
                "consumer.group_metadata()) before commit_transaction(), not consumer.commit()."
            )
        else:
            why = (
                "Offsets were committed for payments whose output never committed. Commit "
                "the offsets in the same transaction as the output, and after an abort seek "
                "back to the committed offsets."
            )
        return Verdict(
            False,
            f"Payments were {found.violation} in the ledger: {_names(found.affected)}, "
            f"under the fault plan below. {why}",
            counterexample=repr(found.plan),
        )
    result = run_pipeline("exactly-once", events=EVENTS, loop=_abort_once(module.run))
    if result.lost or result.duplicated:
        what = "lost" if result.lost else "duplicated"
        return Verdict(
            False,
            f"No fault plan broke your loop in {EXAMPLES} tries, but after an aborted "
            f"transaction payments were {what}: {_names(result.lost or result.duplicated)}. "
            "An abort does not rewind the consumer (KAFKA-17582): its position is past the "
            "aborted batch, so it goes on without it. After abort_transaction(), seek each "
            "partition of the batch back to consumer.committed(tp).",
            counterexample=STAGED,
        )
    return Verdict(
        True,
        f"No payment was lost or duplicated under {EXAMPLES} fault plans, nor after a staged "
        "abort: output and offsets commit together, and an aborted batch is read again. "
        "Your loop is exactly-once.",
    )


check.needs = ("run",)  # type: ignore[attr-defined]
