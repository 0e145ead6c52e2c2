"""Learning-rate search on a problem whose good rates are known in closed form."""

import math

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.diagnostics import LRFinderResult, find_lr, halving_lr_search, lr_range_test


@pytest.fixture(scope="module")
def regression():
    """Least squares y = x w + b: full-batch gradient descent on the MSE diverges above
    2 / lambda_max of the Hessian 2/N [x 1]^T [x 1], and is fastest near 1 / lambda_max."""
    rng = np.random.default_rng(0)
    n, d = 256, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    t = (x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    design = np.hstack([x, np.ones((n, 1))]).astype(np.float64)
    lambda_max = np.linalg.eigvalsh(2 / n * design.T @ design).max()
    return x, t, 2 / lambda_max


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_range_test_suggests_a_sane_rate(regression):
    x, t, lr_max = regression
    model = gl.Linear(8, 1, generator=1)
    before = model.copy()
    result = lr_range_test(model, gl.MSELoss(), x, t, num_steps=150)
    assert isinstance(result, LRFinderResult) and result.method == "range"
    assert same_state(model, before)
    # rates grow geometrically from start_lr; the test stops once the loss explodes
    lrs = np.array(result.lrs)
    assert lrs[0] == pytest.approx(1e-6) and np.allclose(lrs[1:] / lrs[:-1], (10 / 1e-6) ** (1 / 149))
    assert result.diverged[-1] and not any(result.diverged[:-1]) and len(lrs) < 150
    assert lr_max < lrs[-1] < 8 * lr_max  # it exploded past the stability limit, not before
    assert lr_max / 20 <= result.suggestion <= lr_max
    assert result.suggestion == pytest.approx(result.min_loss_lr / 10)
    assert lr_max / 50 <= result.steepest_lr <= result.min_loss_lr
    assert "suggested learning rate" in str(result)


def test_suggested_rate_trains(regression):
    x, t, _ = regression
    model = gl.Linear(8, 1, generator=2)
    suggestion = find_lr(model, gl.MSELoss(), x, t, num_steps=150).suggestion
    report = gl.diagnostics.sanity_check(model, gl.MSELoss(), x, t, lr=suggestion, num_samples=None, steps=300)
    assert report.passed


def test_steepest_suggestion(regression):
    x, t, lr_max = regression
    result = find_lr(gl.Linear(8, 1, generator=1), gl.MSELoss(), x, t, num_steps=150, suggest="steepest")
    assert result.suggestion == result.steepest_lr and lr_max / 50 <= result.suggestion <= lr_max


def test_halving_returns_a_rate_that_does_not_diverge(regression):
    x, t, lr_max = regression
    model = gl.Linear(8, 1, generator=1)
    before = model.copy()
    result = halving_lr_search(model, gl.MSELoss(), x, t, start_lr=10.0)
    assert same_state(model, before)
    assert result.method == "halving" and result.lrs == [10.0, 5.0, 2.5, 1.25, 0.625]
    assert result.diverged == [True, True, True, True, False]
    # halving lands within a factor 2 below the stability limit 2 / lambda_max
    assert lr_max / 2 < result.suggestion <= lr_max
    assert result.losses[-1] < 0.1 * result.raw_losses[-1]
    # and a longer run at that rate converges
    clone = model.copy()
    flat = clone.flat_parameters()
    loss = gl.MSELoss()
    for _ in range(100):
        clone.zero_grad()
        value = float(loss(clone(x), t))
        clone.backward(loss.backward())
        flat.data -= result.suggestion * flat.grad
    assert math.isfinite(value) and value < 0.02
    assert "suggested learning rate: 0.625" in str(result)


def test_halving_reports_when_every_rate_diverges(regression):
    x, t, _ = regression
    result = find_lr(gl.Linear(8, 1), gl.MSELoss(), x, t, method="halving", start_lr=100.0, min_lr=5.0)
    assert result.suggestion is None and all(result.diverged) and len(result.lrs) == 5
    assert "every rate diverged" in str(result)


def test_accepts_a_loader_of_batches(regression):
    x, t, lr_max = regression
    loader = [(x[i : i + 32], t[i : i + 32]) for i in range(0, 256, 32)]
    result = find_lr(gl.Linear(8, 1, generator=1), gl.MSELoss(), loader, num_steps=150)
    assert lr_max / 20 <= result.suggestion <= lr_max
    halving = find_lr(gl.Linear(8, 1, generator=1), gl.MSELoss(), loader, method="halving")
    assert halving.suggestion is not None and halving.suggestion <= 2 * lr_max


def test_argument_checks(regression):
    x, t, _ = regression
    with pytest.raises(ValueError, match="method"):
        find_lr(gl.Linear(8, 1), gl.MSELoss(), x, t, method="bisect")
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        lr_range_test(gl.Linear(8, 1), gl.MSELoss(), x, t, start_lr=1.0, end_lr=0.1)
