"""Run a pipeline end to end on a simulated cluster, under a fault plan, and count what it did.

``run_pipeline(model, events=..., seed=..., faults=...)`` writes the payment events to the
input topic (an idempotent producer named ``source``), runs the model's consumer loop in a
worker process named ``worker-1`` (its producer, if any, is ``worker-1-out``), restarts the
worker whenever it crashes or fails, as a process supervisor would, and finally reads the
output topic with read_committed. The result counts, per transaction id, the effects in the
database and the records in the output topic, so a lost or a duplicated event shows.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

import minikafka
from minikafka.check.checker import Report, check
from minikafka.check.history import History
from minikafka.client.errors import ClientCrashed, IllegalStateError, KafkaError
from minikafka.client.producer import DeliveryHandle, Producer
from minikafka.core import Broker
from minikafka.core.log import PartitionLog
from minikafka.core.records import ControlType, TopicPartition
from minikafka.pipelines import (
    at_least_once,
    at_least_once_dedup,
    at_most_once,
    exactly_once,
    exactly_once_external_db,
)
from minikafka.pipelines.base import (
    INPUT_TOPIC,
    OUTPUT_TOPIC,
    TRANSACTION_TIMEOUT,
    Event,
    Worker,
    payment_event,
)
from minikafka.pipelines.sink import Sink
from minikafka.sim.faults import FaultPlan
from minikafka.sim.trace import Trace

__all__ = ["MODELS", "Model", "PipelineResult", "run_pipeline"]


@attrs.frozen
class Model:
    """A delivery model: its loop, where its effects show, and what it promises."""

    name: str
    run: Callable[[Worker], Awaitable[None]]
    effects_in: str
    """"database" or "topic": where an event's effect is counted."""
    no_loss: bool
    no_duplicates: bool
    expectation: str
    """The seed article's expectation, in a few words."""


MODELS: dict[str, Model] = {
    model.name: model
    for model in (
        Model(
            "at-most-once",
            at_most_once.run,
            "database",
            False,
            True,
            "loss possible, no duplicates",
        ),
        Model(
            "at-least-once",
            at_least_once.run,
            "database",
            True,
            False,
            "no loss, duplicates possible",
        ),
        Model(
            "at-least-once+dedup",
            at_least_once_dedup.run,
            "database",
            True,
            True,
            "no loss, no duplicate effects (effectively once)",
        ),
        Model(
            "exactly-once", exactly_once.run, "topic", True, True, "no loss, no duplicates in Kafka"
        ),
        Model(
            "exactly-once+external-db",
            exactly_once_external_db.run,
            "topic",
            True,
            True,
            "exact in Kafka, duplicates in the database",
        ),
    )
}
"""The five models, by the names DESIGN.md fixes."""

WORKER_PREFIX = "worker-"
"""Worker processes are ``worker-1``, then ``worker-2`` for the one that replaces it, ..."""
SOURCE = "source"
MAX_RESTARTS = 20
LIVENESS_PROBES = 3
"""The supervisor gives a process up for dead after this many missed probes (one a second)."""


@attrs.frozen
class PipelineResult:
    """What one run did. Counts are per transaction id."""

    model: str
    sent: tuple[str, ...]
    """Transaction ids of the events acknowledged into the input topic."""
    database: dict[str, int]
    """How many times each event's effect was applied in the database."""
    topic: dict[str, int]
    """How many times each event appears in the output topic (read_committed)."""
    balance: int
    expected_balance: int
    restarts: int
    trace: Trace
    history: History
    """What the source sent, what the worker polled, and every effect (as ``minikafka.check``
    records them)."""
    report: Report
    """The checker's verdict on the history: Jepsen's anomaly names."""
    sent_at: dict[str, float] = attrs.field(factory=dict)
    """Simulated time at which the source sent each acknowledged event (its first try)."""
    applied_at: dict[str, float] = attrs.field(factory=dict)
    """Simulated time of each event's first effect in the database."""
    visible_at: dict[str, float] = attrs.field(factory=dict)
    """Simulated time from which a read_committed reader of the output topic could read each
    event: its transaction's COMMIT marker, and every earlier transaction in the partition
    decided (the last stable offset past it)."""
    broker: Broker | None = attrs.field(default=None, eq=False, repr=False)
    """The broker as the run left it (its logs, coordinators and groups), to draw."""

    def latencies(self, where: str | None = None) -> list[float]:
        """End to end, per event with an effect: simulated seconds from the source's send to
        its first effect in ``where`` ("database" or "topic"; by default where the model's
        effects show), in the order the events were sent."""
        chosen = where or MODELS[self.model].effects_in
        if chosen not in ("database", "topic"):
            raise ValueError(f'where is "database" or "topic", not {where!r}')
        effect_at = self.applied_at if chosen == "database" else self.visible_at
        return [
            effect_at[key] - self.sent_at[key]
            for key in self.sent
            if key in effect_at and key in self.sent_at
        ]

    @property
    def effects(self) -> dict[str, int]:
        """The counts where this model's effects show."""
        return self.topic if MODELS[self.model].effects_in == "topic" else self.database

    @property
    def lost(self) -> list[str]:
        return [key for key in self.sent if self.effects.get(key, 0) == 0]

    @property
    def duplicated(self) -> list[str]:
        return [key for key in self.sent if self.effects.get(key, 0) > 1]

    @property
    def database_duplicated(self) -> list[str]:
        return [key for key in self.sent if self.database.get(key, 0) > 1]

    @property
    def kept_promise(self) -> bool:
        model = MODELS[self.model]
        return (not model.no_loss or not self.lost) and (
            not model.no_duplicates or not self.duplicated
        )


async def _supervise(make_worker: Callable[[str], Worker], model: Model) -> int:
    """Run the model's loop in a worker process until one finishes; returns the restarts.

    As a process supervisor does: a process that crashes or fails is started again under the
    same name, a second later. A process that stops answering the supervisor's liveness probe
    (one a second; it fails while the process is frozen by a pause) for ``LIVENESS_PROBES``
    probes in a row is given up for dead, and a new process (``worker-2``, ...) takes its
    place. The frozen one is not dead: when it wakes it goes on where it was, a zombie, until
    something fences it (its transactional id, its group generation) or its input runs dry.
    """
    restarts = 0
    number = 1
    failure = ""
    try:
        async with trio.open_nursery() as processes:
            while True:
                worker = make_worker(f"{WORKER_PREFIX}{number}")
                ended = trio.Event()
                reasons: list[str | None] = []
                processes.start_soon(_live, worker, model, ended, reasons)
                missed = 0
                while not ended.is_set() and missed < LIVENESS_PROBES:
                    with trio.move_on_after(1.0):
                        await ended.wait()
                    missed = missed + 1 if worker.cluster.network.is_paused(worker.name) else 0
                if ended.is_set():
                    (reason,) = reasons
                    if reason is None:
                        return restarts
                else:
                    reason = f"no answer to {LIVENESS_PROBES} liveness probes; given up for dead"
                    worker.abandoned = True
                    number += 1
                restarts += 1
                worker.cluster.network.note("restart", worker.name, reason)
                if restarts > MAX_RESTARTS:
                    failure = f"the worker was restarted {restarts} times; the last: {reason}"
                    processes.cancel_scope.cancel()  # zombies too: the run is over
                    break
                await trio.sleep(1.0)  # the supervisor's restart delay
    except BaseExceptionGroup as group:
        _raise_single(group)
    raise RuntimeError(failure)


def _raise_single(group: BaseExceptionGroup[BaseException]) -> None:
    """Raise the one error of ``group`` as itself (as open_cluster's callers expect), or the
    group if it holds several."""
    if len(group.exceptions) == 1:
        raise group.exceptions[0] from group.exceptions[0].__cause__
    raise group


async def _live(worker: Worker, model: Model, ended: trio.Event, reasons: list[str | None]) -> None:
    """One process: run the loop; say why it ended (None: it finished its work)."""
    reason: str | None = None
    try:
        with trio.CancelScope() as scope:
            worker.start_incarnation(scope)
            await model.run(worker)
        if scope.cancelled_caught:
            reason = "the process crashed"
    except (ClientCrashed, KafkaError, IllegalStateError) as error:
        reason = f"{type(error).__name__}: {error}"
        for client in worker.clients:  # a failed process exits: its clients go with it
            client.crash(f"its process failed: {reason}")
    reasons.append(reason)
    ended.set()
    if worker.abandoned:
        why = reason or "its input ran dry"
        worker.cluster.network.note("exit", worker.name, f"the zombie process ended: {why}")


async def _read_output(cluster: minikafka.Cluster, history: History | None) -> Counter[str]:
    """Read the output topic with read_committed to its end; each record is an effect of its
    event. The reader stops once a poll comes back empty with its lag known to be 0 (not at
    the first empty poll: a lost ListOffsets answer, say, leaves it without a position)."""
    counts: Counter[str] = Counter()
    output = TopicPartition(OUTPUT_TOPIC, 0)
    async with cluster.consumer(
        client_id="auditor", isolation_level="read_committed", auto_offset_reset="earliest"
    ) as reader:
        reader.assign([output])
        while True:
            batch = await reader.getmany(timeout=1.0)
            for records in batch.values():
                for record in records:
                    key = Event.parse(record.value).transaction_id
                    counts[key] += 1
                    if history is not None:
                        history.effect(OUTPUT_TOPIC, key, time=cluster.now())
            if not batch and reader.current_lag(output) == 0:
                return counts


def _visible_at(log: PartitionLog) -> dict[str, float]:
    """When each event first became readable with read_committed in the output partition.

    A record at offset o is readable once its own transaction committed and the last stable
    offset passed o: every transaction that began at or before o is decided. So its time is
    the latest decision (COMMIT or ABORT marker) among those transactions, its own included.
    """
    began: dict[int, int] = {}  # producer id -> first offset of its open transaction
    decided: list[tuple[int, float]] = []  # (first offset, decision time) per transaction
    records: list[tuple[int, str, int | None, float]] = []  # offset, key, txn start, written
    committed: set[int] = set()  # first offsets of committed transactions
    for batch in log.batches():
        if batch.is_control:
            first = began.pop(batch.producer_id, None)
            if first is not None:
                decided.append((first, batch.records[0].timestamp / 1000))
                if batch.control_type is ControlType.COMMIT:
                    committed.add(first)
            continue
        first = None
        if batch.is_transactional:
            first = began.setdefault(batch.producer_id, batch.base_offset)
        for index, record in enumerate(batch.records):
            key = Event.parse(record.value).transaction_id
            records.append((batch.base_offset + index, key, first, record.timestamp / 1000))
    open_from = min(began.values(), default=None)  # never decided: nothing after it is readable
    decided.sort()
    firsts = [first for first, _ in decided]
    latest: list[float] = list(itertools.accumulate((at for _, at in decided), max))
    seen: dict[str, float] = {}
    for offset, key, first, written in records:
        if first is not None and first not in committed:
            continue  # aborted, or never decided
        if open_from is not None and offset >= open_from:
            continue
        count = bisect.bisect_right(firsts, offset)
        seen.setdefault(key, max(written, latest[count - 1]) if count else written)
    return seen


def run_pipeline(
    model: str,
    *,
    events: int = 20,
    seed: int = 0,
    faults: FaultPlan | None = None,
    database: str = ":memory:",
    partitions: int = 3,
    keyed: bool = False,
    rate: float | None = None,
    loop: Callable[[Worker], Awaitable[None]] | None = None,
    max_poll_records: int = 100,
    processing_time: float = 0.1,
    **broker_config: Any,
) -> PipelineResult:
    """Run ``model`` over ``events`` payment events under ``faults`` and count the outcome.

    The input topic has ``partitions`` partitions; with ``keyed`` each event is keyed by its
    transaction id (so events spread over the partitions by hash), else the producer's sticky
    partitioner fills one partition per batch. Without ``rate`` the source sends every event
    at once (its producer batches them) and the worker starts once all are answered; with it,
    the source writes ``rate`` events a second while the worker runs, as a live stream does,
    and the worker stops once the source is done and the input is drained. ``loop`` runs in
    place of the model's own consumer loop (a student's, in an exercise), held to the model's
    promise.

    ``max_poll_records`` is the most records the worker's consumer returns per poll: for
    exactly-once, the most records per transaction (a poll's batch is one transaction).
    ``processing_time`` is the simulated seconds the worker spends on each event. A full
    poll's processing (the two multiplied) must stay well inside the worker's
    ``max_poll_interval`` (30 s) and, for the transactional models, the transaction timeout
    (``TRANSACTION_TIMEOUT``, 20 s): else the group evicts the worker, or the coordinator
    aborts its transaction and fences it, in the middle of every batch."""
    chosen = MODELS.get(model)
    if chosen is None:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    if loop is not None:
        chosen = attrs.evolve(chosen, run=loop)
    if isinstance(events, bool) or not isinstance(events, int) or events < 0:
        raise ValueError(f"events is how many payment events to send, 0 or more; not {events!r}")
    if rate is not None and (isinstance(rate, bool) or not rate > 0):
        raise ValueError(f"rate is events per simulated second, more than 0; not {rate!r}")
    if (
        isinstance(max_poll_records, bool)
        or not isinstance(max_poll_records, int)
        or max_poll_records < 1
    ):
        raise ValueError(
            f"max_poll_records is the most records a poll returns, 1 or more; "
            f"not {max_poll_records!r}"
        )
    if (
        isinstance(processing_time, bool)
        or not isinstance(processing_time, int | float)
        or not 0 <= processing_time < math.inf
    ):
        raise ValueError(
            f"processing_time is simulated seconds per event, finite and 0 or more; "
            f"not {processing_time!r}"
        )
    sink = Sink(database)

    async def main() -> PipelineResult:
        async with minikafka.open_cluster(seed=seed, faults=faults, **broker_config) as cluster:
            await cluster.create_topic(INPUT_TOPIC, partitions=partitions)
            await cluster.create_topic(OUTPUT_TOPIC, partitions=1)
            sent: list[str] = []
            sent_at: dict[str, float] = {}
            applied_at: dict[str, float] = {}
            expected = 0
            history = History()
            # The history's effects are the database's where the model touches one (for
            # exactly-once+external-db that is the interesting part), else the output topic's.
            effects_in_database = chosen.effects_in == "database" or chosen.name in {
                "exactly-once+external-db"
            }

            def on_effect(key: str, by: str) -> None:
                applied_at.setdefault(key, cluster.now())
                if effects_in_database:
                    history.effect(by, key, time=cluster.now())

            sink.on_effect = on_effect
            input_done = trio.Event()

            async def write_input() -> None:
                start = cluster.now()
                async with cluster.producer(client_id=SOURCE) as source:
                    if rate is None:
                        # A backlog: every event is sent at once, and the producer batches
                        # them; then each acknowledgement is awaited in order.
                        handles = []
                        for number in range(events):
                            first_try = cluster.now()
                            value, event, handle = await send(source, number)
                            handles.append((value, event, first_try, handle))
                        for value, event, first_try, handle in handles:
                            await acknowledged(value, event, first_try, handle)
                    else:
                        for number in range(events):
                            await trio.sleep(max(0.0, start + number / rate - cluster.now()))
                            first_try = cluster.now()
                            value, event, handle = await send(source, number)
                            await acknowledged(value, event, first_try, handle)
                input_done.set()

            async def send(
                source: Producer, number: int
            ) -> tuple[bytes, Event, DeliveryHandle | KafkaError]:
                """Send event ``number``: its value, the event, and the handle to await for
                its acknowledgement (or the error that kept it from being sent)."""
                value = payment_event(number)
                event = Event.parse(value)
                key = event.transaction_id.encode() if keyed else None
                try:
                    return value, event, await source.send(INPUT_TOPIC, value, key=key)
                except KafkaError as error:
                    return value, event, error

            async def acknowledged(
                value: bytes, event: Event, first_try: float, handle: DeliveryHandle | KafkaError
            ) -> None:
                """Wait for an event's acknowledgement and record it (or its failure)."""
                nonlocal expected
                try:
                    if isinstance(handle, KafkaError):
                        raise handle
                    metadata = await handle
                except KafkaError:
                    # Never acknowledged: not an event the pipeline owes, though it may have
                    # landed.
                    history.send(SOURCE, value, topic=INPUT_TOPIC, outcome="unknown")
                    return
                history.send(
                    SOURCE,
                    value,
                    topic=INPUT_TOPIC,
                    outcome="ok",
                    partition=metadata.partition,
                    offset=metadata.offset,
                    time=cluster.now(),
                )
                sent.append(event.transaction_id)
                sent_at[event.transaction_id] = first_try
                expected += event.amount

            def make_worker(name: str) -> Worker:
                return Worker(
                    name,
                    cluster,
                    sink,
                    processing_time=processing_time,
                    max_poll_records=max_poll_records,
                    input_partitions=partitions,
                    history=history,
                    input_done=input_done,
                )

            if rate is None:
                await write_input()
                restarts = await _supervise(make_worker, chosen)
            else:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(write_input)
                        restarts = await _supervise(make_worker, chosen)
                except BaseExceptionGroup as group:
                    _raise_single(group)
            await trio.sleep(TRANSACTION_TIMEOUT + 5.0)  # past any open transaction's timeout
            topic = await _read_output(
                cluster,
                None if effects_in_database else history,
            )

            return PipelineResult(
                model=model,
                sent=tuple(sent),
                database=sink.effect_counts(),
                topic=dict(topic),
                balance=sink.balance(),
                expected_balance=expected,
                restarts=restarts,
                trace=cluster.trace,
                history=history,
                report=check(history, topic=INPUT_TOPIC, expected_keys=sent),
                sent_at=sent_at,
                applied_at=applied_at,
                visible_at=_visible_at(cluster.broker.log(OUTPUT_TOPIC, 0)),
                broker=cluster.broker,
            )

    try:
        return minikafka.run(main)
    finally:
        sink.close()
