"""``open_cluster``: a broker and a simulated network, started inside a trio run.

    async with minikafka.open_cluster(seed=7, faults=plan) as cluster:
        await cluster.create_topic("payments", partitions=3)
        async with cluster.producer() as producer: ...

The cluster owns the nursery in which the network pump and every client's background tasks
run, the seed from which every component draws its randomness (``f"{seed}/{name}"``), and the
trace. It needs simulated time (``minikafka.run``, or pytest-trio's ``autojump_clock``): on a
real clock a session timeout would take 45 real seconds.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import trio

from minikafka.core import Broker, BrokerConfig
from minikafka.sim.clock import is_simulated, seed_scheduler
from minikafka.sim.faults import Fault, FaultPlan
from minikafka.sim.network import Network
from minikafka.sim.trace import Trace

if TYPE_CHECKING:
    from minikafka.client.consumer import Consumer
    from minikafka.client.producer import Producer

__all__ = ["Cluster", "SimulationTimeLimit", "open_cluster"]

DEFAULT_TIME_LIMIT_S = 3600.0
"""How much simulated time a cluster may use before it is stopped as a livelock."""


class SimulationTimeLimit(RuntimeError):
    """The simulation ran past its simulated time limit: something waits forever."""


class Cluster:
    """A running broker, its network and its clients. Made by ``open_cluster``."""

    def __init__(self, network: Network, nursery: trio.Nursery, seed: int) -> None:
        self.network = network
        self.nursery = nursery
        self.seed = seed
        self._names: dict[str, int] = {}

    @property
    def broker(self) -> Broker:
        """The core ``Broker``, for inspection (its logs, ``snapshot()``)."""
        return self.network.broker

    @property
    def trace(self) -> Trace:
        """Everything that happened so far, in order, with simulated times."""
        return Trace(self.network.trace)

    @property
    def faults(self) -> FaultPlan:
        return self.network.plan

    def now(self) -> float:
        """Simulated seconds since the cluster started."""
        return self.network.now()

    def rng(self, name: str) -> random.Random:
        """A random generator for one component, seeded by the cluster's seed and its name."""
        return random.Random(f"{self.seed}/{name}")

    def client_id(self, kind: str) -> str:
        """The next default client id of a kind: ``producer-1``, ``producer-2`` ..."""
        number = self._names.get(kind, 0) + 1
        self._names[kind] = number
        return f"{kind}-{number}"

    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic (as an administrator would, outside the fault plan). While the
        broker is down, this waits for it to recover, retrying every tenth of a second."""
        while not self.broker.running:
            await trio.sleep(0.1)
        self.broker.create_topic(name, partitions, now=self.now())
        self.network.note("admin", "admin", f"created topic {name!r} with {partitions} partitions")
        await trio.lowlevel.checkpoint()

    async def restart_broker(self, *, down_for: float = 0.0) -> None:
        """Crash the broker now and recover it ``down_for`` simulated seconds later."""
        self.network.crash_broker("admin", "restart_broker()")
        if down_for > 0:
            await trio.sleep(down_for)
        else:
            await trio.lowlevel.checkpoint()
        self.network.recover_broker("admin")

    def producer(self, **config: Any) -> Producer:
        """A new ``Producer`` (start it with ``async with``). Settings as in DESIGN.md."""
        from minikafka.client.producer import Producer

        return Producer(self, **config)

    def consumer(self, *topics: str, **config: Any) -> Consumer:
        """A new ``Consumer``, subscribed to ``topics`` if any are given."""
        from minikafka.client.consumer import Consumer

        return Consumer(self, *topics, **config)


def _plan(faults: FaultPlan | Iterable[Fault] | None) -> FaultPlan:
    if faults is None:
        return FaultPlan()
    if isinstance(faults, FaultPlan):
        return faults
    return FaultPlan(faults)


@contextlib.asynccontextmanager
async def open_cluster(
    *,
    seed: int = 0,
    faults: FaultPlan | Iterable[Fault] | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT_S,
    **broker_config: Any,
) -> AsyncIterator[Cluster]:
    """Start a broker (configured by Kafka's settings in snake case) and a simulated network
    that follows ``faults``. The same seed and plan give the same trace, byte for byte.

    ``time_limit`` bounds the run in simulated seconds: past it, ``SimulationTimeLimit``.
    """
    clock = trio.lowlevel.current_clock()
    if not is_simulated(clock):
        raise RuntimeError(
            "open_cluster needs simulated time, and this trio run has a real clock (or a mock "
            "clock that never jumps). Start your program with minikafka.run(main); under "
            "pytest-trio, ask for the autojump_clock fixture."
        )
    config = BrokerConfig.from_options(broker_config)
    plan = _plan(faults)
    seed_scheduler(f"{seed}/scheduler")
    network = Network(Broker(config), plan)
    limit = trio.CancelScope(deadline=trio.current_time() + time_limit)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.run)
            cluster = Cluster(network, nursery, seed)
            with limit:
                try:
                    yield cluster
                finally:
                    nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps what the block raised; a user should see their own exception.
        if len(group.exceptions) == 1:
            error = group.exceptions[0]
            raise error from error.__cause__
        raise
    if limit.cancel_called:
        raise SimulationTimeLimit(
            f"the simulation ran past time_limit={time_limit} simulated seconds, so something "
            "waits forever (a getone() on a topic nobody writes to, a commit to a broker that "
            "never recovers). Look at cluster.trace, or raise time_limit."
        )
