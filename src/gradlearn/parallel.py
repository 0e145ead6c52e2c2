"""Batch-parallel layers on the CPU: each core computes a slice of the batch.

NumPy runs an element-wise operation or an array copy on ONE core, and OpenBLAS splits
each matrix product over all of them. A convolution built from copies (im2col) and
matrix products therefore leaves the other cores idle during its copies, which are
most of its time for 16-64 channels. Splitting the *batch* instead lets every step run
on every core: worker threads (NumPy releases the GIL in copies, ufuncs and matmul)
each compute the forward or backward of their own slice of samples, with BLAS held to
one thread each while they do, so the threads do not fight over the cores.

Measured on a 2-core CPU (float32, batch 64, 3x3 convolution with padding 1, forward):
16->16 at 32x32 17.5 -> 11.3 ms, 32->32 at 32x32 39.6 -> 26.6 ms, 64->64 at 16x16
23.8 -> 18.5 ms; ReLU backward on 64x32x32x32 3.8 -> 2.3 ms; MaxPool2d(2) forward +
backward 20.5 -> 11.0 ms. Leaving BLAS at 2 threads inside the workers made the same
convolution slower than serial (58.6 ms), hence the limit.

The number of workers is the number of threads BLAS is set to use (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, or the cores), so a process that asked for one BLAS thread (an MPI
rank, say) stays on one core. Without threadpoolctl (which reads and sets that count) or a
BLAS it knows, everything runs serially; ``set_num_workers(1)`` or the environment
variable ``GRADLEARN_NUM_WORKERS=1`` does the same by choice.
Results are the same whichever way it runs, up to float rounding: the order in which
slices' parameter gradients are summed, and OpenBLAS, which rounds some products
differently on one thread than on two (e.g. 128x784 @ 784x512). Because the
``follower`` choice below depends on timing, two runs of a network that splits can differ
at that level; ``GRADLEARN_NUM_WORKERS=1`` makes runs bit-identical.

Which layers split: Conv2d, BatchNorm (in slices of channels, or of samples for a
channels-last input), ReLU, MaxPool2d and residual sums (``add``), each when its call has
at least ``MIN_WORK`` work. (With the compiled kernels, ReLU, a channels-last BatchNorm,
``add``, the SGD step and a convolution of a channels-last input hand their whole call to
the kernels' own team of C threads instead, see ``team_threads``; such a call counts as a
section for ``recently_active``.)

After any BLAS-threaded product, BLAS's
idle threads spin for about 0.1 s and take the workers' cores (W3 trained no faster than
serially while its classifier head ran on BLAS's threads). So while the workers are
*recently active* (a split ended within ``RECENT`` seconds), every other call also keeps
BLAS at one thread: calls with at least ``MIN_ACTIVE_WORK`` split, smaller ones run whole
in the caller, and the ``follower`` layers split. Followers are layers that split only
then: Linear. Alone, its products run faster on BLAS's 2 threads (1.1 against 1.4 ms for
784 -> 512 at batch 128; an MLP trained 0.58x as fast split), so a network with no
splitting layer (an MLP) runs exactly as without this module. LeNet-5 (batch 128) trained
2953 -> 3749 samples/s with its convolutions, first ReLU and first pool split (median of
4 runs each; batch 64: 2667 -> 2986).

One parallel section runs at a time: a layer called while one runs (from a worker, or
from another thread of the user's) is computed serially in its caller's thread. A forked
child starts a pool of its own.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

import numpy as np

from . import compiled
from .backend import array_module, flat_views

MIN_WORK = 1 << 20  # below this much work per call (elements or multiply-adds), starting the workers costs more than it saves
MIN_ACTIVE_WORK = 1 << 18  # ... and below this, a hand-off costs more than it saves while they are active anyway
MIN_TEAM_WORK = 1 << 17  # elements below which a compiled kernel runs on its caller's thread alone (see team_threads)

_section = threading.Lock()  # held while a parallel section runs
_pool = None  # the _PinnedPool of worker threads
_blas = None  # threadpoolctl controllers of the BLAS libraries, found once (False: none)
_num_workers = None  # None: follow BLAS's thread count
_last_section = -1e9  # time.perf_counter() at the end of the latest parallel section
RECENT = 0.25  # seconds: BLAS's idle threads spin about 0.1 s after a threaded product


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            controllers = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # not installed, or a BLAS it cannot drive
            controllers = []
        _blas = controllers or False
    return _blas


def num_workers() -> int:
    """How many slices a batch-parallel layer splits its batch into (1: serial):
    ``set_num_workers``'s value, else the environment variable GRADLEARN_NUM_WORKERS,
    else BLAS's thread count."""
    if _num_workers is not None:
        return _num_workers
    if _env_workers is not None:
        return _env_workers
    controllers = _blas_controllers()
    if not controllers:
        return 1
    return max(1, min(c.num_threads for c in controllers))


def _read_env_workers():
    value = os.environ.get("GRADLEARN_NUM_WORKERS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"GRADLEARN_NUM_WORKERS must be a positive integer, got {value!r}")
    return int(value) if _blas_controllers() or int(value) == 1 else 1


def set_num_workers(n) -> None:
    """Fix the number of worker slices (1 turns batch parallelism off); ``None`` follows
    BLAS's thread count again."""
    global _num_workers
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"set_num_workers: expected a positive int or None, got {n!r}")
        if n > 1 and not _blas_controllers():
            raise RuntimeError(
                "set_num_workers: batch parallelism needs threadpoolctl and a BLAS it can limit "
                "(pip install threadpoolctl); without them layers run serially"
            )
        n = int(n)
    _num_workers = n


def slices(n: int, parts: int):
    """``parts`` (start, stop) ranges covering range(n), sizes differing by at most one."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def over_batch(n: int, work: int, fn, xp=np, *, follower: bool = False):
    """Run ``fn(start, stop)`` over slices of a batch of ``n`` samples and return the
    results in slice order: in worker threads (BLAS limited to one thread each; the
    calling thread computes the first slice) when there are several workers, ``work``
    (elements touched, roughly) is at least MIN_WORK, the arrays are NumPy's and no
    parallel section is already running (MIN_ACTIVE_WORK when the workers were
    ``recently_active``); else as one call ``fn(0, n)``, with BLAS held to one thread when
    the workers were recently active (so that a small layer does not wake BLAS's threads,
    which would then spin on the workers' cores). A ``follower``
    (a layer that gains from the workers only when the rest of the network uses them, see
    ``recently_active``) runs as one plain call ``fn(0, n)`` unless the workers are
    recently active, and does not itself count as activity, so a network made only of
    followers stays on BLAS's threads."""
    if follower and not recently_active():
        return [fn(0, n)]
    workers = num_workers()
    if workers < 2 or xp is not np or not _section.acquire(blocking=False):
        return [fn(0, n)]
    active = recently_active()
    if n < 2 or work < (MIN_ACTIVE_WORK if active else MIN_WORK):
        if not active:
            _section.release()
            return [fn(0, n)]
        bounds = [(0, n)]  # too small to split, but kept off BLAS's threads (see recently_active)
    else:
        bounds = slices(n, workers)
    held = [(c, c.num_threads) for c in _blas_controllers()]
    held = [(c, count) for c, count in held if count != 1]  # BLAS's thread counts to put back
    pending = []
    try:
        for c, _ in held:
            c.set_num_threads(1)
        if len(bounds) > 1:
            pool = _get_pool(workers)
            pending = [pool.submit(i, fn, start, stop) for i, (start, stop) in enumerate(bounds[1:])]
        first = fn(*bounds[0])
    finally:
        for part in pending:  # every slice is done before BLAS gets its threads back
            part.done.acquire()
        for c, count in held:
            c.set_num_threads(count)
        _section.release()
        if not follower and len(bounds) > 1:
            _mark_section()
    return [first] + [part.value() for part in pending]


def team_threads(work: int, *, follower: bool = False) -> int:
    """How many threads one call of a compiled element-wise kernel may share (the team of
    helper threads in ``_kernels.c``, which take chunks of the call beside its caller: no
    Python and no GIL per slice, so a 4 MB ReLU gains from the second core where a section
    here would cost its time): ``num_workers()`` for ``work`` (elements) of at least
    MIN_TEAM_WORK, outside a parallel section; 1 inside one (the call comes from a slice,
    which already has its core) or for less work. A shared call counts as the workers
    being active (``recently_active``), as a section would, unless it is a ``follower``
    (the optimizer's step, which follows whatever the layers did)."""
    if work < MIN_TEAM_WORK or _section.locked():
        return 1
    threads = num_workers()
    if threads > 1 and not follower:
        _mark_section()
    return threads


@contextlib.contextmanager
def one_blas_thread():
    """BLAS held to one thread inside, its thread counts put back after: for work shared by
    the kernels' team that also calls BLAS (a convolution's bias gradient, ``ones @ dE/dy``),
    so that BLAS's threads do not wake and then spin for 0.1 s on the team's cores (W3's
    step took 1.36x the time with that product on BLAS's two threads)."""
    held = [(c, c.num_threads) for c in (_blas_controllers() or [])]
    held = [(c, count) for c, count in held if count != 1]
    try:
        for c, _ in held:
            c.set_num_threads(1)
        yield
    finally:
        for c, count in held:
            c.set_num_threads(count)


def add(a, b):
    """a + b for two arrays of one shape, as a new array in a's layout, computed in slices
    of the batch (axis 0) on the workers when large (``over_batch``); on the GPU one
    kernel; other arguments (broadcasting, scalars) get a plain ``a + b``. For residual
    sums: ResNet-20 adds (64, 16, 32, 32) arrays 18 times a step."""
    if type(a) is not type(b) or getattr(a, "ndim", 0) == 0 or a.shape != b.shape:
        return a + b
    if type(a) is not np.ndarray:  # CuPy: one kernel, its output in a's layout too
        xp = array_module(a)
        return xp.add(a, b, out=xp.empty_like(a, dtype=np.result_type(a.dtype, b.dtype)))
    out = np.empty_like(a, dtype=np.result_type(a, b))
    flat = flat_views(a, b, out) if compiled.available() else None
    if flat is not None:
        compiled.kernel("add")(*flat, threads=team_threads(a.size))
    else:
        over_batch(len(a), a.size, lambda start, stop: np.add(a[start:stop], b[start:stop], out=out[start:stop]))
    return out


def _mark_section():
    global _last_section
    _last_section = time.perf_counter()


def recently_active() -> bool:
    """Whether a parallel section ended within the last RECENT seconds: the network being
    trained runs on the workers, so a layer that could go either way (a matrix product on
    BLAS's threads or on the workers) should stay on the workers. One BLAS-threaded
    product leaves BLAS's threads spinning for ~0.1 s, taking the workers' cores."""
    return time.perf_counter() - _last_section < RECENT


class _Slice:
    """One slice handed to a worker: ``done`` is held until the worker has finished it (a
    bare lock: concurrent.futures' Future and wait() cost about 20 us more per section)."""

    __slots__ = ("done", "result", "error")

    def __init__(self):
        self.done = threading.Lock()
        self.done.acquire()
        self.result = self.error = None

    def value(self):
        """The slice's result (call once ``done`` was acquired); re-raises its exception."""
        if self.error is not None:
            raise self.error
        return self.result


class _PinnedPool:
    """Worker threads, each with its own queue: slice i + 1 of every section runs on worker
    i (the caller computes slice 0). A thread-local scratch (Conv2d's columns) is then sized
    by the same slices every step; with a shared queue a thread's first slice of some layer
    could come after warm-up (seen on 16 cores: new 390 kB blocks in a steady-state step)."""

    def __init__(self, size):
        self.queues = [queue.SimpleQueue() for _ in range(size)]
        for i, q in enumerate(self.queues):
            threading.Thread(target=self._serve, args=(q,), name=f"gradlearn-batch-{i}", daemon=True).start()

    @staticmethod
    def _serve(q):
        while (item := q.get()) is not None:
            part, fn, args = item
            try:
                part.result = fn(*args)
            except BaseException as exc:  # handed to the caller, which re-raises it
                part.error = exc
            finally:
                part.done.release()
            del item, part, fn, args  # nothing of a slice outlives it in this thread

    def submit(self, worker, fn, *args) -> "_Slice":
        part = _Slice()
        self.queues[worker].put((part, fn, args))
        return part

    def shutdown(self):
        for q in self.queues:
            q.put(None)


def _get_pool(workers):
    """The worker threads (``workers - 1``: the caller computes one slice); only called
    inside a section, so never by two threads at once."""
    global _pool
    if _pool is None or len(_pool.queues) < workers - 1:
        if _pool is not None:
            _pool.shutdown()
        _pool = _PinnedPool(workers - 1)
    return _pool


_env_workers = _read_env_workers()


def _after_fork_in_child():
    """A forked child (a user's multiprocessing worker) has none of the parent's threads:
    it starts a pool of its own, and a section the parent held at the fork is not its."""
    global _pool, _section
    _pool = None
    _section = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
