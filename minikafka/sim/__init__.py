"""The simulated world around the core: fault plans, and the network that applies them between
clients and the broker. The clients and ``open_cluster`` come next (issue 5).
"""

from minikafka.sim.clock import run
from minikafka.sim.faults import Fault, FaultPlan
from minikafka.sim.network import BROKER, ConnectionBroken, Network, RequestTimedOut, TraceEvent

__all__ = [
    "BROKER",
    "ConnectionBroken",
    "Fault",
    "FaultPlan",
    "Network",
    "RequestTimedOut",
    "TraceEvent",
    "run",
]
