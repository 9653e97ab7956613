"""``at-most-once``: commit the offsets, then process. A crash after the commit and before the
effects loses those events; none is ever applied twice."""

from __future__ import annotations

from minikafka.pipelines.base import Worker, next_offsets

__all__ = ["run"]


async def run(worker: Worker) -> None:
    async with worker.consumer() as consumer:
        async for batch in worker.batches(consumer):
            await consumer.commit(next_offsets(batch))  # first the commit ...
            for records in batch.values():
                for record in records:  # ... then the effects
                    event = await worker.process(record)
                    worker.sink.apply(event.transaction_id, event.amount, by=worker.name)
