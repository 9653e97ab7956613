"""A hypothesis state machine: idempotent producers against a broker over a faulty network.

The machine plays one to three ``ProducerProtocol`` instances against a ``Broker``. The network
is explicit: each producer talks over a connection, a FIFO queue of requests as TCP gives.
Every fault is a rule with its own arguments, so hypothesis can delete the faults that do not
matter and the counterexample names the ones that do. Failures: a request lost (the connection
hangs: nothing more gets through on it), a response lost (nothing more comes back on it), a
request delivered twice, a request timeout (the producer gives up on the connection and retries
on a new one, while the old one may still deliver its backlog: so up to five batches reach the
broker out of order), a broker crash with recovery, and a producer that restarts with a new
producer id while its old requests are still on the wire.

Invariants, checked after every step:
- ``each_record_at_most_once``: every record a producer sent is in its partition at most once;
- ``acknowledged_records_exactly_once_in_order``: an acknowledged record is there exactly once,
  at the offset the acknowledgement gave (so a retry got the original offset), and a producer's
  acknowledged records on a partition are in the order it sent them;
- ``offsets_unique_and_increasing``: each batch starts where the previous one ended.
At the end of a run, ``teardown`` heals the network and checks that every record a live producer
sent is acknowledged: a stuck producer is a failure too.

Subclass it to add an invariant (``@invariant()`` methods see ``self.broker`` and ``self.sent``,
each record sent by value, with the offset its acknowledgement gave once it has one), or use
``with_config`` to run it against a broker with a safeguard off.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from minikafka.core import (
    Broker,
    ErrorCode,
    InitProducerIdRequest,
    OutgoingRequest,
    ProduceRequest,
    ProduceResponse,
    ProducerProtocol,
    Record,
    TopicPartition,
)
from minikafka.testing.controls import Breakable
from minikafka.testing.story import LogRow, StoryLine

__all__ = [
    "FATES",
    "Connection",
    "IdempotenceMachine",
    "InFlight",
    "SentRecord",
    "StoryLine",
]

TOPIC = "payments"
FATES = ("deliver", "lose request", "lose response", "duplicate")
HEAL_ROUNDS_MAX = 200
POLLS_PER_PUMP_MAX = 100


@attrs.define
class SentRecord:
    """What the machine remembers of one ``send``: enough to find it in the log."""

    value: bytes
    producer: str
    tp: TopicPartition
    index: int
    offset: int | None = None
    error: str | None = None
    abandoned: bool = False


@attrs.define
class InFlight:
    """A request on the wire, with the producer incarnation that sent it."""

    number: int
    producer: ProducerProtocol
    name: str
    outgoing: OutgoingRequest

    def describe(self) -> str:
        request = self.outgoing.request
        if isinstance(request, ProduceRequest):
            parts = []
            for data in request.partitions:
                batch = data.batch
                seqs = f"seq {batch.base_sequence}"
                if batch.record_count > 1:
                    seqs += f"..{batch.last_sequence}"
                parts.append(
                    f"{data.topic}-{data.partition} pid {batch.producer_id} "
                    f"epoch {batch.producer_epoch} {seqs}"
                )
            return f"Produce #{self.number} from {self.name} ({'; '.join(parts)})"
        return f"{request.api_name} #{self.number} from {self.name}"


@attrs.define
class Connection:
    """A producer's connection: requests reach the broker in the order they were sent."""

    number: int
    producer: ProducerProtocol
    generation: int
    queue: list[InFlight] = attrs.Factory(list)
    hung: bool = False
    """A request was lost: this connection delivers nothing more."""
    deaf: bool = False
    """A response was lost: this connection brings nothing more back."""


class IdempotenceMachine(Breakable, RuleBasedStateMachine):
    """Idempotent producers, a broker and a lossy network; see the module docstring."""

    max_in_flight: ClassVar[int] = 5

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.broker = Broker(self.broker_config)
        self.producers: list[ProducerProtocol] = []
        self.names: list[str] = []
        self.connections: list[Connection] = []
        self.sent: dict[bytes, SentRecord] = {}
        self.by_handle: dict[tuple[int, int], SentRecord] = {}
        self.story: list[StoryLine] = []
        self.phase = "setup"
        self.partitions = 1
        self._numbers = itertools.count(1)
        self._values = itertools.count(1)
        self._incarnations: dict[int, int] = {}
        # Incremental log scan: per partition, the batches checked so far and where each
        # record value was seen.
        self._scanned: dict[int, int] = {}
        self._next_offset: dict[int, int] = {}
        self.seen_at: dict[bytes, list[int]] = {}

    # --- set-up ----------------------------------------------------------------------------

    @initialize(producers=st.integers(1, 3), partitions=st.integers(1, 3))
    def setup(self, producers: int, partitions: int) -> None:
        self.partitions = partitions
        self.broker.create_topic(TOPIC, partitions)
        for index in range(producers):
            self._start_producer(index)
        self.say(f"{producers} producer(s), topic {TOPIC!r} with {partitions} partition(s)")
        self.phase = "step"

    def _start_producer(self, index: int) -> None:
        incarnation = self._incarnations.get(index, -1) + 1
        self._incarnations[index] = incarnation
        name = f"producer-{index}" + (f"'{incarnation}" if incarnation else "")
        producer = ProducerProtocol(
            client_id=name,
            delivery_timeout=None,
            max_in_flight_requests_per_connection=self.max_in_flight,
        )
        if index < len(self.producers):
            self.producers[index] = producer
            self.names[index] = name
        else:
            self.producers.append(producer)
            self.names.append(name)
        self._pump(index)

    # --- rules -----------------------------------------------------------------------------

    @rule(producer=st.integers(0, 2), partition=st.integers(0, 2), records=st.integers(1, 3))
    def send(self, producer: int, partition: int, records: int) -> None:
        index = producer % len(self.producers)
        tp = TopicPartition(TOPIC, partition % self.partitions)
        client = self.producers[index]
        values = []
        for _ in range(records):
            value = f"r{next(self._values)}".encode()
            handle = client.send(tp, Record(value), now=self.now)
            entry = SentRecord(value, self.names[index], tp, len(self.sent))
            self.sent[value] = entry
            self.by_handle[(id(client), handle)] = entry
            values.append(value.decode())
        self.say(f"{self.names[index]} sends {', '.join(values)} to {tp}")
        self._pump(index)

    @precondition(lambda self: any(c.queue for c in self.connections))
    @rule(pick=st.integers(min_value=0, max_value=4), fate=st.sampled_from(FATES))
    def network_step(self, pick: int, fate: str) -> None:
        busy = [connection for connection in self.connections if connection.queue]
        connection = busy[pick % len(busy)]
        message = connection.queue[0]
        if fate == "lose request":
            behind = len(connection.queue) - 1
            connection.queue.clear()
            connection.hung = True
            self.say(
                f"network loses {message.describe()}"
                + (f" and the {behind} request(s) behind it" if behind else "")
                + "; the connection hangs"
            )
            return
        if fate != "duplicate":
            connection.queue.pop(0)
        self._deliver(
            connection, message, lose_response=fate == "lose response", copy=fate == "duplicate"
        )
        self._pump_all()

    def _deliver(
        self, connection: Connection, message: InFlight, *, lose_response: bool, copy: bool
    ) -> None:
        response = self.broker.handle(message.outgoing.request, now=self.now)
        outcome = self._describe_outcome(response)
        what = f"a copy of {message.describe()}" if copy else message.describe()
        if lose_response:
            connection.deaf = True
            self.say(f"network delivers {what}: {outcome}; the response is lost")
            return
        if connection.deaf:
            self.say(f"network delivers {what}: {outcome}; no response comes back")
            return
        self.say(f"network delivers {what}: {outcome}")
        if response is not None:
            message.producer.on_response(message.outgoing.correlation_id, response, now=self.now)
        self._collect(message.producer)

    @precondition(lambda self: self._next_deadline() is not None)
    @rule()
    def timeout(self) -> None:
        deadline = self._next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.say(f"time passes to t={self.now:g}s: requests without an answer time out")
        self._pump_all()

    @rule()
    def crash_broker(self) -> None:
        lost = self.broker.restart()
        dropped = sum(len(connection.queue) for connection in self.connections)
        self.connections.clear()
        self.say(
            f"broker crashes and recovers ({lost} unflushed records lost, "
            f"{dropped} requests in flight dropped)"
        )
        for producer in self.producers:
            producer.on_disconnect(now=self.now)
        self._pump_all()

    @rule(producer=st.integers(0, 2))
    def restart_producer(self, producer: int) -> None:
        index = producer % len(self.producers)
        old = self.producers[index]
        for entry in self.by_handle_of(old):
            if entry.offset is None and entry.error is None:
                entry.abandoned = True
        old_name = self.names[index]
        self._start_producer(index)
        self.say(
            f"{old_name} restarts as {self.names[index]} with producer id "
            f"{self.producers[index].producer_id}; its requests still on the wire stay there"
        )

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def offsets_unique_and_increasing(self) -> None:
        self._scan()

    @invariant()
    def each_record_at_most_once(self) -> None:
        self._scan()
        for value, offsets in self.seen_at.items():
            if len(offsets) > 1:
                entry = self.sent[value]
                raise AssertionError(
                    f"duplicate: {value.decode()} is in {entry.tp} at offsets {offsets}"
                )

    @invariant()
    def acknowledged_records_exactly_once_in_order(self) -> None:
        self._scan()
        last: dict[tuple[str, TopicPartition], tuple[int, SentRecord]] = {}
        for entry in self.sent.values():  # in send order
            if entry.offset is None:
                continue
            offsets = self.seen_at.get(entry.value, [])
            if offsets != [entry.offset]:
                raise AssertionError(
                    f"{entry.value.decode()} was acknowledged at offset {entry.offset} of "
                    f"{entry.tp}, but the log has it at {offsets or 'no offset'}"
                )
            key = (entry.producer, entry.tp)
            previous = last.get(key)
            if previous is not None and previous[0] > entry.offset:
                raise AssertionError(
                    f"out of order: {previous[1].value.decode()} was sent before "
                    f"{entry.value.decode()}, but sits at offset {previous[0]} after "
                    f"{entry.offset} in {entry.tp}"
                )
            last[key] = (entry.offset, entry)

    def teardown(self) -> None:
        """Heal the network, let every live producer finish, and check nothing is stuck."""
        if not self.producers:
            return
        self.phase = "heal"
        for _ in range(HEAL_ROUNDS_MAX):
            busy = [connection for connection in self.connections if connection.queue]
            if busy:
                message = busy[0].queue.pop(0)
                self._deliver(busy[0], message, lose_response=False, copy=False)
                self._pump_all()
                continue
            deadline = self._next_deadline()
            if deadline is None:
                break
            self.now = max(self.now, deadline)
            self._pump_all()
        stuck = [
            entry.value.decode()
            for entry in self.sent.values()
            if entry.offset is None and entry.error is None and not entry.abandoned
        ]
        if stuck:
            raise AssertionError(
                f"stuck: with the network healed, {', '.join(stuck[:5])} never got acknowledged"
            )
        failed = [e for e in self.sent.values() if e.error is not None and not e.abandoned]
        if failed:
            raise AssertionError(
                f"failed: {failed[0].value.decode()} was refused ({failed[0].error})"
            )
        self.each_record_at_most_once()
        self.acknowledged_records_exactly_once_in_order()

    def log_rows(self) -> tuple[LogRow, ...]:
        """The partition logs as rows, each record marked if it is a duplicate."""
        rows = []
        for partition in range(self.partitions):
            for batch in self.broker.log(TOPIC, partition).batches():
                for position, record in enumerate(batch.records):
                    value = record.value or b""
                    duplicate = len(self.seen_at.get(value, ())) > 1
                    rows.append(
                        LogRow(
                            TOPIC,
                            partition,
                            batch.base_offset + position,
                            value.decode(errors="replace"),
                            batch.producer_id,
                            batch.producer_epoch,
                            batch.base_sequence + position if batch.base_sequence >= 0 else -1,
                            "duplicate" if duplicate else "",
                            duplicate,
                        )
                    )
        return tuple(rows)

    # --- helpers ---------------------------------------------------------------------------

    def say(self, line: str, *, detail: bool = False) -> None:
        """Add a line to the story of this run (shown with a counterexample).

        A ``detail`` belongs to the step before it rather than being a step of its own."""
        self.story.append(StoryLine(self.phase, line, detail))

    @property
    def steps(self) -> list[StoryLine]:
        """The story's steps: what the rules did, without set-up, details and healing."""
        return [line for line in self.story if line.phase == "step" and not line.detail]

    def by_handle_of(self, producer: ProducerProtocol) -> list[SentRecord]:
        return [entry for (pid, _), entry in self.by_handle.items() if pid == id(producer)]

    def _next_deadline(self) -> float | None:
        deadlines = [d for p in self.producers if (d := p.next_deadline()) is not None]
        return min(deadlines, default=None)

    def _pump_all(self) -> None:
        for index in range(len(self.producers)):
            self._pump(index)

    def _pump(self, index: int) -> None:
        producer = self.producers[index]
        for _ in range(POLLS_PER_PUMP_MAX):
            outgoing = producer.poll(self.now)
            if not outgoing:
                break
            for item in outgoing:
                if isinstance(item.request, InitProducerIdRequest):
                    # Simplified here: InitProducerId always gets through (faults on it belong
                    # to the transaction machines).
                    response = self.broker.handle(item.request, now=self.now)
                    assert response is not None
                    producer.on_response(item.correlation_id, response, now=self.now)
                else:
                    message = InFlight(next(self._numbers), producer, self.names[index], item)
                    connection = self._connection(producer)
                    if connection.hung:
                        self.say(
                            f"{message.describe()} vanishes into the hung connection",
                            detail=True,
                        )
                    else:
                        connection.queue.append(message)
        else:
            raise AssertionError(
                f"livelock: {self.names[index]} kept sending for {POLLS_PER_PUMP_MAX} polls "
                "without waiting for a single answer"
            )
        self._collect(producer)

    def _connection(self, producer: ProducerProtocol) -> Connection:
        """The producer's current connection, opened anew after it gave up on the last one."""
        for connection in reversed(self.connections):
            if connection.producer is producer:
                if connection.generation == producer.connection_generation:
                    return connection
                break
        connection = Connection(len(self.connections) + 1, producer, producer.connection_generation)
        self.connections.append(connection)
        return connection

    def _collect(self, producer: ProducerProtocol) -> None:
        for report in producer.take_reports():
            entry = self.by_handle.get((id(producer), report.handle))
            if entry is None:
                continue
            if report.metadata is not None:
                entry.offset = report.metadata.offset
            else:
                entry.error = f"{report.error.name if report.error else '?'}: {report.message}"

    def _describe_outcome(self, response: object) -> str:
        if not isinstance(response, ProduceResponse):
            return "answered"
        parts = []
        for result in response.partitions:
            if result.error_code is ErrorCode.NONE:
                parts.append(f"ok at offset {result.base_offset}")
            else:
                parts.append(result.error_code.name)
        return ", ".join(parts)

    def _scan(self) -> None:
        """Read the batches appended since the last check (a crash may have cut the log)."""
        for partition in range(self.partitions):
            log = self.broker.log(TOPIC, partition)
            start = self._scanned.get(partition, 0)
            if start > log.batch_count:  # truncated: forget this partition and read it again
                self._rescan(partition)
                continue
            expected = self._next_offset.get(partition, 0)
            for batch in log.batches(start):
                if batch.base_offset != expected:
                    raise AssertionError(
                        f"inconsistent offsets: a batch of {TOPIC}-{partition} starts at "
                        f"{batch.base_offset}, expected {expected}"
                    )
                for position, record in enumerate(batch.records):
                    if record.value is not None:
                        self.seen_at.setdefault(record.value, []).append(
                            batch.base_offset + position
                        )
                expected = batch.next_offset
            self._scanned[partition] = log.batch_count
            self._next_offset[partition] = expected

    def _rescan(self, partition: int) -> None:
        tp = TopicPartition(TOPIC, partition)
        for value in list(self.seen_at):
            entry = self.sent.get(value)
            if entry is not None and entry.tp == tp:
                del self.seen_at[value]
        self._scanned[partition] = 0
        self._next_offset[partition] = 0
        self._scan()
