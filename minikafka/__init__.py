"""minikafka: a pure-Python mini-broker for learning, and testing, Kafka's delivery semantics."""

from minikafka.core import (
    Broker,
    BrokerConfig,
    ErrorCode,
    Record,
    RecordMetadata,
    Safeguard,
    TopicPartition,
)
from minikafka.sim import Fault, FaultPlan, run

__version__ = "0.1.0"

__all__ = [
    "Broker",
    "BrokerConfig",
    "ErrorCode",
    "Fault",
    "FaultPlan",
    "Record",
    "RecordMetadata",
    "Safeguard",
    "TopicPartition",
    "__version__",
    "run",
]
