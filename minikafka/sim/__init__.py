"""The simulated world around the core: fault plans first; the network, the clock and the
broker task come next (issue 5).
"""

from minikafka.sim.faults import Fault, FaultPlan

__all__ = ["Fault", "FaultPlan"]
