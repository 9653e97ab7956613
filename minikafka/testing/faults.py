"""Hypothesis strategies for fault plans: ``fault_plans()`` draws a ``FaultPlan`` that shrinks
toward fewer and simpler faults.

A plan is a list of faults; hypothesis shrinks a list by dropping elements, so a failing plan
shrinks toward the fewest faults that still fail. Each fault is drawn from its kinds in order of
simplicity (a crash before a lost message before a delay), and its numbers shrink toward the
first call and the earliest time, so what is left reads like a lesson: "the worker crashed at
3.1 s", not "the 17th Fetch was delayed 4.3 s".
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from minikafka.sim.faults import KINDS, MARKERS, Fault, FaultPlan

__all__ = ["DEFAULT_APIS", "fault_plans", "faults"]

DEFAULT_APIS = (
    "OffsetCommit",
    "Fetch",
    "Produce",
    "EndTxn",
    "TxnOffsetCommit",
    "JoinGroup",
    "OffsetFetch",
    "SyncGroup",
)
"""The APIs a pipeline's safety rests on, most telling first."""


def _times(horizon: float) -> st.SearchStrategy[float]:
    # Tenths of a second: plans print short, and shrink toward 0.
    return st.integers(0, int(horizon * 10)).map(lambda tenths: tenths / 10)


def faults(
    *,
    clients: Sequence[str] = ("worker-1",),
    apis: Sequence[str] = DEFAULT_APIS,
    horizon: float = 10.0,
    max_nth: int = 5,
    broker_crashes: bool = True,
    kinds: Sequence[str] = KINDS,
) -> st.SearchStrategy[Fault]:
    """One fault, of any kind the arguments allow (``kinds``: the kinds to draw from)."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; choose from: {', '.join(KINDS)}")
    if not kinds:
        raise ValueError(f"no fault kinds to draw from; choose from: {', '.join(KINDS)}")
    if not broker_crashes and "broker_crash" in kinds:
        kinds.remove("broker_crash")
        if not kinds:
            raise ValueError("broker_crashes=False leaves no fault kind to draw from")
    client = st.sampled_from(list(clients))
    api = st.sampled_from(list(apis))
    nth = st.integers(1, max_nth)
    downtime = st.sampled_from([0.5, 2.0, 10.0])
    by_kind: dict[str, list[st.SearchStrategy[Fault]]] = {
        "client_crash": [
            st.builds(lambda c, t: Fault.client_crash(client=c, at=t), client, _times(horizon)),
            st.builds(lambda c, a: Fault.client_crash(client=c, after=a), client, api),
        ],
        "drop_response": [st.builds(lambda a, n: Fault.drop_response(api=a, nth=n), api, nth)],
        "drop_request": [st.builds(lambda a, n: Fault.drop_request(api=a, nth=n), api, nth)],
        "duplicate_request": [
            st.builds(lambda a, n: Fault.duplicate_request(api=a, nth=n), api, nth)
        ],
        "pause": [
            st.builds(
                lambda c, t, s: Fault.pause(client=c, at=t, seconds=s),
                client,
                _times(horizon),
                st.sampled_from([5.0, 15.0, 60.0]),
            )
        ],
        "delay": [
            st.builds(
                lambda a, n, s: Fault.delay(api=a, nth=n, seconds=s),
                api,
                nth,
                st.sampled_from([1.0, 5.0, 40.0]),
            )
        ],
        "broker_crash": [
            st.builds(lambda t, d: Fault.broker_crash(at=t, down_for=d), _times(horizon), downtime),
            st.builds(
                lambda a, n, d: Fault.broker_crash(after=a, nth=n, down_for=d),
                st.sampled_from([MARKERS, *apis]),
                nth,
                downtime,
            ),
        ],
    }
    # In the order of simplicity the module docstring gives, whatever order kinds came in.
    order = ["client_crash", "drop_response", "drop_request", "duplicate_request", "pause"]
    order += ["delay", "broker_crash"]
    return st.one_of([choice for kind in order if kind in kinds for choice in by_kind[kind]])


def fault_plans(
    *,
    max_faults: int = 5,
    clients: Sequence[str] = ("worker-1",),
    apis: Sequence[str] = DEFAULT_APIS,
    horizon: float = 10.0,
    max_nth: int = 5,
    broker_crashes: bool = True,
    kinds: Sequence[str] = KINDS,
) -> st.SearchStrategy[FaultPlan]:
    """A plan of at most ``max_faults`` faults; it shrinks toward fewer and simpler ones."""
    return st.lists(
        faults(
            clients=clients,
            apis=apis,
            horizon=horizon,
            max_nth=max_nth,
            broker_crashes=broker_crashes,
            kinds=kinds,
        ),
        max_size=max_faults,
    ).map(FaultPlan)
