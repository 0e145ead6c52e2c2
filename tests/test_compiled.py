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


def test_cross_entropy_kernel_refuses_mismatched_arrays_and_reports_a_bad_index():
    needs_compiled()
    cross_entropy = compiled.kernel("cross_entropy")
    logits, grad, total = np.zeros((4, 3), np.float32), np.empty((4, 3), np.float32), np.zeros(1)
    with pytest.raises(ValueError, match=r"expected logits and grad \(N, C\), target \(N,\)"):
        cross_entropy(logits, np.zeros(3, np.int64), grad, total, 1.0)
    with pytest.raises(ValueError, match="target must be C-contiguous int64, got int32"):
        cross_entropy(logits, np.zeros(4, np.int32), grad, total, 1.0)
    assert cross_entropy(logits, np.array([0, 2, 3, -1]), grad, total, 1.0) == 2  # the first bad row
    assert cross_entropy(logits, np.array([0, 2, 1, 1]), grad, total, 0.25) == -1
    assert total[0] == pytest.approx(4 * np.log(3))  # uniform logits
    np.testing.assert_allclose(grad[0], [0.25 / 3 - 0.25, 0.25 / 3, 0.25 / 3], rtol=1e-6)


def test_c_order_max_pool_kernels_refuse_shapes_that_are_not_2x2_tiles():
    needs_compiled()
    pool, route = compiled.kernel("max_pool_2x2"), compiled.kernel("max_pool_2x2_grad")
    x, first = np.zeros((2, 3, 6, 8), np.float32), np.zeros((2, 3, 3, 4), np.uint8)
    with pytest.raises(ValueError, match=r"max_pool_2x2: 2x2 tiles of \(2, 3, 6, 8\) need pooled arrays of \(2, 3, 3, 4\)"):
        pool(x, np.zeros((2, 3, 3, 3), np.float32), first)
    with pytest.raises(ValueError, match=r"max_pool_2x2_grad: 2x2 tiles of \(2, 3, 5, 8\)"):
        route(np.zeros((2, 3, 3, 4), np.float32), first, np.zeros((2, 3, 5, 8), np.float32))


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


# The team: a kernel call's chunks shared by the caller and helper threads (_kernels.c).

TEAM_ROWS, TEAM_CHANNELS = 5 * 1024 + 7, 16  # 6 chunks of BatchNorm rows, the last one short
TEAM_SIZE = TEAM_ROWS * TEAM_CHANNELS


def _team_call(name, dtype, threads):
    """Kernel ``name`` on fixed data (several chunks), run on ``threads`` threads: its outputs."""
    rng = np.random.default_rng(0)

    def draw(*shape):
        return rng.standard_normal(shape).astype(dtype)

    run = compiled.kernel(name)
    if name in ("relu", "add", "relu_grad"):
        inputs = [draw(TEAM_SIZE) for _ in range(1 if name == "relu" else 2)]
        out = np.empty(TEAM_SIZE, dtype)
        run(*inputs, out, threads=threads)
        return [out]
    if name == "sgd_momentum":
        w, b, g = draw(TEAM_SIZE), draw(TEAM_SIZE), draw(TEAM_SIZE)
        run(w, b, g, 5e-4, 0.9, 0.1, threads=threads)
        return [w, b]
    x, dy, centre, scale, k1, k2 = draw(TEAM_ROWS, TEAM_CHANNELS), draw(TEAM_ROWS, TEAM_CHANNELS), *(draw(TEAM_CHANNELS) for _ in range(4))
    if name in ("bn_sums", "bn_grad_sums"):
        first, second = np.zeros(TEAM_CHANNELS), np.zeros(TEAM_CHANNELS)
        run(*((x, centre) if name == "bn_sums" else (dy, x, centre)), first, second, threads=threads)
        return [first, second]
    out = np.empty_like(x)
    if name == "bn_scale_shift":
        run(x, centre, scale, k1, out, threads=threads)
    else:
        run(dy, x, centre, scale, k1, k2, out, threads=threads)
    return [out]


TEAM_KERNELS = ["relu", "relu_grad", "add", "sgd_momentum", "bn_sums", "bn_scale_shift", "bn_grad_sums", "bn_input_grad"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", TEAM_KERNELS)
def test_a_kernel_shared_by_the_team_gives_the_bits_of_one_thread(name, dtype):
    """Chunks are cut by size, not by thread count, and per-chunk partial sums are added in
    chunk order: two threads give exactly one thread's result, call after call, among them
    calls where the helper took chunks (else the comparison would prove nothing)."""
    needs_compiled()
    alone = _team_call(name, dtype, threads=1)
    helped = compiled.team_chunks_helped()
    for call in range(100):
        for shared, expected in zip(_team_call(name, dtype, threads=2), alone):
            np.testing.assert_array_equal(shared, expected)
        if call >= 4 and compiled.team_chunks_helped() > helped:
            break
    assert compiled.team_chunks_helped() > helped, "the helper never took a chunk"


def test_team_kernels_compute_what_numpy_computes():
    needs_compiled()
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, TEAM_ROWS, TEAM_CHANNELS))
    shift = x[0].copy()
    total, squares = np.zeros(TEAM_CHANNELS), np.zeros(TEAM_CHANNELS)
    compiled.kernel("bn_sums")(x, shift, total, squares, threads=2)
    np.testing.assert_allclose(total, (x - shift).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(squares, ((x - shift) ** 2).sum(axis=0), rtol=1e-12)
    w, b, g = (rng.standard_normal(TEAM_SIZE) for _ in range(3))
    expected_b = 0.9 * b + g + 5e-4 * w
    expected_w = w - 0.1 * expected_b
    compiled.kernel("sgd_momentum")(w, b, g, 5e-4, 0.9, 0.1, threads=2)
    np.testing.assert_allclose(b, expected_b, rtol=1e-12, atol=1e-15)  # fused multiply-adds round once
    np.testing.assert_allclose(w, expected_w, rtol=1e-12, atol=1e-15)
    out = np.empty_like(x)
    compiled.kernel("add")(x, dy, out, threads=2)
    np.testing.assert_array_equal(out, x + dy)


def test_the_team_really_shares_a_call():
    """A helper wakes within a call or two and takes chunks (the first call starts it)."""
    needs_compiled()
    x = np.random.default_rng(0).standard_normal(1 << 21).astype(np.float32)
    y = np.empty_like(x)
    before = compiled.team_chunks_helped()
    for _ in range(200):
        compiled.kernel("relu")(x, y, threads=2)
        if compiled.team_chunks_helped() > before:
            break
    assert compiled.team_chunks_helped() > before
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_team_calls_from_two_threads_at_once_are_right():
    """One call uses the team at a time; a call made meanwhile computes its chunks alone."""
    import threading

    needs_compiled()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(TEAM_SIZE).astype(np.float32) - i for i in range(2)]
    wrong = []

    def user(x):
        y = np.empty_like(x)
        for _ in range(100):
            y[:] = np.nan
            compiled.kernel("relu")(x, y, threads=2)
            if not np.array_equal(y, np.maximum(x, 0)):
                wrong.append(1)

    threads = [threading.Thread(target=user, args=(x,)) for x in xs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def _relu_on_the_team(x):
    y = np.empty_like(x)
    for _ in range(20):
        compiled.kernel("relu")(x, y, threads=2)
    return y


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python 3.12+: the fork is the point
def test_a_forked_child_starts_a_team_of_its_own():
    """A child forked after the helpers started has none of them; it must not wait for them."""
    import multiprocessing

    needs_compiled()
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    expected = _relu_on_the_team(x)  # the parent's helpers are running now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_relu_on_the_team, (x,)).get(timeout=60)
    np.testing.assert_array_equal(result, expected)


def test_element_wise_kernels_refuse_arrays_of_different_sizes():
    needs_compiled()
    with pytest.raises(ValueError, match=r"compiled.add: expected arrays of one size, got shapes \[\(4,\), \(4,\), \(3,\)\]"):
        compiled.kernel("add")(np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(3, np.float32))
