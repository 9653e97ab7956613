"""The five delivery models end to end, under scripted faults: each keeps its promise, and the
weaker ones break exactly where the seed article says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from minikafka import Fault, FaultPlan, Safeguard
from minikafka.pipelines import MODELS, PipelineResult, payment_event, run_pipeline

EVENTS = 20


def first_poll_time() -> float:
    """When the worker's first poll returns, without faults (all models start alike)."""
    result = run_pipeline("at-least-once", events=EVENTS)
    (first, *_) = [e for e in result.trace if e.kind == "poll" and e.source == "worker-1"]
    return first.time


def crash_mid_batch() -> FaultPlan:
    """The worker dies while it processes its first batch: 5 of 20 events done."""
    return FaultPlan([Fault.client_crash(client="worker-1", at=first_poll_time() + 0.55)])


@pytest.mark.parametrize("model", list(MODELS))
def test_without_faults_every_model_applies_each_event_once(model: str) -> None:
    result = run_pipeline(model, events=EVENTS)
    assert len(result.sent) == EVENTS
    assert result.lost == [] and result.duplicated == []
    assert result.restarts == 0
    assert result.kept_promise


def run_crashed(model: str) -> PipelineResult:
    result = run_pipeline(model, events=EVENTS, faults=crash_mid_batch())
    assert result.restarts == 1
    assert result.kept_promise
    return result


def test_at_most_once_loses_what_it_had_not_processed_when_it_crashed() -> None:
    result = run_crashed("at-most-once")
    assert len(result.lost) == 15 and result.duplicated == []


def test_at_least_once_repeats_what_it_had_processed_but_not_committed() -> None:
    result = run_crashed("at-least-once")
    assert result.lost == [] and len(result.duplicated) == 5


def test_at_least_once_with_dedup_applies_each_effect_once() -> None:
    result = run_crashed("at-least-once+dedup")
    assert result.lost == [] and result.duplicated == []


def test_exactly_once_keeps_the_output_topic_exact() -> None:
    result = run_crashed("exactly-once")
    assert result.lost == [] and result.duplicated == []


def test_exactly_once_cannot_protect_the_external_database() -> None:
    result = run_crashed("exactly-once+external-db")
    assert result.lost == [] and result.duplicated == []  # the topic is exact ...
    assert len(result.database_duplicated) == 5  # ... the database is not
    assert result.balance > result.expected_balance


def test_a_crash_right_after_the_commit_is_where_at_most_once_loses_a_whole_batch() -> None:
    plan = FaultPlan([Fault.client_crash(client="worker-1", after="OffsetCommit")])
    assert len(run_pipeline("at-most-once", events=EVENTS, faults=plan).lost) == EVENTS
    assert run_pipeline("at-least-once", events=EVENTS, faults=plan).duplicated == []


def test_the_database_is_a_real_file_that_outlives_the_run(tmp_path: Path) -> None:
    path = tmp_path / "sink.db"
    run_pipeline("at-least-once+dedup", events=EVENTS, faults=crash_mid_batch(), database=str(path))
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM processed").fetchone() == (EVENTS,)
    stored = db.execute("SELECT SUM(next_offset) FROM offsets").fetchone()[0]
    assert stored == EVENTS  # the offsets went in with the effects


def test_payment_events_look_like_the_seed_article_s() -> None:
    assert (
        payment_event(0)
        == b'{"eventType":"PaymentCompleted","transactionId":"TXN5001","amount":100}'
    )


def test_an_unknown_model_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="at-least-once"):
        run_pipeline("exactly-twice")


def test_the_checker_names_what_each_model_did_under_the_crash() -> None:
    plan = crash_mid_batch()
    verdicts = {model: run_pipeline(model, events=EVENTS, faults=plan).report for model in MODELS}
    assert verdicts["at-most-once"].counts() == {"lost-effect": 15}
    assert verdicts["at-least-once"].counts() == {"duplicate-effect": 5}
    assert verdicts["at-least-once+dedup"].ok and verdicts["exactly-once"].ok
    assert verdicts["exactly-once+external-db"].counts() == {"duplicate-effect": 5}
    history = run_pipeline("at-least-once", events=EVENTS, faults=plan).history
    assert sum(1 for op in history if type(op).__name__ == "PollOp") >= 2


EXACTLY_ONCE_BREAKS = {
    # A doubled transactional write: only the sequence check keeps one copy.
    Safeguard.PRODUCER_DEDUP: lambda: FaultPlan(
        [Fault.duplicate_request(api="Produce", nth=1, client="worker-1-out")]
    ),
    # A crash mid-transaction, right after its records are written: only the LSO and the
    # aborted list hide the aborted writes.
    Safeguard.LAST_STABLE_OFFSET: lambda: FaultPlan(
        [Fault.client_crash(client="worker-1-out", after="Produce")]
    ),
    # The answer to TxnOffsetCommit is lost: the connection stalls until the coordinator
    # aborts the open transaction at its timeout (20 s, before the client's 30 s request
    # timeout), fencing the producer. Offsets that counted at once survive that abort, so the
    # restarted worker starts past the aborted batch and never reads it again.
    Safeguard.PENDING_TXN_OFFSETS: lambda: FaultPlan(
        [Fault.drop_response(api="TxnOffsetCommit", nth=1)]
    ),
    # The broker crashes between the two markers of a commit: the output's COMMIT is written,
    # the offsets' is not. Recovery must finish the commit; without roll-forward it aborts
    # the rest, and the batch is processed (and written) again.
    Safeguard.ROLL_FORWARD: lambda: FaultPlan(
        [Fault.broker_crash(after="WriteTxnMarkers", nth=1, down_for=1.0)]
    ),
    # The worker crashes with its EndTxn still on the way; the supervisor restarts it in
    # place (same transactional id, a new epoch). The old EndTxn arrives in the middle of the
    # new process's transaction, after its first records are written (16.5 s): only the
    # epoch check stops it from committing half of it.
    Safeguard.EPOCH_FENCING: lambda: FaultPlan(
        [
            Fault.delay(api="EndTxn", nth=1, seconds=11.5, client="worker-1-out"),
            Fault.client_crash(client="worker-1", at=5.05),
        ]
    ),
    # The worker freezes for 15 s; the supervisor gives it up and starts worker-2, which
    # takes the partitions over. worker-1 wakes with its transaction still open and commits
    # it with its old generation: only the generation check refuses the zombie's offsets.
    Safeguard.GENERATION_FENCING: lambda: FaultPlan(
        [Fault.pause(client="worker-1", at=3.5, seconds=15.0)]
    ),
}


def test_every_broker_safeguard_has_a_scenario() -> None:
    assert set(EXACTLY_ONCE_BREAKS) == set(Safeguard)


@pytest.mark.parametrize("safeguard", list(EXACTLY_ONCE_BREAKS), ids=lambda s: s.value)
def test_exactly_once_needs_each_safeguard_it_rests_on(safeguard: Safeguard) -> None:
    plan = EXACTLY_ONCE_BREAKS[safeguard]()
    safe = run_pipeline("exactly-once", events=EVENTS, faults=plan)
    assert safe.lost == [] and safe.duplicated == [] and safe.report.ok
    broken = run_pipeline(
        "exactly-once", events=EVENTS, faults=plan, disabled_safeguards={safeguard}
    )
    assert not broken.kept_promise
    counts = broken.report.counts()
    assert counts.get("duplicate-effect", 0) == len(broken.duplicated)
    assert counts.get("lost-effect", 0) == len(broken.lost)


def supervised(plan: FaultPlan) -> tuple[PipelineResult, list[tuple[str, str, str]]]:
    """The exactly-once pipeline under ``plan``, and its trace's process lifecycle events."""
    result = run_pipeline("exactly-once", events=10, faults=plan)
    kinds = ("start", "restart", "exit")
    events = [(e.kind, e.source, e.detail) for e in result.trace if e.kind in kinds]
    return result, events


def test_a_worker_frozen_for_three_probes_is_replaced_and_ends_as_a_zombie() -> None:
    result, events = supervised(FaultPlan([Fault.pause(client="worker-1", at=3.5, seconds=15.0)]))
    steps = [(kind, source) for kind, source, _ in events]
    restart = steps.index(("restart", "worker-1"))
    replaced = steps.index(("start", "worker-2"))
    ended = steps.index(("exit", "worker-1"))
    assert restart < replaced < ended
    assert "no answer to 3 liveness probes" in events[restart][2]
    assert events[ended][2].startswith("the zombie process ended")
    assert result.lost == [] and result.duplicated == [] and result.report.ok
    assert result.restarts == 1


def test_a_pause_shorter_than_the_probes_starts_no_replacement() -> None:
    result, events = supervised(FaultPlan([Fault.pause(client="worker-1", at=3.5, seconds=2.0)]))
    assert result.trace.select(kind="fault", source="plan"), "the pause froze worker-1"
    assert all(source != "worker-2" for _, source, _ in events)
    assert result.restarts == 0 and result.kept_promise


def test_a_crashed_worker_is_restarted_in_place_under_its_own_name() -> None:
    result, events = supervised(FaultPlan([Fault.client_crash(client="worker-1", at=3.55)]))
    assert ("restart", "worker-1", "the process crashed") in events
    assert [source for kind, source, _ in events if kind == "start"].count("worker-1") == 2
    assert all(source != "worker-2" for _, source, _ in events)
    assert result.restarts == 1 and result.kept_promise


@pytest.mark.parametrize("model", list(MODELS))
def test_a_thousand_events_go_through_without_faults(model: str) -> None:
    """Batches stay short enough for max_poll_interval: no eviction, no restart."""
    result = run_pipeline(model, events=1000)
    assert result.restarts == 0
    assert result.lost == [] and result.duplicated == []


@pytest.mark.parametrize("model", list(MODELS))
def test_a_lost_offset_fetch_answer_is_waited_out_not_taken_for_an_idle_input(model: str) -> None:
    """The worker waits for its committed offsets (the stalled connection is reset after the
    request timeout) instead of counting empty polls without a position as a drained input."""
    plan = FaultPlan([Fault.drop_response(api="OffsetFetch", nth=1)])
    result = run_pipeline(model, events=10, faults=plan)
    assert result.lost == []
    assert result.kept_promise


def test_a_pause_of_one_client_is_not_a_pause_of_its_process() -> None:
    """Only the producer freezes: the supervisor's probe still gets its answer."""
    plan = FaultPlan([Fault.pause(client="worker-1-out", at=3.5, seconds=15.0)])
    result = run_pipeline("exactly-once", events=10, faults=plan)
    assert result.restarts == 0 and not result.trace.select(source="worker-2")
    assert result.lost == [] and result.duplicated == []


def test_the_seek_back_after_an_abort_is_in_the_history() -> None:
    """exactly-once rereads an aborted batch; the checker sees the seek, not a poll that went
    backwards."""
    plan = FaultPlan([Fault.broker_crash(at=3.5, down_for=2.0)])
    result = run_pipeline("exactly-once", events=10, faults=plan)
    assert result.kept_promise and result.report.ok, str(result.report)


def test_an_error_in_a_worker_comes_out_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from minikafka.pipelines import runner

    async def broken(worker: object) -> None:
        raise ZeroDivisionError("the loop has a bug")

    monkeypatch.setitem(
        runner.MODELS, "at-least-once", attrs.evolve(runner.MODELS["at-least-once"], run=broken)
    )
    with pytest.raises(ZeroDivisionError, match="the loop has a bug"):
        run_pipeline("at-least-once", events=1)


@pytest.mark.parametrize("rate", [None, 1.0])
def test_an_event_the_source_cannot_send_is_recorded_as_unknown(rate: float | None) -> None:
    # The broker is down for 65 s right after the source's InitProducerId: its first send
    # cannot even learn the topic's partitions (max_block is 60 s). The run goes on; that
    # event is not one the pipeline owes.
    plan = FaultPlan([Fault.broker_crash(after="InitProducerId", nth=1, down_for=65.0)])
    result = run_pipeline("at-least-once", events=3, rate=rate, faults=plan)
    assert result.sent == ("TXN5002", "TXN5003")
    assert result.lost == [] and result.report.ok
