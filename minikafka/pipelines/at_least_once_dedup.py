"""``at-least-once+dedup``: effectively once. Each batch's effects and its next offsets go into
the database in one database transaction, with a unique constraint on the transaction id; on
(re)assignment the consumer starts from the offsets stored in the database, not Kafka's. A
replayed event is refused by the constraint, so each effect lands once."""

from __future__ import annotations

from minikafka.client.consumer import Consumer
from minikafka.core.records import TopicPartition
from minikafka.pipelines.base import INPUT_TOPIC, Worker, next_offsets

__all__ = ["run"]


class _RestoreOffsets:
    """When partitions are assigned, read from the offsets the database holds."""

    def __init__(self, worker: Worker, consumer: Consumer) -> None:
        self.worker = worker
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in sorted(assigned):
            stored = self.worker.sink.stored_offset(tp)
            if stored is not None:
                self.consumer.seek(tp, stored)


async def run(worker: Worker) -> None:
    consumer = worker.consumer()
    async with consumer:
        consumer.subscribe([INPUT_TOPIC], listener=_RestoreOffsets(worker, consumer))
        async for batch in worker.batches(consumer):
            events = []
            for records in batch.values():
                for record in records:
                    event = await worker.process(record)
                    events.append((event.transaction_id, event.amount))
            # Effects and offsets in one database transaction: both or neither.
            worker.sink.apply_once(events, next_offsets(batch), by=worker.name)
