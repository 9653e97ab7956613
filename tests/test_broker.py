"""The broker as a state machine: topics, produce, fetch, list offsets, crashes and config."""

from __future__ import annotations

import pytest

from minikafka.core.broker import PRODUCER_ID_BLOCK_SIZE, Broker
from minikafka.core.config import BrokerConfig, ConfigError, Safeguard
from minikafka.core.errors import ErrorCode
from minikafka.core.messages import (
    ACKS_ALL,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    CreatableTopic,
    CreateTopicsRequest,
    CreateTopicsResponse,
    FetchPartition,
    FetchPartitionResponse,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ListOffsetsPartition,
    ListOffsetsPartitionResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    ProducePartitionData,
    ProducePartitionResponse,
    ProduceRequest,
    ProduceResponse,
    Request,
)
from minikafka.core.records import (
    MAX_SEQUENCE,
    ControlType,
    Record,
    RecordBatch,
    control_batch,
)

# --- helpers -------------------------------------------------------------------------------


def make_batch(
    *values: str,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    ts: int = 0,
    transactional: bool = False,
) -> RecordBatch:
    return RecordBatch(
        records=tuple(Record(value=v.encode(), timestamp=ts + i) for i, v in enumerate(values)),
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=transactional,
    )


def produce(
    broker: Broker,
    batch: RecordBatch,
    *,
    topic: str = "t",
    partition: int = 0,
    acks: int = ACKS_ALL,
    now: float = 0.0,
) -> ProducePartitionResponse:
    response = broker.handle(
        ProduceRequest(partitions=(ProducePartitionData(topic, partition, batch),), acks=acks),
        now=now,
    )
    assert isinstance(response, ProduceResponse)
    assert len(response.partitions) == 1
    return response.partitions[0]


def fetch(
    broker: Broker,
    offset: int,
    *,
    topic: str = "t",
    partition: int = 0,
    now: float = 0.0,
    partition_max_bytes: int = 1_048_576,
) -> FetchPartitionResponse:
    response = broker.handle(
        FetchRequest(partitions=(FetchPartition(topic, partition, offset, partition_max_bytes),)),
        now=now,
    )
    assert isinstance(response, FetchResponse)
    return response.partitions[0]


def list_offset(
    broker: Broker, timestamp: int, *, topic: str = "t", now: float = 0.0
) -> ListOffsetsPartitionResponse:
    response = broker.handle(
        ListOffsetsRequest(partitions=(ListOffsetsPartition(topic, 0, timestamp),)), now=now
    )
    assert isinstance(response, ListOffsetsResponse)
    return response.partitions[0]


def create(broker: Broker, *topics: CreatableTopic, validate_only: bool = False) -> list[ErrorCode]:
    response = broker.handle(
        CreateTopicsRequest(topics=topics, validate_only=validate_only), now=0.0
    )
    assert isinstance(response, CreateTopicsResponse)
    assert [r.name for r in response.topics] == [t.name for t in topics]
    for result in response.topics:
        assert (result.error_code is ErrorCode.NONE) == (result.error_message is None)
    return [r.error_code for r in response.topics]


def init_producer_id(broker: Broker, now: float = 0.0) -> int:
    response = broker.handle(InitProducerIdRequest(), now=now)
    assert isinstance(response, InitProducerIdResponse)
    assert response.error_code is ErrorCode.NONE
    assert response.producer_epoch == 0
    return response.producer_id


def broker_with_topic(config: BrokerConfig | None = None, partitions: int = 1) -> Broker:
    broker = Broker(config)
    broker.create_topic("t", partitions)
    return broker


def values(batches: tuple[RecordBatch, ...]) -> list[bytes | None]:
    return [record.value for batch in batches for record in batch.records]


# --- CreateTopics and Metadata -------------------------------------------------------------


def test_create_topics() -> None:
    broker = Broker()
    assert create(broker, CreatableTopic("a", 3), CreatableTopic("b.c_d-e", 1)) == [
        ErrorCode.NONE,
        ErrorCode.NONE,
    ]
    assert broker.topics() == {"a": 3, "b.c_d-e": 1}
    assert [log.partition for log in broker.logs()] == [0, 1, 2, 0]


def test_create_topic_with_default_partitions_and_replication() -> None:
    broker = Broker(BrokerConfig(num_partitions=4))
    response = broker.handle(CreateTopicsRequest(topics=(CreatableTopic("a", -1, -1),)), now=0.0)
    assert isinstance(response, CreateTopicsResponse)
    assert response.topics[0].error_code is ErrorCode.NONE
    assert response.topics[0].num_partitions == 4
    assert broker.topics() == {"a": 4}


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "topic/x", "é", "x" * 250])
def test_create_topic_with_a_bad_name_is_refused(name: str) -> None:
    broker = Broker()
    assert create(broker, CreatableTopic(name)) == [ErrorCode.INVALID_TOPIC_EXCEPTION]
    assert broker.topics() == {}


def test_a_topic_name_of_249_characters_is_allowed() -> None:
    broker = Broker()
    assert create(broker, CreatableTopic("x" * 249)) == [ErrorCode.NONE]


@pytest.mark.parametrize("name", ["__consumer_offsets", "__x"])
def test_double_underscore_names_are_reserved(name: str) -> None:
    broker = Broker()
    assert create(broker, CreatableTopic(name)) == [ErrorCode.INVALID_TOPIC_EXCEPTION]
    assert broker.topics() == {}


@pytest.mark.parametrize("partitions", [0, -2, 10_001])
def test_create_topic_with_bad_partition_count_is_refused(partitions: int) -> None:
    broker = Broker()
    assert create(broker, CreatableTopic("a", partitions)) == [ErrorCode.INVALID_PARTITIONS]
    assert broker.topics() == {}


def test_a_name_twice_in_one_request_is_refused_for_both() -> None:
    broker = Broker()
    codes = create(broker, CreatableTopic("a"), CreatableTopic("b"), CreatableTopic("a", 2))
    assert codes == [ErrorCode.INVALID_REQUEST, ErrorCode.NONE, ErrorCode.INVALID_REQUEST]
    assert broker.topics() == {"b": 1}


@pytest.mark.parametrize("replication_factor", [0, 2, 3])
def test_replication_factor_other_than_one_is_refused(replication_factor: int) -> None:
    broker = Broker()
    codes = create(broker, CreatableTopic("a", 1, replication_factor))
    assert codes == [ErrorCode.INVALID_REPLICATION_FACTOR]
    assert broker.topics() == {}


def test_creating_an_existing_topic_is_refused() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("x"))
    assert create(broker, CreatableTopic("t", 5)) == [ErrorCode.TOPIC_ALREADY_EXISTS]
    assert broker.topics() == {"t": 1}
    assert broker.log("t", 0).log_end_offset == 1
    with pytest.raises(ValueError, match="TOPIC_ALREADY_EXISTS"):
        broker.create_topic("t")


def test_validate_only_creates_nothing() -> None:
    broker = Broker()
    assert create(broker, CreatableTopic("a", 2), validate_only=True) == [ErrorCode.NONE]
    assert broker.topics() == {}
    assert create(broker, CreatableTopic("__a"), validate_only=True) == [
        ErrorCode.INVALID_TOPIC_EXCEPTION
    ]
    assert create(broker, CreatableTopic("a", 2)) == [ErrorCode.NONE]
    assert create(broker, CreatableTopic("a", 2), validate_only=True) == [
        ErrorCode.TOPIC_ALREADY_EXISTS
    ]


def test_metadata_auto_creates_with_the_configured_partition_count() -> None:
    broker = Broker(BrokerConfig(num_partitions=3))
    response = broker.handle(MetadataRequest(topics=("new",)), now=0.0)
    assert isinstance(response, MetadataResponse)
    (topic,) = response.topics
    assert topic.error_code is ErrorCode.NONE
    assert [p.partition for p in topic.partitions] == [0, 1, 2]
    assert all(p.leader_id == broker.node_id for p in topic.partitions)
    assert broker.topics() == {"new": 3}
    assert [b.node_id for b in response.brokers] == [broker.node_id]


def test_metadata_for_all_topics_lists_them_without_creating() -> None:
    broker = Broker()
    broker.create_topic("a", 2)
    broker.create_topic("b")
    response = broker.handle(MetadataRequest(), now=0.0)
    assert isinstance(response, MetadataResponse)
    assert [(t.name, len(t.partitions)) for t in response.topics] == [("a", 2), ("b", 1)]


def test_metadata_refuses_unknown_topic_when_auto_create_is_off() -> None:
    broker = Broker(BrokerConfig(auto_create_topics_enable=False))
    response = broker.handle(MetadataRequest(topics=("new",)), now=0.0)
    assert isinstance(response, MetadataResponse)
    assert response.topics[0].error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert response.topics[0].error_message
    assert broker.topics() == {}


def test_metadata_refuses_unknown_topic_when_the_request_disallows_creation() -> None:
    broker = Broker()
    request = MetadataRequest(topics=("new",), allow_auto_topic_creation=False)
    response = broker.handle(request, now=0.0)
    assert isinstance(response, MetadataResponse)
    assert response.topics[0].error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert broker.topics() == {}


def test_metadata_does_not_auto_create_a_bad_name() -> None:
    broker = Broker()
    response = broker.handle(MetadataRequest(topics=("__internal", "a b")), now=0.0)
    assert isinstance(response, MetadataResponse)
    assert [t.error_code for t in response.topics] == [ErrorCode.INVALID_TOPIC_EXCEPTION] * 2
    assert broker.topics() == {}


# --- Produce and Fetch ---------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "partition"), [("nope", 0), ("t", 1), ("t", -1)])
def test_produce_to_unknown_partition(topic: str, partition: int) -> None:
    broker = broker_with_topic()
    result = produce(broker, make_batch("x"), topic=topic, partition=partition)
    assert result.error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert result.base_offset == -1
    assert broker.topics() == {"t": 1}  # produce does not auto-create


def test_produce_fetch_round_trip() -> None:
    broker = broker_with_topic()
    first = produce(broker, make_batch("a", "b"))
    second = produce(broker, make_batch("c"))
    assert (first.error_code, first.base_offset) == (ErrorCode.NONE, 0)
    assert (second.error_code, second.base_offset) == (ErrorCode.NONE, 2)
    assert first.log_start_offset == 0

    answer = fetch(broker, 0)
    assert answer.error_code is ErrorCode.NONE
    assert (answer.high_watermark, answer.last_stable_offset, answer.log_start_offset) == (3, 3, 0)
    assert values(answer.batches) == [b"a", b"b", b"c"]
    assert [b.base_offset for b in answer.batches] == [0, 2]

    # Fetching from inside a batch returns the whole batch.
    assert [b.base_offset for b in fetch(broker, 1).batches] == [0, 2]
    assert fetch(broker, 3).batches == ()


def test_produce_to_several_partitions_in_one_request() -> None:
    broker = broker_with_topic(partitions=2)
    request = ProduceRequest(
        partitions=(
            ProducePartitionData("t", 0, make_batch("a")),
            ProducePartitionData("t", 1, make_batch("b", "c")),
            ProducePartitionData("t", 2, make_batch("d")),
        )
    )
    response = broker.handle(request, now=0.0)
    assert isinstance(response, ProduceResponse)
    assert [(p.partition, p.error_code, p.base_offset) for p in response.partitions] == [
        (0, ErrorCode.NONE, 0),
        (1, ErrorCode.NONE, 0),
        (2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1),
    ]
    assert broker.log("t", 1).log_end_offset == 2


def test_acks_zero_gets_no_answer_but_is_appended() -> None:
    broker = broker_with_topic()
    request = ProduceRequest(partitions=(ProducePartitionData("t", 0, make_batch("a")),), acks=0)
    assert broker.handle(request, now=0.0) is None
    assert broker.log("t", 0).log_end_offset == 1


@pytest.mark.parametrize("acks", [2, -2, 5])
def test_invalid_acks(acks: int) -> None:
    broker = broker_with_topic()
    before = broker.snapshot()
    result = produce(broker, make_batch("a"), acks=acks)
    assert result.error_code is ErrorCode.INVALID_REQUIRED_ACKS
    assert broker.snapshot() == before


def test_acks_one_stays_above_the_high_watermark_until_the_flush_interval() -> None:
    broker = broker_with_topic(BrokerConfig(log_flush_interval_ms=1000))
    assert produce(broker, make_batch("a"), acks=1, now=10.0).base_offset == 0
    log = broker.log("t", 0)
    assert (log.log_end_offset, log.high_watermark) == (1, 0)

    early = fetch(broker, 0, now=10.999)
    assert early.high_watermark == 0
    assert early.batches == ()
    assert list_offset(broker, LATEST_TIMESTAMP, now=10.999).offset == 0

    due = fetch(broker, 0, now=11.0)
    assert due.high_watermark == 1
    assert values(due.batches) == [b"a"]


def test_tick_flushes_after_the_interval() -> None:
    broker = broker_with_topic(BrokerConfig(log_flush_interval_ms=500))
    produce(broker, make_batch("a"), acks=1, now=1.0)
    broker.tick(1.4)
    assert broker.log("t", 0).high_watermark == 0
    broker.tick(1.5)
    assert broker.log("t", 0).high_watermark == 1


def test_acks_one_is_lost_by_a_crash_before_the_flush() -> None:
    broker = broker_with_topic(BrokerConfig(log_flush_interval_ms=1000))
    produce(broker, make_batch("kept"), acks=ACKS_ALL, now=0.0)
    produce(broker, make_batch("lost", "too"), acks=1, now=0.5)
    assert broker.crash() == 2
    broker.recover()
    log = broker.log("t", 0)
    assert (log.log_end_offset, log.high_watermark) == (1, 1)
    assert values(fetch(broker, 0, now=5.0).batches) == [b"kept"]


def test_acks_one_survives_a_crash_after_the_flush() -> None:
    broker = broker_with_topic(BrokerConfig(log_flush_interval_ms=1000))
    produce(broker, make_batch("a"), acks=1, now=0.0)
    broker.tick(1.0)
    assert broker.crash() == 0
    broker.recover()
    assert broker.log("t", 0).log_end_offset == 1


def test_acks_all_survives_restart() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a", "b"), acks=ACKS_ALL)
    assert broker.log("t", 0).high_watermark == 2
    assert broker.restart() == 0
    assert values(fetch(broker, 0).batches) == [b"a", b"b"]


def test_idempotent_retry_after_restart_gets_the_original_offset() -> None:
    broker = broker_with_topic()
    pid = init_producer_id(broker)
    produce(broker, make_batch("x"))  # someone else's record at offset 0
    first = make_batch("a", "b", pid=pid, epoch=0, seq=0)
    second = make_batch("c", pid=pid, epoch=0, seq=2)
    assert produce(broker, first).base_offset == 1
    assert produce(broker, second).base_offset == 3

    broker.restart()

    for batch, offset in ((first, 1), (second, 3)):
        retry = produce(broker, batch)
        assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, offset)
    assert broker.log("t", 0).log_end_offset == 4
    after = produce(broker, make_batch("d", pid=pid, epoch=0, seq=3))
    assert (after.error_code, after.base_offset) == (ErrorCode.NONE, 4)


def test_producer_state_is_rebuilt_from_the_log_on_recover() -> None:
    broker = broker_with_topic()
    pid = init_producer_id(broker)
    produce(broker, make_batch("a", pid=pid, epoch=0, seq=0))
    produce(broker, make_batch("b", pid=pid, epoch=0, seq=1), acks=1)  # lost in the crash
    before_entries = broker.producer_state("t", 0).entries
    assert before_entries[pid].last_sequence == 1
    broker.crash()
    assert broker.snapshot().producers == ()
    broker.recover()
    assert broker.producer_state("t", 0).entries[pid].last_sequence == 0
    # The lost batch is accepted again (not a duplicate, not out of order).
    retry = produce(broker, make_batch("b", pid=pid, epoch=0, seq=1))
    assert (retry.error_code, retry.base_offset) == (ErrorCode.NONE, 1)


def test_producer_ids_are_never_reused_across_restarts() -> None:
    broker = Broker()
    first = [init_producer_id(broker) for _ in range(3)]
    assert first == [0, 1, 2]
    broker.restart()
    after_one = init_producer_id(broker)
    broker.restart()
    after_two = init_producer_id(broker)
    assert after_one not in first
    assert after_one == PRODUCER_ID_BLOCK_SIZE
    assert after_two > after_one
    assert after_two == 2 * PRODUCER_ID_BLOCK_SIZE


def refused_batches() -> list[tuple[RecordBatch, ErrorCode]]:
    return [
        (RecordBatch(records=()), ErrorCode.INVALID_RECORD),
        (
            control_batch(ControlType.COMMIT, producer_id=0, producer_epoch=0),
            ErrorCode.INVALID_RECORD,
        ),
        (
            make_batch("a", pid=0, epoch=0, seq=0, transactional=True),
            ErrorCode.INVALID_PRODUCER_ID_MAPPING,
        ),
        (make_batch("a", pid=-2), ErrorCode.INVALID_RECORD),
        (make_batch("a", pid=2**63), ErrorCode.INVALID_RECORD),
        (make_batch("a", pid=0, epoch=-1, seq=0), ErrorCode.INVALID_RECORD),
        (make_batch("a", pid=0, epoch=2**15, seq=0), ErrorCode.INVALID_RECORD),
        (make_batch("a", pid=0, epoch=0, seq=-1), ErrorCode.INVALID_RECORD),
        (make_batch("a", pid=0, epoch=0, seq=MAX_SEQUENCE + 1), ErrorCode.INVALID_RECORD),
    ]


@pytest.mark.parametrize(("batch", "error"), refused_batches())
def test_malformed_batches_are_refused_and_change_nothing(
    batch: RecordBatch, error: ErrorCode
) -> None:
    broker = broker_with_topic()
    pid = init_producer_id(broker)
    assert pid == 0
    produce(broker, make_batch("a", pid=0, epoch=0, seq=0))
    produce(broker, make_batch("b"), acks=1, now=0.0)  # an unflushed tail, to see it kept
    before = broker.snapshot()
    result = produce(broker, batch, now=0.1)
    assert result.error_code is error
    assert result.error_message
    assert result.base_offset == -1
    assert broker.snapshot() == before


def test_a_batch_above_message_max_bytes_is_refused() -> None:
    broker = broker_with_topic(BrokerConfig(message_max_bytes=100))
    before = broker.snapshot()
    result = produce(broker, make_batch("x" * 40))
    assert result.error_code is ErrorCode.MESSAGE_TOO_LARGE
    assert broker.snapshot() == before
    assert produce(broker, make_batch("x" * 31)).error_code is ErrorCode.NONE  # 61 + 8 + 31


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        (make_batch("z", pid=0, epoch=0, seq=5), ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
        (make_batch("z", pid=0, epoch=1, seq=3), ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    ],
)
def test_out_of_order_produce_is_refused_and_changes_nothing(
    batch: RecordBatch, error: ErrorCode
) -> None:
    broker = broker_with_topic()
    init_producer_id(broker)
    produce(broker, make_batch("a", pid=0, epoch=0, seq=0))
    before = broker.snapshot()
    assert produce(broker, batch).error_code is error
    assert broker.snapshot() == before


def test_stale_epoch_produce_is_fenced() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a", pid=0, epoch=0, seq=0))
    produce(broker, make_batch("b", pid=0, epoch=1, seq=0))
    before = broker.snapshot()
    result = produce(broker, make_batch("c", pid=0, epoch=0, seq=1))
    assert result.error_code is ErrorCode.INVALID_PRODUCER_EPOCH
    assert broker.snapshot() == before


def test_disabling_producer_dedup_lets_a_retry_duplicate() -> None:
    broker = broker_with_topic(BrokerConfig(disabled_safeguards=["producer-dedup"]))
    batch = make_batch("a", pid=0, epoch=0, seq=0)
    assert produce(broker, batch).base_offset == 0
    assert produce(broker, batch).base_offset == 1
    assert values(fetch(broker, 0).batches) == [b"a", b"a"]


def test_fetch_offset_out_of_range() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a", "b"))
    for offset in (-1, 3, 100):
        answer = fetch(broker, offset)
        assert answer.error_code is ErrorCode.OFFSET_OUT_OF_RANGE
        assert answer.high_watermark == 2
        assert answer.batches == ()
    assert fetch(broker, 2).error_code is ErrorCode.NONE


@pytest.mark.parametrize("size", [0, -1])
def test_fetch_with_non_positive_partition_max_bytes(size: int) -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a"))
    answer = fetch(broker, 0, partition_max_bytes=size)
    assert answer.error_code is ErrorCode.INVALID_FETCH_SIZE
    assert answer.batches == ()


def test_fetch_with_negative_max_bytes_is_an_invalid_request() -> None:
    broker = broker_with_topic()
    response = broker.handle(
        FetchRequest(partitions=(FetchPartition("t", 0, 0),), max_bytes=-1), now=0.0
    )
    assert isinstance(response, FetchResponse)
    assert response.error_code is ErrorCode.INVALID_REQUEST
    assert response.partitions[0].error_code is ErrorCode.INVALID_REQUEST


def test_fetch_unknown_partition() -> None:
    broker = broker_with_topic()
    assert fetch(broker, 0, topic="nope").error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert fetch(broker, 0, partition=3).error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_fetch_between_high_watermark_and_log_end_returns_no_batches() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a"))
    produce(broker, make_batch("b", "c"), acks=1, now=0.0)
    assert broker.log("t", 0).log_end_offset == 3
    for offset in (1, 2, 3):
        answer = fetch(broker, offset, now=0.5)
        assert answer.error_code is ErrorCode.NONE
        assert answer.high_watermark == 1
        assert answer.batches == ()
    # From below the HW, the reader gets only what is under it.
    assert values(fetch(broker, 0, now=0.5).batches) == [b"a"]


def test_fetch_partition_max_bytes_returns_at_least_one_batch() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a" * 100))
    produce(broker, make_batch("b"))
    answer = fetch(broker, 0, partition_max_bytes=10)
    assert values(answer.batches) == [b"a" * 100]


def test_fetch_max_bytes_allows_one_oversized_batch_per_request_not_per_partition() -> None:
    broker = broker_with_topic(partitions=2)
    small = make_batch("s")  # 70 bytes
    big = make_batch("b" * 500)  # 569 bytes
    produce(broker, small, partition=0)
    produce(broker, big, partition=1)
    request = FetchRequest(
        partitions=(FetchPartition("t", 0, 0), FetchPartition("t", 1, 0)), max_bytes=100
    )
    response = broker.handle(request, now=0.0)
    assert isinstance(response, FetchResponse)
    assert len(response.partitions[0].batches) == 1
    # Kafka: partition 0 was non-empty, so partition 1 is limited to the 30 bytes left.
    assert response.partitions[1].batches == ()


# --- ListOffsets ---------------------------------------------------------------------------


def test_list_offsets_earliest_latest_and_by_timestamp() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a", "b", ts=100))  # offsets 0, 1 at 100, 101
    produce(broker, make_batch("c", ts=200))  # offset 2 at 200
    produce(broker, make_batch("d", ts=300), acks=1)  # offset 3, above the HW

    assert list_offset(broker, EARLIEST_TIMESTAMP).offset == 0
    assert list_offset(broker, LATEST_TIMESTAMP).offset == 3  # the HW, not the log end

    by_time = list_offset(broker, 101)
    assert (by_time.error_code, by_time.offset, by_time.timestamp) == (ErrorCode.NONE, 1, 101)
    by_time = list_offset(broker, 150)
    assert (by_time.offset, by_time.timestamp) == (2, 200)
    by_time = list_offset(broker, 0)
    assert (by_time.offset, by_time.timestamp) == (0, 100)
    # Only the record above the HW matches: not visible.
    by_time = list_offset(broker, 250)
    assert (by_time.error_code, by_time.offset, by_time.timestamp) == (ErrorCode.NONE, -1, -1)


def test_list_offsets_on_an_empty_partition() -> None:
    broker = broker_with_topic()
    assert list_offset(broker, EARLIEST_TIMESTAMP).offset == 0
    assert list_offset(broker, LATEST_TIMESTAMP).offset == 0
    assert list_offset(broker, 0).offset == -1


@pytest.mark.parametrize("timestamp", [-3, -7])
def test_list_offsets_unsupported_timestamp(timestamp: int) -> None:
    broker = broker_with_topic()
    answer = list_offset(broker, timestamp)
    assert answer.error_code is ErrorCode.INVALID_REQUEST
    assert answer.error_message and "-1" in answer.error_message


def test_list_offsets_unknown_topic() -> None:
    broker = broker_with_topic()
    answer = list_offset(broker, EARLIEST_TIMESTAMP, topic="nope")
    assert answer.error_code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


# --- crash and recovery --------------------------------------------------------------------


def all_requests() -> list[Request]:
    return [
        ProduceRequest(partitions=(ProducePartitionData("t", 0, make_batch("a")),)),
        FetchRequest(partitions=(FetchPartition("t", 0, 0),)),
        ListOffsetsRequest(partitions=(ListOffsetsPartition("t", 0),)),
        MetadataRequest(topics=("t",)),
        CreateTopicsRequest(topics=(CreatableTopic("u"),)),
        InitProducerIdRequest(),
    ]


@pytest.mark.parametrize("request_", all_requests(), ids=lambda r: type(r).__name__)
def test_a_crashed_broker_answers_broker_not_available(request_: Request) -> None:
    broker = broker_with_topic()
    broker.crash()
    before = broker.snapshot()
    assert before.running is False
    response = broker.handle(request_, now=0.0)
    assert response is not None
    error_codes: list[ErrorCode] = []
    if isinstance(response, InitProducerIdResponse):
        error_codes = [response.error_code]
    elif isinstance(response, MetadataResponse | CreateTopicsResponse):
        error_codes = [t.error_code for t in response.topics]
    elif isinstance(response, ProduceResponse | FetchResponse | ListOffsetsResponse):
        error_codes = [p.error_code for p in response.partitions]
    assert error_codes == [ErrorCode.BROKER_NOT_AVAILABLE]
    assert broker.snapshot() == before


def test_a_crashed_broker_refuses_acks_zero_too() -> None:
    broker = broker_with_topic()
    broker.crash()
    request = ProduceRequest(partitions=(ProducePartitionData("t", 0, make_batch("a")),), acks=0)
    response = broker.handle(request, now=0.0)
    assert isinstance(response, ProduceResponse)
    assert response.partitions[0].error_code is ErrorCode.BROKER_NOT_AVAILABLE


def test_recover_on_a_running_broker_raises() -> None:
    broker = Broker()
    with pytest.raises(RuntimeError, match="crash"):
        broker.recover()


def test_crash_twice_loses_nothing_more() -> None:
    broker = broker_with_topic()
    produce(broker, make_batch("a"), acks=1)
    assert broker.crash() == 1
    assert broker.crash() == 0
    broker.recover()
    assert broker.running


def test_handle_rejects_a_non_request() -> None:
    with pytest.raises(TypeError, match=r"Broker\.handle"):
        Broker().handle("fetch please", now=0.0)  # type: ignore[arg-type]


def test_topics_survive_restart() -> None:
    broker = Broker()
    broker.create_topic("a", 2)
    broker.restart()
    assert broker.topics() == {"a": 2}


# --- config --------------------------------------------------------------------------------


def test_from_options_builds_a_config() -> None:
    config = BrokerConfig.from_options({"num_partitions": 3, "log_flush_interval_ms": 0})
    assert config.num_partitions == 3
    assert config.log_flush_interval_ms == 0


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("log_flush_interval", "log_flush_interval_ms"),
        ("num_partition", "num_partitions"),
        ("auto_create_topic_enable", "auto_create_topics_enable"),
    ],
)
def test_from_options_suggests_the_closest_key(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"Did you mean '{suggestion}'"):
        BrokerConfig.from_options({typo: 1})


def test_from_options_without_a_close_key_does_not_suggest() -> None:
    with pytest.raises(ConfigError) as error:
        BrokerConfig.from_options({"zzzzzz": 1})
    assert "zzzzzz" in str(error.value)
    assert "Did you mean" not in str(error.value)


@pytest.mark.parametrize("name", ["producer-dedup", "PRODUCER_DEDUP"])
def test_safeguard_from_name(name: str) -> None:
    assert Safeguard.from_name(name) is Safeguard.PRODUCER_DEDUP


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("producer-dedupe", "producer-dedup"), ("epoch_fencing", "epoch-fencing")],
)
def test_safeguard_from_name_suggests_for_a_typo(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"Did you mean '{suggestion}'") as error:
        Safeguard.from_name(typo)
    assert "producer-dedup" in str(error.value)  # and lists the choices


def test_disabled_safeguards_accept_names_and_members() -> None:
    config = BrokerConfig(disabled_safeguards=["producer-dedup", Safeguard.EPOCH_FENCING])
    assert config.disabled_safeguards == {Safeguard.PRODUCER_DEDUP, Safeguard.EPOCH_FENCING}
    assert not config.enabled(Safeguard.PRODUCER_DEDUP)
    assert config.enabled(Safeguard.ROLL_FORWARD)
    single = BrokerConfig(disabled_safeguards="epoch-fencing")
    assert single.disabled_safeguards == {Safeguard.EPOCH_FENCING}
    assert BrokerConfig().disabled_safeguards == frozenset()


@pytest.mark.parametrize(
    "options",
    [
        {"num_partitions": 0},
        {"num_partitions": -1},
        {"num_partitions": True},
        {"num_partitions": 1.5},
        {"max_partitions_per_topic": 0},
        {"log_flush_interval_ms": -1},
        {"log_flush_interval_ms": "1000"},
        {"message_max_bytes": 0},
        {"transaction_max_timeout_ms": 0},
        {"disabled_safeguards": ["no-such-safeguard"]},
    ],
)
def test_bad_config_values_raise_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        BrokerConfig.from_options(options)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="num_partitions must be a positive integer"):
        BrokerConfig(num_partitions=0)


def test_a_sequence_check_plug_in_decides_in_place_of_the_broker_and_must_answer_properly() -> None:
    """BrokerConfig(sequence_check=...): the classroom plug-in point for exercise 3."""
    from minikafka.core import BrokerConfig, InitProducerIdRequest, ProduceRequest
    from minikafka.core.messages import ProducePartitionData
    from minikafka.core.producer_state import APPEND
    from minikafka.core.records import Record, RecordBatch

    seen: list[object] = []

    def append_all(entry: object, batch: object) -> object:
        seen.append(entry)
        return APPEND

    broker = Broker(BrokerConfig(sequence_check=append_all))
    broker.create_topic("t")
    pid = broker.handle(InitProducerIdRequest(), now=0.0).producer_id
    batch = RecordBatch(records=(Record(b"x"),), producer_id=pid, producer_epoch=0, base_sequence=0)
    request = ProduceRequest(partitions=(ProducePartitionData("t", 0, batch),))
    broker.handle(request, now=0.0)
    broker.handle(request, now=0.0)  # the plug-in lets the retry in: two copies
    assert broker.log("t", 0).log_end_offset == 2 and seen[0] is None
    wrong = Broker(BrokerConfig(sequence_check=lambda entry, batch: "append"))
    wrong.create_topic("t")
    with pytest.raises(TypeError, match="return APPEND, Duplicate"):
        wrong.handle(request, now=0.0)
