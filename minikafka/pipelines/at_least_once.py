"""``at-least-once``: process, then commit the offsets. A crash after the effects and before
the commit applies those events again on restart; none is ever lost."""

from __future__ import annotations

from minikafka.pipelines.base import Worker, next_offsets

__all__ = ["run"]


async def run(worker: Worker) -> None:
    async with worker.consumer() as consumer:
        async for batch in worker.batches(consumer):
            for records in batch.values():
                for record in records:  # first the effects ...
                    event = await worker.process(record)
                    worker.sink.apply(event.transaction_id, event.amount, by=worker.name)
            await consumer.commit(next_offsets(batch))  # ... then the commit
