"""Hypothesis state machines and strategies for minikafka, made to be subclassed.

``IdempotenceMachine`` checks the producer deduplication invariants under faults;
``AtomicCommitMachine`` and ``FencingMachine`` check transactions (atomic commit, read_committed,
transactional offsets, zombie fencing); ``GroupMachine`` checks consumer groups (one owner per
partition, no zombie commits). Subclass one to add an invariant, or call
``Machine.breaking(Safeguard.X)`` to watch one fail.
"""

from minikafka.testing.controls import NoCounterexample, find_counterexample
from minikafka.testing.dedup import IdempotenceMachine, InFlight, SentRecord
from minikafka.testing.groups import GroupHarness, GroupMachine, SimConsumer
from minikafka.testing.profiles import load_profile, register_profiles
from minikafka.testing.story import LogRow, StoryLine
from minikafka.testing.transactions import AtomicCommitMachine, FencingMachine, TransactionMachine

__all__ = [
    "AtomicCommitMachine",
    "FencingMachine",
    "GroupHarness",
    "GroupMachine",
    "IdempotenceMachine",
    "InFlight",
    "LogRow",
    "NoCounterexample",
    "SentRecord",
    "SimConsumer",
    "StoryLine",
    "TransactionMachine",
    "find_counterexample",
    "load_profile",
    "register_profiles",
]
