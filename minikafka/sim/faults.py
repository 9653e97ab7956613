"""Fault plans: which requests the simulated network loses, duplicates or delays, and when the
broker or a client crashes or pauses.

A plan is plain data: it prints as the code that rebuilds it, compares by value, and fixes a
run together with the seed. Network faults name a Kafka API (``"Produce"``, ``"EndTxn"`` ...)
and which call of it they hit (``nth``, counted from 1). Without a ``client`` the count runs
over every client's calls of that API; with one it runs over that client's calls only.
Clients are named by their ``client_id``. Times are simulated seconds.

    plan = FaultPlan([
        Fault.drop_response(api="Produce", nth=1),     # the write lands, the ack is lost
        Fault.broker_crash(at=2.5, down_for=1.0),
        Fault.client_crash(client="consumer-1", after="OffsetCommit"),
    ])
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from minikafka.core.config import did_you_mean
from minikafka.core.messages import Request

__all__ = [
    "API_NAMES",
    "CLIENT_KINDS",
    "FIELDS",
    "KINDS",
    "MARKERS",
    "NETWORK_KINDS",
    "Fault",
    "FaultPlan",
]

API_NAMES: tuple[str, ...] = tuple(sorted({cls.api_name for cls in Request.__args__}))
"""The Kafka APIs the broker answers, by the names Kafka gives them."""
NETWORK_KINDS = ("drop_request", "drop_response", "duplicate_request", "delay")
"""Faults that hit one request or its response on the way."""
CLIENT_KINDS = ("client_crash", "pause")
"""Faults that hit a client."""
KINDS = (*NETWORK_KINDS, "broker_crash", *CLIENT_KINDS)
FIELDS: dict[str, tuple[str, ...]] = {
    "drop_request": ("api", "nth", "client"),
    "drop_response": ("api", "nth", "client"),
    "duplicate_request": ("api", "nth", "client"),
    "delay": ("api", "nth", "seconds", "client"),
    "broker_crash": ("at", "after", "nth", "down_for"),
    "client_crash": ("client", "at", "after"),
    "pause": ("client", "at", "seconds"),
}
"""The fields each kind of fault takes (the others must stay None)."""
MARKERS = "WriteTxnMarkers"
"""What ``broker_crash(after=...)`` calls the broker's own marker writes, by Kafka's name for
the request a transaction coordinator sends to partition leaders."""
RANDOM_CALLS = 100
"""How many calls of each API a random plan covers."""
RANDOM_HORIZON_S = 60.0
"""How many simulated seconds the timed faults of a random plan cover."""
TIMED_RATE_PER_SECOND = 0.1
"""A random plan's chance of a timed fault in a given second, per unit of ``rate``."""


def _choice(what: str, value: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value in choices:
        return value
    suggestion = did_you_mean(value, choices)
    raise ValueError(f"unknown {what} {value!r}.{suggestion} Choose one of: {', '.join(choices)}")


def _positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


@attrs.frozen(kw_only=True, repr=False)
class Fault:
    """One fault. Build it with the named constructors, which check their arguments."""

    kind: str
    api: str | None = None
    nth: int | None = None
    client: str | None = None
    at: float | None = None
    seconds: float | None = None
    down_for: float | None = None
    after: str | None = None

    def __attrs_post_init__(self) -> None:
        _choice("fault kind", self.kind, KINDS)
        for name in ("api", "nth", "client", "at", "seconds", "down_for", "after"):
            if getattr(self, name) is not None and name not in FIELDS[self.kind]:
                raise ValueError(
                    f"a {self.kind} fault has no {name}; it takes {', '.join(FIELDS[self.kind])}"
                )
        if self.api is not None:
            _choice("API", self.api, API_NAMES)
        if self.after is not None:
            allowed = (*API_NAMES, MARKERS) if self.kind == "broker_crash" else API_NAMES
            _choice("API", self.after, allowed)
        if self.nth is not None and (isinstance(self.nth, bool) or self.nth < 1):
            raise ValueError(f"nth counts calls from 1, so it cannot be {self.nth!r}")
        if self.at is not None and (isinstance(self.at, bool) or not self.at >= 0):
            raise ValueError(f"at is a simulated time in seconds, 0 or later, not {self.at!r}")
        _positive("seconds", self.seconds)
        if self.down_for is not None and not self.down_for >= 0:
            raise ValueError(f"down_for must be 0 or more seconds, not {self.down_for!r}")
        if self.kind in NETWORK_KINDS and (self.api is None or self.nth is None):
            raise ValueError(f"a {self.kind} fault needs an api and an nth call")
        if self.kind == "delay" and self.seconds is None:
            raise ValueError("a delay fault needs seconds")
        if self.kind in CLIENT_KINDS and not self.client:
            raise ValueError(f"a {self.kind} fault needs the client's client_id")
        if self.kind == "client_crash" and self.at is None and self.after is None:
            raise ValueError(
                "a client_crash happens at a time (at=), after an API call (after=), or after "
                "the first such call answered from a time on (both)"
            )
        if self.kind == "broker_crash" and (self.at is None) == (self.after is None):
            raise ValueError(
                "a broker_crash happens at a time (at=) or after it handles a call (after=)"
            )
        if self.kind == "broker_crash" and (self.nth is None) != (self.after is None):
            raise ValueError("a broker_crash after a call names the call: after=API and nth=N")
        if self.kind == "pause" and self.at is None:
            raise ValueError(f"a {self.kind} fault needs a time (at=)")
        if self.kind == "pause" and self.seconds is None:
            raise ValueError("a pause fault needs seconds")

    # --- the named constructors (DESIGN.md's public API) ------------------------------------

    @classmethod
    def drop_request(cls, *, api: str, nth: int, client: str | None = None) -> Fault:
        """The ``nth`` call of ``api`` never reaches the broker."""
        return cls(kind="drop_request", api=api, nth=nth, client=client)

    @classmethod
    def drop_response(cls, *, api: str, nth: int, client: str | None = None) -> Fault:
        """The broker handles the ``nth`` call of ``api``, but its answer is lost."""
        return cls(kind="drop_response", api=api, nth=nth, client=client)

    @classmethod
    def duplicate_request(cls, *, api: str, nth: int, client: str | None = None) -> Fault:
        """The ``nth`` call of ``api`` reaches the broker twice."""
        return cls(kind="duplicate_request", api=api, nth=nth, client=client)

    @classmethod
    def delay(cls, *, api: str, nth: int, seconds: float, client: str | None = None) -> Fault:
        """The ``nth`` call of ``api`` reaches the broker ``seconds`` late."""
        return cls(kind="delay", api=api, nth=nth, seconds=seconds, client=client)

    @classmethod
    def broker_crash(
        cls,
        *,
        at: float | None = None,
        after: str | None = None,
        nth: int | None = None,
        down_for: float = 0.0,
    ) -> Fault:
        """The broker crashes at ``at``, or right after the ``nth`` answer to an ``after`` call
        reaches its client (counting only answers that arrive: a lost one does not count),
        before any background work that call started, such as writing transaction markers;
        ``after="WriteTxnMarkers"`` crashes it right after it writes its ``nth`` transaction
        marker. It recovers ``down_for`` seconds later."""
        if after is not None and nth is None:
            nth = 1
        return cls(kind="broker_crash", at=at, after=after, nth=nth, down_for=down_for)

    @classmethod
    def client_crash(
        cls, *, client: str, at: float | None = None, after: str | None = None
    ) -> Fault:
        """The client crashes at ``at``, or right after the answer to its next ``after`` call
        (for example ``after="OffsetCommit"``), or, given both, right after the answer to
        its first ``after`` call from time ``at`` on. It stops at once and forgets everything."""
        return cls(kind="client_crash", client=client, at=at, after=after)

    @classmethod
    def pause(cls, *, client: str, at: float, seconds: float) -> Fault:
        """The client freezes at ``at`` for ``seconds``: no requests, no heartbeats."""
        return cls(kind="pause", client=client, at=at, seconds=seconds)

    # --- use ----------------------------------------------------------------------------------

    @property
    def is_network(self) -> bool:
        return self.kind in NETWORK_KINDS

    def hits(self, api: str, client: str, nth_of_api: int, nth_of_client: int) -> bool:
        """Whether this network fault hits a call: the ``nth_of_api`` call of ``api`` overall,
        which is the ``nth_of_client`` call of ``api`` by ``client``."""
        if not self.is_network or self.api != api:
            return False
        if self.client is None:
            return self.nth == nth_of_api
        return self.client == client and self.nth == nth_of_client

    def __repr__(self) -> str:
        fields: dict[str, Any] = attrs.asdict(self)
        kind = fields.pop("kind")
        fields = {name: fields[name] for name in FIELDS[kind]}
        if kind == "broker_crash" and fields["down_for"] == 0.0:
            fields["down_for"] = None
        if kind == "broker_crash" and fields["nth"] == 1:
            fields["nth"] = None
        shown = ", ".join(
            f"{name}={value!r}" for name, value in fields.items() if value is not None
        )
        return f"Fault.{kind}({shown})"


def _faults(value: Iterable[Fault]) -> tuple[Fault, ...]:
    faults = tuple(value)
    for fault in faults:
        if not isinstance(fault, Fault):
            raise TypeError(
                f"a FaultPlan holds Fault values, not {fault!r}; use Fault.drop_request(...) etc."
            )
    return faults


@attrs.frozen(repr=False)
class FaultPlan:
    """A list of faults, in the order given. An empty plan is a network that never fails."""

    faults: tuple[Fault, ...] = attrs.field(default=(), converter=_faults)

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __repr__(self) -> str:
        if not self.faults:
            return "FaultPlan([])"
        lines = "".join(f"    {fault!r},\n" for fault in self.faults)
        return f"FaultPlan([\n{lines}])"

    def network_faults(self) -> tuple[Fault, ...]:
        return tuple(f for f in self.faults if f.is_network)

    def timed_faults(self) -> tuple[Fault, ...]:
        """Faults that happen at a time, earliest first (ties in plan order)."""
        timed = [f for f in self.faults if f.at is not None and f.after is None]
        return tuple(sorted(timed, key=lambda f: f.at or 0.0))

    @classmethod
    def random(
        cls,
        *,
        seed: int,
        rate: float,
        kinds: Iterable[str] = NETWORK_KINDS,
        apis: Iterable[str] = ("Produce", "Fetch", "OffsetCommit", "EndTxn", "TxnOffsetCommit"),
        clients: Iterable[str] = (),
        calls: int = RANDOM_CALLS,
        horizon: float = RANDOM_HORIZON_S,
    ) -> FaultPlan:
        """A plan drawn from ``seed``: the same arguments give the same plan.

        Each of the first ``calls`` calls of each API in ``apis`` gets one network fault
        with probability ``rate``, of a kind drawn from the network kinds in ``kinds``. Each
        second of ``horizon`` gets a broker crash, and for each client a crash and a pause,
        with probability ``rate * TIMED_RATE_PER_SECOND`` each, if ``kinds`` asks for them.
        """
        kinds, apis, clients = (
            (value,) if isinstance(value, str) else value for value in (kinds, apis, clients)
        )
        if isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate is a probability between 0 and 1, not {rate!r}")
        chosen = [_choice("fault kind", kind, KINDS) for kind in kinds]
        names = sorted({_choice("API", api, API_NAMES) for api in apis})
        clients = list(clients)
        if any(kind in CLIENT_KINDS for kind in chosen) and not clients:
            raise ValueError("client faults need the clients' client_ids: pass clients=[...]")
        rng = random.Random(f"{seed}/faults")
        faults: list[Fault] = []
        network = [kind for kind in NETWORK_KINDS if kind in chosen]
        if network:
            for api in names:
                for nth in range(1, calls + 1):
                    if rng.random() >= rate:
                        continue
                    kind = rng.choice(network)
                    seconds = round(rng.uniform(0.1, 5.0), 1) if kind == "delay" else None
                    faults.append(Fault(kind=kind, api=api, nth=nth, seconds=seconds))
        per_second = rate * TIMED_RATE_PER_SECOND
        for second in range(int(horizon)):
            if "broker_crash" in chosen and rng.random() < per_second:
                at = round(second + rng.random(), 1)
                faults.append(Fault.broker_crash(at=at, down_for=round(rng.uniform(0.5, 3.0), 1)))
            for client in clients:
                if "client_crash" in chosen and rng.random() < per_second:
                    faults.append(
                        Fault.client_crash(client=client, at=round(second + rng.random(), 1))
                    )
                if "pause" in chosen and rng.random() < per_second:
                    seconds = round(rng.uniform(1.0, 60.0), 1)
                    faults.append(
                        Fault.pause(
                            client=client, at=round(second + rng.random(), 1), seconds=seconds
                        )
                    )
        return cls(faults)
