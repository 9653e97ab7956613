"""Exercise 6, a reference solution: count each acknowledged record's copies in the log."""

from __future__ import annotations

from collections import Counter

from hypothesis.stateful import invariant

from minikafka.testing import IdempotenceMachine

TOPIC = "payments"


class MyMachine(IdempotenceMachine):
    @invariant()
    def no_acknowledged_record_twice(self) -> None:
        copies: Counter[bytes] = Counter()
        for partition in range(self.partitions):
            for batch in self.broker.log(TOPIC, partition).batches():
                for record in batch.records:
                    if record.value is not None:
                        copies[record.value] += 1
        for value, entry in self.sent.items():
            if entry.offset is not None and copies[value] > 1:
                raise AssertionError(
                    f"{value.decode()} was acknowledged, but the log of {entry.tp} holds it "
                    f"{copies[value]} times"
                )
