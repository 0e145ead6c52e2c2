"""gradlearn.allocator: NumPy's large arrays reuse freed blocks of their size, with the
same contents semantics as NumPy's own allocator (np.zeros is zeros, resize keeps values)."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import allocator

from .conftest import needs_compiled

LARGE = 1 << 18  # float32 elements: 1 MiB, above the 256 kB the cache keeps


@pytest.fixture
def cache():
    """The allocator installed in this thread, empty, with its limit restored afterwards."""
    needs_compiled()
    if os.environ.get("GRADLEARN_ALLOCATOR", "1").strip() == "0":
        pytest.skip("GRADLEARN_ALLOCATOR=0: NumPy's default allocator")
    assert allocator.install() and allocator.active()
    allocator.set_limit(0)  # an empty cache: what earlier tests left is freed
    allocator.set_limit(512 << 20)
    yield allocator
    allocator.set_limit(512 << 20)


def test_import_installs_it_for_the_importing_thread(cache):
    assert allocator._numpy_core().multiarray.get_handler_name(np.empty(3)) == "gradlearn_cache"


def test_a_freed_large_block_serves_the_next_array_of_its_size(cache):
    a = np.full(LARGE, 7.0, np.float32)
    address = a.ctypes.data
    before = cache.stats()
    del a
    assert cache.stats().bytes_cached >= before.bytes_cached + 4 * LARGE
    b = np.zeros(LARGE, np.float32)  # the same block, dirty: np.zeros must still be zeros
    assert b.ctypes.data == address
    assert cache.stats().hits == before.hits + 1
    assert not b.any()


def test_small_arrays_are_not_kept(cache):
    before = cache.stats()
    for _ in range(10):
        np.ones(1000, np.float32)
    after = cache.stats()
    assert (after.hits, after.misses, after.bytes_cached) == (before.hits, before.misses, before.bytes_cached)


def test_resize_keeps_the_values_both_ways(cache):
    a = np.arange(10, dtype=np.float64)
    a.resize(LARGE, refcheck=False)  # small -> large: a new block, the values copied
    np.testing.assert_array_equal(a[:10], np.arange(10))
    assert not a[10:].any()
    a[-1] = 5
    a.resize(4, refcheck=False)  # large -> small
    np.testing.assert_array_equal(a, np.arange(4))


def test_the_limit_bounds_what_is_kept(cache):
    cache.set_limit(0)
    assert cache.stats().bytes_cached == 0
    before = cache.stats()
    del_me = np.ones(LARGE, np.float32)
    del del_me
    assert cache.stats().bytes_cached == 0  # freed at once
    assert cache.stats().misses == before.misses + 1
    with pytest.raises(ValueError, match="expected a number of bytes >= 0, got -1"):
        cache.set_limit(-1)


def test_a_size_nothing_uses_any_more_is_freed_after_max_age_large_allocations(cache):
    """A block of one size (a network trained before, a one-off conversion) stays cached
    while arrays of other sizes come and go, until max_age() large allocations have passed
    without its size; a size in use each round stays."""
    odd = np.ones(LARGE + 4096, np.float32)
    del odd
    odd_bytes = cache.stats().bytes_cached
    assert odd_bytes >= 4 * (LARGE + 4096)
    for _ in range(cache.max_age() - 10):
        step = np.empty(LARGE, np.float32)  # the size a training step keeps using
        del step
    assert cache.stats().bytes_cached >= odd_bytes  # not yet old enough
    for _ in range(20):
        step = np.empty(LARGE, np.float32)
        del step
    assert odd_bytes > cache.stats().bytes_cached >= 4 * LARGE  # the odd block went; the step's stays
    before = cache.stats()
    again = np.empty(LARGE, np.float32)
    assert cache.stats().hits == before.hits + 1
    del again


def test_arrays_made_and_freed_on_many_threads(cache):
    """Arrays of the main thread freed on workers, and workers with the allocator of their
    own, all at once: every array keeps its values."""
    arrays = [np.full(LARGE, float(i), np.float32) for i in range(16)]
    errors = []

    def work(index):
        try:
            allocator.install()
            for round_ in range(20):
                mine = np.full(LARGE + 1024 * (index % 3), float(index + round_), np.float32)
                assert mine[0] == mine[-1] == index + round_
                del mine
            arrays[index] = None  # the main thread's array, freed here
        except Exception as error:  # reported below: a thread's exception does not fail the test
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = np.zeros(LARGE, np.float32)
    assert not after.any()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python 3.12+: the fork is the point
def test_a_forked_child_allocates(cache):
    held = np.ones(LARGE, np.float32)
    del held
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether large arrays work
        try:
            ok = all(np.full(LARGE, 3.0, np.float32).sum() == 3.0 * LARGE for _ in range(3))
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_training_step_reuses_the_step_befores_blocks(cache):
    """LeNet-5, batch 64: once warm, a step finds every large array's block in the cache."""
    net = gl.models.lenet5(generator=np.random.default_rng(0))
    loss = gl.CrossEntropyLoss()
    opt = gl.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = np.random.default_rng(1).standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = np.arange(64) % 10

    def step():
        net.zero_grad()
        loss(net(x), y)
        net.backward(loss.backward())
        opt.step()

    for _ in range(3):
        step()
    before = cache.stats()
    step()
    after = cache.stats()
    assert after.misses == before.misses
    assert after.hits > before.hits


def test_a_numpy_without_the_c_api_capsule_keeps_its_allocator(monkeypatch):
    needs_compiled()
    monkeypatch.setattr(allocator._installed, "done", False)
    monkeypatch.setattr(allocator, "_numpy_core", lambda: object())  # no _multiarray_umath
    with pytest.warns(RuntimeWarning, match="caching allocator not installed"):
        assert not allocator.install()


def test_the_environment_can_leave_numpys_allocator_alone():
    code = "import gradlearn; print(gradlearn.allocator._numpy_core().multiarray.get_handler_name())"
    env = dict(os.environ, GRADLEARN_ALLOCATOR="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "default_allocator"
