"""Producer retries: a lost acknowledgement writes a payment twice; idempotence prevents it.

Duplicates do not only come from consumers. A producer that gets no answer cannot tell a lost
request from a lost answer, so it sends again; if the first write had landed, the log now
holds the event twice. The idempotent producer (Kafka's default since 3.0) numbers its
batches, and the broker answers a retry with the offset of the original instead of writing it
again.

Run it: ``minikafka tutorial 4`` (or ``python tutorials/04_producer_retries.py``).
"""

from __future__ import annotations

from typing import Any

import attrs
from rich.table import Table

import minikafka
from minikafka import Fault, FaultPlan, RecordMetadata, Trace
from minikafka.core import PartitionLog
from minikafka.pipelines import Event, payment_event
from minikafka.tutorial import Lesson
from minikafka.viz import partition_view

CLIENT = "payment-service"
PLAN = FaultPlan([Fault.drop_response(api="Produce", nth=1, client=CLIENT)])
"""The broker handles the producer's first Produce request, but its answer never arrives."""


@attrs.frozen
class Run:
    """What one producer's run left: its id, what its sends were told, the log, the trace."""

    producer_id: int
    producer_epoch: int
    first: RecordMetadata
    """The answer to TXN5001's send: the one the retry got, since the first one was lost."""
    second: RecordMetadata
    log: PartitionLog
    trace: Trace

    def offsets_of(self, payment: str) -> list[int]:
        """Where ``payment`` sits in the log (once per copy)."""
        return [
            offset
            for offset in range(self.log.log_end_offset)
            if Event.parse(self.log.record_at(offset).value).transaction_id == payment
        ]

    def sequences(self) -> list[int]:
        return [batch.base_sequence for batch in self.log.batches()]

    def produce_sends(self) -> list[float]:
        """When a Produce request left the producer (first tries and retries)."""
        return [e.time for e in self.trace.select(kind="send", api="Produce")]

    def retry_story(self) -> Trace:
        """TXN5001's way: its Produce, the lost answer, the timeout, the retry, its answer."""
        events = []
        for e in self.trace:
            if e.api == "Produce" or (e.kind == "disconnect" and e.source == CLIENT):
                events.append(e)
                if e.kind == "deliver":  # the first answer to arrive is the retry's
                    break
        return Trace(events)

    def produce_requests_handled(self) -> int:
        return len(self.trace.select(kind="handle", api="Produce"))


def send_two_payments(*, idempotent: bool) -> Run:
    """TXN5001 (whose first answer is lost) and then TXN5002, each waited for."""
    found: dict[str, Any] = {}

    async def scenario() -> None:
        async with minikafka.open_cluster(seed=4, faults=PLAN) as cluster:
            await cluster.create_topic("payments", partitions=1)
            producer = cluster.producer(client_id=CLIENT, enable_idempotence=idempotent)
            async with producer:
                found["first"] = await producer.send_and_wait("payments", payment_event(0))
                found["second"] = await producer.send_and_wait("payments", payment_event(1))
                found["producer_id"] = producer.producer_id
                found["producer_epoch"] = producer.producer_epoch
            found["log"] = cluster.broker.log("payments", 0)
            found["trace"] = cluster.trace

    minikafka.run(scenario)
    return Run(**found)


def main(lesson: Lesson | None = None) -> dict[str, Any]:
    lesson = lesson or Lesson(__doc__.splitlines()[0] if __doc__ else "")

    lesson.step("A lost acknowledgement")
    lesson.say(
        "The payment service sends TXN5001 to `payments`, then TXN5002, and waits for "
        "each acknowledgement. The fault plan lets the broker handle the first Produce "
        "request and then loses its answer on the way back:"
    )
    lesson.show(repr(PLAN))
    lesson.say(
        "First with `enable_idempotence=False`: Kafka's setting before 3.0, and still the "
        "default of some clients (aiokafka, librdkafka)."
    )

    plain = send_two_payments(idempotent=False)
    first_try, retry = plain.produce_sends()[:2]
    lesson.fact("retry_at", retry)
    lesson.step("The retry, without idempotence")
    lesson.say(
        f"The write landed at t={first_try:.1f} s; the answer did not. The producer cannot "
        "tell a lost request from a lost answer. After `request_timeout` (30 s) it closes "
        "the connection, waits `retry_backoff` (0.1 s) and sends the same batch again, at "
        f"t={retry:.1f} s:"
    )
    lesson.show(plain.retry_story().timeline(title="TXN5001: a lost answer and a retry"))
    plain_offsets = lesson.fact("txn5001_offsets_without_idempotence", plain.offsets_of("TXN5001"))
    lesson.fact("copies_without_idempotence", len(plain_offsets))
    lesson.fact("retry_answer_without_idempotence", plain.first.offset)
    lesson.fact("producer_id_without_idempotence", plain.producer_id)
    lesson.say(
        "A batch from a producer without idempotence carries no producer id and no "
        "sequence number (the `-` below), so to the broker the retry is just another write. "
        f"It appended it at offset {plain.first.offset}, and that is the answer the "
        f"producer got. The log now holds {len(plain_offsets)} copies of TXN5001, at "
        f"offsets {' and '.join(map(str, plain_offsets))}: every consumer will see that "
        "payment twice."
    )
    lesson.show(partition_view(plain.log))

    idem = send_two_payments(idempotent=True)
    lesson.step("The same fault, with the idempotent producer")
    pid = lesson.fact("producer_id", idem.producer_id)
    epoch = lesson.fact("producer_epoch", idem.producer_epoch)
    idem_offsets = lesson.fact("txn5001_offsets_with_idempotence", idem.offsets_of("TXN5001"))
    lesson.fact("copies_with_idempotence", len(idem_offsets))
    lesson.fact("retry_answer_with_idempotence", idem.first.offset)
    lesson.fact("sequences_with_idempotence", idem.sequences())
    lesson.fact("txn5002_offset_with_idempotence", idem.second.offset)
    lesson.say(
        "Now with Kafka's default, `enable_idempotence=True`. On start the producer asks "
        f"the broker for a *producer id* (InitProducerId): it got **{pid}**, with epoch {epoch}. "
        "Every batch it sends to a partition carries that id and a *sequence number*, "
        "counted per partition from 0; a retry carries the same numbers as the original."
    )
    lesson.say(
        "For each producer and partition, the broker remembers the last 5 batches it "
        "appended. A batch that matches one of them is a retry: the broker appends nothing "
        "and answers success with the **original** offset. That is why Kafka allows at most "
        "5 requests in flight per connection with idempotence "
        "(`max.in.flight.requests.per.connection`): any batch the producer may still retry "
        "is one the broker remembers."
    )
    lesson.say(
        f"The retry at t={idem.produce_sends()[1]:.1f} s carried producer {pid}, sequence "
        f"{idem.sequences()[0]}; the broker found it among the remembered batches and "
        f"answered offset {idem.first.offset}. TXN5001 sits in the log once, and TXN5002 "
        f"follows at offset {idem.second.offset} with sequence {idem.sequences()[1]}. The "
        "trace looks just like the one above:"
    )
    lesson.show(idem.retry_story().timeline(title="TXN5001 again, with idempotence"))
    handled = lesson.fact(
        "produce_requests_handled_with_idempotence", idem.produce_requests_handled()
    )
    batches = lesson.fact("batches_in_log_with_idempotence", idem.log.batch_count)
    lesson.say(
        f"The broker handled {handled} Produce requests (the first try, the retry, and "
        f"TXN5002), and its log holds {batches} batches; the producer id and sequence "
        "columns show what it went by:"
    )
    lesson.show(partition_view(idem.log))

    lesson.step("Side by side")
    table = Table(header_style="bold")
    for column in ("enable_idempotence", "producer id", "TXN5001 at", "retry answered", "copies"):
        table.add_column(column)
    for setting, run, offsets in ((False, plain, plain_offsets), (True, idem, idem_offsets)):
        table.add_row(
            str(setting),
            str(run.producer_id),
            ", ".join(map(str, offsets)),
            f"offset {run.first.offset}",
            f"[bold red]{len(offsets)}[/]" if len(offsets) > 1 else str(len(offsets)),
        )
    lesson.show(table)

    lesson.point(
        "A retry after a lost acknowledgement writes the event again, unless the producer "
        "is **idempotent**: its producer id and sequence numbers let the broker recognise "
        "the retry and answer with the original offset. That covers the producer's own "
        "retries, within one producer id. It does not help when the application sends the "
        "same event again itself (after a restart a producer gets a new id), and it does "
        "nothing for duplicates on the consumer side (tutorial 3)."
    )
    return lesson.facts


if __name__ == "__main__":
    main()
