"""Metrics: how good a prediction is, as functions and as accumulators the Trainer updates per batch.

Functions (one batch or a whole set at once):

- ``accuracy(prediction, target)``: the fraction of samples whose predicted class (the
  arg-max of the scores (N, C); for a single column (N,) or (N, 1), score > ``threshold``)
  equals the target class (indices (N,), or one-hot/probabilities (N, C) whose arg-max is taken).
- ``top_k_accuracy(prediction, target, k=5)``: the fraction whose target class is among the
  k highest scores (ties broken by position, as ``argpartition``).
- ``confusion_matrix(prediction, target, num_classes=None)``: M[i, j] = number of samples of
  true class i predicted as class j (int64, (C, C)).
- ``mean_squared_error(prediction, target)``: mean over every element of (prediction - target)².

Accumulators (:class:`Metric`): ``reset()``, ``update(prediction, target)`` once per batch,
``result()`` the value over every sample seen since the reset. Sums are kept as Python
numbers, so the epoch value is exact and does not depend on how the data was batched.
The Trainer accepts the names ``'accuracy'`` (``'acc'``), ``'topK'`` (``'top5'``, ``'top3'``...),
``'mse'``, a :class:`Metric` instance, or a function ``f(prediction, target) -> float``
(averaged over batches, weighted by batch size).
"""

from __future__ import annotations

import re

import numpy as np

from ..backend import array_module


def _as_classes(prediction, threshold: float = 0.5):
    """Predicted class per sample: arg-max over columns, or score > threshold for one column."""
    if prediction.ndim == 1 or (prediction.ndim == 2 and prediction.shape[1] == 1):
        return (prediction.reshape(-1) > threshold).astype(np.int64)
    if prediction.ndim != 2:
        raise ValueError(f"expected a prediction of shape (N, C), (N, 1) or (N,), got {tuple(prediction.shape)}")
    return prediction.argmax(axis=1)


def _target_classes(target, n: int):
    target = array_module(target).asarray(target)  # a CuPy target stays on the GPU
    if target.ndim == 2 and target.shape[1] > 1:
        target = target.argmax(axis=1)
    target = target.reshape(-1)
    if target.shape[0] != n:
        raise ValueError(f"expected {n} targets (one per prediction), got {target.shape[0]}")
    if target.dtype.kind == "f":
        target = np.rint(target).astype(np.int64)
    return target


def accuracy(prediction, target, threshold: float = 0.5) -> float:
    """Fraction of samples classified correctly (see the module docstring for the shapes)."""
    n = prediction.shape[0]
    if n == 0:
        return float("nan")
    return int((_as_classes(prediction, threshold) == _target_classes(target, n)).sum()) / n


def top_k_accuracy(prediction, target, k: int = 5) -> float:
    """Fraction of samples whose target class is among the ``k`` highest scores of (N, C)."""
    return _top_k_correct(prediction, target, k) / prediction.shape[0] if prediction.shape[0] else float("nan")


def _top_k_correct(prediction, target, k: int) -> int:
    if prediction.ndim != 2:
        raise ValueError(f"top_k_accuracy: expected scores (N, C), got {tuple(prediction.shape)}")
    n, c = prediction.shape
    target = _target_classes(target, n)
    if k >= c:
        return n
    top = np.argpartition(prediction, c - k, axis=1)[:, c - k :]
    return int((top == target[:, None]).any(axis=1).sum())


def confusion_matrix(prediction, target, num_classes: int | None = None, threshold: float = 0.5):
    """(C, C) int64 counts: row = true class, column = predicted class."""
    predicted = _as_classes(prediction, threshold)
    target = _target_classes(target, predicted.shape[0])
    if num_classes is None:
        num_classes = max(int(predicted.max(initial=0)), int(target.max(initial=0))) + 1
        if prediction.ndim == 2 and prediction.shape[1] > 1:
            num_classes = max(num_classes, prediction.shape[1])
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"confusion_matrix: target classes must lie in [0, {num_classes})")
    counts = np.bincount(target * num_classes + predicted, minlength=num_classes * num_classes)
    return counts[: num_classes * num_classes].reshape(num_classes, num_classes).astype(np.int64)


def mean_squared_error(prediction, target) -> float:
    """Mean over every element of (prediction - target)², accumulated in float64."""
    target = array_module(prediction).asarray(target).reshape(prediction.shape)
    diff = prediction.astype(np.float64) - target
    return float(np.mean(diff * diff)) if diff.size else float("nan")


# accumulators -----------------------------------------------------------------------------


class Metric:
    """An accumulator: ``reset()``, ``update(prediction, target)``, ``result()``. ``name`` keys the logs."""

    name = "metric"
    mode = "max"  # which direction is better (EarlyStopping's mode='auto' asks)

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, prediction, target) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state) -> None:
        self.__dict__.update(state)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Accuracy(Metric):
    """Fraction of samples classified correctly, over every batch since the last reset."""

    def __init__(self, threshold: float = 0.5, name: str = "accuracy"):
        self.threshold = float(threshold)
        self.name = name
        self.reset()

    def reset(self):
        self.correct, self.count = 0, 0

    def update(self, prediction, target):
        n = prediction.shape[0]
        self.correct += int((_as_classes(prediction, self.threshold) == _target_classes(target, n)).sum())
        self.count += n

    def result(self):
        return self.correct / self.count if self.count else float("nan")


class TopKAccuracy(Metric):
    """Fraction of samples whose target class is among the ``k`` highest scores."""

    def __init__(self, k: int = 5, name: str | None = None):
        if int(k) < 1:
            raise ValueError(f"TopKAccuracy: k must be at least 1, got {k}")
        self.k = int(k)
        self.name = name or f"top{self.k}"
        self.reset()

    def reset(self):
        self.correct, self.count = 0, 0

    def update(self, prediction, target):
        self.correct += _top_k_correct(prediction, target, self.k)
        self.count += prediction.shape[0]

    def result(self):
        return self.correct / self.count if self.count else float("nan")


class MeanSquaredError(Metric):
    """Mean over every element of (prediction - target)², over every batch since the reset."""

    mode = "min"

    def __init__(self, name: str = "mse"):
        self.name = name
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, prediction, target):
        target = array_module(prediction).asarray(target).reshape(prediction.shape)
        diff = prediction.astype(np.float64) - target
        self.total += float(np.vdot(diff, diff))
        self.count += diff.size

    def result(self):
        return self.total / self.count if self.count else float("nan")


class FunctionMetric(Metric):
    """A function ``f(prediction, target) -> float`` averaged over batches, weighted by batch size."""

    def __init__(self, function, name: str | None = None, mode: str = "max"):
        self.function = function
        self.name = name or getattr(function, "__name__", "metric")
        self.mode = mode
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, prediction, target):
        n = prediction.shape[0]
        self.total += float(self.function(prediction, target)) * n
        self.count += n

    def result(self):
        return self.total / self.count if self.count else float("nan")

    def state_dict(self):
        return {"total": self.total, "count": self.count}


_TOP_K = re.compile(r"^top[_-]?(\d+)(?:_accuracy)?$")


def get_metric(spec) -> Metric:
    """A fresh :class:`Metric` from a name ('accuracy', 'top5', 'mse'), a Metric or a function."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("accuracy", "acc"):
            return Accuracy()
        match = _TOP_K.match(key)
        if match:
            return TopKAccuracy(int(match.group(1)), name=spec)
        if key in ("mse", "mean_squared_error"):
            return MeanSquaredError(name=spec)
        raise ValueError(f"unknown metric {spec!r}; expected 'accuracy', 'topK' (e.g. 'top5'), 'mse', a Metric or a function")
    if callable(spec):
        return FunctionMetric(spec)
    raise TypeError(f"expected a metric name, a Metric or a function, got {type(spec).__name__}")
