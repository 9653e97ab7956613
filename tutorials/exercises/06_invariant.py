"""Exercise 6 (hard): write an invariant that catches a broken broker.

``IdempotenceMachine`` (see ``minikafka/testing/dedup.py`` and tutorial 10) plays idempotent
producers against a broker over a network that loses, doubles and delays requests. Below is a
subclass with one more invariant, yours; right now it checks nothing.

Write it so that it fails when an acknowledged record is in the log more than once: a broker
whose producer dedup is off (``Safeguard.PRODUCER_DEDUP``) appends a retried batch a second
time. Your method runs after every step, and may read:
- ``self.sent``: every record sent so far, by value (bytes); ``entry.offset`` is the offset
  its acknowledgement gave, or None while it has none; ``entry.tp`` is its partition;
- ``self.partitions``: how many partitions the topic ``"payments"`` (TOPIC) has;
- ``self.broker.log(TOPIC, partition).batches()``: the partition's record batches; each has
  ``.records`` (each with ``.value``, bytes) and ``.base_offset``.
Raise an ``AssertionError`` (or ``assert``) with a message that says what is wrong.

The checker switches the machine's own invariants off, so it is yours that must notice: it
must find a counterexample against a broker with producer dedup off, and none against a
correct broker.

Check your work: ``minikafka exercises check 6 tutorials/exercises/06_invariant.py``
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from minikafka.testing import IdempotenceMachine

TOPIC = "payments"


class MyMachine(IdempotenceMachine):
    @invariant()
    def no_acknowledged_record_twice(self) -> None:
        # ---- your part starts here ------------------------------------------------------
        pass
        # ---- your part ends here --------------------------------------------------------
