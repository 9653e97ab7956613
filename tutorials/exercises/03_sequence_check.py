"""Exercise 3 (medium-hard): write the broker's sequence check and plug it into the broker.

An idempotent producer numbers its records: each batch carries the producer id, the producer
epoch and the sequence of its first record (``batch.base_sequence``; ``batch.last_sequence`` is
the sequence of its last record). Before appending a batch, the broker compares it with what it
remembers of that producer on the partition, and answers one of three things:

- ``APPEND``: the batch is new and in order; the broker appends it (and then records it).
- ``Duplicate(original)``: the batch is a retry of one already appended (its response was lost,
  say); the broker appends nothing and answers success with the original batch's offset.
  ``original`` is the ``BatchMetadata`` the broker kept of that batch.
- ``Rejected(error, message)``: the batch is refused with an ``ErrorCode`` and a message saying
  why, in plain words.

What the broker remembers, ``entry`` (a ``ProducerStateEntry``, or None):

- ``entry.producer_epoch``: the producer's current epoch on this partition;
- ``entry.batches``: the last five batches appended in that epoch, oldest first, each a
  ``BatchMetadata`` with ``first_sequence``, ``last_sequence`` and ``first_offset`` (where the
  batch starts in the log; a ``Duplicate`` answers with it);
- ``entry.last_sequence``: the last sequence appended in that epoch, or -1 when there is no batch
  yet in this epoch (e.g. a transaction marker moved the producer to a new epoch); then the next
  batch in the epoch must start at 0.

``entry`` is None when the partition knows nothing of the producer (a new producer, or its state
expired).

Kafka's rules, in Kafka's order (the order matters):

1. A retry of one of the last five batches -- the same epoch, the same first *and* last
   sequence -- is a ``Duplicate`` of that batch.
2. An older epoch than the entry's is refused: ``ErrorCode.INVALID_PRODUCER_EPOCH`` (a newer
   instance of the producer has taken over; this one is a zombie).
3. A newer epoch must start at sequence 0, else ``ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER``.
4. The same epoch must continue at the last sequence + 1, else
   ``ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER``. Sequences are int32s: after ``2**31 - 1``
   (``MAX_SEQUENCE``) comes 0. ``in_sequence(last, next)`` and ``add_sequence(sequence, n)`` do
   the wrap for you.
5. No state for the producer (``entry is None``): append, whatever the sequence (KIP-360).

Use what is imported below, but not the broker's own check (``ProducerStateTable.validate``,
``ProducerStateEntry.find_duplicate``): the checker switches those off while your check runs.
Your check must only look: the broker records an appended batch itself.

Below, ``check`` appends everything, so a retry becomes a second copy. Write the rules in the
marked part. Tutorial 4 (``minikafka tutorial 4``) shows why the broker needs them; Kafka's own
version is ``ProducerAppendInfo`` in the broker (``checkProducerEpoch``, ``checkSequence``).

The broker uses your check in place of its own when you give it in its configuration, which is
what the checker does::

    broker = Broker(BrokerConfig(sequence_check=check))

Check your work: ``minikafka exercises check 3 tutorials/exercises/03_sequence_check.py``. The
checker first compares your answers with the broker's on hundreds of drawn cases (and shows the
smallest case where they differ), then runs producers over a faulty network against a broker
that uses your check.
"""

from __future__ import annotations

from minikafka.core.errors import ErrorCode
from minikafka.core.producer_state import (
    APPEND,
    Append,
    BatchMetadata,
    Duplicate,
    ProducerStateEntry,
    Rejected,
    in_sequence,
)
from minikafka.core.records import MAX_SEQUENCE, RecordBatch, add_sequence

__all__ = [
    "APPEND",
    "MAX_SEQUENCE",
    "BatchMetadata",
    "ErrorCode",
    "add_sequence",
    "check",
    "in_sequence",
]


def check(entry: ProducerStateEntry | None, batch: RecordBatch) -> Append | Duplicate | Rejected:
    # ---- your part starts here --------------------------------------------------------------
    return APPEND
    # ---- your part ends here ----------------------------------------------------------------
