"""Exercise 5, a reference solution: each batch is one transaction that writes the output
*and* commits the input offsets (``send_offsets_to_transaction``); after an abort the
consumer seeks back to the committed offsets, since Kafka does not rewind it."""

from __future__ import annotations

from minikafka.client.errors import KafkaError
from minikafka.client.producer import TransactionState
from minikafka.pipelines.base import OUTPUT_TOPIC, TRANSACTION_TIMEOUT, Worker, next_offsets


async def run(worker: Worker) -> None:
    consumer = worker.consumer(isolation_level="read_committed")
    producer = worker.producer(
        client_id=f"{worker.name}-out",
        transactional_id=f"{worker.name}-tx",
        transaction_timeout=TRANSACTION_TIMEOUT,
    )
    async with consumer, producer:
        async for batch in worker.batches(consumer):
            try:
                producer.begin_transaction()
                for records in batch.values():
                    for record in records:
                        await worker.process(record)
                        await producer.send(OUTPUT_TOPIC, record.value, key=record.key)
                # The offsets go into the transaction: output and offsets commit together.
                await producer.send_offsets_to_transaction(
                    next_offsets(batch), consumer.group_metadata()
                )
                await producer.commit_transaction()
            except KafkaError:
                if producer.transaction_state is TransactionState.FATAL_ERROR:
                    raise  # fenced: this process is a zombie; let it die and restart
                if producer.transaction_state is not TransactionState.READY:
                    await producer.abort_transaction()
                # The consumer's position is past the aborted batch: rewind it.
                owned = consumer.assignment()
                for tp, records in sorted(batch.items()):
                    if tp in owned:
                        committed = await consumer.committed(tp)
                        consumer.seek(tp, committed if committed is not None else records[0].offset)
                worker.repositioned(consumer)
