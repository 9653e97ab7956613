"""``exactly-once+external-db``: the exactly-once loop, plus a non-idempotent update of an
external database ("add the amount to the balance") made outside the Kafka transaction. The
output topic stays exact; the database does not: when a transaction aborts or the worker
crashes before its commit, the batch is processed again and the database is updated again.
Kafka's transactions cannot reach a system that is not Kafka."""

from __future__ import annotations

from minikafka.pipelines.base import Event, Worker
from minikafka.pipelines.exactly_once import transactional_loop
from minikafka.pipelines.sink import Sink

__all__ = ["run"]


def _add_to_balance(sink: Sink, event: Event) -> None:
    """Post the event and add its amount to the balance: not idempotent."""
    sink.apply(event.transaction_id, event.amount, by="balance")
    sink.add_to_balance(event.amount)


async def run(worker: Worker) -> None:
    await transactional_loop(worker, also=_add_to_balance)
