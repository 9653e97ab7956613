"""Small scripted scenarios: each drives a broker through one idea and leaves it to be looked at.

``minikafka show SCENARIO`` runs one and draws what it left behind. A scenario is a plain
function that talks to the core with Kafka's requests, so it reads as the protocol does; it
returns the broker, and the names a picture needs.
"""

from __future__ import annotations

from collections.abc import Callable

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
from minikafka.testing.groups import GroupHarness, SimConsumer

__all__ = ["SCENARIOS", "Scenario", "ScenarioResult", "run_scenario"]


@attrs.frozen
class ScenarioResult:
    """What a scenario leaves: the broker, the topics and groups worth drawing, a story."""

    broker: Broker
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    story: tuple[str, ...]


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
}


def run_scenario(name: str) -> ScenarioResult:
    """Run scenario ``name``; ``KeyError`` with the list of names if there is none."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return scenario.run()
