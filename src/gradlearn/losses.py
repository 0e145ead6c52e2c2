"""Losses: the last module of a network, from a prediction and a target to a scalar E.

A loss is called as ``E = loss(prediction, target)`` and ``loss.backward()`` returns
dE/dprediction (optionally scaled by an upstream scalar gradient). ``reduction='mean'``
averages over the batch (over every element for MSE and BCE, as PyTorch does);
``reduction='sum'`` adds.

The energy-based losses of LeCun's lecture take a vector of per-class energies
E(W, y, X) (shape (N, C); low energy = preferred answer) and class-index targets Y.
"""

from __future__ import annotations

import math

import numpy as np

from . import compiled
from .backend import array_module
from .gpu_kernels import kernel
from .modules.base import Module

REDUCTIONS = ("mean", "sum")
MAX_COMPILED_CLASSES = 64  # classes up to which CrossEntropyLoss takes its compiled pass (scalar exp; see _forward_compiled)
GPU_ROW_CLASSES = 1024  # classes up to which CrossEntropyLoss takes its GPU kernel (a thread per row; see _forward_gpu)


class Loss(Module):
    """Base class: validates ``reduction``; subclasses implement forward and backward."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.grad = None

    def __call__(self, prediction, target):
        return self.forward(prediction, target)

    def _finish(self, per_sample, grad, count):
        """Reduce per-sample losses; keep the gradient of the reduced loss for backward."""
        if self.reduction == "mean":
            grad *= 1.0 / count
            value = per_sample.sum() / count
        else:
            value = per_sample.sum()
        self.grad = grad
        return value

    def backward(self, grad_output=1.0):
        """dE/dprediction, times ``grad_output`` (the gradient of what E feeds, 1 by default)."""
        if self.grad is None:
            raise self.error("backward", "backward called before forward", RuntimeError)
        if isinstance(grad_output, (int, float)) and grad_output == 1.0:
            return self.grad
        return self.grad * grad_output

    def extra_repr(self):
        return f"reduction={self.reduction!r}"

    # checks ------------------------------------------------------------------------------
    def check_same_shape(self, prediction, target):
        self.check_float(prediction, name="prediction")
        self.check_float(target, name="target")
        if prediction.shape != target.shape:
            raise self.error(
                "forward", f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must have the same shape"
            )

    def check_class_indices(self, scores, target, what="prediction", check_range=True):
        """Validate (N, C) scores and (N,) integer class indices in [0, C) (their range only
        with ``check_range``)."""
        self.check_float(scores, name=what)
        if scores.ndim != 2:
            raise self.error("forward", f"expected {what} (N, C), got {tuple(scores.shape)}")
        kind = getattr(getattr(target, "dtype", None), "kind", None)
        if kind not in ("i", "u"):
            got = f"dtype {target.dtype}" if kind else type(target).__name__
            raise self.error("forward", f"expected integer class indices as target, got {got}", TypeError)
        if target.shape != (scores.shape[0],):
            raise self.error(
                "forward", f"expected target of shape ({scores.shape[0]},) for {what} {tuple(scores.shape)}, got {tuple(target.shape)}"
            )
        if check_range and target.size and (target.min() < 0 or target.max() >= scores.shape[1]):
            bad = target[(target < 0) | (target >= scores.shape[1])][0]
            raise self.error("forward", f"class index {int(bad)} is out of range [0, {scores.shape[1]})")


def _one_hot(target, num_classes, dtype, xp):
    out = xp.zeros((target.shape[0], num_classes), dtype=dtype)
    out[xp.arange(target.shape[0]), target] = 1
    return out


def _log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class MSELoss(Loss):
    """E = mean over all elements of (x - y)²  (sum with reduction='sum').

    dE/dx = 2 (x - y) / numel  (2 (x - y) for 'sum').
    """

    def forward(self, prediction, target):
        self.check_same_shape(prediction, target)
        diff = prediction - target
        return self._finish(diff * diff, 2 * diff, prediction.size)


class EuclideanLoss(Loss):
    """The lectures' E = 1/2 ||x - y||² per sample, averaged over the batch (summed for 'sum').

    dE/dx = (x - y) / N  ((x - y) for 'sum').
    """

    def forward(self, prediction, target):
        self.check_same_shape(prediction, target)
        diff = prediction - target
        return self._finish(0.5 * diff * diff, diff.copy(), prediction.shape[0])


class CrossEntropyLoss(Loss):
    """E = -sum_c t_c log softmax(x)_c per sample, from logits x (N, C).

    ``target`` is either class indices (N,) of an integer dtype, or probabilities (N, C).
    The softmax is shifted by the row maximum, so logits of magnitude 1e4 are fine.
    ``label_smoothing`` eps mixes the one-hot target with the uniform one:
    t = (1 - eps) onehot + eps / C.

    Fused gradient: dE/dx = softmax(x) * sum_c t_c - t   (= p - y for a one-hot y), / N for 'mean'.
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, prediction, target):
        xp = array_module(prediction)
        if getattr(target, "ndim", None) == 2 and getattr(target.dtype, "kind", None) == "f":
            self.check_same_shape(prediction, target)
            if prediction.ndim != 2:
                raise self.error("forward", f"expected prediction (N, C), got {tuple(prediction.shape)}")
            probs = target
        else:
            if not self.label_smoothing and self._compiled(prediction, target, xp):
                self.check_class_indices(prediction, target, check_range=False)  # the kernel checks the range
                return self._forward_compiled(prediction, target)
            if not self.label_smoothing and self._fused_on_gpu(prediction, target, xp):
                self.check_class_indices(prediction, target, check_range=False)  # the kernel checks the range
                return self._forward_gpu(prediction, target, xp)
            self.check_class_indices(prediction, target)
            if not self.label_smoothing:
                return self._forward_indices(prediction, target, xp)
            probs = _one_hot(target, prediction.shape[1], prediction.dtype, xp)
        if self.label_smoothing:
            probs = probs * (1 - self.label_smoothing) + self.label_smoothing / prediction.shape[1]
        log_p = _log_softmax(prediction)
        per_sample = -(probs * log_p).sum(axis=1)
        grad = np.exp(log_p) * probs.sum(axis=1, keepdims=True) - probs
        return self._finish(per_sample, grad, prediction.shape[0])

    def _forward_indices(self, prediction, target, xp):
        """Class indices y, no smoothing: E = log sum_c exp(s_c) - s_y with s = x - max_c x,
        and dE/dx = softmax(x) - onehot(y), without building the one-hot (a third of
        the NumPy calls, for the per-step overhead of small networks)."""
        n = prediction.shape[0]
        shifted = prediction - prediction.max(axis=1, keepdims=True)
        grad = xp.exp(shifted)
        total = grad.sum(axis=1, keepdims=True)
        rows = xp.arange(n)
        per_sample = xp.log(total[:, 0]) - shifted[rows, target]
        grad /= total
        grad[rows, target] -= 1
        return self._finish(per_sample, grad, n)

    @staticmethod
    def _compiled(prediction, target, xp):
        """Whether ``_forward_compiled`` takes these (valid-looking) arguments."""
        return (
            xp is np
            and getattr(prediction, "ndim", 0) == 2
            and prediction.shape[1] <= MAX_COMPILED_CLASSES
            and prediction.dtype in (np.float32, np.float64)
            and getattr(target, "dtype", None) == np.int64
            and prediction.flags.c_contiguous
            and target.flags.c_contiguous
            and compiled.available()
        )

    def _forward_compiled(self, prediction, target):
        """The loss and its gradient in one compiled pass over the logits (a row's maximum,
        its sum of exponentials, then the scaled softmax minus the one-hot), the value summed
        in double: a dozen NumPy calls become one, for the per-step overhead of small
        networks. Its exponentials are scalar, so it pays up to MAX_COMPILED_CLASSES
        classes (one loss, 2-core CPU: a tiny MLP's 32 x 2 logits 33 -> 14 us, an MLP's 128 x
        10 59 -> 22 us, 128 x 64 75 -> 63 us; level near 100 classes, 2.4x slower at 1000).
        The kernel checks the indices' range as it goes; when one is out of it,
        ``check_class_indices`` raises the error."""
        n = prediction.shape[0]
        grad = np.empty_like(prediction)
        total = np.zeros(1)
        scale = 1.0 / n if self.reduction == "mean" else 1.0
        if compiled.kernel("cross_entropy")(prediction, target, grad, total, scale) >= 0:
            self.check_class_indices(prediction, target)  # raises, naming the first bad index
        self.grad = grad
        value = total[0] * scale
        return prediction.dtype.type(value)

    @staticmethod
    def _fused_on_gpu(prediction, target, xp):
        """Whether ``_forward_gpu`` takes these (valid-looking) arguments."""
        return (
            xp is not np
            and getattr(prediction, "ndim", 0) == 2
            and prediction.shape[1] <= GPU_ROW_CLASSES
            and prediction.dtype in (np.float32, np.float64)
            and getattr(getattr(target, "dtype", None), "kind", None) in ("i", "u")
            and array_module(target) is xp
        )

    def _forward_gpu(self, prediction, target, xp):
        """The loss and its gradient on the GPU in two kernels: each row's scaled loss and
        its gradient row in one (``gpu_kernels`` 'cross_entropy_rows', a thread per row),
        then their sum. On an H100 machine the vectorised path took 0.6 ms of a 1.2 ms MLP
        step: a dozen CuPy calls and two readbacks for the range check.

        A class index out of range makes the value NaN; reading the value (to raise for
        it, with ``check_class_indices``) is the one host synchronisation of a training
        step on the GPU. A NaN logit makes the value NaN too, and is returned as it is."""
        n, classes = prediction.shape
        scale = prediction.dtype.type(1.0 / n if self.reduction == "mean" else 1.0)
        per_row = xp.empty(n, dtype=prediction.dtype)
        grad = xp.empty((n, classes), dtype=prediction.dtype)
        kernel("cross_entropy_rows")(target, prediction, classes, scale, per_row, grad)
        value = per_row.sum()
        if not math.isfinite(float(value)):
            self.check_class_indices(prediction, target)  # raises, naming the first bad index
        self.grad = grad
        return value


class NLLLoss(Loss):
    """E = -log_p[Y] per sample, from log-probabilities (N, C) (e.g. LogSoftmax's output).

    dE/dlog_p = -onehot(Y)  (/ N for 'mean').
    """

    def forward(self, prediction, target):
        self.check_class_indices(prediction, target, "log-probabilities")
        xp = array_module(prediction)
        rows = xp.arange(prediction.shape[0])
        grad = xp.zeros_like(prediction)
        grad[rows, target] = -1
        return self._finish(-prediction[rows, target], grad, prediction.shape[0])


class BCEWithLogitsLoss(Loss):
    """E = mean over elements of -[y log s(x) + (1 - y) log(1 - s(x))], s the sigmoid.

    Computed stably as max(x, 0) - x y + log(1 + exp(-|x|)). dE/dx = s(x) - y (/ numel).
    """

    def forward(self, prediction, target):
        self.check_same_shape(prediction, target)
        x = prediction
        per_element = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
        sigmoid = 0.5 * (1 + np.tanh(0.5 * x))
        return self._finish(per_element, sigmoid - target, x.size)


# The energy-based losses --------------------------------------------------------------------


class EnergyLoss(Loss):
    """L = E(W, Y, X): push down the energy of the correct answer only.

    dL/dE = onehot(Y). (Works only with architectures whose energies cannot all collapse.)
    """

    def forward(self, prediction, target):
        self.check_class_indices(prediction, target, "energies")
        xp = array_module(prediction)
        grad = _one_hot(target, prediction.shape[1], prediction.dtype, xp)
        return self._finish(prediction[xp.arange(prediction.shape[0]), target], grad, prediction.shape[0])


class PerceptronLoss(Loss):
    """L = E(Y) - min_y E(y): zero when the correct answer has the lowest energy.

    dL/dE = onehot(Y) - onehot(argmin_y E(y)).
    """

    def forward(self, prediction, target):
        self.check_class_indices(prediction, target, "energies")
        xp = array_module(prediction)
        rows = xp.arange(prediction.shape[0])
        best = prediction.argmin(axis=1)
        grad = _one_hot(target, prediction.shape[1], prediction.dtype, xp)
        grad[rows, best] -= 1
        per_sample = prediction[rows, target] - prediction[rows, best]
        return self._finish(per_sample, grad, prediction.shape[0])


class HingeLoss(Loss):
    """L = [m + E(Y) - min_{y != Y} E(y)]^+: the correct energy must sit ``margin`` below the
    lowest wrong one.

    Where the bracket is positive: dL/dE = onehot(Y) - onehot(argmin_{y != Y} E(y)); else 0.
    """

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)

    def forward(self, prediction, target):
        self.check_class_indices(prediction, target, "energies")
        if prediction.shape[1] < 2:
            raise self.error("forward", f"needs at least 2 classes, got energies {tuple(prediction.shape)}")
        xp = array_module(prediction)
        rows = xp.arange(prediction.shape[0])
        wrong = prediction.copy()
        wrong[rows, target] = xp.inf
        rival = wrong.argmin(axis=1)
        bracket = self.margin + prediction[rows, target] - prediction[rows, rival]
        active = (bracket > 0).astype(prediction.dtype)
        grad = xp.zeros_like(prediction)
        grad[rows, target] = active
        grad[rows, rival] -= active
        return self._finish(bracket * active, grad, prediction.shape[0])

    def extra_repr(self):
        return f"margin={self.margin}, reduction={self.reduction!r}"


class EnergyNLLLoss(Loss):
    """L = E(Y) + 1/beta log sum_y exp(-beta E(y)): the negative log-likelihood of the Gibbs
    distribution P(y) = exp(-beta E(y)) / Z. Log-sum-exp shifted by the max, so large beta
    is fine.

    dL/dE = onehot(Y) - P(y),  P = softmax(-beta E).
    """

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not beta > 0:
            raise ValueError(f"EnergyNLLLoss: beta must be positive, got {beta}")
        self.beta = float(beta)

    def forward(self, prediction, target):
        self.check_class_indices(prediction, target, "energies")
        xp = array_module(prediction)
        rows = xp.arange(prediction.shape[0])
        log_p = _log_softmax(-self.beta * prediction)  # log P(y)
        per_sample = -log_p[rows, target] / self.beta  # = E(Y) + 1/beta log Z
        grad = _one_hot(target, prediction.shape[1], prediction.dtype, xp) - np.exp(log_p)
        return self._finish(per_sample, grad, prediction.shape[0])

    def extra_repr(self):
        return f"beta={self.beta}, reduction={self.reduction!r}"
