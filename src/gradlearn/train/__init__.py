"""Training: the Trainer (fit / evaluate / predict / resume), callbacks, metrics, safe checkpoints."""

from .callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    DivergenceError,
    DivergenceGuard,
    EarlyStopping,
    LambdaCallback,
    ProgressBar,
    latest_checkpoint,
    list_checkpoints,
)
from .checkpoint import CheckpointError, load_checkpoint, load_weights, read_checkpoint, save_checkpoint, save_weights
from .metrics import (
    Accuracy,
    MeanSquaredError,
    Metric,
    TopKAccuracy,
    accuracy,
    confusion_matrix,
    mean_squared_error,
    top_k_accuracy,
)
from .trainer import History, Trainer

__all__ = [
    "Trainer",
    "History",
    "Callback",
    "LambdaCallback",
    "ProgressBar",
    "EarlyStopping",
    "Checkpoint",
    "CSVLogger",
    "DivergenceGuard",
    "DivergenceError",
    "list_checkpoints",
    "latest_checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "save_weights",
    "load_weights",
    "Metric",
    "Accuracy",
    "TopKAccuracy",
    "MeanSquaredError",
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "mean_squared_error",
]
