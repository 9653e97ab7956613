"""The delivery-semantics lab: every delivery model on one stream of payment events, under one
seeded fault plan, measured instead of asserted.

``run_lab(events=1000, seed=0, fault_rate=...)`` writes the payment events at a steady rate
while each pipeline of ``minikafka.pipelines`` consumes them, under the same fault plan
(``lab_plan``): worker crashes at times and right after commits, lost and doubled requests,
lost acknowledgements and the retries they cause, delays, long pauses that make the group
rebalance and leave a zombie behind, and broker crashes. It also runs the source producer alone
with idempotence off and on, to show the duplicates that producer retries make by themselves.
Each run's counts come from the run itself (effects in the database or the output topic, per
transaction id); the same seed gives the same counts and latencies, and only the wall-clock
figures (events per second, cost) vary from machine to machine.

The runs are independent: ``workers=2`` spreads them over two processes (started afresh, so
call it from a command, or under ``if __name__ == "__main__":`` in a script); the default runs
them one after another in this process. ``minikafka lab`` uses two where there are two cores.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from minikafka.pipelines import MODELS, PipelineResult, payment_event, run_pipeline
from minikafka.pipelines.base import INPUT_TOPIC, Event
from minikafka.sim.faults import Fault, FaultPlan

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_FAULT_RATE",
    "EVENTS_PER_SECOND",
    "LabResult",
    "LabRow",
    "lab_plan",
    "run_lab",
]

DEFAULT_EVENTS = 1000
DEFAULT_FAULT_RATE = 0.02
"""The chance that a given call of a faulty API goes wrong (and, scaled down, that a given
second brings a crash or a pause). At 0.02 a run of 1,000 events plans about eight crashes
and pauses; of the seeds 0 to 11, all but one show each model's failure (seed 8's crashes
miss at-most-once's batches). At 0.01 half of them showed nothing for some model: every
crash came while the worker waited for input."""
EVENTS_PER_SECOND = 8.0
"""How fast the source writes: a little under the worker's 10 events a second, so the worker
keeps up when nothing fails and falls behind when something does."""
PARTITIONS = 3
WORKER = "worker-1"
NETWORK_APIS = ("Produce", "Fetch", "OffsetCommit", "TxnOffsetCommit", "EndTxn", "OffsetFetch")
"""The APIs whose calls the plan may lose, double or delay."""
CRASH_AFTER_APIS = ("OffsetCommit", "TxnOffsetCommit", "EndTxn", "Produce", "Fetch")
"""The calls right after which the worker may crash: every kind of point in its loop."""
OUTPUT_PRODUCER_APIS = frozenset({"TxnOffsetCommit", "EndTxn", "Produce"})
"""The calls of ``CRASH_AFTER_APIS`` that the worker's output producer (``worker-1-out``), not
its consumer, sends: a crash after one of them is planned for that client, and kills the
whole process with it."""
PRODUCER_ROWS = ("producer, idempotence off", "producer, idempotence on")

EXPLANATIONS = {
    "at-most-once": "It commits before it processes, so a crash in between skips events",
    "at-least-once": "It processes before it commits, so a crash in between repeats events",
    "at-least-once+dedup": "Repeats still happen, but the unique transaction id in the "
    "database turns each repeat into a no-op",
    "exactly-once": "The output and the offsets commit in one Kafka transaction, and "
    "read_committed hides what a crashed worker left half done",
    "exactly-once+external-db": "Kafka's transaction covers the output topic, not the "
    "database: a repeated batch adds to the balance again",
    PRODUCER_ROWS[0]: "A lost acknowledgement makes the producer send again, and the broker "
    "keeps both copies",
    PRODUCER_ROWS[1]: "The broker recognises the retry by its producer id and sequence "
    "number, and keeps one copy",
}
"""One plain line per row: why it came out the way it did."""


@attrs.frozen
class LabRow:
    """One row of the lab's table: what one model (or the producer alone) did."""

    name: str
    expected: str
    events: int
    """Events the source wrote and had acknowledged: the events owed."""
    effects: int
    """Effects applied in all (a repeat counts again)."""
    lost: int
    duplicated: int
    """Events whose effect was applied more than once."""
    promise_kept: bool
    """Whether the row kept its own promise (at-most-once may lose, at-least-once repeat)."""
    latency_p50: float | None
    latency_p99: float | None
    """Simulated seconds from an event's acknowledgement to its first effect."""
    wall_seconds: float
    restarts: int = 0
    detail: str = ""
    """What else the row measured (for exactly-once+external-db: the output topic)."""
    error: str = ""
    """Why the run stopped before it finished (a worker that never got through), if it did."""

    @property
    def correct(self) -> bool:
        """Every event's effect applied exactly once."""
        return not self.error and self.lost == 0 and self.duplicated == 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def measured(self) -> str:
        if self.error:
            return f"the run stopped: {self.error}"
        text = f"measured {self.lost} lost, {self.duplicated} duplicated"
        return f"{text} ({self.detail})" if self.detail else text


@attrs.frozen
class LabResult:
    """Every row of one lab run, and what fixed it."""

    seed: int
    events: int
    fault_rate: float
    plan: FaultPlan
    rows: tuple[LabRow, ...]
    wall_seconds: float

    @property
    def models(self) -> tuple[LabRow, ...]:
        return tuple(row for row in self.rows if row.name in MODELS)

    @property
    def producers(self) -> tuple[LabRow, ...]:
        return tuple(row for row in self.rows if row.name not in MODELS)

    @property
    def promises_kept(self) -> bool:
        return all(row.promise_kept for row in self.rows)

    def cost(self, row: LabRow) -> float | None:
        """Wall time relative to at-least-once's, for a model row (None without it)."""
        base = next((r for r in self.rows if r.name == "at-least-once"), None)
        if base is None or row.name not in MODELS or base.wall_seconds <= 0:
            return None
        return row.wall_seconds / base.wall_seconds

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        def row_json(row: LabRow) -> dict[str, Any]:
            return {
                "model": row.name,
                "events": row.events,
                "effects": row.effects,
                "lost": row.lost,
                "duplicated": row.duplicated,
                "correct": row.correct,
                "promise_kept": row.promise_kept,
                "expected": row.expected,
                "restarts": row.restarts,
                "events_per_second": round(row.events_per_second, 1),
                "latency_p50": rounded(row.latency_p50),
                "latency_p99": rounded(row.latency_p99),
                "cost_vs_at_least_once": rounded(self.cost(row)),
                "error": row.error or None,
            }

        return {
            "seed": self.seed,
            "events": self.events,
            "fault_rate": self.fault_rate,
            "faults": len(self.plan),
            "models": [row_json(row) for row in self.models],
            "producer": [row_json(row) | {"producer": row.name} for row in self.producers],
            "promises_kept": self.promises_kept,
        }

    def __rich__(self) -> Group:
        return self.render()

    def render(self) -> Group:
        title = (
            f"minikafka lab: {self.events} payment events, seed {self.seed}, "
            f"fault rate {self.fault_rate} ({len(self.plan)} faults planned)"
        )
        table = Table(title=title, header_style="bold")
        for name, justify in (
            ("model", "left"),
            ("events", "right"),
            ("effects", "right"),
            ("lost", "right"),
            ("dup.", "right"),
            ("correct", "center"),
            ("events/s", "right"),
            ("p50 (s)", "right"),
            ("p99 (s)", "right"),
            ("cost", "right"),
        ):
            table.add_column(name, justify=justify, no_wrap=name != "model")  # type: ignore[arg-type]
        for row in self.rows:
            cost = self.cost(row)
            table.add_row(
                Text(row.name, style="bold" if row.name in MODELS else "dim"),
                str(row.events),
                str(row.effects),
                Text(str(row.lost), style="red" if row.lost else ""),
                Text(str(row.duplicated), style="red" if row.duplicated else ""),
                (
                    Text("error", style="bold red")
                    if row.error
                    else Text("yes", style="green")
                    if row.correct
                    else Text("no", style="red")
                ),
                f"{row.events_per_second:,.0f}",
                "-" if row.latency_p50 is None else f"{row.latency_p50:.2f}",
                "-" if row.latency_p99 is None else f"{row.latency_p99:.2f}",
                "-" if cost is None else f"{cost:.2f}x",
            )
        lines: list[RenderableType] = [table]
        for row in self.rows:
            mark = Text("ok  ", style="green") if row.promise_kept else Text("NOT ", style="red")
            lines.append(
                Text.assemble(
                    mark,
                    (f"{row.name}: ", "bold"),
                    f"expected {row.expected}; {row.measured()}. ",
                    ("" if row.error else EXPLANATIONS.get(row.name, ""), "italic"),
                )
            )
        lines.append(
            Text(
                "events/s and cost are wall-clock figures of this machine; everything else "
                "is fixed by the seed. Latency is simulated time from the source's send of an "
                "event to its first effect (for the producer rows: to its acknowledgement).",
                style="dim",
            )
        )
        return Group(*lines)


def lab_plan(*, seed: int, rate: float, events: int) -> FaultPlan:
    """The lab's fault plan for ``events`` events: the same for every model of one run.

    Each call of ``NETWORK_APIS`` (up to what the run makes) is lost on its way, loses its
    answer, arrives twice or arrives late with probability ``rate / 4``. Each simulated
    second of the run brings, with probability ``rate`` each, a worker crash and a worker
    crash right after its next answer to one of ``CRASH_AFTER_APIS``; with ``rate / 2`` a
    pause of the worker (short, or long enough for the group to give it up and leave a
    zombie); with ``rate / 4`` a broker crash."""
    if isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"the fault rate is a probability between 0 and 1, not {rate!r}")
    rng = random.Random(f"{seed}/lab")
    calls = events + events // 2  # the source's and the worker's calls of the busiest API
    horizon = int(events / EVENTS_PER_SECOND) + 30
    faults: list[Fault] = []
    for api in NETWORK_APIS:
        for nth in range(1, calls + 1):
            if rng.random() >= rate / 4:
                continue
            kind = rng.choice(("drop_response", "drop_request", "duplicate_request", "delay"))
            if kind == "delay":
                faults.append(Fault.delay(api=api, nth=nth, seconds=rng.choice((1.0, 5.0))))
            else:
                faults.append(Fault(kind=kind, api=api, nth=nth))
    for second in range(horizon):
        at = round(second + rng.random(), 1)
        if rng.random() < rate:
            faults.append(Fault.client_crash(client=WORKER, at=at))
        if rng.random() < rate:
            after = rng.choice(CRASH_AFTER_APIS)
            client = f"{WORKER}-out" if after in OUTPUT_PRODUCER_APIS else WORKER
            faults.append(Fault.client_crash(client=client, at=at, after=after))
        if rng.random() < rate / 2:
            faults.append(Fault.pause(client=WORKER, at=at, seconds=rng.choice((2.0, 15.0))))
        if rng.random() < rate / 4:
            faults.append(Fault.broker_crash(at=at, down_for=rng.choice((0.5, 2.0))))
    return FaultPlan(faults)


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(fraction * len(ordered) + 0.999999)))
    return ordered[rank - 1]


@attrs.frozen
class _Job:
    name: str
    events: int
    seed: int
    plan: FaultPlan


def _model_row(job: _Job) -> LabRow:
    model = MODELS[job.name]
    started = time.perf_counter()
    try:
        result = run_pipeline(
            job.name, events=job.events, seed=job.seed, faults=job.plan, rate=EVENTS_PER_SECOND
        )
    except Exception as error:  # the supervisor gave up, the simulation ran too long, a bug
        return LabRow(
            name=job.name,
            expected=model.expectation,
            events=0,
            effects=0,
            lost=0,
            duplicated=0,
            promise_kept=False,
            latency_p50=None,
            latency_p99=None,
            wall_seconds=time.perf_counter() - started,
            error=(str(error).splitlines() or [type(error).__name__])[0],
        )
    wall = time.perf_counter() - started
    database = job.name == "exactly-once+external-db"
    counts = result.database if database else result.effects
    latencies = result.latencies("database" if database else None)
    lost = _lost(result, counts)
    duplicated = [key for key in result.sent if counts.get(key, 0) > 1]
    detail = ""
    if database:
        topic_dup = len(result.duplicated)
        detail = (
            f"in the database; the output topic: {len(result.lost)} lost, {topic_dup} duplicated"
        )
    return LabRow(
        name=job.name,
        expected=model.expectation,
        events=len(result.sent),
        effects=sum(counts.get(key, 0) for key in result.sent),
        lost=len(lost),
        duplicated=len(duplicated),
        promise_kept=result.kept_promise,
        latency_p50=_percentile(latencies, 0.50),
        latency_p99=_percentile(latencies, 0.99),
        wall_seconds=wall,
        restarts=result.restarts,
        detail=detail,
    )


def _lost(result: PipelineResult, counts: dict[str, int]) -> list[str]:
    return [key for key in result.sent if counts.get(key, 0) == 0]


def _producer_row(job: _Job) -> LabRow:
    idempotent = job.name == PRODUCER_ROWS[1]
    started = time.perf_counter()
    acked, copies, latencies = _run_source(job.events, job.seed, job.plan, idempotent)
    wall = time.perf_counter() - started
    duplicated = [key for key in acked if copies.get(key, 0) > 1]
    lost = [key for key in acked if copies.get(key, 0) == 0]
    return LabRow(
        name=job.name,
        expected="no loss, no duplicates" if idempotent else "no loss, duplicates possible",
        events=len(acked),
        effects=sum(copies.get(key, 0) for key in acked),
        lost=len(lost),
        duplicated=len(duplicated),
        promise_kept=not lost and (not idempotent or not duplicated),
        latency_p50=_percentile(latencies, 0.50),
        latency_p99=_percentile(latencies, 0.99),
        wall_seconds=wall,
        detail="records in the input topic",
    )


def _run_source(
    events: int, seed: int, plan: FaultPlan, idempotent: bool
) -> tuple[list[str], Counter[str], list[float]]:
    """The source alone: write ``events`` events at the lab's rate under ``plan``. Returns the
    acknowledged transaction ids, how many copies of each the input topic holds, and each
    send's time to its acknowledgement."""
    import minikafka

    async def main() -> tuple[list[str], Counter[str], list[float]]:
        acked: list[str] = []
        latencies: list[float] = []
        async with minikafka.open_cluster(seed=seed, faults=plan) as cluster:
            await cluster.create_topic(INPUT_TOPIC, partitions=PARTITIONS)
            start = cluster.now()
            settings: dict[str, Any] = {"client_id": "source", "enable_idempotence": idempotent}
            async with cluster.producer(**settings) as source:
                for number in range(events):
                    await trio.sleep(max(0.0, start + number / EVENTS_PER_SECOND - cluster.now()))
                    value = payment_event(number)
                    sent_at = cluster.now()
                    try:
                        await source.send_and_wait(INPUT_TOPIC, value)
                    except minikafka.KafkaError:
                        continue
                    latencies.append(cluster.now() - sent_at)
                    acked.append(Event.parse(value).transaction_id)
            copies: Counter[str] = Counter()
            for partition in range(PARTITIONS):
                for batch in cluster.broker.log(INPUT_TOPIC, partition).batches():
                    for record in batch.records:
                        copies[Event.parse(record.value).transaction_id] += 1
        return acked, copies, latencies

    return minikafka.run(main)


def _run_job(job: _Job) -> LabRow:
    return _model_row(job) if job.name in MODELS else _producer_row(job)


def run_lab(
    *,
    events: int = DEFAULT_EVENTS,
    seed: int = 0,
    fault_rate: float = DEFAULT_FAULT_RATE,
    models: Sequence[str] | None = None,
    producers: bool = True,
    workers: int = 1,
    on_row: Callable[[LabRow], None] | None = None,
) -> LabResult:
    """Run the lab; ``on_row`` is called as each row is done (for a progress bar)."""
    chosen = list(MODELS) if models is None else list(models)
    unknown = [name for name in chosen if name not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from: {', '.join(MODELS)}")
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise ValueError(f"events must be a positive number of events, not {events!r}")
    plan = lab_plan(seed=seed, rate=fault_rate, events=events)
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"each model once, please: {chosen}")
    names = chosen + (list(PRODUCER_ROWS) if producers else [])
    # The transactional models take longest: start them first, so two processes finish close
    # together.
    order = sorted(names, key=lambda name: not name.startswith("exactly-once"))
    jobs = [_Job(name, events, seed, plan) for name in order]
    started = time.perf_counter()
    count = min(workers, len(jobs))
    rows: dict[str, LabRow] = {}
    if count <= 1:
        for job in jobs:
            rows[job.name] = _run_job(job)
            if on_row is not None:
                on_row(rows[job.name])
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
            futures = {pool.submit(_run_job, job): job.name for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                row = future.result()
                rows[row.name] = row
                if on_row is not None:
                    on_row(row)
    return LabResult(
        seed=seed,
        events=events,
        fault_rate=fault_rate,
        plan=plan,
        rows=tuple(rows[name] for name in names),
        wall_seconds=time.perf_counter() - started,
    )
