"""Exercise 1, a reference solution: process the batch, then commit its offsets."""

from __future__ import annotations

from minikafka.pipelines.base import Worker, next_offsets


async def run(worker: Worker) -> None:
    async with worker.consumer() as consumer:
        async for batch in worker.batches(consumer):
            for records in batch.values():
                for record in records:
                    event = await worker.process(record)
                    worker.sink.apply(event.transaction_id, event.amount, by=worker.name)
            await consumer.commit(next_offsets(batch))  # only once every effect is applied
