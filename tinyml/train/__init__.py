"""Training: the MLPerf Tiny VWW recipe with per-epoch checkpoints and exact resume."""

from tinyml.train.loop import TrainConfig, TrainResult, evaluate, train_model

__all__ = ["TrainConfig", "TrainResult", "evaluate", "train_model"]
