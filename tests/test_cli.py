"""The command line: exit codes, counterexamples and clear errors."""

from __future__ import annotations

import json
import re

import pytest

from minikafka import Safeguard
from minikafka.cli import main
from minikafka.testing.pipelines import FAULTS_FOR


def test_explore_dedup_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "dedup", "--max-examples", "30"]) == 0
    assert "The invariants held" in capsys.readouterr().out


def test_explore_dedup_broken_prints_a_short_counterexample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explore", "dedup", "--break", "producer-dedup", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert not result["held"]
    assert result["broken"] == ["producer-dedup"]
    assert result["error"].startswith("duplicate:")
    assert 1 <= len(result["steps"]) <= 10
    assert any(row["note"] == "duplicate" and row["bad"] for row in result["log"])


def test_explore_rich_output_numbers_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "dedup", "--break", "producer-dedup", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    assert "Counterexample found" in out
    assert "1." in out
    assert out.count("duplicate") >= 3  # the verdict, and each copy in the log table
    assert "--seed 3" in out


def test_unknown_safeguard_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "dedup", "--break", "producer-dedupe"]) == 2
    assert "producer-dedup" in capsys.readouterr().out


def test_safeguard_the_machine_cannot_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "dedup", "--break", "roll-forward"]) == 2
    assert "does not exercise roll-forward" in capsys.readouterr().out


def test_unknown_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "nope"]) == 2
    assert "choose one of: dedup, atomic-commit, fencing, groups" in capsys.readouterr().out


@pytest.mark.parametrize("machine", ["atomic-commit", "fencing"])
def test_explore_transaction_machines_hold(
    machine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explore", machine, "--max-examples", "20"]) == 0
    assert "The invariants held" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("machine", "safeguard"),
    [
        ("atomic-commit", "last-stable-offset"),
        ("atomic-commit", "pending-txn-offsets"),
        ("fencing", "epoch-fencing"),
    ],
)
def test_explore_transaction_machines_break(  # roll-forward: see test_transaction_machines
    machine: str, safeguard: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explore", machine, "--break", safeguard, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["broken"] == [safeguard]
    assert 1 <= len(result["steps"]) <= 8
    assert result["transactions"], "the coordinator's state comes with the counterexample"


def test_explore_groups_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "groups", "--max-examples", "30"]) == 0
    assert "The invariants held" in capsys.readouterr().out


def test_explore_groups_without_generation_fencing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "groups", "--break", "generation-fencing", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["error"].startswith("a commit that should have been refused was accepted")
    assert 1 <= len(result["steps"]) <= 8
    assert any(row["bad"] for row in result["log"]), "the zombie's commit is marked"


def test_bench_clients_reports_both_sides_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The figures vary by machine: the test checks their shape, never their values."""
    assert main(["bench", "clients", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suite"] == "clients" and result["seconds"] > 0
    figures = {figure["name"]: figure["value"] for figure in result["figures"]}
    assert figures["produce (idempotent)"] > 0 < figures["consume"]
    assert figures["Produce requests"] >= 1 and figures["Fetch requests"] >= 1


def test_bench_prints_a_table_for_a_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "core", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "minikafka bench core" in out and "target:" in out and "targets met" in out


def test_bench_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "everything"]) == 2
    assert "clients" in capsys.readouterr().out


def test_explore_pipeline_at_most_once_finds_a_lost_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["explore", "pipeline", "--model", "at-most-once", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["violation"] == "lost" and result["affected"]
    assert result["plan"].startswith("FaultPlan([") and result["plan"].count("Fault.") <= 5


def test_explore_pipeline_exactly_once_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "pipeline", "--model", "exactly-once", "--max-examples", "20"])
    assert code == 0 and "held" in capsys.readouterr().out


def test_explore_pipeline_needs_a_known_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "pipeline"]) == 2
    assert main(["explore", "pipeline", "--model", "exactly-twice"]) == 2
    assert "at-least-once" in capsys.readouterr().out


def test_explore_pipeline_with_a_safeguard_broken_draws_the_faults_it_stands_against(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--model", "exactly-once", "--break", "pending-txn-offsets", "--max-examples", "30"]
    assert main(["explore", "pipeline", *args, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["fault_kinds"]) == sorted(FAULTS_FOR[Safeguard.PENDING_TXN_OFFSETS])
    assert not result["held"] and result["plan"].startswith("FaultPlan([")
    assert set(re.findall(r"Fault\.(\w+)\(", result["plan"])) <= set(result["fault_kinds"])


def test_explore_pipeline_refuses_unknown_fault_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "exactly-once", "--faults", "pause,nonsense"]
    assert main(["explore", "pipeline", *args]) == 2
    out = capsys.readouterr().out
    assert "unknown fault kinds ['nonsense']" in out and "broker_crash" in out


def test_bench_core_prints_each_target_with_its_measure_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The figures vary by machine: the test checks their shape, never their values."""
    assert main(["bench", "core", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suite"] == "core"
    names = [figure["name"] for figure in result["figures"]]
    assert "read_committed fetch of 500 records" in names
    assert len(result["targets"]) == 2
    assert all({"name", "goal", "measured", "met"} <= set(t) for t in result["targets"])
