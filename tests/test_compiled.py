"""gradlearn.compiled: the optional C kernels are loaded, or cleanly absent, and refuse
arrays they cannot read."""

import importlib.util

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled

from .conftest import needs_compiled


def test_the_kernels_can_be_turned_off_by_environment(monkeypatch):
    monkeypatch.setattr(compiled, "_library", None)
    monkeypatch.setenv("GRADLEARN_COMPILED", "0")
    assert not compiled.available()
    assert not gl.Conv2d(1, 6, 5)._direct(np)


def test_without_the_extension_every_layer_takes_its_numpy_path(monkeypatch):
    """As where no C compiler built it: a LeNet-5 step (one-channel convolution, ReLUs)
    runs on the NumPy paths."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(compiled, "_library", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradlearn._kernels" else find_spec(name, *a))
    assert not compiled.available()
    net = gl.models.lenet5(generator=np.random.default_rng(0))
    y = net(np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32))
    net.backward(np.ones_like(y))
    assert not net.features[0]._direct(np)  # the first convolution took im2col
    assert all(np.isfinite(p.grad).all() for p in net.parameters())


def test_kernels_refuse_strided_or_mixed_arrays():
    needs_compiled()
    relu = compiled.kernel("relu")
    x = np.arange(8, dtype=np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        relu(x[::2], np.empty(4, np.float32))
    with pytest.raises(ValueError, match="expected float32 arrays, got float64 \\(argument 1\\)"):
        relu(x, np.empty(8))
    y = np.empty_like(x)
    relu(x - 3, y)
    np.testing.assert_array_equal(y, np.maximum(x - 3, 0))


def test_blocked_conv_kernels_refuse_shapes_they_would_overrun():
    """The blocked kernels read and write without bounds: their wrappers check every shape
    against the geometry, and the output channels against the vector width."""
    needs_compiled()
    forward = compiled.kernel("conv_cl_forward")
    x = np.zeros((2, 5, 5, 3), np.float32)
    pads, kernel, one = (1, 1, 1, 1), (3, 3), (1, 1)
    with pytest.raises(ValueError, match=r"conv_cl_forward: 8 channels, expected a multiple of 16"):
        forward(x, pads, np.zeros((27, 8), np.float32), None, np.zeros((50, 8), np.float32), kernel, one, one)
    with pytest.raises(ValueError, match=r"conv_cl_forward: weight of shape \(26, 16\), expected \(27, 16\)"):
        forward(x, pads, np.zeros((26, 16), np.float32), None, np.zeros((50, 16), np.float32), kernel, one, one)
    with pytest.raises(ValueError, match=r"conv_cl_forward: output of shape \(49, 16\), expected \(50, 16\)"):
        forward(x, pads, np.zeros((27, 16), np.float32), None, np.zeros((49, 16), np.float32), kernel, one, one)
    with pytest.raises(ValueError, match="expected a channels-last"):
        forward(x[0], pads, np.zeros((27, 16), np.float32), None, np.zeros((50, 16), np.float32), kernel, one, one)
    grad = compiled.kernel("conv_cl_weight_grad")
    with pytest.raises(ValueError, match=r"conv_cl_weight_grad: output gradient of shape \(50, 32\), expected \(50, 16\)"):
        grad(x, pads, np.zeros((50, 32), np.float32), np.zeros((27, 16), np.float32), kernel, one, one)
    out = np.zeros((50, 16), np.float32)
    forward(x + 1, pads, np.ones((27, 16), np.float32), np.full(16, 0.5, np.float32), out, kernel, one, one)
    assert out.reshape(2, 5, 5, 16)[0, 2, 2, 0] == 27.5 and out.reshape(2, 5, 5, 16)[0, 0, 0, 0] == 12.5  # 9 or 4 taps x 3 channels + bias
