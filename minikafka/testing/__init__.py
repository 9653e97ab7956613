"""Hypothesis state machines and strategies for minikafka, made to be subclassed.

``IdempotenceMachine`` checks the producer deduplication invariants under faults; subclass it
to add an invariant, or call ``IdempotenceMachine.breaking(Safeguard.X)`` to watch one fail.
"""

from minikafka.testing.dedup import IdempotenceMachine, InFlight, SentRecord
from minikafka.testing.profiles import load_profile, register_profiles

__all__ = ["IdempotenceMachine", "InFlight", "SentRecord", "load_profile", "register_profiles"]
