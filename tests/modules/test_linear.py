"""Linear: y = x @ W.T + b, its weight stored transposed (Fortran order) for BLAS."""

import numpy as np
import pytest

import gradlearn as gl


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("shape", [(5, 3, 4), (128, 784, 512)])  # a small layer, and one BLAS gets through add_product
def test_linear_matches_the_formulas_whatever_its_weights_memory_order(shape, transposed):
    """Linear stores a large weight transposed, a small one C-ordered, the faster for its
    products; either order, put in its place, gives the same values and gradients."""
    n, fan_in, fan_out = shape
    rng = np.random.default_rng(0)
    layer = gl.Linear(fan_in, fan_out, generator=rng)
    assert layer.weight.transposed == (fan_in * fan_out >= gl.modules.linear.TRANSPOSED_WEIGHT_SIZE)
    layer.weight = gl.Parameter(layer.weight.data, transposed=transposed)
    gl.pack_parameters(layer)  # the weight a view into the flat vector, in its own order
    assert layer.weight.data.flags.f_contiguous == transposed
    w, b = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    x = rng.standard_normal((n, fan_in)).astype(np.float32)
    dy = rng.standard_normal((n, fan_out)).astype(np.float32)
    layer.zero_grad()
    np.testing.assert_allclose(layer(x), x @ w.T + b, rtol=1e-4, atol=1e-4)
    for _ in range(2):  # accumulates
        dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad, 2 * dy.T.astype(np.float64) @ x, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(layer.bias.grad, 2 * dy.sum(axis=0), rtol=1e-4, atol=1e-4)


def test_linear_chooses_its_weights_memory_order_by_size():
    assert gl.Linear(784, 512).weight.transposed and gl.Linear(4096, 256).weight.transposed
    assert not gl.Linear(64, 64).weight.transposed and not gl.Linear(512, 10).weight.transposed
