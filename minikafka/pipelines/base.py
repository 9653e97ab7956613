"""What the five pipelines share: the payment events, the worker's settings, and processing.

A pipeline is a consumer loop over the public client API. It reads payment events from the
``payments`` topic and applies each one's effect: a row in the sink (an SMS sent, a ledger line),
a record on the ``ledger`` output topic, or both. Where the offsets are committed, relative to
the effect, is what makes the delivery model; each model's module is that loop and nothing else.

Processing takes simulated time (``Worker.processing_time`` per event), so a crash planned at a
time can land in the middle of a batch, as a real one can. A worker stands for a process: when
one of its clients crashes, the whole process dies at once, its other clients and the loop's
own work with it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio

from minikafka.check.history import History
from minikafka.client.base import ClientBase
from minikafka.client.cluster import Cluster
from minikafka.client.consumer import Consumer
from minikafka.client.producer import Producer
from minikafka.core.records import ConsumerRecord, TopicPartition
from minikafka.pipelines.sink import Sink

__all__ = [
    "INPUT_TOPIC",
    "OUTPUT_TOPIC",
    "TRANSACTION_TIMEOUT",
    "Event",
    "Worker",
    "next_offsets",
    "payment_event",
]

INPUT_TOPIC = "payments"
OUTPUT_TOPIC = "ledger"
GROUP = "payments-processor"
TRANSACTION_TIMEOUT = 20.0
"""The transactional workers' transaction timeout (short, so a crashed worker's open
transaction is aborted soon and stops holding read_committed readers back)."""


def payment_event(number: int) -> bytes:
    """The ``number``-th payment event, as the seed article shows one (JSON bytes)."""
    return json.dumps(
        {
            "eventType": "PaymentCompleted",
            "transactionId": f"TXN{5001 + number}",
            "amount": 100 * (1 + number % 50),
        },
        separators=(",", ":"),
    ).encode()


@attrs.frozen
class Event:
    """A payment event as a pipeline reads it."""

    transaction_id: str
    amount: int

    @classmethod
    def parse(cls, value: bytes | None) -> Event:
        data = json.loads(value or b"{}")
        return cls(str(data["transactionId"]), int(data["amount"]))


def next_offsets(batch: dict[TopicPartition, list[ConsumerRecord]]) -> dict[TopicPartition, int]:
    """The offsets to commit after ``batch``: one past the last record of each partition."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


@attrs.define
class Worker:
    """One consumer process of a pipeline: its name (the consumer's client id), the cluster,
    the sink, and the settings every model uses."""

    name: str
    cluster: Cluster
    sink: Sink
    processing_time: float = 0.1
    idle_after: int = 3
    """Stop after this many empty polls in a row (of a second each) while the worker owns
    every input partition and has read each to its end: the input is drained."""
    idle_after_shared: int = 30
    """The same, while the worker owns only some of the input partitions and has read those
    to their end: another member holds the rest. It may be a frozen zombie, whose
    partitions come to this worker once the group gives it up (``session_timeout``), or a
    live zombie that reads them itself; either way it takes a while to know."""
    input_partitions: int = 3
    """How many partitions the input topic has."""
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    max_poll_interval: float = 30.0
    max_poll_records: int = 100
    """At most this many records per poll: a batch's processing (10 s) stays well inside
    ``max_poll_interval``, or the group would evict the worker in the middle of every batch."""

    history: History | None = None
    """Where the worker records its polls (the runner's history), if anywhere."""
    scope: trio.CancelScope | None = None
    """The running incarnation's scope: cancelled when the process crashes."""
    clients: list[ClientBase] = attrs.Factory(list)
    abandoned: bool = False
    """The supervisor gave this process up for dead and started another in its place."""
    input_done: trio.Event | None = None
    """Set once the source has written its last event: until then no poll counts as idle."""

    def start_incarnation(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.clients = []

    def adopt(self, client: ClientBase) -> None:
        """``client`` belongs to this process: if one of its clients crashes, all of it dies,
        and a pause of the process (planned for the worker's name) freezes it too."""
        self.clients.append(client)
        client.when_crashed(self._died)
        client.process = self.name

    def _died(self, crashed: ClientBase) -> None:
        for client in self.clients:
            client.crash(f"its process died with {crashed.client_id}")
        if self.scope is not None:
            self.scope.cancel()

    def producer(self, **config: Any) -> Producer:
        """A producer of this worker's process."""
        producer = self.cluster.producer(**config)
        self.adopt(producer)
        return producer

    def consumer(self, **config: Any) -> Consumer:
        """The worker's consumer of the input topic, in the pipeline's group."""
        settings: dict[str, Any] = {
            "client_id": self.name,
            "group_id": GROUP,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "session_timeout": self.session_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "max_poll_interval": self.max_poll_interval,
            "max_poll_records": self.max_poll_records,
        }
        settings.update(config)
        consumer = self.cluster.consumer(INPUT_TOPIC, **settings)
        self.adopt(consumer)
        return consumer

    def repositioned(self, consumer: Consumer) -> None:
        """The loop moved the consumer's positions itself (a seek back after an abort): the
        history records it as a fresh start on the partitions, so the checker expects the
        polls that follow to repeat records, not to move on."""
        if self.history is not None:
            self.history.assign(self.name, sorted(consumer.assignment()), time=self.cluster.now())

    def _idle_polls_needed(self, consumer: Consumer) -> int | None:
        """How many empty polls in a row tell that the input is drained, given what the
        consumer owns now: None while it owns nothing or has not read all it owns (its lag
        is unknown, or above 0)."""
        owned = consumer.assignment()
        if not owned or any(consumer.current_lag(tp) != 0 for tp in owned):
            return None
        return self.idle_after if len(owned) >= self.input_partitions else self.idle_after_shared

    async def process(self, record: ConsumerRecord) -> Event:
        """Read the event and spend the time its processing takes."""
        event = Event.parse(record.value)
        await trio.sleep(self.processing_time)
        await self.cluster.network.wait_if_paused(self.name)  # a frozen process does nothing
        return event

    async def batches(self, consumer: Consumer) -> Any:
        """Poll until enough polls of a second each in a row come back empty while the
        consumer has read all it owns (its lag is known, and 0): ``idle_after`` if it owns
        every input partition, ``idle_after_shared`` if another member holds some. Yields
        the non-empty batches. Counting such polls, not seconds, keeps a worker that was
        frozen (a pause), waited for its group (a lost JoinGroup) or for its committed
        offsets (a lost OffsetFetch) from taking that time for an idle input."""
        empty = 0
        needed: int | None = None
        generation = None
        while needed is None or empty < needed:
            batch = await consumer.getmany(timeout=1.0)
            if self.history is not None:
                # A new generation is a reassignment: polls may skip or repeat across it.
                now_generation = consumer.group_metadata().generation_id
                if now_generation != generation:
                    generation = now_generation
                    self.history.assign(
                        self.name, sorted(consumer.assignment()), time=self.cluster.now()
                    )
                if batch:
                    self.history.poll(
                        self.name,
                        [(tp, r.offset, r.value or b"") for tp, rs in batch.items() for r in rs],
                        time=self.cluster.now(),
                    )
            if batch:
                empty = 0
                yield batch
            elif (needed := self._idle_polls_needed(consumer)) is not None and (
                self.input_done is None or self.input_done.is_set()
            ):
                empty += 1
            else:
                # Waiting for a rebalance, a position or a fetch proves nothing.
                empty, needed = 0, None
