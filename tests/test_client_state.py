"""ProducerProtocol driven by hand against a real Broker: no I/O, the test is the network."""

from __future__ import annotations

import pytest

from minikafka.core.broker import Broker
from minikafka.core.client_state import (
    BatchDelivered,
    DeliveryReport,
    OutgoingRequest,
    ProducerClientState,
    ProducerProtocol,
    ProducerSettingsError,
)
from minikafka.core.errors import ErrorCode
from minikafka.core.messages import (
    ACKS_ALL,
    InitProducerIdRequest,
    ProducePartitionData,
    ProducePartitionResponse,
    ProduceRequest,
    ProduceResponse,
    Response,
)
from minikafka.core.records import Record, RecordBatch, RecordMetadata, TopicPartition

TP = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


# --- helpers -------------------------------------------------------------------------------


def new_broker(partitions: int = 2) -> Broker:
    broker = Broker()
    broker.create_topic("t", partitions)
    return broker


def rec(value: str, ts: int = 0) -> Record:
    return Record(value=value.encode(), timestamp=ts)


def answer(broker: Broker, outgoing: OutgoingRequest, now: float) -> Response:
    """The broker's response to ``outgoing``, without giving it to the producer."""
    response = broker.handle(outgoing.request, now=now)
    assert response is not None
    return response


def deliver(
    producer: ProducerProtocol,
    broker: Broker,
    outgoing: list[OutgoingRequest],
    now: float = 0.0,
) -> None:
    """Send each request to the broker and hand its response back to the producer."""
    for out in outgoing:
        producer.on_response(out.correlation_id, answer(broker, out, now), now=now)


def start(producer: ProducerProtocol, broker: Broker, now: float = 0.0) -> None:
    (init,) = producer.poll(now)
    assert isinstance(init.request, InitProducerIdRequest)
    deliver(producer, broker, [init], now)
    assert producer.state is ProducerClientState.READY


def batches_of(outgoing: OutgoingRequest) -> dict[TopicPartition, RecordBatch]:
    request = outgoing.request
    assert isinstance(request, ProduceRequest)
    return {TopicPartition(p.topic, p.partition): p.batch for p in request.partitions}


def only_batch(outgoing: OutgoingRequest) -> RecordBatch:
    (batch,) = batches_of(outgoing).values()
    return batch


def offsets(reports: list[DeliveryReport]) -> list[int]:
    result = []
    for report in reports:
        assert report.ok, report
        assert report.metadata is not None
        result.append(report.metadata.offset)
    return result


def log_values(broker: Broker, tp: TopicPartition = TP) -> list[bytes | None]:
    log = broker.log(tp.topic, tp.partition)
    return [log.record_at(offset).value for offset in range(log.log_end_offset)]


def state_of(producer: ProducerProtocol) -> ProducerClientState:
    """The state, read through a call so that type checkers do not narrow it between steps."""
    return producer.state


def error_response(error: ErrorCode, tp: TopicPartition = TP) -> ProduceResponse:
    return ProduceResponse((ProducePartitionResponse(tp.topic, tp.partition, error),))


# --- initialisation and the happy path -----------------------------------------------------


def test_first_poll_asks_for_a_producer_id_then_produces() -> None:
    broker = new_broker()
    producer = ProducerProtocol()
    handle = producer.send(TP, rec("a", ts=7), now=0.0)
    assert state_of(producer) is ProducerClientState.UNINITIALIZED

    (init,) = producer.poll(0.0)
    assert isinstance(init.request, InitProducerIdRequest)
    assert state_of(producer) is ProducerClientState.INITIALIZING
    assert producer.poll(0.0) == []  # nothing is produced before the id arrives
    assert producer.in_flight_count == 1

    deliver(producer, broker, [init])
    assert producer.state is ProducerClientState.READY
    assert (producer.producer_id, producer.producer_epoch) == (0, 0)

    (produce,) = producer.poll(0.0)
    assert produce.correlation_id != init.correlation_id
    assert isinstance(produce.request, ProduceRequest)
    assert produce.request.acks == ACKS_ALL
    assert produce.request.timeout_ms == 30_000
    batch = only_batch(produce)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (0, 0, 0)
    assert [r.value for r in batch.records] == [b"a"]
    assert producer.pending_count == 1

    deliver(producer, broker, [produce])
    assert producer.take_reports() == [DeliveryReport(handle, TP, RecordMetadata("t", 0, 0, 7))]
    assert producer.take_reports() == []
    assert producer.pending_count == 0
    assert producer.in_flight_count == 0
    assert producer.next_deadline() is None


def test_an_acknowledged_batch_is_one_outcome_with_the_metadata_of_each_record() -> None:
    broker = new_broker()
    producer = ProducerProtocol()
    start(producer, broker)
    handles = [producer.send(TP, rec(v, ts=t), now=0.0) for v, t in (("a", 5), ("b", 6))]
    (produce,) = producer.poll(0.0)
    deliver(producer, broker, [produce])
    (outcome,) = producer.take_outcomes()
    assert isinstance(outcome, BatchDelivered)
    assert outcome.handles == handles and outcome.base_offset == 0
    assert [outcome.metadata(i) for i in (0, 1)] == [
        RecordMetadata("t", 0, 0, 5),
        RecordMetadata("t", 0, 1, 6),
    ]
    assert producer.take_reports() == []  # taken already
    producer.send(TP, rec("c", ts=9), now=1.0)
    (produce,) = producer.poll(1.0)
    deliver(producer, broker, [produce], now=1.0)
    (report,) = producer.take_reports()  # one report per record, as before
    assert report.metadata == RecordMetadata("t", 0, 2, 9)


def test_init_producer_id_timeout_asks_again() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=5.0)
    (lost,) = producer.poll(0.0)
    assert producer.next_deadline() == 5.0
    (again,) = producer.poll(5.0)
    assert isinstance(again.request, InitProducerIdRequest)
    assert again.correlation_id != lost.correlation_id
    deliver(producer, broker, [again], 5.0)
    assert producer.state is ProducerClientState.READY


# --- sequences -----------------------------------------------------------------------------


def test_sequences_are_assigned_at_drain_and_kept_on_retry() -> None:
    broker = new_broker()
    producer = ProducerProtocol()
    producer.send(TP, rec("a"), now=0.0)
    producer.send(TP1, rec("x"), now=0.0)
    start(producer, broker)  # the id arrives after the sends: sequences come at drain

    (first,) = producer.poll(0.0)
    assert {tp: b.base_sequence for tp, b in batches_of(first).items()} == {TP: 0, TP1: 0}
    deliver(producer, broker, [first])
    assert offsets(producer.take_reports()) == [0, 0]

    producer.send(TP, rec("b"), now=1.0)
    producer.send(TP, rec("c"), now=1.0)
    (second,) = producer.poll(1.0)
    producer.send(TP, rec("d"), now=1.0)
    (third,) = producer.poll(1.0)
    assert (only_batch(second).base_sequence, only_batch(second).record_count) == (1, 2)
    assert only_batch(third).base_sequence == 3

    # Both requests are lost with the connection before reaching the broker.
    producer.on_disconnect(now=1.0)
    assert producer.in_flight_count == 0
    assert producer.connection_generation == 1
    assert producer.take_reports() == []

    (retry_second,) = producer.poll(1.0)  # the later batch waits for the first to resolve
    assert retry_second.correlation_id not in (second.correlation_id, third.correlation_id)
    assert only_batch(retry_second) == only_batch(second)
    deliver(producer, broker, [retry_second], 1.0)
    (retry_third,) = producer.poll(1.0)
    assert only_batch(retry_third) == only_batch(third)
    deliver(producer, broker, [retry_third], 1.0)

    assert offsets(producer.take_reports()) == [1, 2, 3]
    assert log_values(broker) == [b"a", b"b", b"c", b"d"]


# --- the in-flight window ------------------------------------------------------------------


def test_at_most_max_in_flight_requests() -> None:
    broker = new_broker()
    producer = ProducerProtocol(max_in_flight_requests_per_connection=2, batch_size=1)
    handles = [producer.send(TP, rec(str(i)), now=0.0) for i in range(5)]
    start(producer, broker)

    window = producer.poll(0.0)
    assert len(window) == 2
    assert producer.in_flight_count == 2
    assert producer.poll(0.0) == []

    sent = list(window)
    while window:
        deliver(producer, broker, [window.pop(0)])
        assert producer.in_flight_count <= 1
        more = producer.poll(0.0)
        assert len(more) <= 1
        window.extend(more)
        sent.extend(more)
        assert producer.in_flight_count <= 2

    assert [only_batch(out).base_sequence for out in sent] == [0, 1, 2, 3, 4]
    reports = producer.take_reports()
    assert [r.handle for r in reports] == handles
    assert offsets(reports) == [0, 1, 2, 3, 4]


def test_default_window_is_five_requests() -> None:
    broker = new_broker()
    producer = ProducerProtocol(batch_size=1)
    for i in range(7):
        producer.send(TP, rec(str(i)), now=0.0)
    start(producer, broker)
    assert len(producer.poll(0.0)) == 5
    assert producer.poll(0.0) == []


# --- timeouts, retries and stale answers ---------------------------------------------------


def test_request_timeout_retries_with_the_same_sequences_and_gets_the_original_offsets() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=10.0)
    start(producer, broker)
    h1 = producer.send(TP, rec("a"), now=0.0)
    (r1,) = producer.poll(0.0)
    h2 = producer.send(TP, rec("b"), now=0.0)
    (r2,) = producer.poll(0.0)
    # The broker appends both, but the answers never come back.
    first_answers = [answer(broker, r1, 0.0), answer(broker, r2, 0.0)]
    first_offsets = [
        p.base_offset
        for response in first_answers
        if isinstance(response, ProduceResponse)
        for p in response.partitions
    ]
    assert first_offsets == [0, 1]

    assert producer.poll(9.9) == []
    assert producer.next_deadline() == 10.0
    (retry1,) = producer.poll(10.0)  # both timed out; the first goes again, the second waits
    assert producer.connection_generation == 1
    assert producer.in_flight_count == 1
    assert only_batch(retry1) == only_batch(r1)
    deliver(producer, broker, [retry1], 10.0)
    (retry2,) = producer.poll(10.0)
    assert only_batch(retry2) == only_batch(r2)
    deliver(producer, broker, [retry2], 10.0)

    reports = producer.take_reports()
    assert [r.handle for r in reports] == [h1, h2]
    assert offsets(reports) == first_offsets
    assert log_values(broker) == [b"a", b"b"]  # no duplicate

    # The late answers to the timed-out requests are ignored.
    producer.on_response(r1.correlation_id, first_answers[0], now=11.0)
    producer.on_response(r2.correlation_id, first_answers[1], now=11.0)
    assert producer.take_reports() == []


def test_unknown_and_duplicate_responses_are_ignored() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=10.0)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    (r1,) = producer.poll(0.0)
    response = answer(broker, r1, 0.0)

    producer.on_response(999, response, now=0.0)
    assert producer.take_reports() == []
    assert producer.in_flight_count == 1

    producer.on_response(r1.correlation_id, response, now=0.0)
    producer.on_response(r1.correlation_id, response, now=0.0)
    assert offsets(producer.take_reports()) == [0]


def test_a_late_answer_to_a_timed_out_request_does_not_complete_its_retry() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=10.0)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    (r1,) = producer.poll(0.0)
    late = answer(broker, r1, 0.0)
    (retry,) = producer.poll(10.0)

    producer.on_response(r1.correlation_id, late, now=10.5)
    assert producer.take_reports() == []
    assert producer.in_flight_count == 1  # the retry is still waiting for its own answer

    deliver(producer, broker, [retry], 10.5)
    assert offsets(producer.take_reports()) == [0]
    assert log_values(broker) == [b"a"]


# --- batching ------------------------------------------------------------------------------


def test_linger_holds_a_batch_until_it_passes() -> None:
    broker = new_broker()
    producer = ProducerProtocol(linger=0.5)
    start(producer, broker)
    producer.send(TP, rec("a"), now=1.0)
    assert producer.poll(1.2) == []
    producer.send(TP, rec("b"), now=1.3)  # joins the lingering batch
    assert producer.next_deadline() == 1.5
    assert producer.poll(1.49) == []
    (request,) = producer.poll(1.5)
    assert [r.value for r in only_batch(request).records] == [b"a", b"b"]


def test_flush_sends_without_waiting_for_linger() -> None:
    broker = new_broker()
    producer = ProducerProtocol(linger=60.0)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    assert producer.poll(0.0) == []
    producer.flush()
    (request,) = producer.poll(0.0)
    deliver(producer, broker, [request])
    assert offsets(producer.take_reports()) == [0]
    # Once everything queued is sent, lingering applies again.
    producer.send(TP, rec("b"), now=1.0)
    assert producer.poll(1.0) == []


def test_batch_size_splits_batches() -> None:
    broker = new_broker()
    producer = ProducerProtocol(linger=60.0, batch_size=100)
    start(producer, broker)
    record = rec("x" * 40)
    assert record.size_bytes == 48  # two fit in 100 bytes, a third does not
    for _ in range(5):
        producer.send(TP, record, now=0.0)

    # Only the full batches go before linger passes; the last one keeps lingering.
    full = producer.poll(0.0)
    assert [only_batch(out).record_count for out in full] == [2, 2]
    assert [only_batch(out).base_sequence for out in full] == [0, 2]
    assert producer.poll(0.0) == []
    producer.flush()
    (rest,) = producer.poll(0.0)
    assert (only_batch(rest).record_count, only_batch(rest).base_sequence) == (1, 4)
    deliver(producer, broker, [*full, rest])
    assert offsets(producer.take_reports()) == [0, 1, 2, 3, 4]


def test_a_record_larger_than_batch_size_gets_a_batch_of_its_own() -> None:
    broker = new_broker()
    producer = ProducerProtocol(linger=60.0, batch_size=20)
    start(producer, broker)
    producer.send(TP, rec("x" * 100), now=0.0)
    (request,) = producer.poll(0.0)  # already full: sent without lingering
    assert only_batch(request).record_count == 1


# --- broker errors -------------------------------------------------------------------------


def test_out_of_order_for_a_batch_that_is_not_next_is_retried_without_an_epoch_bump() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=10.0)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    deliver(producer, broker, producer.poll(0.0))

    producer.send(TP, rec("b"), now=0.0)
    (r1,) = producer.poll(0.0)
    producer.send(TP, rec("c"), now=0.0)
    (r2,) = producer.poll(0.0)
    # r1 is lost on the way; r2 arrives first, with a gap before it.
    response = answer(broker, r2, 0.0)
    assert isinstance(response, ProduceResponse)
    assert response.partitions[0].error_code is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    producer.on_response(r2.correlation_id, response, now=0.0)

    assert producer.producer_epoch == 0
    assert offsets(producer.take_reports()) == [0]  # no failure reported
    assert producer.poll(1.0) == []  # the retry waits for the batch before it

    (retry1,) = producer.poll(10.0)  # r1 times out and goes again
    assert only_batch(retry1) == only_batch(r1)
    deliver(producer, broker, [retry1], 10.0)
    (retry2,) = producer.poll(10.0)
    assert only_batch(retry2) == only_batch(r2)
    assert only_batch(retry2).producer_epoch == 0
    deliver(producer, broker, [retry2], 10.0)

    assert offsets(producer.take_reports()) == [1, 2]
    assert producer.producer_epoch == 0
    assert log_values(broker) == [b"a", b"b", b"c"]


def test_out_of_order_for_the_next_batch_bumps_the_epoch() -> None:
    broker = new_broker()
    producer = ProducerProtocol()
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    deliver(producer, broker, producer.poll(0.0))
    producer.send(TP, rec("b"), now=0.0)
    (r1,) = producer.poll(0.0)
    assert only_batch(r1).base_sequence == 1
    # The broker lost what it acknowledged: the very next sequence is out of order.
    producer.on_response(
        r1.correlation_id, error_response(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER), now=0.0
    )
    (retry,) = producer.poll(0.0)
    assert producer.producer_epoch == 1
    batch = only_batch(retry)
    assert (batch.producer_epoch, batch.base_sequence) == (1, 0)
    deliver(producer, broker, [retry])
    assert offsets(producer.take_reports()) == [0, 1]


def test_a_retriable_error_is_retried_and_a_fatal_one_is_not() -> None:
    broker = new_broker()
    producer = ProducerProtocol(retries=1)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    (r1,) = producer.poll(0.0)
    producer.on_response(r1.correlation_id, error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER), now=0)
    (r2,) = producer.poll(0.0)
    assert only_batch(r2) == only_batch(r1)
    producer.on_response(r2.correlation_id, error_response(ErrorCode.NOT_LEADER_OR_FOLLOWER), now=0)
    (report,) = producer.take_reports()  # retries=1: one retry, then it fails
    assert report.error is ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert not report.ok

    producer.send(TP, rec("b"), now=0.0)
    (r3,) = producer.poll(0.0)
    producer.on_response(r3.correlation_id, error_response(ErrorCode.MESSAGE_TOO_LARGE), now=0)
    (report,) = producer.take_reports()
    assert report.error is ErrorCode.MESSAGE_TOO_LARGE
    assert producer.state is ProducerClientState.READY


def test_delivery_timeout_fails_the_batch_with_request_timed_out() -> None:
    broker = new_broker()
    producer = ProducerProtocol(request_timeout=5.0, delivery_timeout=12.0)
    start(producer, broker)
    handle = producer.send(TP, rec("a"), now=0.0)
    assert len(producer.poll(0.0)) == 1  # every attempt is lost on the way
    assert len(producer.poll(5.0)) == 1
    assert len(producer.poll(10.0)) == 1
    # An in-flight attempt is not expired under the broker's feet: wait for its timeout.
    assert producer.poll(12.0) == []
    assert producer.take_reports() == []
    assert producer.next_deadline() == 15.0
    assert producer.poll(15.0) == []

    (report,) = producer.take_reports()
    assert report.handle == handle
    assert report.topic_partition == TP
    assert not report.ok
    assert report.metadata is None
    assert report.error is ErrorCode.REQUEST_TIMED_OUT
    assert report.message is not None and "delivery_timeout" in report.message
    assert producer.pending_count == 0

    # The producer goes on: the next record is delivered.
    producer.send(TP, rec("b"), now=20.0)
    deliver(producer, broker, producer.poll(20.0), 20.0)
    assert offsets(producer.take_reports()) == [0]
    assert log_values(broker) == [b"b"]


def test_delivery_timeout_expires_a_batch_that_was_never_sent() -> None:
    producer = ProducerProtocol(delivery_timeout=3.0)
    producer.send(TP, rec("a"), now=0.0)
    (init,) = producer.poll(0.0)  # never answered
    assert producer.poll(2.9) == []
    assert producer.poll(3.0) == []
    (report,) = producer.take_reports()
    assert report.error is ErrorCode.REQUEST_TIMED_OUT
    assert init.correlation_id == 1


def fenced_producer() -> tuple[Broker, ProducerProtocol]:
    """A producer that wrote "a", after a newer epoch of its id wrote "new" to partition 0."""
    broker = new_broker()
    producer = ProducerProtocol()
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    deliver(producer, broker, producer.poll(0.0))
    producer.take_reports()
    newer = RecordBatch(
        records=(rec("new"),), producer_id=producer.producer_id, producer_epoch=1, base_sequence=0
    )
    broker.handle(ProduceRequest(partitions=(ProducePartitionData("t", 0, newer),)), now=0.0)
    return broker, producer


def test_invalid_producer_epoch_is_fatal() -> None:
    broker, producer = fenced_producer()

    handle = producer.send(TP, rec("b"), now=0.0)
    queued = producer.send(TP, rec("c"), now=0.0)  # same batch
    deliver(producer, broker, producer.poll(0.0))

    assert producer.state is ProducerClientState.FATAL_ERROR
    assert producer.fatal_error is not None
    assert producer.fatal_error[0] is ErrorCode.INVALID_PRODUCER_EPOCH
    reports = producer.take_reports()
    assert [(r.handle, r.error) for r in reports] == [
        (handle, ErrorCode.INVALID_PRODUCER_EPOCH),
        (queued, ErrorCode.INVALID_PRODUCER_EPOCH),
    ]
    with pytest.raises(RuntimeError, match="INVALID_PRODUCER_EPOCH"):
        producer.send(TP, rec("d"), now=0.0)
    assert producer.poll(1.0) == []
    assert log_values(broker) == [b"a", b"new"]


def test_a_fatal_error_fails_unsent_batches_too() -> None:
    broker = new_broker()
    producer = ProducerProtocol(linger=60.0)
    start(producer, broker)
    producer.send(TP, rec("a"), now=0.0)
    producer.flush()
    (request,) = producer.poll(0.0)
    lingering = producer.send(TP1, rec("z"), now=0.0)
    producer.on_response(request.correlation_id, error_response(ErrorCode.PRODUCER_FENCED), now=0.0)
    assert producer.state is ProducerClientState.FATAL_ERROR
    reports = producer.take_reports()
    assert [r.error for r in reports] == [ErrorCode.PRODUCER_FENCED] * 2
    assert reports[-1].handle == lingering
    assert producer.pending_count == 0


def test_after_a_fatal_error_every_handle_is_reported_once() -> None:
    broker, producer = fenced_producer()

    producer.send(TP, rec("b"), now=0.0)
    (fenced,) = producer.poll(0.0)
    producer.send(TP1, rec("c"), now=0.0)  # partition 1 has no state: the broker takes it
    (other,) = producer.poll(0.0)
    deliver(producer, broker, [fenced, other])

    assert producer.state is ProducerClientState.FATAL_ERROR
    reports = producer.take_reports()
    handles = [r.handle for r in reports]
    assert sorted(handles) == sorted(set(handles)), reports


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("acks", [0, 1])
def test_idempotence_needs_acks_all(acks: int) -> None:
    with pytest.raises(ProducerSettingsError, match='needs acks="all"') as error:
        ProducerProtocol(acks=acks)
    assert "enable_idempotence=False" in str(error.value)
    ProducerProtocol(acks=acks, enable_idempotence=False)  # fine without idempotence


def test_idempotence_allows_at_most_five_in_flight() -> None:
    with pytest.raises(ProducerSettingsError, match="at most 5") as error:
        ProducerProtocol(max_in_flight_requests_per_connection=6)
    assert "last 5 batches" in str(error.value)
    assert "6" in str(error.value)
    ProducerProtocol(max_in_flight_requests_per_connection=6, enable_idempotence=False)
    ProducerProtocol(max_in_flight_requests_per_connection=5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"retries": -1}, "retries must be 0 or more"),
        ({"acks": 2}, "acks must be 0, 1"),
        ({"acks": "one"}, "acks must be 0, 1"),
        ({"max_in_flight_requests_per_connection": 0}, "at least 1"),
        ({"request_timeout": 0}, "request_timeout must be positive"),
        ({"delivery_timeout": 0}, "delivery_timeout must be positive"),
        ({"linger": -0.1}, "linger must be 0 or more"),
        ({"batch_size": 0}, "batch_size must be positive"),
    ],
)
def test_bad_settings_raise_with_a_helpful_message(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ProducerSettingsError, match=message):
        ProducerProtocol(**settings)  # type: ignore[arg-type]


def test_producer_settings_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ProducerProtocol(retries=-5)


# --- without idempotence -------------------------------------------------------------------


def test_without_idempotence_a_lost_response_and_a_retry_duplicate() -> None:
    broker = new_broker()
    producer = ProducerProtocol(enable_idempotence=False, request_timeout=5.0)
    assert producer.state is ProducerClientState.READY
    handle = producer.send(TP, rec("a"), now=0.0)
    (r1,) = producer.poll(0.0)  # no InitProducerId: straight to Produce
    batch = only_batch(r1)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (-1, -1, -1)
    answer(broker, r1, 0.0)  # appended, answer lost

    (retry,) = producer.poll(5.0)
    assert only_batch(retry) == batch
    deliver(producer, broker, [retry], 5.0)

    (report,) = producer.take_reports()
    assert report.handle == handle
    assert offsets([report]) == [1]
    assert log_values(broker) == [b"a", b"a"]  # the duplicate


def test_acks_zero_reports_at_once_without_offsets() -> None:
    broker = new_broker()
    producer = ProducerProtocol(acks=0, enable_idempotence=False)
    producer.send(TP, rec("a"), now=0.0)
    (request,) = producer.poll(0.0)
    assert producer.in_flight_count == 0
    assert broker.handle(request.request, now=0.0) is None
    assert offsets(producer.take_reports()) == [-1]
    assert log_values(broker) == [b"a"]
