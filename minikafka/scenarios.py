"""Small scripted scenarios: each drives a broker through one idea and leaves it to be looked at.

``minikafka show SCENARIO`` runs one and draws what it left behind. A scenario is a plain
function that talks to the core with Kafka's requests, so it reads as the protocol does; it
returns the broker, and the names a picture needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from minikafka.core import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    Broker,
    EndTxnRequest,
    ErrorCode,
    InitProducerIdRequest,
    InitProducerIdResponse,
    OffsetCommitPartition,
    OffsetCommitResponse,
    ProducePartitionData,
    ProduceRequest,
    Record,
    RecordBatch,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from minikafka.core.group_member import GroupMemberProtocol
from minikafka.core.messages import Request, Response, error_codes
from minikafka.sim.trace import Trace
from minikafka.testing.groups import GroupHarness, SimConsumer

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "run_scenario"]


@attrs.frozen
class ScenarioResult:
    """What a scenario leaves: the broker, the topics and groups worth drawing, a story, and
    for a scenario on the simulated cluster, its trace (drawn as a timeline)."""

    broker: Broker
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    story: tuple[str, ...]
    trace: Trace | None = None
    timeline_keeps: tuple[str, ...] = ()
    """APIs whose routine traffic the timeline shows anyway (Produce, for a retry)."""


@attrs.frozen
class Scenario:
    name: str
    summary: str
    run: Callable[[], ScenarioResult]


class _Script:
    """A tiny driver: send requests, insist they succeed, and keep a line of story for each."""

    def __init__(self) -> None:
        self.broker = Broker()
        self.now = 0.0
        self.story: list[str] = []
        self.sequences: dict[tuple[int, TopicPartition], int] = {}

    def send(self, request: Request, line: str) -> Response:
        self.now += 0.1
        response = self.broker.handle(request, now=self.now)
        assert response is not None
        errors = [code for code in error_codes(response) if code is not ErrorCode.NONE]
        if errors:
            raise RuntimeError(f"scenario step failed: {line}: {errors[0].name}")
        self.story.append(f"t={self.now:.1f}s  {line}")
        return response

    def init(self, transactional_id: str) -> tuple[str, int, int]:
        response = self.send(
            InitProducerIdRequest(transactional_id=transactional_id),
            f"{transactional_id}: InitProducerId",
        )
        assert isinstance(response, InitProducerIdResponse)
        return transactional_id, response.producer_id, response.producer_epoch

    def add(self, producer: tuple[str, int, int], *partitions: TopicPartition) -> None:
        tid, pid, epoch = producer
        names = ", ".join(str(tp) for tp in partitions)
        self.send(
            AddPartitionsToTxnRequest(
                transactional_id=tid,
                producer_id=pid,
                producer_epoch=epoch,
                partitions=partitions,
            ),
            f"{tid}: AddPartitionsToTxn {names}",
        )

    def produce(self, producer: tuple[str, int, int], tp: TopicPartition, *values: str) -> None:
        tid, pid, epoch = producer
        sequence = self.sequences.get((pid, tp), 0)
        batch = RecordBatch(
            records=tuple(
                Record(value.encode(), timestamp=int(self.now * 1000)) for value in values
            ),
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            is_transactional=True,
        )
        self.sequences[(pid, tp)] = sequence + len(values)
        self.send(
            ProduceRequest(
                partitions=(ProducePartitionData(tp.topic, tp.partition, batch),),
                transactional_id=tid,
            ),
            f"{tid}: Produce {', '.join(values)} to {tp}",
        )

    def send_offsets(
        self, producer: tuple[str, int, int], group: str, tp: TopicPartition, offset: int
    ) -> None:
        tid, pid, epoch = producer
        self.send(
            AddOffsetsToTxnRequest(
                transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group
            ),
            f"{tid}: AddOffsetsToTxn {group}",
        )
        self.send(
            TxnOffsetCommitRequest(
                transactional_id=tid,
                group_id=group,
                producer_id=pid,
                producer_epoch=epoch,
                partitions=(OffsetCommitPartition(tp.topic, tp.partition, offset),),
            ),
            f"{tid}: TxnOffsetCommit {group} {tp} -> {offset} (pending until the marker)",
        )

    def end(self, producer: tuple[str, int, int], *, commit: bool) -> None:
        tid, pid, epoch = producer
        word = "commit" if commit else "abort"
        self.send(
            EndTxnRequest(
                transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit
            ),
            f"{tid}: EndTxn {word} (answered once Prepare{word.title()} is durable)",
        )
        self.now += 0.1
        self.broker.tick(self.now)
        self.story.append(f"t={self.now:.1f}s  coordinator writes the {word.upper()} markers")


def transactions() -> ScenarioResult:
    """A committed, an aborted and an open transaction over two partitions, with offsets."""
    script = _Script()
    broker = script.broker
    broker.create_topic("payments", 2)
    broker.create_topic("orders", 1)
    p0, p1 = TopicPartition("payments", 0), TopicPartition("payments", 1)
    orders = TopicPartition("orders", 0)
    pay1, pay2, pay3 = script.init("pay-1"), script.init("pay-2"), script.init("pay-3")
    script.add(pay1, p0, p1)
    script.produce(pay1, p0, "TXN5001 +2500")
    script.produce(pay1, p1, "TXN5001 -2500")
    script.add(pay2, p0, p1)
    script.produce(pay2, p0, "TXN5002 +700")
    script.produce(pay2, p1, "TXN5002 -700")
    script.send_offsets(pay1, "ledger", orders, 3)
    script.end(pay1, commit=True)
    script.add(pay3, p0)
    script.produce(pay3, p0, "TXN5003 +120", "TXN5003 fee")
    script.send_offsets(pay3, "ledger", orders, 7)
    script.end(pay2, commit=False)
    script.add(pay1, p1)
    script.produce(pay1, p1, "TXN5004 +90")
    script.end(pay1, commit=True)
    return ScenarioResult(broker, ("payments",), ("ledger",), tuple(script.story))


def groups() -> ScenarioResult:
    """Two consumers share four partitions; one freezes, is evicted, and its late commit is
    refused while the other takes over its partitions."""
    broker = Broker()
    broker.create_topic("orders", 4)
    story: list[str] = []
    world = GroupHarness(broker, {"orders": 4})
    told = 0

    def say(line: str, **_: object) -> None:
        """Tell ``line``, after what the coordinator did since the last line."""
        nonlocal told
        coordinator = broker.group_coordinator
        new = coordinator.events_written - told
        assert new <= len(coordinator.events), "more events than the coordinator keeps"
        for event in list(coordinator.events)[len(coordinator.events) - new :]:
            if event.what != "group created":
                who = f" ({event.member_id})" if event.member_id else ""
                story.append(f"t={event.at_ms / 1000:.1f}s  coordinator: {event.what}{who}")
        told = coordinator.events_written
        if line:
            story.append(f"t={world.now:.1f}s  {line}")

    world.say = say
    for name in ("c1", "c2"):
        protocol = GroupMemberProtocol(
            "billing",
            ("orders",),
            client_id=name,
            assignors=("range",),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        world.consumers.append(SimConsumer(name, protocol))
    c1, c2 = world.consumers

    def commit(consumer: SimConsumer, offsets: dict[int, int]) -> None:
        request = consumer.protocol.commit_request(
            {TopicPartition("orders", p): offset for p, offset in offsets.items()}
        )
        member = consumer.protocol.member_id or "(no member)"
        response = broker.handle(request, now=world.now)
        assert isinstance(response, OffsetCommitResponse)
        error = response.partitions[0].error_code
        outcome = "accepted" if error is ErrorCode.NONE else f"refused: {error.name}"
        shown = ", ".join(f"p{p} -> {offset}" for p, offset in offsets.items())
        say(
            f"{consumer.name} commits {shown} as {member} of generation "
            f"{request.generation_id}: {outcome}"
        )
        # A refused commit tells the consumer it lost its place: it rejoins.
        world.send(consumer, consumer.protocol.on_commit_response(response))

    say("c1 and c2 join group 'billing' (range assignment, session timeout 10 s)")
    world.join(c1)
    world.now += 0.5
    world.join(c2)
    world.advance(7.0, step=0.5)
    commit(c1, {0: 5, 1: 3})
    commit(c2, {2: 4, 3: 6})
    say("c1 freezes (a long garbage-collection pause): no heartbeats")
    c1.paused = True
    world.advance(14.0, step=0.5)
    commit(c2, {0: 7, 1: 5})
    say("c1 wakes up, still sure it owns p0 and p1")
    c1.paused = False
    commit(c1, {0: 9})
    world.advance(8.0, step=0.5)
    commit(c1, {0: 8})
    say("")
    return ScenarioResult(broker, (), ("billing",), tuple(story))


# --- scenarios on the simulated cluster: clients, faults and a trace ------------------------


def _payments(count: int, start: int = 0) -> list[bytes]:
    from minikafka.pipelines import payment_event

    return [payment_event(number) for number in range(start, start + count)]


def _ids(values: Iterable[bytes | None]) -> str:
    from minikafka.pipelines.base import Event

    return ", ".join(Event.parse(value).transaction_id for value in values) or "nothing"


def lost_ack() -> ScenarioResult:
    """One payment event, one lost acknowledgement, one retry: twice without idempotence."""
    import minikafka
    from minikafka import Fault, FaultPlan

    story: list[str] = []
    plan = FaultPlan(
        [
            Fault.drop_response(api="Produce", nth=1, client="plain"),
            Fault.drop_response(api="Produce", nth=1, client="idempotent"),
        ]
    )

    async def main() -> ScenarioResult:
        async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
            await cluster.create_topic("payments", partitions=2)
            (event,) = _payments(1)
            for partition, name, idempotent in ((0, "plain", False), (1, "idempotent", True)):
                producer = cluster.producer(client_id=name, enable_idempotence=idempotent)
                async with producer:
                    started = cluster.now()
                    metadata = await producer.send_and_wait("payments", event, partition=partition)
                    story.append(
                        f"t={started:.1f}s  {name} (enable_idempotence={idempotent}) sends "
                        f"TXN5001 to payments-{partition}; the write lands, the answer is lost"
                    )
                    story.append(
                        f"t={cluster.now():.1f}s  {name}: no answer after request_timeout; it "
                        f"sends again and gets offset {metadata.offset}"
                    )
                copies = cluster.broker.log("payments", partition).batch_count
                verdict = (
                    "the broker keeps both copies: a duplicate payment"
                    if copies > 1
                    else "the broker saw the same producer id and sequence: one copy"
                )
                story.append(f"          payments-{partition} holds {copies} batch(es): {verdict}")
            return ScenarioResult(
                cluster.broker, ("payments",), (), tuple(story), cluster.trace, ("Produce",)
            )

    return minikafka.run(main)


def _pipeline_scenario(model: str, plan_text: str, plan: Any, lines: list[str]) -> ScenarioResult:
    from minikafka.pipelines import MODELS, run_pipeline
    from minikafka.pipelines.base import GROUP, INPUT_TOPIC, OUTPUT_TOPIC

    result = run_pipeline(model, events=12, partitions=1, faults=plan)
    assert result.broker is not None
    story = [f"{model}, 12 payment events, under {plan_text}", *lines]
    story.append(f"sent (acknowledged): {len(result.sent)} events")
    places = [("output topic", result.topic)] if MODELS[model].effects_in == "topic" else []
    if model != "exactly-once":
        places.append(("database", result.database))
    for where, counts in places:
        lost = [key for key in result.sent if counts.get(key, 0) == 0]
        twice = [key for key in result.sent if counts.get(key, 0) > 1]
        story.append(
            f"{where}: {sum(counts.values())} effects; lost: {_list(lost)}; "
            f"applied more than once: {_list(twice)}"
        )
    if model == "exactly-once+external-db":
        story.append(f"balance: {result.balance}, owed {result.expected_balance}")
    topics = (INPUT_TOPIC, OUTPUT_TOPIC) if result.topic else (INPUT_TOPIC,)
    return ScenarioResult(result.broker, topics, (GROUP,), tuple(story), result.trace)


def _list(keys: Sequence[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:4])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > 4 else ''})"


def commit_before_process() -> ScenarioResult:
    """at-most-once: the worker commits, then crashes while it processes the batch."""
    from minikafka import Fault, FaultPlan

    return _pipeline_scenario(
        "at-most-once",
        "a crash right after the worker's first OffsetCommit",
        FaultPlan([Fault.client_crash(client="worker-1", after="OffsetCommit")]),
        [
            "worker-1 polls a batch, commits the offsets after it, then dies before it "
            "processes any of it",
            "worker-1 restarts, finds the batch committed and goes on after it: those events "
            "are lost",
        ],
    )


def process_before_commit() -> ScenarioResult:
    """at-least-once: the worker processes, then crashes before it commits."""
    from minikafka import Fault, FaultPlan

    return _pipeline_scenario(
        "at-least-once",
        "a crash halfway through the first batch",
        FaultPlan([Fault.client_crash(client="worker-1", at=3.55)]),
        [
            "worker-1 sends an SMS for each event of its batch; it dies before it commits",
            "worker-1 restarts from the last committed offset and processes the batch again: "
            "the first events get a second SMS",
        ],
    )


def external_db() -> ScenarioResult:
    """exactly-once+external-db: the topic stays exact, the balance does not."""
    from minikafka import Fault, FaultPlan

    return _pipeline_scenario(
        "exactly-once+external-db",
        "a crash halfway through the first transaction",
        FaultPlan([Fault.client_crash(client="worker-1", at=3.55)]),
        [
            "worker-1 writes each event to the ledger topic in a transaction, and adds its "
            "amount to the balance in sqlite, outside the transaction",
            "it dies mid-transaction: the coordinator aborts the ledger writes, read_committed "
            "hides them, and the batch is processed again",
            "the balance updates were not part of the transaction: they happen twice",
        ],
    )


def aborted_transaction() -> ScenarioResult:
    """An aborted and a committed transaction, read with both isolation levels."""
    import minikafka
    from minikafka import TopicPartition

    story: list[str] = []

    async def main() -> ScenarioResult:
        async with minikafka.open_cluster(seed=1) as cluster:
            await cluster.create_topic("ledger", partitions=1)
            first, second = _payments(2), _payments(2, start=2)
            async with cluster.producer(transactional_id="ledger-writer") as producer:
                producer.begin_transaction()
                for value in first:
                    await producer.send_and_wait("ledger", value)  # in the log, then aborted
                await producer.abort_transaction()
                story.append(f"t={cluster.now():.1f}s  ledger-writer writes {_ids(first)}, aborts")
                producer.begin_transaction()
                for value in second:
                    await producer.send("ledger", value)
                await producer.commit_transaction()
                story.append(
                    f"t={cluster.now():.1f}s  ledger-writer writes {_ids(second)}, commits"
                )
            for isolation in ("read_uncommitted", "read_committed"):
                reader = cluster.consumer(
                    client_id=isolation.replace("_", "-"),
                    isolation_level=isolation,
                    auto_offset_reset="earliest",
                )
                async with reader:
                    reader.assign([TopicPartition("ledger", 0)])
                    seen = [
                        r.value
                        for batch in [await reader.getmany(timeout=2.0)]
                        for records in batch.values()
                        for r in records
                    ]
                story.append(f"          a {isolation} consumer reads: {_ids(seen)}")
            story.append(
                "          the ABORT marker and the aborted list in the fetch answer let "
                "read_committed skip the aborted writes; read_uncommitted returns them"
            )
            return ScenarioResult(cluster.broker, ("ledger",), (), tuple(story), cluster.trace)

    return minikafka.run(main)


def zombie_fencing() -> ScenarioResult:
    """Two producers with one transactional id: the newer one fences the older."""
    import trio

    import minikafka
    from minikafka import Fault, FaultPlan

    story: list[str] = []
    plan = FaultPlan([Fault.pause(client="old-instance", at=0.5, seconds=5.0)])

    async def main() -> ScenarioResult:
        async with minikafka.open_cluster(seed=1, faults=plan) as cluster:
            await cluster.create_topic("ledger", partitions=1)
            (event,) = _payments(1)
            old = cluster.producer(client_id="old-instance", transactional_id="ledger-writer")
            new = cluster.producer(client_id="new-instance", transactional_id="ledger-writer")
            outcome: list[str] = []

            async def old_commits() -> None:
                await trio.sleep_until(trio.current_time() + 1.0)  # into the pause
                try:
                    await old.commit_transaction()
                    outcome.append("committed: THE ZOMBIE WAS NOT FENCED")
                except minikafka.ProducerFencedError as error:
                    outcome.append(f"refused ({type(error).__name__}); it must close")

            async with old:
                old.begin_transaction()
                await old.send_and_wait("ledger", event)
                story.append(
                    f"t={cluster.now():.1f}s  old-instance (epoch 0) writes TXN5001; at t=0.5s "
                    "it freezes (a long pause) just as it is about to commit"
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(old_commits)
                    await trio.sleep(2.0)
                    async with new:
                        story.append(
                            f"t={cluster.now():.1f}s  new-instance starts with the same "
                            "transactional id: InitProducerId bumps the epoch and aborts the "
                            "open transaction"
                        )
                        new.begin_transaction()
                        await new.send("ledger", event)
                        await new.commit_transaction()
                        story.append(
                            f"t={cluster.now():.1f}s  new-instance writes TXN5001, commits"
                        )
                        await trio.sleep(5.0)  # the old one wakes meanwhile
                story.append(
                    "t=5.5s  old-instance wakes up and sends its EndTxn with epoch 0: " + outcome[0]
                )
            await trio.sleep(1.0)  # the markers
            return ScenarioResult(cluster.broker, ("ledger",), (), tuple(story), cluster.trace)

    return minikafka.run(main)


def rebalance() -> ScenarioResult:
    """A second consumer joins: partitions move, and the first commits before it gives up."""
    import trio

    import minikafka

    story: list[str] = []

    async def main() -> ScenarioResult:
        async with minikafka.open_cluster(seed=1) as cluster:
            await cluster.create_topic("payments", partitions=3)
            async with cluster.producer(client_id="source") as source:
                for index, value in enumerate(_payments(6)):
                    await source.send_and_wait("payments", value, partition=index % 3)
            settings: dict[str, Any] = {
                "group_id": "billing",
                "auto_offset_reset": "earliest",
                "partition_assignment_strategy": ("range",),
            }
            first = cluster.consumer("payments", client_id="c1", **settings)
            async with first:
                await first.getmany(timeout=5.0)
                story.append(
                    f"t={cluster.now():.1f}s  c1 joins alone and owns "
                    f"{_tps(first.assignment())}; it reads every partition"
                )
                second = cluster.consumer("payments", client_id="c2", **settings)
                async with second:
                    story.append(f"t={cluster.now():.1f}s  c2 joins: rebalance started")

                    async def poll_second() -> None:
                        await second.getmany(timeout=10.0)

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(poll_second)
                        await first.getmany(timeout=10.0)
                    (joined, *_) = cluster.trace.select(kind="assigned", source="c2")
                    story.append(
                        f"t={joined.time:.1f}s  generation "
                        f"{first.group_metadata().generation_id}: c1 owns "
                        f"{_tps(first.assignment())}, c2 owns {_tps(second.assignment())}"
                    )
                    story.append(
                        "          before it gave partitions up, c1 committed what it had read "
                        "(auto-commit on revoke), so c2 starts after it"
                    )
            return ScenarioResult(
                cluster.broker, ("payments",), ("billing",), tuple(story), cluster.trace
            )

    return minikafka.run(main)


def _tps(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(partitions)) or "nothing"


SCENARIOS: dict[str, Scenario] = {
    "transactions": Scenario(
        "transactions",
        "a committed, an aborted and an open transaction over two partitions, with the "
        "group's committed and pending offsets; where the HW and the LSO stand",
        transactions,
    ),
    "groups": Scenario(
        "groups",
        "two consumers share a topic; one freezes past its session timeout, is evicted, and "
        "its late commit is refused while the other takes over: members, generations, "
        "assignments, offsets and the rebalance timeline",
        groups,
    ),
    "lost-ack": Scenario(
        "lost-ack",
        "a lost acknowledgement and a retry, without idempotence (two copies) and with it "
        "(the broker drops the retry)",
        lost_ack,
    ),
    "commit-before-process": Scenario(
        "commit-before-process",
        "at-most-once: the worker commits, crashes before processing, and the batch is lost",
        commit_before_process,
    ),
    "process-before-commit": Scenario(
        "process-before-commit",
        "at-least-once: the worker processes, crashes before committing, and repeats the batch",
        process_before_commit,
    ),
    "aborted-transaction": Scenario(
        "aborted-transaction",
        "an aborted and a committed transaction, read with read_uncommitted and read_committed",
        aborted_transaction,
    ),
    "zombie-fencing": Scenario(
        "zombie-fencing",
        "a second producer with the same transactional id fences the first: its commit is refused",
        zombie_fencing,
    ),
    "rebalance": Scenario(
        "rebalance",
        "a second consumer joins the group: the partitions move, and offsets are committed "
        "before they do",
        rebalance,
    ),
    "external-db": Scenario(
        "external-db",
        "exactly-once into Kafka, but a balance in sqlite outside the transaction: the topic "
        "is exact, the balance is not",
        external_db,
    ),
}


def run_scenario(name: str) -> ScenarioResult:
    """Run scenario ``name``; ``KeyError`` with the list of names if there is none."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return scenario.run()
