"""BatchNorm train/eval behaviour, buffers and errors; LocalContrastNorm's properties."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled

from ..conftest import assert_close, needs_compiled, to_channels_last


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")


def test_training_normalises_with_batch_statistics_and_updates_running_ones():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 3, 4, 5)) * np.array([2.0, 0.5, 3.0])[None, :, None, None] + 1.5).astype(np.float32)
    bn = gl.BatchNorm2d(3)
    y = bn(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)  # eps = 1e-5 shrinks it a little
    m = x.shape[0] * x.shape[2] * x.shape[3]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x64.mean(axis=(0, 2, 3)), rtol=1e-5)
    unbiased = x64.var(axis=(0, 2, 3)) * m / (m - 1)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * unbiased, rtol=1e-5)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == () and bn.num_batches_tracked == 1
    assert bn.running_mean.dtype == np.float32


def test_eval_uses_running_statistics_and_changes_nothing():
    rng = np.random.default_rng(1)
    bn = gl.BatchNorm1d(4, dtype=np.float64)
    bn.load_state_dict({"weight": np.full(4, 2.0), "bias": np.full(4, 0.5), "running_mean": np.arange(4.0),
                        "running_var": np.arange(1.0, 5.0), "num_batches_tracked": np.array(7)})
    bn.eval()
    x = rng.standard_normal((3, 4))
    before = bn.state_dict()
    y = bn(x)
    expected = 2.0 * (x - np.arange(4.0)) / np.sqrt(np.arange(1.0, 5.0) + 1e-5) + 0.5
    assert_close(y, expected, 1e-14, "eval output")
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    dx = bn.backward(np.ones((3, 4)))
    assert_close(dx, np.broadcast_to(2.0 / np.sqrt(np.arange(1.0, 5.0) + 1e-5), (3, 4)), 1e-14, "eval grad")
    # a single sample is fine in evaluation
    assert bn(x[:1]).shape == (1, 4)


def test_train_and_eval_differ_and_switch_back():
    x = np.random.default_rng(2).standard_normal((6, 2, 3)).astype(np.float32) + 3
    bn = gl.BatchNorm1d(2)
    y_train = bn(x)
    bn.eval()
    y_eval = bn(x)
    assert not np.allclose(y_train, y_eval, atol=0.1)
    bn.train()
    np.testing.assert_allclose(bn(x), y_train, rtol=1e-5, atol=1e-6)
    assert bn.num_batches_tracked == 2


@pytest.mark.parametrize("affine", [True, False])
def test_channels_last_training_compiled_passes_match_numpy(affine, kernel_calls, monkeypatch):
    """With the compiled kernels, a channels-last BatchNorm2d in training sums, normalises, sums
    again and forms dE/dx in one compiled pass each (gradlearn.compiled), keeping x and the
    mean for the backward; output, dE/dx, parameter gradients and running statistics are
    those of the NumPy path (float32, float64 sums), which keeps x - mean."""
    needs_compiled()
    rng = np.random.default_rng(3)
    x = to_channels_last(rng.normal(2.0, 3.0, (6, 5, 7, 4)).astype(np.float32))
    g = to_channels_last(rng.standard_normal((6, 5, 7, 4)).astype(np.float32))
    results = []
    for available in (True, False):
        monkeypatch.setattr(compiled, "available", lambda: available)
        bn = gl.BatchNorm2d(5, affine=affine)
        if affine:
            bn.weight.data[:] = np.linspace(0.5, 2.0, 5)
            bn.bias.data[:] = np.linspace(-1.0, 1.0, 5)
        y = bn(x)
        results.append((y, bn.backward(g), *(p.grad for p in bn.parameters()), bn.running_mean, bn.running_var))
    assert set(kernel_calls) == {"bn_sums", "bn_scale_shift", "bn_grad_sums", "bn_input_grad"}
    for a, b in zip(*results):
        assert_close(a, b, 2e-5, "compiled against NumPy")


def test_channels_last_evaluation_compiled_pass_matches_numpy(kernel_calls, monkeypatch):
    """In evaluation mode a channels-last BatchNorm2d writes (x - running mean) * scale + beta
    in one compiled pass; output and gradients are the NumPy path's."""
    needs_compiled()
    rng = np.random.default_rng(5)
    x = to_channels_last(rng.normal(1.0, 2.0, (4, 3, 5, 6)).astype(np.float32))
    g = to_channels_last(rng.standard_normal((4, 3, 5, 6)).astype(np.float32))
    results = []
    for available in (True, False):
        monkeypatch.setattr(compiled, "available", lambda: available)
        bn = gl.BatchNorm2d(3)
        bn.running_mean[:] = [0.5, -1.0, 2.0]
        bn.running_var[:] = [0.25, 4.0, 1.5]
        bn.weight.data[:] = [1.5, 0.5, -1.0]
        bn.bias.data[:] = [0.1, 0.2, 0.3]
        bn.eval()
        y = bn(x)
        results.append((y, bn.backward(g), bn.weight.grad, bn.bias.grad))
    assert "bn_scale_shift" in kernel_calls
    for a, b in zip(*results):
        assert_close(a, b, 1e-6, "compiled against NumPy")


def test_channels_last_compiled_keeps_the_digits_of_a_large_mean(monkeypatch):
    """x around 1000 with a spread of 0.05, in float32: x * scale would be ~4e4 and its
    difference with mu * scale lose the result's digits. The compiled passes subtract the mean
    first (and sum the variance around the batch's first value), so against float64 they
    are at least as close as the NumPy path, which keeps x - mu."""
    needs_compiled()
    rng = np.random.default_rng(3)
    x = to_channels_last(rng.normal(1000.0, 0.05, (6, 5, 7, 4)).astype(np.float32))
    g = to_channels_last(rng.standard_normal((6, 5, 7, 4)).astype(np.float32))

    def run(dtype):
        bn = gl.BatchNorm2d(5, dtype=dtype)
        bn.weight.data[:] = np.linspace(0.5, 2.0, 5)
        bn.bias.data[:] = np.linspace(-1.0, 1.0, 5)
        y = bn(x.astype(dtype))
        return y, bn.backward(g.astype(dtype)), bn.weight.grad, bn.running_var

    reference = run(np.float64)
    errors = {}
    for available in (True, False):
        monkeypatch.setattr(compiled, "available", lambda: available)
        errors[available] = [np.abs(a - r).max() / np.abs(r).max() for a, r in zip(run(np.float32), reference)]
    for what, with_kernels, numpy_path in zip(("output", "grad input", "grad gamma", "running variance"), errors[True], errors[False]):
        assert with_kernels <= 1.25 * numpy_path + 1e-6, (what, with_kernels, numpy_path)  # x * scale - mu * scale: 2x
    assert errors[True][3] < 1e-5  # the variance itself is exact to float32's digits


def test_momentum_none_is_the_cumulative_average():
    rng = np.random.default_rng(3)
    bn = gl.BatchNorm2d(2, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((3, 2, 2, 2)) + k for k in range(4)]
    for b in batches:
        bn(b)
    expected = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean, expected, rtol=1e-12)


def test_state_dict_keys_match_torch():
    torch = _torch()
    for args in [dict(), dict(affine=False)]:
        ours = gl.BatchNorm2d(3, **args).state_dict()
        theirs = torch.nn.BatchNorm2d(3, **args).state_dict()
        assert list(ours) == list(theirs)
        for k in ours:
            assert ours[k].shape == tuple(theirs[k].shape), k
    assert list(gl.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_affine_false_has_no_parameters():
    bn = gl.BatchNorm2d(3, affine=False)
    assert list(bn.parameters()) == [] and bn.weight is None
    x = np.random.default_rng(4).standard_normal((2, 3, 2, 2)).astype(np.float32)
    assert bn(x).dtype == np.float32


def test_one_value_per_channel_in_training_is_an_error():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\)\.forward: expected more than 1 value per channel when training, got input shape \(1, 3\)"):
        gl.BatchNorm1d(3)(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(2\)\.forward: expected more than 1 value per channel when training, got input shape \(1, 2, 1, 1\)"):
        gl.BatchNorm2d(2)(np.zeros((1, 2, 1, 1), np.float32))
    assert gl.BatchNorm1d(3)(np.random.default_rng(0).standard_normal((1, 3, 2)).astype(np.float32)).shape == (1, 3, 2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_an_empty_batch_is_an_error_in_training_and_passes_in_evaluation(channels_last):
    """An empty batch once failed inside NumPy ('cannot reshape array of size 0')."""
    x = np.zeros((0, 2, 3, 3), np.float32)
    if channels_last:
        x = to_channels_last(x)
    bn = gl.BatchNorm2d(2)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(2\)\.forward: expected more than 1 value per channel when training, got input shape \(0, 2, 3, 3\)"):
        bn(x)
    bn.eval()
    y = bn(x)
    assert y.shape == (0, 2, 3, 3) and bn.backward(y).shape == (0, 2, 3, 3)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\)\.forward: expected 3 channels \(dimension 1\), got 4 \(input shape \(2, 4, 5, 5\)\)"):
        gl.BatchNorm2d(3)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\)\.forward: expected a 4-D input \(N, C, H, W\), got shape \(2, 3, 5\)"):
        gl.BatchNorm2d(3)(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\)\.forward: expected a 2-D \(N, C\) or 3-D \(N, C, L\) input, got shape \(2, 3, 4, 4\)"):
        gl.BatchNorm1d(3)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        gl.BatchNorm1d(3)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="num_features must be positive"):
        gl.BatchNorm2d(0)
    assert repr(gl.BatchNorm2d(8, momentum=None, affine=False)) == "BatchNorm2d(8, momentum=None, affine=False)"


def test_checkpoint_round_trip_through_load_state_dict():
    rng = np.random.default_rng(5)
    a = gl.BatchNorm2d(2)
    for _ in range(3):
        a(rng.standard_normal((4, 2, 3, 3)).astype(np.float32))
    b = gl.BatchNorm2d(2)
    b.load_state_dict(a.state_dict())
    assert b.num_batches_tracked == 3
    a.eval(), b.eval()
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


# LocalContrastNorm --------------------------------------------------------------------------------


def test_lcn_window_and_scale_invariance():
    lcn = gl.LocalContrastNorm(3)
    assert lcn.kernel_size == 9 and lcn.sigma == 2.25
    np.testing.assert_allclose(lcn.window.sum(), 1.0)
    assert np.argmax(lcn.window) == 4 and np.allclose(lcn.window, lcn.window[::-1])
    x = np.random.default_rng(6).standard_normal((2, 3, 12, 10))
    y = lcn(x)
    assert y.shape == x.shape
    # v and sigma scale with x, so y is invariant to the input's scale (exactly, per sample)
    assert_close(lcn(x * 7.5), y, 1e-12, "scale invariance")


def _lcn_by_loops(x, window):
    """Jarrett et al.'s LCN written pixel by pixel (zero padding), as a reference."""
    n, c, h, w = x.shape
    k = len(window)
    left = (k - 1) // 2
    weights = np.outer(window, window) / c

    def local_sum(a):  # sum_{c,p,q} w_pq a[c, i+p, j+q] for every (i, j)
        out = np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                for p in range(k):
                    for q in range(k):
                        r, s = i + p - left, j + q - left
                        if 0 <= r < h and 0 <= s < w:
                            out[i, j] += weights[p, q] * a[:, r, s].sum()
        return out

    y = np.empty_like(x)
    for b in range(n):
        v = x[b] - local_sum(x[b])[None]
        sigma = np.sqrt(local_sum(v * v))
        y[b] = v / np.maximum(sigma.mean(), sigma)[None]
    return y


@pytest.mark.parametrize("kernel_size, sigma", [(5, None), (4, 1.5), (9, 2.0)])
def test_lcn_matches_its_definition_pixel_by_pixel(kernel_size, sigma):
    lcn = gl.LocalContrastNorm(2, kernel_size=kernel_size, sigma=sigma)
    x = np.random.default_rng(7).standard_normal((2, 2, 6, 7))
    assert_close(lcn(x), _lcn_by_loops(x, lcn.window), 1e-12, "LCN")
    assert lcn(np.zeros((1, 2, 6, 6))).max() == 0  # a constant image maps to 0, not nan


def test_lcn_float32_and_errors():
    lcn = gl.LocalContrastNorm(3, kernel_size=5)
    x = np.random.default_rng(8).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = lcn(x)
    assert y.dtype == np.float32 and lcn.backward(np.ones_like(y)).dtype == np.float32
    assert repr(lcn) == "LocalContrastNorm(3, kernel_size=5, sigma=1.25)"
    with pytest.raises(ValueError, match=r"LocalContrastNorm\(3, kernel_size=5, sigma=1.25\)\.forward: expected 3 input channels, got 2 \(input shape \(2, 2, 8, 8\)\)"):
        lcn(np.zeros((2, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected a 4-D input"):
        lcn(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        gl.LocalContrastNorm(3, kernel_size=0)
