"""The exceptions a client raises: one per Kafka error a user meets, plus misuse and crashes.

``KafkaError`` carries the broker's ``ErrorCode`` as ``.code``; ``error_for(code, message)``
picks the subclass, as Kafka's ``Errors.exception()`` does. Misuse of the API (commit without a
transaction, poll before subscribe) is ``IllegalStateError``, raised at once with what to do
instead. A client stopped by ``crash()`` or by a fault in the plan raises ``ClientCrashed`` from
every call.
"""

from __future__ import annotations

from minikafka.core.errors import ErrorCode

__all__ = [
    "ClientCrashed",
    "CommitFailedError",
    "ConcurrentTransactionsError",
    "IllegalGenerationError",
    "IllegalStateError",
    "InvalidProducerEpochError",
    "InvalidTxnStateError",
    "KafkaError",
    "KafkaTimeoutError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "ProducerFencedError",
    "RebalanceInProgressError",
    "TransactionAbortableError",
    "UnknownMemberIdError",
    "UnknownTopicOrPartitionError",
    "error_for",
]


class KafkaError(Exception):
    """An error the broker answered (``code``), with its message."""

    default_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    def __init__(self, message: str = "", *, code: ErrorCode | None = None) -> None:
        self.code = code if code is not None else self.default_code
        super().__init__(f"{self.code.name}: {message}" if message else self.code.name)

    @property
    def retriable(self) -> bool:
        """True when Kafka's client would retry the request as it is."""
        return self.code.is_retriable


class ProducerFencedError(KafkaError):
    """A newer producer with the same transactional id exists: this one must close."""

    default_code = ErrorCode.PRODUCER_FENCED


class InvalidProducerEpochError(KafkaError):
    """The request carried an epoch older than the broker's: abort the transaction."""

    default_code = ErrorCode.INVALID_PRODUCER_EPOCH


class OutOfOrderSequenceError(KafkaError):
    default_code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class IllegalGenerationError(KafkaError):
    default_code = ErrorCode.ILLEGAL_GENERATION


class UnknownMemberIdError(KafkaError):
    default_code = ErrorCode.UNKNOWN_MEMBER_ID


class RebalanceInProgressError(KafkaError):
    default_code = ErrorCode.REBALANCE_IN_PROGRESS


class UnknownTopicOrPartitionError(KafkaError):
    default_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


class InvalidTxnStateError(KafkaError):
    default_code = ErrorCode.INVALID_TXN_STATE


class ConcurrentTransactionsError(KafkaError):
    default_code = ErrorCode.CONCURRENT_TRANSACTIONS


class TransactionAbortableError(KafkaError):
    """The transaction cannot commit any more; ``abort_transaction()`` is the way out."""

    default_code = ErrorCode.TRANSACTION_ABORTABLE


class OffsetOutOfRangeError(KafkaError):
    default_code = ErrorCode.OFFSET_OUT_OF_RANGE


class KafkaTimeoutError(KafkaError):
    """No answer in time (Kafka's TimeoutException): the outcome is unknown."""

    default_code = ErrorCode.REQUEST_TIMED_OUT


class CommitFailedError(KafkaError):
    """An offset commit refused because the consumer is no longer a member of the generation
    it believes in (Kafka's CommitFailedException); ``code`` says which check failed."""


class IllegalStateError(RuntimeError):
    """The API was used in an order it does not allow; the message says what to do instead."""


class ClientCrashed(Exception):
    """The client crashed (``crash()`` or a fault in the plan): it does nothing any more.

    Its memory is gone: nothing was flushed, committed or left. Create a new client (with the
    same transactional id or group id) to take over.
    """


_BY_CODE: dict[ErrorCode, type[KafkaError]] = {
    cls.default_code: cls
    for cls in (
        ProducerFencedError,
        InvalidProducerEpochError,
        OutOfOrderSequenceError,
        IllegalGenerationError,
        UnknownMemberIdError,
        RebalanceInProgressError,
        UnknownTopicOrPartitionError,
        InvalidTxnStateError,
        ConcurrentTransactionsError,
        TransactionAbortableError,
        OffsetOutOfRangeError,
        KafkaTimeoutError,
    )
}


def error_for(code: ErrorCode, message: str | None = None) -> KafkaError:
    """The exception for an error code, as specific as there is."""
    return _BY_CODE.get(code, KafkaError)(message or "", code=code)
