"""Fault plans are plain data: printable as the code that rebuilds them, comparable, seeded."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minikafka import Fault, FaultPlan
from minikafka.sim.faults import API_NAMES, FIELDS, KINDS, NETWORK_KINDS
from minikafka.testing.faults import fault_plans
from minikafka.testing.faults import faults as drawn_faults

PLAN = FaultPlan(
    [
        Fault.drop_response(api="Produce", nth=1),
        Fault.drop_request(api="Fetch", nth=3),
        Fault.duplicate_request(api="Produce", nth=2),
        Fault.delay(api="EndTxn", nth=1, seconds=5.0),
        Fault.broker_crash(at=2.5, down_for=1.0),
        Fault.client_crash(client="consumer-1", at=4.0),
        Fault.client_crash(client="consumer-1", after="OffsetCommit"),
        Fault.pause(client="producer-1", at=1.0, seconds=40.0),
    ]
)


def test_a_plan_prints_as_the_code_that_rebuilds_it() -> None:
    text = repr(PLAN)
    assert text.splitlines()[1] == "    Fault.drop_response(api='Produce', nth=1),"
    assert eval(text, {"Fault": Fault, "FaultPlan": FaultPlan}) == PLAN
    assert repr(FaultPlan()) == "FaultPlan([])" and not FaultPlan()


faults = st.one_of(
    st.builds(
        Fault,
        kind=st.sampled_from(NETWORK_KINDS[:3]),
        api=st.sampled_from(API_NAMES),
        nth=st.integers(1, 50),
        client=st.none() | st.sampled_from(["p1", "c1"]),
    ),
    st.builds(Fault.broker_crash, at=st.floats(0, 100), down_for=st.floats(0, 10)),
    st.builds(Fault.pause, client=st.just("c1"), at=st.floats(0, 100), seconds=st.floats(0.1, 60)),
)


@given(st.lists(faults, max_size=6))
def test_any_plan_round_trips_through_its_repr(drawn: list[Fault]) -> None:
    plan = FaultPlan(drawn)
    assert eval(repr(plan), {"Fault": Fault, "FaultPlan": FaultPlan}) == plan


def test_random_plans_are_fixed_by_their_seed() -> None:
    def draw(seed: int) -> FaultPlan:
        return FaultPlan.random(
            seed=seed, rate=0.05, kinds=KINDS, clients=["producer-1", "consumer-1"]
        )

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    kinds = {fault.kind for fault in draw(1)}
    assert {"drop_response", "drop_request", "duplicate_request", "delay"} <= kinds
    assert FaultPlan.random(seed=1, rate=0.0, kinds=KINDS, clients=["c"]) == FaultPlan()


def test_timed_faults_come_earliest_first() -> None:
    assert [f.at for f in PLAN.timed_faults()] == [1.0, 2.5, 4.0]
    assert len(PLAN.network_faults()) == 4


def test_nth_counts_all_calls_or_one_clients_calls() -> None:
    anyone = Fault.drop_response(api="Produce", nth=3)
    assert anyone.hits("Produce", "p2", nth_of_api=3, nth_of_client=1)
    assert not anyone.hits("Fetch", "p2", nth_of_api=3, nth_of_client=1)
    mine = Fault.drop_response(api="Produce", nth=1, client="p1")
    assert mine.hits("Produce", "p1", nth_of_api=3, nth_of_client=1)
    assert not mine.hits("Produce", "p2", nth_of_api=1, nth_of_client=1)
    assert not Fault.broker_crash(at=1.0).hits("Produce", "p1", 1, 1)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Fault.drop_request(api="Produc", nth=1), "Did you mean 'Produce'"),
        (lambda: Fault.drop_response(api="Produce", nth=0), "nth counts calls from 1"),
        (lambda: Fault.delay(api="Fetch", nth=1, seconds=0), "positive number of seconds"),
        (lambda: Fault.broker_crash(at=-1.0), "0 or later"),
        (lambda: Fault.client_crash(client="c1"), "at a time (at=), after an API call"),
        (lambda: Fault.client_crash(client="c1", after="Comit"), "unknown API 'Comit'"),
        (lambda: Fault.broker_crash(), "at a time (at=) or after it handles a call (after=)"),
        (lambda: Fault.broker_crash(at=1.0, after="EndTxn"), "at a time (at=) or after"),
        (lambda: Fault.broker_crash(at=1.0, nth=2), "names the call: after=API and nth=N"),
        (lambda: Fault.broker_crash(after="EndTx"), "Did you mean 'EndTxn'? Choose one of: "),
        (lambda: Fault(kind="explode"), "unknown fault kind 'explode'"),
        (lambda: FaultPlan.random(seed=1, rate=2.0), "between 0 and 1"),
        (lambda: FaultPlan.random(seed=1, rate=0.1, kinds=["pause"]), "clients=[...]"),
        (lambda: FaultPlan.random(seed=1, rate=0.1, kinds=["drop_responses"]), "drop_response"),
    ],
)
def test_bad_faults_say_what_to_do(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()  # type: ignore[operator]


def test_a_plan_holds_faults_only() -> None:
    with pytest.raises(TypeError, match="holds Fault values"):
        FaultPlan(["drop the 3rd Produce"])  # type: ignore[list-item]


def test_only_a_broker_crash_can_come_after_a_marker_write() -> None:
    assert Fault.broker_crash(after="WriteTxnMarkers", nth=2).after == "WriteTxnMarkers"
    with pytest.raises(ValueError, match="unknown API 'WriteTxnMarkers'"):
        Fault.client_crash(client="c", after="WriteTxnMarkers")


def test_a_broker_crash_after_a_call_counts_from_the_first_call() -> None:
    assert Fault.broker_crash(after="EndTxn").nth == 1
    assert Fault.broker_crash(after="EndTxn", nth=2, down_for=1.0).nth == 2
    assert Fault.broker_crash(at=1.0).nth is None


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (
            Fault.broker_crash(after="EndTxn", nth=2, down_for=1.0),
            "Fault.broker_crash(after='EndTxn', nth=2, down_for=1.0)",
        ),
        (Fault.broker_crash(after="Produce"), "Fault.broker_crash(after='Produce')"),
        (
            Fault.broker_crash(after="Produce", nth=1, down_for=2.0),
            "Fault.broker_crash(after='Produce', down_for=2.0)",
        ),
        (
            Fault.delay(api="Fetch", nth=2, seconds=1.5, client="c1"),
            "Fault.delay(api='Fetch', nth=2, seconds=1.5, client='c1')",
        ),
    ],
)
def test_a_fault_prints_its_fields_in_the_order_of_its_kind(fault: Fault, text: str) -> None:
    assert repr(fault) == text
    names = re.findall(r"(\w+)=", text)
    assert names == sorted(names, key=FIELDS[fault.kind].index)
    assert eval(text, {"Fault": Fault}) == fault


@settings(max_examples=20)
@given(fault_plans(kinds=["pause", "broker_crash"], max_faults=4))
def test_fault_plans_draw_only_the_kinds_asked_for(plan: FaultPlan) -> None:
    assert {fault.kind for fault in plan} <= {"pause", "broker_crash"}
    assert eval(repr(plan), {"Fault": Fault, "FaultPlan": FaultPlan}) == plan


@settings(max_examples=10)
@given(drawn_faults(kinds="delay"))
def test_one_kind_can_be_named_by_a_plain_string(fault: Fault) -> None:
    assert fault.kind == "delay"


def test_fault_strategies_refuse_unknown_or_no_kinds() -> None:
    with pytest.raises(ValueError, match=r"unknown fault kinds \['explode'\]; choose from"):
        fault_plans(kinds=["pause", "explode"])
    with pytest.raises(ValueError, match="no fault kinds to draw from"):
        drawn_faults(kinds=[])
    with pytest.raises(ValueError, match="leaves no fault kind"):
        fault_plans(kinds=["broker_crash"], broker_crashes=False)
