"""The training core's public API: what a trainer plugin may import."""

from ra3bench.training.base import (
    TRAINERS,
    DataConfig,
    EvalConfig,
    LoraConfig,
    ModelConfig,
    RunConfig,
    Trainer,
    TrainingExample,
)
from ra3bench.training.context import TrainContext
from ra3bench.training.data import tokenize_example

__all__ = [
    "TRAINERS",
    "DataConfig",
    "EvalConfig",
    "LoraConfig",
    "ModelConfig",
    "RunConfig",
    "TrainContext",
    "Trainer",
    "TrainingExample",
    "tokenize_example",
]
