"""gradlearn.compiled: the optional numba kernels are found, or cleanly absent."""

import importlib.util

import numpy as np

import gradlearn as gl
from gradlearn import compiled


def test_numba_can_be_turned_off_by_environment(monkeypatch):
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.setenv("GRADLEARN_NUMBA", "0")
    assert not compiled.available()
    assert not gl.Conv2d(1, 6, 5)._direct(np)


def test_without_numba_every_layer_takes_its_numpy_path(monkeypatch):
    """As on a machine without numba: nothing is imported, and a LeNet-5 step (one-channel
    convolution, ReLUs, 2x2 pools) runs on the NumPy paths."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else find_spec(name, *a))
    assert not compiled.available()
    net = gl.models.lenet5(generator=np.random.default_rng(0))
    y = net(np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32))
    net.backward(np.ones_like(y))
    assert net.features[2]._first_max is None  # the NumPy max-pool ran
    assert all(np.isfinite(p.grad).all() for p in net.parameters())
