"""Exercise 5 (hard): write the read-process-write loop with transactional offsets.

The loop below reads payment events with a read_committed consumer and writes each one to
the ``ledger`` topic (OUTPUT_TOPIC) inside a transaction. It is not exactly-once yet: it
commits the input offsets with ``consumer.commit(...)`` *after* ``commit_transaction()``,
outside the transaction. A crash between the two leaves the output committed but the offsets
not, so the successor reads the batch again and writes it to the ledger a second time.

Make it exactly-once: within each batch's transaction, begin, send each processed record to
OUTPUT_TOPIC, then ``await producer.send_offsets_to_transaction(next_offsets(batch),
consumer.group_metadata())``, then ``await producer.commit_transaction()``, so that the
output and the offsets commit together or not at all. On a ``KafkaError``: re-raise it if
the producer is in ``TransactionState.FATAL_ERROR`` (fenced: this process is a zombie), else
abort the transaction (unless the producer is already ``READY``) and seek each partition of
the batch back to its committed offset (``await consumer.committed(tp)``, then
``consumer.seek(tp, offset)``), since an abort does not rewind the consumer; then call
``worker.repositioned(consumer)``.

The checker searches fault plans (crashes of the worker at a time or after a call, lost
answers) for one under which a payment is lost or is in the ledger twice.

Check your work: ``minikafka exercises check 5 tutorials/exercises/05_read_process_write.py``
"""

from __future__ import annotations

from minikafka.client.errors import KafkaError
from minikafka.client.producer import TransactionState
from minikafka.pipelines.base import OUTPUT_TOPIC, TRANSACTION_TIMEOUT, Worker, next_offsets

__all__ = ["KafkaError", "TransactionState", "run"]


async def run(worker: Worker) -> None:
    consumer = worker.consumer(isolation_level="read_committed")
    producer = worker.producer(
        client_id=f"{worker.name}-out",
        transactional_id=f"{worker.name}-tx",
        transaction_timeout=TRANSACTION_TIMEOUT,
    )
    async with consumer, producer:
        async for batch in worker.batches(consumer):
            # ---- your part starts here --------------------------------------------------
            producer.begin_transaction()
            for records in batch.values():
                for record in records:
                    await worker.process(record)
                    await producer.send(OUTPUT_TOPIC, record.value, key=record.key)
            await producer.commit_transaction()
            await consumer.commit(next_offsets(batch))  # outside the transaction: too late
            # ---- your part ends here ----------------------------------------------------
