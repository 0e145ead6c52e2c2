"""Dropout and Dropout2d: statistics, evaluation, generators, errors."""

import numpy as np
import pytest

import gradlearn as gl


def test_statistics_mean_preserved_and_fraction_dropped():
    drop = gl.Dropout(0.3, generator=0)
    x = np.ones((200, 500), np.float32)
    y = drop(x)
    assert y.dtype == np.float32 and drop.mask.dtype == np.float32
    dropped = float((y == 0).mean())
    # 100000 Bernoulli(0.3) draws: standard error 0.0014
    assert abs(dropped - 0.3) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.02
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)


def test_backward_uses_the_same_mask():
    drop = gl.Dropout(0.5, generator=1)
    x = np.random.default_rng(0).standard_normal((20, 30))
    y = drop(x)
    g = np.ones_like(x)
    dx = drop.backward(g)
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx[dx != 0], 2.0)


def test_eval_is_identity():
    drop = gl.Dropout2d(0.4, generator=2).eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), np.ones_like(x))
    assert gl.Dropout(0.0)(x) is x  # p = 0 keeps everything


def test_same_seed_same_mask_and_state_restores():
    x = np.ones((10, 10), np.float32)
    a, b = gl.Dropout(0.5, generator=7), gl.Dropout(0.5, generator=7)
    np.testing.assert_array_equal(a(x), b(x))
    state = a.generator.bit_generator.state
    first = a(x)
    second = a(x)
    assert not np.array_equal(first, second)
    a.generator.bit_generator.state = state
    np.testing.assert_array_equal(a(x), first)
    gl.manual_seed(3)
    c = gl.Dropout(0.5)
    gl.manual_seed(3)
    d = gl.Dropout(0.5)
    np.testing.assert_array_equal(c(x), d(x))
    assert c.generator is not gl.backend.default_generator()


def test_dropout2d_drops_whole_channels():
    drop = gl.Dropout2d(0.5, generator=4)
    x = np.ones((8, 16, 3, 3), np.float32)
    y = drop(x)
    per_channel = y.reshape(8, 16, 9)
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # constant over each channel
    assert 0 < (per_channel[:, :, 0] == 0).mean() < 1
    with pytest.raises(ValueError, match=r"Dropout2d\(p=0.5\)\.forward: expected a 4-D input \(N, C, H, W\), got shape \(2, 3, 4\)"):
        drop(np.ones((2, 3, 4), np.float32))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_p_outside_the_unit_interval(p):
    with pytest.raises(ValueError, match=rf"Dropout: p must be a probability in \[0, 1\), got {p}"):
        gl.Dropout(p)
    with pytest.raises(ValueError, match=rf"Dropout2d: p must be a probability in \[0, 1\), got {p}"):
        gl.Dropout2d(p)


def test_float64_masks_for_float64_inputs_and_repr():
    drop = gl.Dropout(0.25, generator=5)
    assert drop(np.ones((3, 3))).dtype == np.float64
    assert repr(drop) == "Dropout(p=0.25)"
