"""Exercise 4 (medium): compute the last stable offset.

A read_committed consumer must never see a record of a transaction that is still open: it
might yet abort. So the broker serves it the log only up to the *last stable offset* (LSO),
and a read_uncommitted consumer up to the high watermark (HW). Write the rule the broker
uses (Kafka's reference, section 3 "Read side"):

* ``high_watermark``: the offset below which every record is durable;
* ``open_first_offsets``: for each transaction still open on the partition, the offset of
  its first record, sorted from the lowest (empty if no transaction is open).

Return the offset a read_committed fetch may read up to (not including it): everything below
it must be decided, and it must never be above the high watermark.

The checker compares your rule with Kafka's on many small cases, then plugs your function
into the broker (``BrokerConfig(stable_offset=last_stable_offset)``) and runs the atomic-commit
state machine against it: transactions that commit, abort, and stay open while consumers read.

Check your work: ``minikafka exercises check 4 tutorials/exercises/04_last_stable_offset.py``
"""

from __future__ import annotations


def last_stable_offset(high_watermark: int, open_first_offsets: tuple[int, ...]) -> int:
    """The offset read_committed consumers may read up to."""
    # ---- your part starts here ----------------------------------------------------------
    return high_watermark
    # ---- your part ends here ------------------------------------------------------------
