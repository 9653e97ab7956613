"""The sans-IO core: a broker and client protocol logic as pure, deterministic state machines.

Nothing here knows trio, clocks or sockets. ``Broker.handle(request, now=...)`` answers typed
requests; ``ProducerProtocol`` decides what a producer sends and ``GroupMemberProtocol`` what a
consumer group member sends. The layers above drive them.
"""

from minikafka.core.broker import Broker, BrokerSnapshot
from minikafka.core.client_state import (
    DeliveryReport,
    OutgoingRequest,
    ProducerClientState,
    ProducerProtocol,
    ProducerSettingsError,
)
from minikafka.core.config import BrokerConfig, ConfigError, Safeguard
from minikafka.core.errors import ErrorCode
from minikafka.core.group_member import ConsumerGroupMetadata, GroupMemberProtocol, MemberState
from minikafka.core.groups import GroupState
from minikafka.core.log import PartitionLog
from minikafka.core.messages import *  # noqa: F403
from minikafka.core.messages import __all__ as _messages_all
from minikafka.core.producer_state import NUM_BATCHES_TO_RETAIN, ProducerStateTable
from minikafka.core.records import (
    ConsumerRecord,
    ControlType,
    Record,
    RecordBatch,
    RecordMetadata,
    TopicPartition,
)

__all__ = [
    "NUM_BATCHES_TO_RETAIN",
    "Broker",
    "BrokerConfig",
    "BrokerSnapshot",
    "ConfigError",
    "ConsumerGroupMetadata",
    "ControlType",
    "DeliveryReport",
    "ErrorCode",
    "GroupMemberProtocol",
    "GroupState",
    "MemberState",
    "OutgoingRequest",
    "PartitionLog",
    "ProducerClientState",
    "ProducerProtocol",
    "ProducerSettingsError",
    "ProducerStateTable",
    "Record",
    "RecordBatch",
    "ConsumerRecord",
    "RecordMetadata",
    "Safeguard",
    "TopicPartition",
    *_messages_all,
]
