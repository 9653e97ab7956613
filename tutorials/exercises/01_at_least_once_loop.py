"""Exercise 1 (easy): turn an at-most-once consumer loop into an at-least-once one.

The loop below reads payment events and records each one in the database
(``worker.sink.apply``). It commits the offsets of a batch *before* it processes the batch,
so a crash in between loses payments. Reorder it so that no payment is ever lost, even if
some are processed twice after a crash.

Check your work: ``minikafka exercises check 1 tutorials/exercises/01_at_least_once_loop.py``
"""

from __future__ import annotations

from minikafka.pipelines.base import Worker, next_offsets


async def run(worker: Worker) -> None:
    async with worker.consumer() as consumer:
        async for batch in worker.batches(consumer):
            # ---- your part starts here --------------------------------------------------
            await consumer.commit(next_offsets(batch))
            for records in batch.values():
                for record in records:
                    event = await worker.process(record)
                    worker.sink.apply(event.transaction_id, event.amount, by=worker.name)
            # ---- your part ends here ----------------------------------------------------
