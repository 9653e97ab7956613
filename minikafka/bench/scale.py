"""The ``scale`` suite: ``Broker.handle`` as logs and transactions grow.

Three questions, each timed with ``time.perf_counter`` around ``Broker.handle`` itself (no
trio, no network, no clients):

- Does a record cost as much to produce and to fetch on a log of 1,000,000 records as on a log
  of 10,000? A log of each size is built by an idempotent producer; then windows of produce
  requests are timed at its end, and read_committed fetches at positions spread over it,
  filtered as a consumer filters them.
- Does a commit cost in proportion to the partitions of the transaction? EndTxn and the
  markers it leads to are timed for transactions of 1 to 1,000 partitions.
- How much memory does a log of 1,000,000 records of 100 bytes take? A fresh child process
  builds one and reads its own peak resident size.

Every record is its own object with its own 100-byte value, as records that arrived over a
network would be: a log of one shared record repeated would hide the memory a large log takes
and the cache misses of reading it. Rounds of the different sizes are interleaved, so a slow
moment of the machine falls on all sizes alike instead of on one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from minikafka.bench import Progress, SuiteResult, Target
from minikafka.core import Broker
from minikafka.core.isolation import visible_records
from minikafka.core.messages import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    FetchPartition,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    IsolationLevel,
    ProducePartitionData,
    ProduceRequest,
)
from minikafka.core.records import Record, RecordBatch, TopicPartition

__all__ = ["build_log", "memory_of_log", "run"]

TOPIC = "scale"
TXN_TOPIC = "scale-txn"
BATCH = 100
"""Records in every produce request that builds or extends a log."""
VALUE_BYTES = 100

LOG_SIZES = (10_000, 100_000, 1_000_000)
QUICK_LOG_SIZES = (1_000, 10_000, 100_000)
LOG_ROUNDS = 10
PRODUCE_WINDOW = 10
"""Produce requests timed in each round: 1,000 records."""
FETCH_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Where the timed fetches start, as fractions of the log (1.0: one fetch before its end)."""
FETCH_BYTES = 64 * 1024
"""``partition_max_bytes`` of every fetch: six batches of 100 records."""
FLAT_TARGET = 1.30

TXN_SIZES = (1, 10, 100, 1_000)
QUICK_TXN_SIZES = (1, 10, 100)
TXN_ROUNDS = 5
TXN_BATCH = 10
"""Records each transaction writes to each of its partitions."""
LINEAR_TARGET = 1.30

MEMORY_RECORDS = 1_000_000
QUICK_MEMORY_RECORDS = 100_000
MEMORY_TARGET_MB = 500.0
REPORT_EVERY = 50_000
"""``build_log`` reports its progress every so many records."""


def _records(first: int, count: int) -> tuple[Record, ...]:
    """``count`` new records; each value is 100 bytes, the record's number zero-padded."""
    return tuple(Record(b"%0100d" % number) for number in range(first, first + count))


def _produce_request(producer_id: int, sequence: int) -> ProduceRequest:
    """An idempotent acks=1 request of ``BATCH`` new records from ``sequence`` on."""
    batch = RecordBatch(
        records=_records(sequence, BATCH),
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=sequence,
    )
    return ProduceRequest(partitions=(ProducePartitionData(TOPIC, 0, batch),), acks=1)


def _init_producer(broker: Broker, transactional_id: str | None = None) -> tuple[int, int]:
    """The producer id and epoch that InitProducerId hands out."""
    answer = broker.handle(InitProducerIdRequest(transactional_id=transactional_id), now=0.0)
    assert isinstance(answer, InitProducerIdResponse), answer
    return answer.producer_id, answer.producer_epoch


def _silent(records: int) -> None:
    """A ``build_log`` report that shows nothing."""


def build_log(
    broker: Broker,
    producer_id: int,
    records: int,
    *,
    now: float,
    report: Callable[[int], None] = _silent,
) -> None:
    """Produce to partition 0 of ``TOPIC`` until its log holds at least ``records`` records,
    calling ``report(log end offset)`` every ``REPORT_EVERY`` records.

    The producer ``producer_id`` must be the log's only writer: its next sequence is then the
    log end offset."""
    log = broker.log(TOPIC, 0)
    while log.log_end_offset < records:
        broker.handle(_produce_request(producer_id, log.log_end_offset), now=now)
        if log.log_end_offset % REPORT_EVERY == 0:
            report(log.log_end_offset)


def _new_log(records: int, report: Callable[[int], None]) -> tuple[Broker, int]:
    """A broker whose log of ``TOPIC`` holds ``records`` records, and the producer's id."""
    broker = Broker()
    broker.create_topic(TOPIC)
    producer_id, _ = _init_producer(broker)
    build_log(broker, producer_id, records, now=0.0, report=report)
    return broker, producer_id


def _produce_cost(broker: Broker, producer_id: int, *, now: float) -> float:
    """Seconds per record for ``PRODUCE_WINDOW`` requests at the end of the log."""
    first = broker.log(TOPIC, 0).log_end_offset
    requests = [
        _produce_request(producer_id, first + number * BATCH) for number in range(PRODUCE_WINDOW)
    ]
    start = time.perf_counter()
    for request in requests:
        broker.handle(request, now=now)
    return (time.perf_counter() - start) / (PRODUCE_WINDOW * BATCH)


def _fetch_visible(broker: Broker, offset: int, *, now: float) -> int:
    """How many records a read_committed fetch from ``offset`` shows, filtered as a consumer
    filters it. The suite's one call into ``minikafka.core.isolation``."""
    answer = broker.handle(
        FetchRequest(
            partitions=(FetchPartition(TOPIC, 0, offset, FETCH_BYTES),),
            isolation_level=IsolationLevel.READ_COMMITTED,
        ),
        now=now,
    )
    assert isinstance(answer, FetchResponse), answer
    part = answer.partitions[0]
    return visible_records(part.batches, part.aborted_transactions, offset).count


def _fetch_times(broker: Broker, *, now: float) -> list[tuple[float, int]]:
    """(seconds, records shown) of one fetch at each of ``FETCH_FRACTIONS`` of the flushed log.

    Positions fall on batch boundaries, so every fetch shows whole batches."""
    high_watermark = broker.log(TOPIC, 0).high_watermark
    batch_bytes = BATCH * Record(b"x" * VALUE_BYTES).size_bytes
    per_fetch = FETCH_BYTES // batch_bytes * BATCH  # whole batches: 600 records
    times = []
    for fraction in FETCH_FRACTIONS:
        offset = min(int(high_watermark * fraction), high_watermark - per_fetch) // BATCH * BATCH
        start = time.perf_counter()
        shown = _fetch_visible(broker, offset, now=now)
        times.append((time.perf_counter() - start, shown))
    return times


def _log_costs(sizes: tuple[int, ...], progress: Progress) -> dict[int, tuple[float, float]]:
    """Seconds per record to produce and to fetch, on a log of each size.

    Produce: the best of ``LOG_ROUNDS`` windows. Fetch: the best time at each position, summed
    over the positions and divided by the records they showed."""
    task = "scale: produce/fetch"
    # Building the logs takes nearly all the time: the bar counts records built.
    total = sum(sizes)
    progress(task, 0, total)
    logs = {}
    for number, size in enumerate(sizes):

        def report(records: int, built: int = sum(sizes[:number])) -> None:
            progress(task, built + records, total)

        logs[size] = _new_log(size, report)
    produce = dict.fromkeys(sizes, float("inf"))
    fetch = {size: [(float("inf"), 0)] * len(FETCH_FRACTIONS) for size in sizes}
    for round_number in range(LOG_ROUNDS):
        for size, (broker, producer_id) in logs.items():
            # Simulated time: produce (acks=1), then flush, so the fetches see those records.
            flush_wait = broker.config.log_flush_interval_ms / 1000
            now = 2 * (round_number + 1) * flush_wait
            produce[size] = min(produce[size], _produce_cost(broker, producer_id, now=now))
            broker.tick(now + flush_wait)
            times = _fetch_times(broker, now=now + flush_wait)
            fetch[size] = [min(best, new) for best, new in zip(fetch[size], times, strict=True)]
    progress(task, total, total)
    return {
        size: (
            produce[size],
            sum(seconds for seconds, _ in fetch[size]) / sum(shown for _, shown in fetch[size]),
        )
        for size in sizes
    }


def _commit_cost(broker: Broker, transactional_id: str, partitions: int) -> float:
    """Seconds to commit a transaction over the first ``partitions`` partitions of
    ``TXN_TOPIC``: EndTxn, then ``tick`` until every marker is written.

    Not timed: InitProducerId, AddPartitionsToTxn for all the partitions, and one produce
    request with a batch of ``TXN_BATCH`` records for each."""
    producer_id, epoch = _init_producer(broker, transactional_id)
    broker.handle(
        AddPartitionsToTxnRequest(
            transactional_id=transactional_id,
            producer_id=producer_id,
            producer_epoch=epoch,
            partitions=tuple(TopicPartition(TXN_TOPIC, number) for number in range(partitions)),
        ),
        now=0.0,
    )
    batch = RecordBatch(
        records=_records(0, TXN_BATCH),
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=0,  # InitProducerId bumped the epoch, and a new epoch starts at 0
        is_transactional=True,
    )
    data = tuple(ProducePartitionData(TXN_TOPIC, number, batch) for number in range(partitions))
    broker.handle(ProduceRequest(partitions=data), now=0.0)
    end = EndTxnRequest(
        transactional_id=transactional_id,
        producer_id=producer_id,
        producer_epoch=epoch,
        committed=True,
    )
    coordinator = broker.transaction_coordinator
    start = time.perf_counter()
    broker.handle(end, now=0.0)
    while coordinator.pending_markers:
        broker.tick(0.0)
    seconds = time.perf_counter() - start
    log = broker.log(TXN_TOPIC, partitions - 1)
    assert not log.open_transactions, "the commit left the transaction open"
    return seconds


def _commit_costs(sizes: tuple[int, ...], progress: Progress) -> dict[int, float]:
    """The best of ``TXN_ROUNDS`` commit times (seconds) for transactions of each size."""
    task = "scale: transactions"
    broker = Broker()
    broker.create_topic(TXN_TOPIC, max(sizes))
    best = dict.fromkeys(sizes, float("inf"))
    for round_number in range(TXN_ROUNDS):
        progress(task, round_number, TXN_ROUNDS)
        for size in sizes:
            best[size] = min(best[size], _commit_cost(broker, "scale", size))
    progress(task, TXN_ROUNDS, TXN_ROUNDS)
    return best


def _peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes.

    On Linux, ``VmHWM`` of /proc/self/status. ``ru_maxrss`` will not do there: a process that
    ``subprocess`` starts keeps its parent's peak from before ``exec``. Elsewhere ``ru_maxrss``
    (bytes on macOS, KiB on the others)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # not on Windows

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory_of_log(records: int, report: Callable[[int], None] = _silent) -> int:
    """Bytes by which this process's peak resident size grows while ``Broker.handle`` builds a
    log of ``records`` records, in requests of ``BATCH`` (``report`` as for ``build_log``).
    Meant for a fresh process, whose peak so far is its size after the imports."""
    broker = Broker()
    broker.create_topic(TOPIC)
    producer_id, _ = _init_producer(broker)
    baseline = _peak_rss_bytes()
    build_log(broker, producer_id, records, now=0.0, report=report)
    return _peak_rss_bytes() - baseline


_CHILD = """\
from minikafka.bench.scale import memory_of_log
grew = memory_of_log({records}, lambda built: print("built", built, flush=True))
print("grew", grew)
"""


def _memory_in_child(records: int, progress: Progress) -> int:
    """``memory_of_log(records)`` in a fresh Python process, which reports as it builds."""
    task = "scale: memory"
    progress(task, 0, records)
    command = [sys.executable, "-c", _CHILD.format(records=records)]
    grew = None
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        for line in child.stdout:
            word, number = line.split()
            if word == "built":
                progress(task, int(number), records)
            else:
                grew = int(number)
        errors = child.stderr.read()
    if child.returncode != 0 or grew is None:
        raise RuntimeError(f"the child process that measures memory failed:\n{errors}")
    progress(task, records, records)
    return grew


def run(*, progress: Progress, quick: bool = False) -> SuiteResult:
    """Produce and fetch cost per record on logs of three sizes, commit cost for transactions
    of one to 1,000 partitions, and the memory a log of 1,000,000 records takes. Each time is
    the best of a few rounds, so one hiccup of the machine does not set it. ``quick`` makes
    the logs ten times smaller, measures the memory of 100,000 records, and leaves out the
    transaction of 1,000 partitions."""
    log_sizes = QUICK_LOG_SIZES if quick else LOG_SIZES
    txn_sizes = QUICK_TXN_SIZES if quick else TXN_SIZES
    memory_records = QUICK_MEMORY_RECORDS if quick else MEMORY_RECORDS
    figures: list[tuple[str, float, str]] = []

    log_costs = _log_costs(log_sizes, progress)
    for size, (produce, fetch) in log_costs.items():
        figures.append((f"produce on a log of {size:,} records", produce * 1e6, "µs/record"))
        figures.append((f"fetch on a log of {size:,} records", fetch * 1e6, "µs/record"))
    smallest, largest = log_costs[log_sizes[0]], log_costs[log_sizes[-1]]
    produce_ratio = largest[0] / smallest[0]
    fetch_ratio = largest[1] / smallest[1]

    commit_costs = _commit_costs(txn_sizes, progress)
    for size, seconds in commit_costs.items():
        name = f"commit of {size:,} partition{'s' if size > 1 else ''}"
        figures.append((name, seconds * 1e6, "µs"))
        figures.append((f"{name}, per partition", seconds / size * 1e6, "µs"))
    # What each added partition costs over the last two steps of sizes (10 to 100, then 100
    # to 1,000): the constant part of a commit (EndTxn, the coordinator's own log) cancels
    # out. A commit quadratic in its partitions would show about 10 times here. The step
    # from 1 partition is left out: its difference is a few hundred microseconds, which the
    # noise of one machine sets more than the commit does.
    a, b, y, z = txn_sizes[-3], txn_sizes[-2], txn_sizes[-2], txn_sizes[-1]
    low = (commit_costs[b] - commit_costs[a]) / (b - a)
    high = (commit_costs[z] - commit_costs[y]) / (z - y)
    figures.append((f"commit: each added partition, {a} to {b}", low * 1e6, "µs"))
    figures.append((f"commit: each added partition, {y:,} to {z:,}", high * 1e6, "µs"))
    linear_ratio = high / low

    memory = _memory_in_child(memory_records, progress)
    per_record = memory / memory_records
    figures.append((f"memory of a log of {memory_records:,} records", memory / 1e6, "MB"))
    figures.append(("memory per record", per_record, "bytes"))
    expected_mb = per_record * MEMORY_RECORDS / 1e6
    measured_mb = f"{expected_mb:,.0f} MB"
    if memory_records != MEMORY_RECORDS:
        measured_mb += (
            f" (from {memory_records:,} records, times {MEMORY_RECORDS // memory_records})"
        )

    first, last = f"{log_sizes[0]:,}", f"{log_sizes[-1]:,}"
    targets = (
        Target(
            "produce cost per record flat from the smallest log to the largest",
            f"{last} records <= {FLAT_TARGET:g}x {first}",
            f"{produce_ratio:.2f}x",
            produce_ratio <= FLAT_TARGET,
        ),
        Target(
            "fetch cost per record flat from the smallest log to the largest",
            f"{last} records <= {FLAT_TARGET:g}x {first}",
            f"{fetch_ratio:.2f}x",
            fetch_ratio <= FLAT_TARGET,
        ),
        Target(
            "commit cost linear in the transaction's partitions",
            f"an added partition costs, {y:,} to {z:,}, <= {LINEAR_TARGET:g}x its cost {a} to {b} "
            "(differences cancel the fixed part of a commit)",
            f"{linear_ratio:.2f}x",
            linear_ratio <= LINEAR_TARGET,
        ),
        Target(
            f"memory of a log of {MEMORY_RECORDS:,} records of {VALUE_BYTES} bytes",
            f"< {MEMORY_TARGET_MB:,.0f} MB",
            measured_mb,
            expected_mb < MEMORY_TARGET_MB,
        ),
    )
    notes = (
        f"Produce: the best of {LOG_ROUNDS} windows of {PRODUCE_WINDOW} requests of {BATCH} "
        f"records (acks=1); a log's size is counted before the first window, and each window "
        f"adds {PRODUCE_WINDOW * BATCH:,} records.",
        "Fetch: read_committed, 64 KiB (600 records) at the start, a quarter, half, three "
        "quarters and the end of the log, filtered as a consumer filters them; the best of "
        f"{LOG_ROUNDS} at each position.",
        f"Commit: EndTxn, then tick until every marker is written, the best of {TXN_ROUNDS}; "
        f"the transaction wrote a batch of {TXN_BATCH} records to each partition (not timed).",
        "Memory: growth of the peak resident size (VmHWM on Linux) of a fresh child process "
        f"while Broker.handle builds the log in requests of {BATCH} records, each record its "
        "own object with its own 100-byte value.",
    )
    return SuiteResult("scale", tuple(figures), targets, notes)
