"""Activations beyond the registry: ReLU's compiled forward and backward against their
NumPy forms, in every memory layout."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled

from ..conftest import to_channels_last


def _layouts(rng):
    c_order = rng.standard_normal((3, 4, 5, 6))
    return {"C order": c_order, "channels-last": to_channels_last(c_order), "column-major": np.asfortranarray(c_order)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_layout", ["C order", "channels-last", "column-major"])
@pytest.mark.parametrize("grad_layout", ["C order", "channels-last", "column-major"])
def test_relu_backward_is_the_gradient_where_y_is_positive_in_any_layout(x_layout, grad_layout, dtype, kernel_calls, monkeypatch):
    """With the compiled kernels, one pass when x and dE/dy hold their elements in the same
    order (both C order, or both channels-last); otherwise, and without them, NumPy's
    product: the same values either way."""
    rng = np.random.default_rng(0)
    x = _layouts(rng)[x_layout].astype(dtype)
    x[0, 0, 0, :3] = [0.0, -0.0, 1e-30]
    g = _layouts(rng)[grad_layout].astype(dtype)
    expected = np.where(x > 0, g, 0)
    same_order = x_layout == grad_layout != "column-major"
    for available in (compiled.available(), False):
        kernel_calls.clear()
        monkeypatch.setattr(compiled, "available", lambda: available)
        relu = gl.ReLU()
        relu(x)
        dx = relu.backward(g)
        assert ("relu_grad" in kernel_calls) == (available and same_order)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, expected)


def test_relu_backward_of_a_batch_of_vectors_splits_by_rows():
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5)
    relu = gl.ReLU()
    relu(x)
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), (x > 0).astype(np.float32))


@pytest.mark.parametrize("layout", ["C order", "channels-last", "column-major"])
def test_relu_forward_keeps_the_layout_and_propagates_nan(layout, kernel_calls):
    """With the compiled kernels, one pass for C-order and channels-last inputs; the values are
    NumPy's maximum(x, 0), NaN included, and the output keeps the input's layout."""
    x = _layouts(np.random.default_rng(1))[layout].astype(np.float32)
    x[1, 2, 3, :2] = [np.nan, -np.inf]
    y = gl.ReLU()(x)
    assert kernel_calls == (["relu"] if compiled.available() and layout != "column-major" else [])
    assert y.strides == x.strides
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_relu_of_an_empty_batch():
    relu = gl.ReLU()
    x = np.zeros((0, 3, 4, 4), np.float32)
    assert relu(x).shape == x.shape and relu.backward(x).shape == x.shape
