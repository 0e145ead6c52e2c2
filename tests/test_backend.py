import numpy as np
import pytest

import gradlearn as gl


def test_default_dtype_is_float32_and_switchable():
    assert gl.get_default_dtype() == np.float32
    assert gl.Linear(2, 2).weight.dtype == np.float32
    gl.set_default_dtype(np.float64)
    try:
        assert gl.Linear(2, 2).weight.dtype == np.float64
    finally:
        gl.set_default_dtype(np.float32)
    with pytest.raises(ValueError, match="float32 or float64"):
        gl.set_default_dtype(np.int32)


def test_manual_seed_makes_initialisation_repeatable():
    gl.manual_seed(3)
    a = gl.Linear(4, 4).weight.data.copy()
    gl.manual_seed(3)
    b = gl.Linear(4, 4).weight.data.copy()
    np.testing.assert_array_equal(a, b)


def test_explicit_generator():
    a = gl.Linear(4, 4, generator=np.random.default_rng(7)).weight.data
    b = gl.Linear(4, 4, generator=np.random.default_rng(7)).weight.data
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="Generator"):
        gl.Linear(2, 2, generator="seven")
