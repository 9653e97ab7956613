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
    ProducePartitionData,
    ProduceRequest,
    Record,
    RecordBatch,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from minikafka.core.messages import Request, Response, error_codes

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


SCENARIOS: dict[str, Scenario] = {
    "transactions": Scenario(
        "transactions",
        "a committed, an aborted and an open transaction over two partitions, with the "
        "group's committed and pending offsets; where the HW and the LSO stand",
        transactions,
    ),
}


def run_scenario(name: str) -> ScenarioResult:
    """Run scenario ``name``; ``KeyError`` with the list of names if there is none."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return scenario.run()
