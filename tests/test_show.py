"""``minikafka show``: the scenarios run, and the pictures say what the logs hold."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from minikafka.cli import main
from minikafka.core.groups import GroupState
from minikafka.core.transactions import TransactionState
from minikafka.scenarios import SCENARIOS, run_scenario
from minikafka.viz import batch_outcomes, render_scenario


def test_the_transactions_scenario_leaves_a_committed_an_aborted_and_an_open_one() -> None:
    result = run_scenario("transactions")
    broker = result.broker
    p0 = broker.log("payments", 0)
    assert batch_outcomes(p0) == [
        "committed",
        "aborted",
        "COMMIT marker",
        "open",
        "ABORT marker",
    ]
    assert (p0.last_stable_offset, p0.high_watermark) == (3, 6)
    p1 = broker.log("payments", 1)
    assert p1.last_stable_offset == p1.high_watermark == 6
    states = {
        tid: metadata.state for tid, metadata in broker.transaction_coordinator.transactions.items()
    }
    assert states == {
        "pay-1": TransactionState.COMPLETE_COMMIT,
        "pay-2": TransactionState.COMPLETE_ABORT,
        "pay-3": TransactionState.ONGOING,
    }
    groups = broker.group_coordinator
    assert [offset.offset for offset in groups.committed["ledger"].values()] == [3]
    assert [o.offset for by_tp in groups.pending["ledger"].values() for o in by_tp.values()] == [7]


def test_the_picture_marks_the_high_watermark_and_the_last_stable_offset() -> None:
    console = Console(file=StringIO(), width=110, color_system=None)
    console.print(render_scenario(run_scenario("transactions")))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "payments-0: high watermark 6, last stable offset 3" in out
    assert "▲LSO" in out and "▲HW" in out
    assert "read_committed stops here" in out
    for word in ("committed", "aborted", "open", "COMMIT marker", "ABORT marker", "Ongoing"):
        assert word in out
    assert "7 from pay-3" in out


def test_show_lists_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in out


def test_show_an_unknown_scenario_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "transaction"]) == 2
    assert "choose one of: transactions" in capsys.readouterr().out


def test_show_saves_an_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "transactions.svg"
    assert main(["show", "transactions", "--svg", str(target)]) == 0
    svg = target.read_text()
    assert svg.startswith("<svg") and "payments-0" in svg
    assert "Saved the picture to" in capsys.readouterr().out


def test_show_svg_to_a_missing_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "transactions", "--svg", str(tmp_path / "no" / "x.svg")]) == 2
    assert "cannot write" in capsys.readouterr().out


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "transactions", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    first = state["partitions"][0]
    assert (first["high_watermark"], first["last_stable_offset"]) == (6, 3)
    assert [batch["outcome"] for batch in first["batches"]][:2] == ["committed", "aborted"]
    assert {t["state"] for t in state["transactions"]} == {
        "CompleteCommit",
        "CompleteAbort",
        "Ongoing",
    }
    assert state["pending_offsets"][0]["offset"] == 7


def test_the_groups_scenario_evicts_the_frozen_consumer_and_refuses_its_commit() -> None:
    result = run_scenario("groups")
    story = "\n".join(result.story)
    assert "member removed: session timeout (c1-" in story
    assert "c1 commits p0 -> 9 as c1-0-1 of generation 1: refused: UNKNOWN_MEMBER_ID" in story
    groups = result.broker.group_coordinator
    group = groups.groups["billing"]
    assert group.state is GroupState.STABLE
    assert len(group.members) == 2, "c1 rejoined after its refused commit"
    committed = {tp.partition: o.offset for tp, o in groups.committed["billing"].items()}
    assert committed[0] == 8, "c2's commit of 7 stands until c1, back in the group, commits 8"


def test_show_groups_draws_members_generations_and_the_timeline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["show", "groups"]) == 0
    out = capsys.readouterr().out
    for expected in ("Consumer groups", "generation", "leader", "rebalance started", "Stable"):
        assert expected in out, expected


def test_show_groups_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "groups", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    (group,) = state["groups"]
    assert group["group"] == "billing" and group["state"] == "Stable"
    assert group["generation"] == 3 and len(group["members"]) == 2
    assert [o["committed"] for o in state["offsets"]] == [8, 5, 4, 6]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_renders_and_saves_an_svg(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"{name}.svg"
    assert main(["show", name, "--svg", str(target)]) == 0
    assert target.read_text().startswith("<svg")
    assert main(["show", name, "--json"]) == 0
    capsys.readouterr()


def story(name: str) -> str:
    return "\n".join(run_scenario(name).story)


def test_lost_ack_writes_twice_without_idempotence_and_once_with_it() -> None:
    result = run_scenario("lost-ack")
    assert result.broker.log("payments", 0).batch_count == 2
    assert result.broker.log("payments", 1).batch_count == 1
    assert result.trace is not None and result.trace.select(kind="fault")


def test_the_pipeline_scenarios_lose_and_repeat_as_the_article_says() -> None:
    assert "lost: 12" in story("commit-before-process")
    assert "applied more than once: 5" in story("process-before-commit")
    external = story("external-db")
    assert "output topic: 12 effects; lost: none; applied more than once: none" in external
    assert "database: 17 effects; lost: none; applied more than once: 5" in external


def test_read_committed_skips_the_aborted_transaction() -> None:
    text = story("aborted-transaction")
    assert "read_uncommitted consumer reads: TXN5001, TXN5002, TXN5003, TXN5004" in text
    assert "read_committed consumer reads: TXN5003, TXN5004" in text


def test_the_zombie_is_fenced_and_the_rebalance_moves_partitions() -> None:
    assert "refused (ProducerFencedError)" in story("zombie-fencing")
    result = run_scenario("zombie-fencing")
    log = result.broker.log("ledger", 0)
    assert log.last_stable_offset == log.high_watermark  # the new instance's commit is complete
    assert "c1 owns payments-0, payments-1, c2 owns payments-2" in story("rebalance")


def test_a_scenario_on_the_cluster_draws_its_timeline() -> None:
    console = Console(record=True, width=140, file=StringIO())
    console.print(render_scenario(run_scenario("lost-ack")))
    text = console.export_text()
    assert "Timeline" in text and "drop_response" in text
