"""``exactly-once``: Kafka to Kafka. The consumer reads with read_committed; each batch becomes
one transaction that writes the effects to the ``ledger`` topic and commits the input offsets
with them (``send_offsets_to_transaction`` with the consumer's group metadata, KIP-447). The
output and the offsets commit together or not at all. After an abort the consumer seeks back
to the committed offsets, since Kafka does not rewind it (KAFKA-17582)."""

from __future__ import annotations

from collections.abc import Callable

from minikafka.client.consumer import Consumer
from minikafka.client.errors import KafkaError
from minikafka.client.producer import TransactionState
from minikafka.core.records import ConsumerRecord, TopicPartition
from minikafka.pipelines.base import (
    OUTPUT_TOPIC,
    TRANSACTION_TIMEOUT,
    Event,
    Worker,
    next_offsets,
)
from minikafka.pipelines.sink import Sink

__all__ = ["OUTPUT_LINGER", "run", "transactional_loop"]

OUTPUT_LINGER = 1.0
"""Seconds the output producer lets a record wait for others to share its Produce request."""


async def run(worker: Worker) -> None:
    await transactional_loop(worker, also=None)


async def transactional_loop(worker: Worker, *, also: Callable[[Sink, Event], None] | None) -> None:
    """The read-process-write loop; ``also(sink, event)`` is a step outside the Kafka
    transaction, for each event."""
    consumer = worker.consumer(isolation_level="read_committed")
    producer = worker.producer(
        client_id=f"{worker.name}-out",
        # One transactional id per process (KIP-447): a process restarted in place fences its
        # own past; a replacement elsewhere fences a zombie through the group generation.
        transactional_id=f"{worker.name}-tx",
        transaction_timeout=TRANSACTION_TIMEOUT,
        # Nothing a transaction writes is visible before its commit, so its records may
        # wait to share Produce requests (Kafka Streams lingers for the same reason). A
        # second is short against a full poll's processing (10 s), so requests still go out,
        # and can still fail, in the middle of the transaction; most of what a small batch
        # writes goes out with the commit.
        linger=OUTPUT_LINGER,
    )
    async with consumer, producer:
        async for batch in worker.batches(consumer):
            try:
                producer.begin_transaction()
                for records in batch.values():
                    for record in records:
                        event = await worker.process(record)
                        await producer.send(OUTPUT_TOPIC, record.value, key=record.key)
                        if also is not None:
                            also(worker.sink, event)
                await producer.send_offsets_to_transaction(
                    next_offsets(batch), consumer.group_metadata()
                )
                await producer.commit_transaction()
            except KafkaError:
                if producer.transaction_state is TransactionState.FATAL_ERROR:
                    raise  # fenced: this worker is a zombie now; it restarts
                if producer.transaction_state is not TransactionState.READY:
                    await producer.abort_transaction()
                await _rewind(consumer, batch)
                worker.repositioned(consumer)


async def _rewind(consumer: Consumer, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
    """Read the aborted batch again: seek each partition back to its committed offset."""
    owned = consumer.assignment()
    for tp, records in sorted(batch.items()):
        if tp in owned:
            committed = await consumer.committed(tp)
            consumer.seek(tp, committed if committed is not None else records[0].offset)
