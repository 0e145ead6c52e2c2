"""Pooling beyond the registry: ties in max pooling, the adaptive windows, repr and errors."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled
from gradlearn.backend import channels_last

from ..conftest import assert_close, needs_compiled, to_channels_last


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")


@pytest.mark.parametrize("args", [(2,), (2, 1), (3, 2, 1), ((3, 2), (1, 2))])
def test_max_pool_ties_route_the_gradient_to_one_input_like_torch(args):
    torch = _torch()
    x = np.ones((2, 3, 7, 6), np.float32)  # every window is one big tie
    pool = gl.MaxPool2d(*args)
    y = pool(x)
    g = np.random.default_rng(0).uniform(1, 2, y.shape).astype(np.float32)
    dx = pool.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.MaxPool2d(*args)(tx).backward(torch.tensor(g))
    np.testing.assert_array_equal(dx, tx.grad.numpy())
    # one input per window: the gradient's total is the upstream total, not a multiple
    assert np.isclose(dx.sum(), g.sum(), rtol=1e-6)


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
    pool = gl.MaxPool2d(2)
    x = np.array([[[[0, 5], [5, 5]]]], np.float32)
    pool(x)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1), np.float32)), [[[[0, 1], [0, 0]]]])


@pytest.mark.parametrize("kernel", [2, 3, (2, 3), (3, 1)])
def test_max_pool_tiling_windows_route_to_the_first_maximum_in_row_major_order(kernel):
    """Tiling windows take the separable path (column maxima, then row maxima); with many
    ties (small integers, as after a ReLU) the gradient still goes to each window's first
    maximum in row-major order: the argmax of the flattened window."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    n, c, ho, wo = 3, 4, 5, 4
    x = np.random.default_rng(3).integers(0, 3, (n, c, ho * kh, wo * kw)).astype(np.float32)
    pool = gl.MaxPool2d(kernel)
    y = pool(x)
    windows = x.reshape(n, c, ho, kh, wo, kw).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, kh * kw)
    np.testing.assert_array_equal(y, windows.max(axis=-1))
    g = np.random.default_rng(4).uniform(1, 2, y.shape).astype(np.float32)
    one_hot = np.arange(kh * kw) == windows.argmax(axis=-1)[..., None]  # first maximum
    expected = (one_hot * g[..., None]).reshape(n, c, ho, wo, kh, kw).transpose(0, 1, 2, 4, 3, 5)
    np.testing.assert_array_equal(pool.backward(g), expected.reshape(x.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_compiled_path_matches_the_numpy_path(dtype, monkeypatch):
    """With the compiled kernels, 2x2 tiles of a channels-last or C-order input take one
    compiled pass each way (gradlearn.compiled); with ties everywhere they give the NumPy
    path's output and routing exactly, and the input's layout. Column-major inputs keep
    the NumPy path."""
    needs_compiled()
    x = np.random.default_rng(5).integers(0, 3, (3, 4, 6, 8)).astype(dtype)
    g = np.random.default_rng(6).uniform(1, 2, (3, 4, 3, 4)).astype(dtype)
    x_channels_last, results_fortran = to_channels_last(x), np.asfortranarray(x)
    results = []
    for layout_x in (x, x_channels_last, results_fortran):
        pool = gl.MaxPool2d(2)
        y = pool(layout_x)
        assert (pool._first_max is not None) == (layout_x is not results_fortran)  # the compiled path ran
        dx = pool.backward(g)
        assert channels_last(dx) == channels_last(layout_x)
        results.append((y, dx))
    monkeypatch.setattr(compiled, "available", lambda: False)
    numpy_pool = gl.MaxPool2d(2)
    expected = (numpy_pool(x), numpy_pool.backward(g))
    for y, dx in results:
        np.testing.assert_array_equal(y, expected[0])
        np.testing.assert_array_equal(dx, expected[1])


@pytest.mark.parametrize("stored", ["channels-last", "C order"])
@pytest.mark.parametrize("width", [4, 2])  # output 1x2, and 1x1 (then C order is the same memory)
def test_max_pool_2x2_compiled_path_propagates_nan_and_routes_to_the_first(width, stored):
    needs_compiled()
    one = np.array([[1, np.nan, 0, 7], [np.nan, 2, 3, 5]], np.float32)[:, :width]  # tiles [1 nan; nan 2], [0 7; 3 5]
    x = np.stack([one, one * 2])[None]  # (1, 2, 2, width): two channels
    x = to_channels_last(x) if stored == "channels-last" else np.ascontiguousarray(x)
    pool = gl.MaxPool2d(2)
    np.testing.assert_array_equal(pool(x), np.array([[[[np.nan, 7]], [[np.nan, 14]]]])[..., : width // 2])
    assert pool._first_max is not None
    expected = np.array([[0, 10, 0, 20], [0, 0, 0, 0]])[:, :width]
    dx = pool.backward(np.full((1, 2, 1, 2), [10, 20], np.float32)[..., : width // 2])
    np.testing.assert_array_equal(dx, np.stack([expected, expected])[None])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_c_order_kernel_on_every_row_width(dtype, monkeypatch):
    """The float kernel takes 8 tiles of a row at a time and lets a row's last vector read
    into the next rows, except near the array's end: every width from 1 to 19 tiles and
    arrays of one to six tile rows give the NumPy path's output and routing, with ties."""
    needs_compiled()
    rng = np.random.default_rng(7)
    cases = [((1, 1, 2, 2 * wo), (2, 3, 4, 2 * wo)) for wo in range(1, 20)]
    for shape in (s for pair in cases for s in pair):
        x = rng.integers(0, 3, shape).astype(dtype)
        g = rng.uniform(1, 2, (shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(dtype)
        pool = gl.MaxPool2d(2)
        y, dx = pool(x), pool.backward(g)
        assert pool._first_max is not None
        with monkeypatch.context() as patch:
            patch.setattr(compiled, "available", lambda: False)
            numpy_pool = gl.MaxPool2d(2)
            np.testing.assert_array_equal(y, numpy_pool(x), err_msg=f"{shape}")
            np.testing.assert_array_equal(dx, numpy_pool.backward(g), err_msg=f"{shape}")


def test_max_pool_padding_is_minus_infinity():
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    y = gl.MaxPool2d(3, stride=1, padding=1)(x)
    assert y.max() < 0
    assert y[0, 0, 0, 0] == -1


def test_avg_pool_counts_padding_in_the_divisor():
    x = np.ones((1, 1, 2, 2), np.float32)
    y = gl.AvgPool2d(3, stride=1, padding=1)(x)
    np.testing.assert_allclose(y, np.full((1, 1, 2, 2), 4 / 9), rtol=1e-6)


def test_lp_pool_is_the_window_norm():
    x = np.random.default_rng(1).uniform(0.5, 2, (2, 3, 4, 6))
    y = gl.LPPool2d(2, 2)(x)
    expected = np.sqrt((x**2).reshape(2, 3, 2, 2, 3, 2).sum(axis=(3, 5)))
    assert_close(y, expected, 1e-14, "L2 pool")


@pytest.mark.parametrize("size, out", [((13, 13), 6), ((7, 5), (3, 2)), ((7, 7), 7), ((5, 9), (2, None)), ((8, 6), (4, 3)), ((6, 6), 1)])
def test_adaptive_windows_match_torch(size, out):
    torch = _torch()
    x = np.random.default_rng(2).standard_normal((2, 3) + size).astype(np.float32)
    pool = gl.AdaptiveAvgPool2d(out)
    y = pool(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.AdaptiveAvgPool2d(out)(tx)
    g = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    dx = pool.backward(g)
    ty.backward(torch.tensor(g))
    assert y.dtype == dx.dtype == np.float32
    assert_close(y, ty.detach().numpy(), 1e-6, "output")
    assert_close(dx, tx.grad.numpy(), 1e-6, "grad input")


def test_adaptive_global_pool_is_the_mean():
    x = np.random.default_rng(4).standard_normal((3, 2, 5, 4))
    np.testing.assert_allclose(gl.AdaptiveAvgPool2d(1)(x)[:, :, 0, 0], x.mean(axis=(2, 3)))


@pytest.mark.parametrize("out", [1, 2])
def test_adaptive_pool_gives_a_channels_last_input_its_gradient_channels_last(out):
    """After a pixel-major convolution (ResNet's last block) the pool's input is
    channels-last; dE/dx comes back so, and the ReLU before it reads both in one pass."""
    x = np.random.default_rng(6).standard_normal((3, 4, 6, 6))
    pool = gl.AdaptiveAvgPool2d(out)
    y = pool(x)
    grad = np.random.default_rng(7).standard_normal(y.shape)
    expected = pool.backward(grad)
    pool(to_channels_last(x))
    dx = pool.backward(grad)
    assert channels_last(dx)
    np.testing.assert_array_equal(dx, expected)


def test_pools_keep_float32_and_returned_arrays():
    rng = np.random.default_rng(5)
    for pool in (gl.MaxPool2d(2), gl.MaxPool2d(3, 2, 1), gl.AvgPool2d(2), gl.AvgPool2d(3, 2, 1), gl.LPPool2d(2, 2), gl.AdaptiveAvgPool2d(3)):
        x1 = rng.uniform(0.5, 2, (2, 3, 8, 8)).astype(np.float32)
        y1 = pool(x1)
        g1 = rng.standard_normal(y1.shape).astype(np.float32)
        dx1 = pool.backward(g1)
        assert y1.dtype == dx1.dtype == np.float32, pool
        keep = y1.copy(), dx1.copy()
        y2 = pool(rng.uniform(0.5, 2, (2, 3, 8, 8)).astype(np.float32))
        pool.backward(rng.standard_normal(y2.shape).astype(np.float32))
        np.testing.assert_array_equal(y1, keep[0])
        np.testing.assert_array_equal(dx1, keep[1])


def test_repr():
    assert repr(gl.MaxPool2d(2)) == "MaxPool2d(2x2)"
    assert repr(gl.MaxPool2d(3, stride=2, padding=1)) == "MaxPool2d(3x3, stride=2, padding=1)"
    assert repr(gl.AvgPool2d((2, 3), stride=1)) == "AvgPool2d(2x3, stride=1)"
    assert repr(gl.LPPool2d(2, 3)) == "LPPool2d(norm_type=2, 3x3)"
    assert repr(gl.AdaptiveAvgPool2d((6, 6))) == "AdaptiveAvgPool2d(6)"
    assert repr(gl.AdaptiveAvgPool2d((3, 2))) == "AdaptiveAvgPool2d(3x2)"


def test_errors():
    with pytest.raises(ValueError, match=r"MaxPool2d\(3x3\)\.forward: input of 2x5 \(padded to 2x5\) is smaller than the kernel 3x3 \(input shape \(1, 1, 2, 5\)\)"):
        gl.MaxPool2d(3)(np.zeros((1, 1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"AvgPool2d\(2x2\)\.forward: expected a 4-D input \(N, C, H, W\), got shape \(3, 4, 4\)"):
        gl.AvgPool2d(2)(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d\(2\)\.forward: expected a 4-D input"):
        gl.AdaptiveAvgPool2d(2)(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: kernel_size must be positive, got 0"):
        gl.MaxPool2d(0)
    with pytest.raises(ValueError, match=r"AvgPool2d: stride must be positive, got \(1, 0\)"):
        gl.AvgPool2d(2, stride=(1, 0))
    with pytest.raises(ValueError, match=r"MaxPool2d: padding \(2, 2\) must be at most half the kernel size"):
        gl.MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match=r"LPPool2d: norm_type must be a positive finite number"):
        gl.LPPool2d(0, 2)
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d: output_size must be positive"):
        gl.AdaptiveAvgPool2d(0)
    with pytest.raises(TypeError, match=r"MaxPool2d\(2x2\)\.forward: expected input to be a floating-point array"):
        gl.MaxPool2d(2)(np.zeros((1, 1, 4, 4), np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [3, 8, 16, 24])
def test_max_pool_2x2_channels_last_kernel_on_every_channel_count(dtype, channels, monkeypatch):
    """The float gradient takes 8 channels at a time when they are a multiple of 8, else
    the generic loop: both route as the NumPy path does, with ties."""
    needs_compiled()
    rng = np.random.default_rng(8)
    x = to_channels_last(rng.integers(0, 3, (2, channels, 6, 10)).astype(dtype))
    g = rng.uniform(1, 2, (2, channels, 3, 5)).astype(dtype)
    pool = gl.MaxPool2d(2)
    y, dx = pool(x), pool.backward(g)
    assert pool._first_max is not None and channels_last(dx)
    monkeypatch.setattr(compiled, "available", lambda: False)
    numpy_pool = gl.MaxPool2d(2)
    np.testing.assert_array_equal(y, numpy_pool(x))
    np.testing.assert_array_equal(dx, numpy_pool.backward(g))
