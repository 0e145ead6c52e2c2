"""Learning-rate search: Bottou's halving recipe and the exponential range test.

Both train *copies* of the model; the caller's model is never changed.

Halving (Bottou, "Stochastic Gradient Tricks", as quoted in Ranzato's practical guide):
pick the learning rate on a subset of the data; start with a large rate and divide it by
2 until the loss no longer diverges over a few steps. :func:`halving_lr_search` tries
``start_lr, start_lr/2, start_lr/4, ...``, each from a fresh copy, and returns the first
rate whose loss on the subset went down (and stayed finite).

Range test (Smith 2017): train one copy for a few hundred mini-batches while the rate
grows exponentially from ``start_lr`` to ``end_lr``,

    lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)),

record the loss smoothed by an exponential moving average (debiased like Adam's moments:
s_i = beta s_(i-1) + (1 - beta) E_i, reported as s_i / (1 - beta^(i+1))), and stop when it
explodes (above ``diverge_factor`` times its minimum, or NaN). The loss falls fastest
somewhere before its minimum; two classic suggestions are the rate of the steepest
descent of the smoothed curve against log(lr), and a tenth of the rate at its minimum.
:func:`lr_range_test` returns the whole curve; :func:`~gradlearn.diagnostics.plot_lr_finder`
draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import resolve_generator
from .sanity import _as_model_dtype, _batches, _is_dataset, _Stepper


@dataclass
class LRFinderResult:
    """A learning-rate search's findings.

    Attributes:
        method: 'range' (exponential range test) or 'halving' (Bottou's recipe).
        lrs: the rates tried, in order.
        losses: range test: the smoothed loss at each rate; halving: the loss on the
            subset after ``steps`` steps at each rate (NaN/inf when it diverged).
        raw_losses: range test: the mini-batch losses; halving: the initial loss of each trial.
        diverged: for each rate, whether it diverged.
        suggestion: the suggested learning rate.
        steepest_lr: range test: the rate where the smoothed loss fell fastest.
        min_loss_lr: range test: the rate at the smoothed loss's minimum.
    """

    method: str
    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    raw_losses: list = field(default_factory=list)
    diverged: list = field(default_factory=list)
    suggestion: float | None = None
    steepest_lr: float | None = None
    min_loss_lr: float | None = None

    def __str__(self):
        if self.method == "halving":
            lines = ["learning-rate search (Bottou: start large, halve until the loss no longer diverges):"]
            for lr, before, after, bad in zip(self.lrs, self.raw_losses, self.losses, self.diverged):
                status = "diverged" if bad else "ok"
                lines.append(f"  lr={lr:<12.4g} loss {before:.4g} -> {after:.4g}  {status}")
            if self.suggestion is None:
                lines.append("  every rate diverged: check the gradients (gradcheck) and the data")
            else:
                lines.append(f"  suggested learning rate: {self.suggestion:.4g}")
            return "\n".join(lines)
        lines = [
            f"learning-rate range test: {len(self.lrs)} steps, lr {self.lrs[0]:.3g} -> {self.lrs[-1]:.3g}"
            + (" (stopped: the loss exploded)" if any(self.diverged) else "")
        ]
        if self.suggestion is None:
            lines.append("  no suggestion: the loss never fell (check gradients, widen the range)")
        else:
            lines.append(f"  steepest descent at lr={self.steepest_lr:.3g}; minimum loss at lr={self.min_loss_lr:.3g}")
            lines.append(f"  suggested learning rate: {self.suggestion:.3g}")
        return "\n".join(lines)


def lr_range_test(
    model,
    loss,
    x,
    y=None,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 200,
    batch_size: int | None = 32,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    suggest: str = "minimum",
    optimizer_factory=None,
    generator=0,
) -> LRFinderResult:
    """The exponential learning-rate range test on a copy of ``model``.

    Args:
        x, y: arrays of inputs and targets (mini-batches of ``batch_size``, reshuffled
            each pass with ``generator``); or, with ``y`` None, ``x`` a dataset (with
            ``.x`` and ``.y``) or an iterable of (inputs, targets) batches (a DataLoader).
        start_lr, end_lr, num_steps: the rate grows geometrically from start to end over
            ``num_steps`` mini-batches.
        smoothing: beta of the exponential moving average of the loss (0 = none).
        diverge_factor: stop when the smoothed loss exceeds this times its minimum.
        suggest: 'minimum' (a tenth of the rate at the smoothed loss's minimum, the
            default) or 'steepest' (the rate where it fell fastest against log lr).
        optimizer_factory: ``f(model, lr)`` -> optimizer; default plain SGD on the flat vector.

    Returns an :class:`LRFinderResult` with the curve and the suggestion.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test: need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_steps < 2:
        raise ValueError(f"lr_range_test: num_steps must be at least 2, got {num_steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"lr_range_test: smoothing must be in [0, 1), got {smoothing}")
    if suggest not in ("minimum", "steepest"):
        raise ValueError(f"lr_range_test: suggest must be 'minimum' or 'steepest', got {suggest!r}")
    clone = model.copy().train()
    ratio = end_lr / start_lr
    schedule = [start_lr * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]
    stepper = _Stepper(clone, loss, schedule[0], optimizer_factory)
    batches = _batches(x, y, batch_size, resolve_generator(generator), clone)

    result = LRFinderResult("range")
    average, best = 0.0, math.inf
    for i, lr in enumerate(schedule):
        stepper.set_lr(lr)
        value, _ = stepper.step(*next(batches))
        exploded = not math.isfinite(value)
        if not exploded:
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (i + 1))
            best = min(best, smoothed)
            exploded = smoothed > diverge_factor * best and i > 0
        else:
            smoothed = math.inf
        result.lrs.append(lr)
        result.raw_losses.append(value)
        result.losses.append(smoothed)
        result.diverged.append(exploded)
        if exploded:
            break
    _suggest(result, suggest)
    return result


def _suggest(result: LRFinderResult, suggest: str) -> None:
    losses = np.asarray(result.losses, dtype=np.float64)
    lrs = np.asarray(result.lrs, dtype=np.float64)
    finite = np.isfinite(losses) & ~np.asarray(result.diverged, dtype=bool)
    if finite.sum() < 3:
        return
    losses, lrs = losses[finite], lrs[finite]
    # the first points average only a few mini-batches: their noise is not a minimum
    skip = min(max(2, len(losses) // 10), len(losses) - 2)
    lowest = skip + int(np.argmin(losses[skip:]))
    if losses[lowest] >= losses[:skip].mean():  # never fell
        return
    result.min_loss_lr = float(lrs[lowest])
    # steepest descent on the falling part: the slope against log(lr) over a window of
    # +-h points (about a third of a decade for the defaults), which averages out noise
    h = max(1, len(losses) // 20)
    centres = np.arange(max(skip, h), min(lowest, len(losses) - 1 - h) + 1)
    if centres.size:
        log_lrs = np.log(lrs)
        slope = (losses[centres + h] - losses[centres - h]) / (log_lrs[centres + h] - log_lrs[centres - h])
        result.steepest_lr = float(lrs[centres[int(np.argmin(slope))]])
    else:
        result.steepest_lr = float(lrs[lowest])
    result.suggestion = result.steepest_lr if suggest == "steepest" else result.min_loss_lr / 10


def halving_lr_search(
    model,
    loss,
    x,
    y=None,
    *,
    start_lr: float = 10.0,
    steps: int = 20,
    num_samples: int | None = 256,
    batch_size: int | None = None,
    factor: float = 2.0,
    min_lr: float = 1e-7,
    optimizer_factory=None,
    generator=0,
) -> LRFinderResult:
    """Bottou's recipe: start with a large rate and divide it by ``factor`` (2) until the
    loss no longer diverges over ``steps`` steps on a subset.

    Each trial trains a fresh copy of ``model`` on the first ``num_samples`` samples (one
    batch, or reshuffled mini-batches of ``batch_size``; with ``y`` None, ``x`` is a
    dataset with ``.x`` and ``.y``, or a DataLoader whose first batch is the subset). A
    rate diverges when a loss is NaN/inf or the subset's loss after the steps is not below
    its loss before. Returns an :class:`LRFinderResult` whose ``suggestion`` is the first
    rate that did not diverge (None when even ``min_lr`` diverged).
    """
    if start_lr <= 0 or min_lr <= 0 or factor <= 1:
        raise ValueError(f"halving_lr_search: need start_lr > 0, min_lr > 0, factor > 1; got {start_lr}, {min_lr}, {factor}")
    if y is None:
        x, y = (x.x, x.y) if _is_dataset(x) else next(iter(x))
    if num_samples is not None:
        x, y = x[:num_samples], y[:num_samples]
    result = LRFinderResult("halving")
    lr = float(start_lr)
    while lr >= min_lr:
        clone = model.copy().train()
        xs, ys = _as_model_dtype(clone, x), _as_model_dtype(clone, y)
        stepper = _Stepper(clone, loss, lr, optimizer_factory)
        batches = _batches(xs, ys, batch_size, resolve_generator(generator), clone)
        clone.eval()
        before, _ = stepper.evaluate(xs, ys)
        clone.train()
        diverged = False
        for _ in range(int(steps)):
            value, _ = stepper.step(*next(batches))
            if not math.isfinite(value):
                diverged = True
                break
        clone.eval()
        after = stepper.evaluate(xs, ys)[0] if not diverged else math.nan
        diverged = diverged or not math.isfinite(after) or not after < before
        result.lrs.append(lr)
        result.raw_losses.append(before)
        result.losses.append(after)
        result.diverged.append(diverged)
        if not diverged:
            result.suggestion = lr
            break
        lr /= factor
    return result


def find_lr(model, loss, x, y=None, method: str = "range", **options) -> LRFinderResult:
    """Search a learning rate for ``model`` on ``(x, y)``, working on copies.

    ``method='range'``: the exponential range test (:func:`lr_range_test`, returns the
    loss curve); ``method='halving'``: Bottou's recipe (:func:`halving_lr_search`).
    ``options`` go to the chosen function.
    """
    if method == "range":
        return lr_range_test(model, loss, x, y, **options)
    if method == "halving":
        return halving_lr_search(model, loss, x, y, **options)
    raise ValueError(f"find_lr: method must be 'range' or 'halving', got {method!r}")
