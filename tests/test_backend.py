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


def test_device_names_are_checked():
    from gradlearn.backend import parse_device

    assert parse_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        gl.Linear(2, 2).to("tpu")


def test_to_cpu_keeps_the_packing():
    net = gl.Sequential(gl.Linear(2, 3), gl.Linear(3, 1))
    flat = net.flat_parameters()
    net.to("cpu")
    assert net.flat_parameters() is flat and np.shares_memory(net[0].weight.data, flat.data)


def test_cuda_without_cupy_or_device_fails_clearly():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        pytest.skip("a CUDA device is present: this test checks the message when there is none")
    except Exception:
        pass
    net = gl.Linear(2, 2)
    before = net.weight.data.copy()
    with pytest.raises(RuntimeError, match="CuPy|CUDA device"):
        net.to("cuda")
    assert type(net.weight.data) is np.ndarray
    np.testing.assert_array_equal(net.weight.data, before)
