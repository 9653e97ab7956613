"""The delivery models as consumer loops: one module per model, a sqlite sink, and a runner.

from minikafka.pipelines import run_pipeline
result = run_pipeline("at-least-once", events=20, faults=plan)
result.lost, result.duplicated
"""

from minikafka.pipelines.base import Event, Worker, payment_event
from minikafka.pipelines.runner import MODELS, Model, PipelineResult, run_pipeline
from minikafka.pipelines.sink import Sink

__all__ = [
    "MODELS",
    "Event",
    "Model",
    "PipelineResult",
    "Sink",
    "Worker",
    "payment_event",
    "run_pipeline",
]
