"""The overfit-a-small-batch sanity check, and what to try when training diverges.

Ranzato's practical guide: "test on a small subset of the data and check the error goes
to 0". A network that cannot drive the training error to zero on 16 or 32 examples has
a bug, a wrong learning rate or too little capacity; finding out takes a second, before
hours of training. :func:`sanity_check` trains a *copy* of the model on one or two small
batches and says what it saw:

- the loss stays flat        -> learning rate too low, or a bug (check gradients with gradcheck);
- the loss rises or is NaN   -> learning rate too high;
- the loss falls, not to 0   -> train longer, or a bigger model;
- the error reaches 0        -> passed.

The training loop is the lectures' one, on the flat parameter vector (no optimizer class
needed)::

    model.zero_grad(); y = model(x); E = loss(y, t); model.backward(loss.backward())
    flat.data -= lr * flat.grad

``optimizer_factory(model, lr)`` may supply another optimizer (anything with ``step()``,
``zero_grad()`` and ``param_groups[i]['lr']``), e.g.
``lambda model, lr: gl.Adam(model.parameters(), lr=lr)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import resolve_generator, to_device
from ..losses import EnergyLoss, EnergyNLLLoss, HingeLoss, Loss, PerceptronLoss

# -------------------------------------------------------------------------------------------
# shared training machinery (used by the lr finder too)


class _Stepper:
    """One training step at a time on ``model`` (already a copy): plain SGD on the flat
    vector, or ``optimizer_factory(model, lr)``'s optimizer."""

    def __init__(self, model, loss, lr: float, optimizer_factory=None):
        if not isinstance(loss, Loss) and not callable(getattr(loss, "backward", None)):
            raise TypeError(f"expected a gradlearn loss (with forward and backward), got {type(loss).__name__}")
        self.model = model
        self.loss = loss
        self.optimizer = None
        self.flat = None
        if optimizer_factory is None:
            self.flat = model.flat_parameters()
        else:
            self.optimizer = optimizer_factory(model, lr)
        self.set_lr(lr)

    def set_lr(self, lr: float) -> None:
        self.lr = float(lr)
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr

    def step(self, x, t):
        """One forward, backward and update; returns (loss value, model output).

        A non-finite loss is returned without a backward pass or an update.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if self.optimizer is not None:
                self.optimizer.zero_grad()
            else:
                self.model.zero_grad()
            y = self.model(x)
            value = float(self.loss(y, t))
            if not math.isfinite(value):
                return value, y
            self.model.backward(self.loss.backward())
            if self.optimizer is not None:
                self.optimizer.step()
            else:
                flat = self.flat
                flat.data -= self.lr * flat.grad
        return value, y

    def evaluate(self, x, t):
        """The loss (no update) in the model's current mode."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            y = self.model(x)
            return float(self.loss(y, t)), y


def _model_dtype(model):
    for p in model.parameters():
        return p.dtype
    return None


def _as_model_dtype(model, x):
    """Floating ``x`` cast to the dtype of the model's parameters (integers untouched)."""
    dtype = _model_dtype(model)
    if dtype is not None and getattr(getattr(x, "dtype", None), "kind", None) == "f" and x.dtype != dtype:
        return x.astype(dtype)
    return x


def _is_dataset(data):
    return hasattr(data, "x") and hasattr(data, "y") and hasattr(data.x, "shape")


def _batches(x, y, batch_size, generator, model):
    """An endless stream of (inputs, targets) mini-batches.

    Arrays are reshuffled every pass with ``generator``; with ``y`` None, ``x`` is a
    dataset with ``.x`` and ``.y`` arrays, or an iterable of (inputs, targets) batches (a
    DataLoader), cycled.
    """
    if y is None and _is_dataset(x):
        x, y = x.x, x.y
    if y is None:
        while True:
            produced = False
            for xb, yb in x:
                produced = True
                yield _as_model_dtype(model, xb), _as_model_dtype(model, yb)
            if not produced:
                raise ValueError("the data loader yielded no batches")
    x = _as_model_dtype(model, x)
    y = _as_model_dtype(model, y)
    n = len(x)
    if n == 0:
        raise ValueError("no samples given")
    if len(y) != n:
        raise ValueError(f"inputs and targets disagree on the number of samples: {len(x)} and {len(y)}")
    batch_size = n if batch_size is None else max(1, min(int(batch_size), n))
    if batch_size == n:
        while True:
            yield x, y
    while True:
        order = generator.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


# -------------------------------------------------------------------------------------------
# error rates


_ENERGY_LOSSES = (EnergyLoss, PerceptronLoss, HingeLoss, EnergyNLLLoss)


def classification_error(output, target, loss=None):
    """Fraction of misclassified samples, or None when the task is not classification.

    Class-index targets (N,) against scores (N, C): argmax (argmin for the energy-based
    losses, whose low energy is the answer); one-hot float targets (N, C): argmax of both;
    0/1 targets against one logit per sample (N,) or (N, 1): the sign of the logit.
    """
    output = to_device(output, "cpu")
    target = to_device(target, "cpu")
    if output.ndim == 0 or target.ndim == 0 or output.shape[0] != target.shape[0]:
        return None
    pick = np.argmin if isinstance(loss, _ENERGY_LOSSES) else np.argmax
    if target.dtype.kind in "iu":
        if output.ndim == 2 and output.shape[1] > 1 and target.ndim == 1:
            return float(np.mean(pick(output, axis=1) != target))
        if output.reshape(len(output), -1).shape[1] == 1:
            return float(np.mean((output.reshape(-1) > 0) != (target.reshape(-1) > 0)))
        return None
    if target.dtype.kind == "f" and output.shape == target.shape and np.all((target == 0) | (target == 1)):
        if output.ndim == 2 and output.shape[1] > 1 and np.all(target.sum(axis=1) == 1):
            return float(np.mean(pick(output, axis=1) != target.argmax(axis=1)))
        if output.reshape(len(output), -1).shape[1] == 1:
            return float(np.mean((output.reshape(-1) > 0) != (target.reshape(-1) > 0.5)))
    return None


# -------------------------------------------------------------------------------------------
# the sanity check


VERDICTS = {
    "passed": "passed: the training error reached zero on the small subset",
    "flat": "the loss stayed flat: the learning rate is too low, or there is a bug (check gradients with gradcheck)",
    "diverged": "the loss rose or became NaN/inf: the learning rate is too high (lower it by 10x)",
    "slow": "the loss fell but not to zero: train longer or use a bigger model",
}


@dataclass
class SanityReport:
    """What :func:`sanity_check` saw.

    Attributes:
        passed: the training error reached zero (classification) or the loss fell below
            the threshold (regression).
        diagnosis: 'passed', 'flat', 'diverged' or 'slow'.
        verdict: a sentence saying what that means and what to try.
        losses: the training loss at every step (the loss curve).
        errors: the training error at every step (empty for regression).
        final_loss, final_error: measured after training, in evaluation mode.
    """

    passed: bool
    diagnosis: str
    verdict: str
    losses: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    initial_loss: float = float("nan")
    final_loss: float = float("nan")
    final_error: float | None = None
    threshold: float | None = None
    lr: float = 0.0
    steps: int = 0
    num_samples: int = 0

    def __bool__(self):
        return self.passed

    def __str__(self):
        status = "passed" if self.passed else "FAILED"
        error = "n/a" if self.final_error is None else f"{100 * self.final_error:.1f}%"
        return (
            f"sanity check {status} ({self.num_samples} samples, {self.steps} steps at lr={self.lr:g}): "
            f"loss {self.initial_loss:.4g} -> {self.final_loss:.4g}, training error {error}\n  {self.verdict}"
        )


def _fitted(error, value, is_classification, limit) -> bool:
    if not math.isfinite(value) or (is_classification and error != 0):
        return False
    return limit is None or value <= limit


def _diagnose(losses, initial, final, flat_tolerance):
    """'diverged', 'flat' or 'slow' from a loss curve that did not reach its target."""
    if not all(math.isfinite(v) for v in losses) or not math.isfinite(final):
        return "diverged"
    scale = max(abs(initial), 1e-12)
    if final > initial + flat_tolerance * scale or max(losses) > initial + 1.0 * scale:
        return "diverged"
    if initial - final < flat_tolerance * scale:
        return "flat"
    return "slow"


def sanity_check(
    model,
    loss,
    x,
    y=None,
    steps: int = 500,
    lr: float = 0.1,
    *,
    num_samples: int | None = 32,
    batch_size: int | None = None,
    threshold: float | None = None,
    flat_tolerance: float = 0.05,
    optimizer_factory=None,
    generator=0,
) -> SanityReport:
    """Check that a copy of ``model`` can overfit a small subset of ``(x, y)``.

    Args:
        model, loss: the network and its loss; the model is copied (``model.copy()``), the
            caller's model is never changed.
        x, y: data (or ``x`` a dataset with ``.x`` and ``.y`` and ``y`` None); the first
            ``num_samples`` samples are used (all when None). Floating arrays are cast to
            the model's dtype.
        steps: the most training steps; training stops as soon as the target is reached.
        lr: the learning rate of plain SGD on the flat parameter vector (or of the
            optimizer that ``optimizer_factory(model, lr)`` builds).
        batch_size: None trains on the whole subset at every step (one batch); a smaller
            value cycles through reshuffled mini-batches of it (two batches for half).
        threshold: for regression (no class targets), the loss that counts as zero;
            default 1 % of the initial loss. For classification, if given, the loss must
            also fall below it.
        flat_tolerance: a relative loss change below this counts as flat (default 5 %).
        generator: seeds the mini-batch shuffling.

    Returns a :class:`SanityReport` (truthy when passed): the loss curve, the final loss
    and error, and a verdict saying what to try when it failed.
    """
    if steps < 1:
        raise ValueError(f"sanity_check: steps must be at least 1, got {steps}")
    if y is None:
        if not _is_dataset(x):
            raise TypeError("sanity_check: give inputs x and targets y, or a dataset with .x and .y")
        x, y = x.x, x.y
    x = np.asarray(x) if not hasattr(x, "shape") else x
    y = np.asarray(y) if not hasattr(y, "shape") else y
    if num_samples is not None:
        x, y = x[:num_samples], y[:num_samples]
    clone = model.copy().train()
    x = _as_model_dtype(clone, x)
    y = _as_model_dtype(clone, y)
    stepper = _Stepper(clone, loss, lr, optimizer_factory)
    batches = _batches(x, y, batch_size, resolve_generator(generator), clone)

    initial, _ = stepper.evaluate(x, y)
    is_classification = None
    limit = None
    losses, errors = [], []
    for _ in range(int(steps)):
        xb, yb = next(batches)
        value, out = stepper.step(xb, yb)
        losses.append(value)
        if not math.isfinite(value):
            break
        error = classification_error(out, yb, loss)
        if is_classification is None:
            is_classification = error is not None
            limit = threshold if threshold is not None else (None if is_classification else 0.01 * abs(initial))
        if error is not None:
            errors.append(error)
        if _fitted(error, value, is_classification, limit):
            # that was the loss before this step's update: confirm on the whole subset, now
            now, now_out = stepper.evaluate(x, y)
            if _fitted(classification_error(now_out, y, loss), now, is_classification, limit):
                break

    clone.eval()
    final, out = stepper.evaluate(x, y)
    final_error = classification_error(out, y, loss)
    if is_classification is None:  # diverged at the first step
        is_classification = final_error is not None
        limit = threshold if threshold is not None else (None if is_classification else 0.01 * abs(initial))
    if is_classification:
        passed = final_error == 0 and math.isfinite(final) and (limit is None or final <= limit)
    else:
        passed = math.isfinite(final) and final <= limit
    diagnosis = "passed" if passed else _diagnose(losses, initial, final, flat_tolerance)
    verdict = VERDICTS[diagnosis]
    if passed and not is_classification:
        verdict = f"passed: the training loss fell below {limit:.3g} on the small subset"
    return SanityReport(
        passed=bool(passed),
        diagnosis=diagnosis,
        verdict=verdict,
        losses=losses,
        errors=errors,
        initial_loss=initial,
        final_loss=final,
        final_error=final_error,
        threshold=limit,
        lr=float(lr),
        steps=len(losses),
        num_samples=len(x),
    )


# -------------------------------------------------------------------------------------------
# divergence advice


def divergence_advice(step, loss, lr=None) -> str:
    """What to try when training diverged at ``step`` with loss value ``loss`` and rate ``lr``.

    The lectures' list: the learning rate may be too large (lower it by 10x), the bprop
    may be buggy (check it with gradcheck); plus checking the data for NaN/inf and
    clipping the gradient.
    """
    try:
        value = float(loss)
    except (TypeError, ValueError):
        value = float("nan")
    if math.isnan(value):
        what = "the loss became NaN"
    elif math.isinf(value):
        what = "the loss became infinite"
    else:
        what = f"the loss rose to {value:.4g}"
    lines = [f"training diverged at step {step}: {what}" + (f" (learning rate {float(lr):g})." if lr is not None else ".")]
    lines.append("What to try:")
    if lr is not None and float(lr) > 0:
        lines.append(
            f"  1. lower the learning rate by 10x (to {float(lr) / 10:g}); gradlearn.diagnostics.find_lr "
            "searches for a rate that does not diverge."
        )
    else:
        lines.append("  1. lower the learning rate by 10x; gradlearn.diagnostics.find_lr searches for one that does not diverge.")
    lines.append("  2. check the backward pass against finite differences: gradlearn.gradcheck(module, x).")
    lines.append(
        "  3. check the data for NaN/inf (numpy.isfinite(x).all()) and that inputs are normalised "
        "(zero mean, unit variance) and targets are in the loss's range."
    )
    lines.append("  4. clip the gradient norm (e.g. to 1-5) if the loss spikes only now and then.")
    return "\n".join(lines)
