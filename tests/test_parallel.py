"""gradlearn.parallel: layers split their batch over worker threads, and the results are
those of the serial computation.

Each test runs a layer twice on the same data, once with ``set_num_workers(1)`` (serial)
and once with two workers, and checks that the second run really used a worker thread.
With the compiled kernels, ReLU, a channels-last BatchNorm2d and ``add`` share each kernel
call with the kernels' own team of threads instead (tests/test_compiled.py); here they take
their NumPy paths, which split over the workers.
"""

import threading
import time

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import compiled, parallel

needs_blas_control = pytest.mark.skipif(
    not parallel._blas_controllers(), reason="threadpoolctl cannot limit this BLAS: layers run serially"
)


@pytest.fixture
def workers(monkeypatch):
    """Small test inputs go parallel too; the default worker count comes back afterwards."""
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    yield
    parallel.set_num_workers(None)


@pytest.fixture
def numpy_paths(monkeypatch):
    """The layers' NumPy paths: the ones that split over the workers."""
    monkeypatch.setattr(compiled, "_library", False)


def _threads_used(monkeypatch):
    """Record the names of the threads that run any slice of a parallel section."""
    names = set()
    original = parallel.over_batch

    def recording(n, work, fn, xp=np, **kw):
        def wrapped(start, stop):
            names.add(threading.current_thread().name)
            return fn(start, stop)

        return original(n, work, wrapped, xp, **kw)

    monkeypatch.setattr(parallel, "over_batch", recording)
    return names


def _run(module, x, grad):
    module.zero_grad()
    y = module(x)
    gx = module.backward(grad)
    return y.copy(), None if gx is None else gx.copy(), [p.grad.copy() for p in module.parameters()]


def _serial_and_parallel(module, x, monkeypatch):
    rng = np.random.default_rng(1)
    parallel.set_num_workers(1)
    y = module(x)
    grad = rng.standard_normal(y.shape).astype(x.dtype)
    serial = _run(module, x, grad)
    parallel.set_num_workers(2)
    names = _threads_used(monkeypatch)
    par = _run(module, x, grad)
    return serial, par, names


LAYERS = {
    "conv pixel-major": (lambda: gl.Conv2d(16, 16, 3, padding=1), (6, 16, 12, 12)),
    "conv pixel-major, stride 2 (col2im input gradient)": (lambda: gl.Conv2d(16, 32, 3, stride=2, padding=1), (5, 16, 11, 11)),
    "conv channel-major (3 input channels)": (lambda: gl.Conv2d(3, 8, 5, padding=2), (5, 3, 16, 16)),
    "conv channel-major, 6 -> 16 (col2im input gradient)": (lambda: gl.Conv2d(6, 16, 5), (5, 6, 14, 14)),
    "conv one input channel (compiled direct path when the C kernels are built)": (lambda: gl.Conv2d(1, 6, 5, padding=2), (5, 1, 12, 12)),
    "relu (NumPy path)": (gl.ReLU, (5, 7, 3)),
    "maxpool tiling": (lambda: gl.MaxPool2d(2), (8, 16, 32, 32)),
    "maxpool overlapping, padded": (lambda: gl.MaxPool2d(3, stride=2, padding=1), (8, 16, 32, 32)),
    "batchnorm training (slices of channels)": (lambda: gl.BatchNorm2d(6), (4, 6, 5, 5)),
    "batchnorm evaluation": (lambda: gl.BatchNorm2d(6).eval(), (4, 6, 5, 5)),
}


@needs_blas_control
@pytest.mark.parametrize("name", LAYERS)
def test_two_workers_give_the_serial_result(name, workers, monkeypatch):
    make, shape = LAYERS[name]
    if "NumPy path" in name:
        monkeypatch.setattr(compiled, "_library", False)
    module = make()
    module.to(np.float64)
    x = np.random.default_rng(0).standard_normal(shape)
    if "maxpool" in name:
        x = np.maximum(x, 0)  # ReLU'd input: many tied windows, each gradient to ONE input
    (y1, g1, p1), (y2, g2, p2), names = _serial_and_parallel(module, x, monkeypatch)
    assert any(n.startswith("gradlearn-batch") for n in names), names
    np.testing.assert_allclose(y2, y1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-12)
    for a, b in zip(p2, p1):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)  # slices summed in another order


@needs_blas_control
@pytest.mark.parametrize("train", [True, False], ids=["training", "evaluation"])
def test_channels_last_batchnorm_splits_samples_and_gives_the_serial_result(train, workers, numpy_paths, monkeypatch):
    """A channels-last BatchNorm2d's NumPy path splits its samples (odd batch: unequal
    slices), each slice adding its partial per-channel sums; results match the serial ones."""
    module = gl.BatchNorm2d(6).to(np.float64)
    module.weight.data = np.linspace(0.5, 1.5, 6)
    module.running_mean[:] = 0.3
    module.train(train)
    x = np.random.default_rng(0).standard_normal((5, 4, 3, 6)).transpose(0, 3, 1, 2)  # (5, 6, 4, 3), channels-last
    (y1, g1, p1), (y2, g2, p2), names = _serial_and_parallel(module, x, monkeypatch)
    assert any(n.startswith("gradlearn-batch") for n in names), names
    np.testing.assert_allclose(y2, y1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-12)
    for a, b in zip(p2, p1):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    contiguous = module.copy()
    contiguous.zero_grad()
    y3 = contiguous(np.ascontiguousarray(x))
    np.testing.assert_allclose(y3, y1, rtol=1e-12, atol=1e-12)


@needs_blas_control
def test_work_between_the_two_thresholds_splits_only_while_the_workers_are_active(monkeypatch):
    """A call needs MIN_WORK to start the workers, but only MIN_ACTIVE_WORK to split while
    they are active (within a network that already runs on them)."""
    parallel.set_num_workers(2)
    try:
        work = (parallel.MIN_ACTIVE_WORK + parallel.MIN_WORK) // 2
        monkeypatch.setattr(parallel, "_last_section", -1e9)  # nothing ran on the workers lately
        names = []
        parallel.over_batch(8, work, lambda a, b: names.append(threading.current_thread().name))
        assert names == [threading.current_thread().name]
        monkeypatch.setattr(parallel, "_last_section", time.perf_counter() + 60)  # the workers are active
        names = []
        parallel.over_batch(8, work, lambda a, b: names.append(threading.current_thread().name))
        assert len(names) == 2 and any(n.startswith("gradlearn-batch") for n in names), names
        names = []
        parallel.over_batch(8, parallel.MIN_ACTIVE_WORK - 1, lambda a, b: names.append(threading.current_thread().name))
        assert names == [threading.current_thread().name]
    finally:
        parallel.set_num_workers(None)


@needs_blas_control
def test_slices_that_share_a_worker_thread_keep_their_own_gradients(workers, monkeypatch):
    """Should one thread run two slices in a row (a pool with fewer threads than slices),
    it reuses its scratch: a slice's weight gradient must not be a view of it."""

    class EverySliceOnOneThread(parallel._PinnedPool):
        def submit(self, worker, fn, *args):
            return super().submit(0, fn, *args)

    one_thread = EverySliceOnOneThread(1)
    monkeypatch.setattr(parallel, "_get_pool", lambda workers: one_thread)
    module = gl.Conv2d(16, 8, 3, padding=1).to(np.float64)
    x = np.random.default_rng(0).standard_normal((6, 16, 8, 8))
    parallel.set_num_workers(1)
    y = module(x)
    grad = np.random.default_rng(1).standard_normal(y.shape)
    serial = _run(module, x, grad)
    parallel.set_num_workers(3)  # slices 2 and 3 both run on the one pool thread
    split = _run(module, x, grad)
    one_thread.shutdown()
    for a, b in zip(split[2], serial[2]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


@needs_blas_control
def test_a_linear_head_follows_the_workers_and_an_mlp_stays_on_blas(workers, monkeypatch):
    parallel.set_num_workers(2)
    head = gl.Linear(64, 16)
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    monkeypatch.setattr(parallel, "_last_section", -1e9)  # nothing ran on the workers lately
    assert not head._batch_parallel()
    expected = head(x)
    parallel.over_batch(8, parallel.MIN_WORK, lambda start, stop: None)  # a parallel section
    assert parallel.recently_active() and head._batch_parallel()
    np.testing.assert_allclose(head(x), expected, rtol=1e-5, atol=1e-5)


def test_slices_cover_the_batch():
    assert parallel.slices(5, 2) == [(0, 3), (3, 5)]
    assert parallel.slices(1, 4) == [(0, 1)]
    assert parallel.slices(8, 3) == [(0, 3), (3, 6), (6, 8)]


def test_small_work_runs_serially_in_the_caller():
    calls = []
    parallel.over_batch(64, 10, lambda a, b: calls.append((a, b, threading.current_thread().name)))
    assert calls == [(0, 64, threading.current_thread().name)]


@needs_blas_control
def test_blas_threads_are_restored_after_a_section_even_when_a_slice_fails(workers):
    parallel.set_num_workers(2)
    before = [c.num_threads for c in parallel._blas_controllers()]

    def fail(start, stop):
        if start:
            raise ValueError("bad slice")

    with pytest.raises(ValueError, match="bad slice"):
        parallel.over_batch(8, parallel.MIN_WORK, fail)
    assert [c.num_threads for c in parallel._blas_controllers()] == before


@needs_blas_control
def test_layers_called_from_two_threads_at_once_are_right_and_restore_blas(workers):
    parallel.set_num_workers(2)
    before = [c.num_threads for c in parallel._blas_controllers()]
    conv = gl.Conv2d(16, 16, 3, padding=1)
    xs = [np.random.default_rng(i).standard_normal((4, 16, 8, 8)).astype(np.float32) for i in range(2)]
    expected = [conv.copy()(x) for x in xs]
    results = [[] for _ in xs]

    def user_thread(i):
        for _ in range(20):
            results[i].append(conv.copy()(xs[i]))

    threads = [threading.Thread(target=user_thread, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(xs):
        for y in results[i]:
            np.testing.assert_allclose(y, expected[i], rtol=1e-5, atol=1e-5)
    assert [c.num_threads for c in parallel._blas_controllers()] == before


@needs_blas_control
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python 3.12+: the fork is the point
def test_a_forked_child_computes_with_its_own_workers(workers):
    """A child forked after the pool started (multiprocessing's default on Linux) would
    otherwise wait forever for threads that do not exist in it."""
    import multiprocessing

    parallel.set_num_workers(2)
    conv = gl.Conv2d(16, 16, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((4, 16, 8, 8)).astype(np.float32)
    expected = conv(x)  # the parent's pool is running now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(conv, (x,)).get(timeout=60)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


def test_set_num_workers_rejects_bad_values(workers):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive int or None"):
            parallel.set_num_workers(bad)


@needs_blas_control
def test_add_sums_in_slices_keeps_the_layout_and_broadcasts_plainly(workers, numpy_paths, monkeypatch):
    parallel.set_num_workers(2)
    names = _threads_used(monkeypatch)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 4, 3, 6)).transpose(0, 3, 1, 2)  # (5, 6, 4, 3), stored channels-last
    b = rng.standard_normal((5, 6, 4, 3))
    total = parallel.add(a, b)
    np.testing.assert_array_equal(total, a + b)
    assert total.strides == a.strides  # a's (channels-last) layout
    assert any(n.startswith("gradlearn-batch") for n in names), names
    np.testing.assert_array_equal(parallel.add(b, np.float64(2.0)), b + 2.0)  # not the same shape: plain a + b


@needs_blas_control
def test_kernels_share_a_call_with_the_team_when_large_and_outside_a_section(monkeypatch):
    parallel.set_num_workers(2)
    try:
        assert parallel.team_threads(parallel.MIN_TEAM_WORK) == 2
        assert parallel.team_threads(parallel.MIN_TEAM_WORK - 1) == 1
        inside = parallel.over_batch(4, parallel.MIN_WORK, lambda start, stop: parallel.team_threads(parallel.MIN_TEAM_WORK))
        assert inside == [1, 1]  # a slice already has its core
        parallel.set_num_workers(1)
        assert parallel.team_threads(parallel.MIN_TEAM_WORK) == 1
    finally:
        parallel.set_num_workers(None)
