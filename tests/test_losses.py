"""Losses: values on hand-computed examples, numerical stability, and bad targets."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled, losses

from .conftest import needs_compiled


def test_cross_entropy_value_and_fused_gradient():
    logits = np.array([[1.0, 2.0, 3.0]])
    loss = gl.CrossEntropyLoss()
    p = np.exp(logits) / np.exp(logits).sum()
    assert loss(logits, np.array([2])) == pytest.approx(-np.log(p[0, 2]))
    np.testing.assert_allclose(loss.backward(), p - [[0, 0, 1]])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss = gl.CrossEntropyLoss()
    value = loss(logits, np.array([0, 1]))
    assert np.isfinite(value) and value == pytest.approx(np.log(2) / 2, rel=1e-5)
    assert np.all(np.isfinite(loss.backward()))


def test_energy_nll_is_stable_for_large_beta():
    energies = np.array([[0.0, 1.0, 2.0]])
    loss = gl.EnergyNLLLoss(beta=1e4)
    assert np.isfinite(loss(energies, np.array([1])))
    assert loss(energies, np.array([1])) == pytest.approx(1.0)  # beta -> inf: E(Y) - min E


def test_energy_losses_on_a_worked_example():
    energies = np.array([[0.5, 0.2, 0.9]])
    target = np.array([0])
    assert gl.EnergyLoss()(energies, target) == pytest.approx(0.5)
    assert gl.PerceptronLoss()(energies, target) == pytest.approx(0.3)
    hinge = gl.HingeLoss(margin=1.0)
    assert hinge(energies, target) == pytest.approx(1.3)
    np.testing.assert_allclose(hinge.backward(), [[1, -1, 0]])
    assert gl.HingeLoss(margin=1.0)(energies, np.array([1])) == pytest.approx(0.7)
    assert gl.HingeLoss(margin=0.1)(np.array([[0.0, 1.0]]), np.array([0])) == 0.0


def test_euclidean_loss_is_half_squared_distance_per_sample():
    x = np.array([[1.0, 2.0], [0.0, 0.0]])
    y = np.zeros((2, 2))
    loss = gl.EuclideanLoss()
    assert loss(x, y) == pytest.approx(0.5 * 5 / 2)
    np.testing.assert_allclose(loss.backward(), x / 2)
    assert gl.EuclideanLoss(reduction="sum")(x, y) == pytest.approx(2.5)


def test_backward_scales_by_upstream_gradient():
    loss = gl.MSELoss()
    loss(np.ones((2, 2)), np.zeros((2, 2)))
    np.testing.assert_allclose(loss.backward(3.0), 3 * loss.backward())


def test_loss_keeps_float32():
    loss = gl.CrossEntropyLoss()
    loss(np.zeros((2, 3), np.float32), np.array([0, 1]))
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_compiled_pass_equals_the_numpy_path(monkeypatch, dtype, reduction):
    """With the compiled kernels, few classes and int64 indices, the loss and its gradient
    are one compiled pass; they equal NumPy's, with huge logits and a NaN row too."""
    needs_compiled()
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((37, 10)) * 3).astype(dtype)
    logits[3] *= 1e4  # the shift by the row maximum keeps it finite
    logits[5, 2] = np.nan  # that row's loss and gradient are NaN, the others untouched
    target = rng.integers(0, 10, 37)
    calls = []
    kernel = compiled.kernel
    monkeypatch.setattr(compiled, "kernel", lambda name: calls.append(name) or kernel(name))
    fused = gl.CrossEntropyLoss(reduction=reduction)
    value = fused(logits, target)
    assert calls == ["cross_entropy"]
    monkeypatch.setattr(losses, "MAX_COMPILED_CLASSES", 0)
    plain = gl.CrossEntropyLoss(reduction=reduction)
    expected = plain(logits, target)
    assert calls == ["cross_entropy"]  # the NumPy path this time
    assert np.isnan(value) and np.isnan(expected) and value.dtype == expected.dtype == dtype
    assert np.isnan(fused.backward()[5]).all() and np.isnan(plain.backward()[5]).all()
    keep = np.arange(37) != 5
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused.backward()[keep], plain.backward()[keep], rtol=tol, atol=tol)
    finite = np.delete(logits, 5, axis=0), np.delete(target, 5)
    assert gl.CrossEntropyLoss(reduction=reduction)(*finite) == pytest.approx(plain(*finite), rel=tol)


def test_cross_entropy_takes_numpy_for_many_classes_or_other_index_types(monkeypatch):
    """The compiled pass's exponentials are scalar: beyond MAX_COMPILED_CLASSES classes, and
    for indices that are not int64, the NumPy path computes the same loss."""
    monkeypatch.setattr(compiled, "kernel", lambda name: pytest.fail(f"compiled {name} called"))
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((8, losses.MAX_COMPILED_CLASSES + 1)).astype(np.float32)
    target = rng.integers(0, logits.shape[1], 8)

    def expected(x, y):  # mean of log sum exp(x) - x[y], in float64
        shifted = x.astype(np.float64) - x.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y])

    assert gl.CrossEntropyLoss()(logits, target) == pytest.approx(expected(logits, target), rel=1e-6)
    few = np.ascontiguousarray(logits[:, :3])
    indices = (target % 3).astype(np.int32)
    assert gl.CrossEntropyLoss()(few, indices) == pytest.approx(expected(few, indices), rel=1e-6)


@pytest.mark.parametrize(
    "target, error, message",
    [
        (np.array([0.0, 1.0]), TypeError, "expected integer class indices"),
        (np.array(["a", "b"]), TypeError, "expected integer class indices"),
        (np.array([0, 3]), ValueError, r"class index 3 is out of range \[0, 3\)"),
        (np.array([-1, 0]), ValueError, r"class index -1 is out of range"),
        (np.array([0, 1, 2]), ValueError, r"expected target of shape \(2,\)"),
    ],
)
@pytest.mark.parametrize("loss", [gl.CrossEntropyLoss(), gl.NLLLoss(), gl.HingeLoss(), gl.EnergyNLLLoss()], ids=repr)
def test_bad_class_targets(loss, target, error, message):
    with pytest.raises(error, match=message):
        loss(np.zeros((2, 3)), target)


def test_bad_shapes_and_options():
    with pytest.raises(ValueError, match=r"prediction \(2, 3\) and target \(3, 2\) must have the same shape"):
        gl.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        gl.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="floating-point"):
        gl.CrossEntropyLoss()(np.zeros((2, 3), dtype=object), np.array([0, 1]))
    with pytest.raises(RuntimeError, match="before forward"):
        gl.MSELoss().backward()
