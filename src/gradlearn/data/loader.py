"""DataLoader: mini-batches, prepared by a background thread, resumable exactly from a checkpoint.

Each epoch starts by drawing, from the loader's generator, the permutation of the examples
(when ``shuffle``) and, when the transform is random, an epoch seed. Batch ``b`` then holds
the examples ``perm[b * batch_size : (b + 1) * batch_size]``, and its augmentation draws
from its own generator ``default_rng([epoch_seed, b])``: every batch is a pure function of
(generator state at the start of the epoch, batch index). That is what makes exact
resumption cheap: ``state_dict()`` records the generator state at the start of the epoch
and the number of batches already delivered, and after ``load_state_dict()`` the next
iteration redraws the same permutation and skips the delivered batches, giving exactly the
batches an uninterrupted run would have produced, augmentation included. (Give the loader
its own generator: draws made from it by others between epochs would change the next
epoch, in the interrupted run as in the uninterrupted one.)

Prefetching: with ``prefetch=k > 0`` a daemon thread gathers the next ``k`` batches
(``np.take(..., out=)`` into preallocated arrays of the right dtype, then the transform)
while the consumer trains on the current one; NumPy releases the GIL in the copies and
arithmetic. ``prefetch=0`` prepares each batch on demand in the caller's thread. Errors in
the thread are re-raised in the consumer. Leaving a loop early (``break``, an exception)
stops and joins the thread.

Batches belong to the caller (fresh arrays) unless ``reuse_buffers=True``: then the
gathered arrays cycle through ``prefetch + 2`` buffers and a batch stays valid only until
the consumer has asked for ``prefetch + 1`` further batches.

Augmentation belongs in training loaders only: give the training loader the augmenting
transform (e.g. ``Compose([RandomCrop(32, 4), RandomHorizontalFlip(), norm])``) and the
evaluation loaders only the fitted :class:`~gradlearn.data.transforms.Standardize`.
"""

from __future__ import annotations

import copy
import functools
import math
import queue
import threading
import weakref

import numpy as np

from ..backend import resolve_dtype, resolve_generator
from .idx import DataError
from .transforms import Transform

__all__ = ["DataLoader"]

_JOIN_TIMEOUT = 10.0


def _jsonable(value):
    """``value`` with numpy arrays and scalars turned into lists and Python numbers."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Prefetcher:
    """A daemon thread that runs ``make(b)`` for each ``b`` in ``batches`` into a bounded queue."""

    def __init__(self, make, batches, prefetch: int):
        self._queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(make, batches), name="gradlearn-DataLoader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _work(self, make, batches):
        try:
            for b in batches:
                if self._stop.is_set() or not self._put(("batch", make(b))):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, re-raised there
            self._put(("error", exc))

    def __iter__(self):
        while True:
            try:
                kind, value = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("DataLoader: the prefetch thread ended without delivering its batches") from None
                continue
            if kind == "batch":
                yield value
            elif kind == "done":
                return
            else:
                raise value

    def close(self) -> None:
        self._stop.set()
        while True:  # free the queue so a blocked put sees the stop flag at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=_JOIN_TIMEOUT)


class DataLoader:
    """Iterate ``(x, y)`` mini-batches over a :class:`Dataset` or an ``(x, y)`` pair of arrays.

    Args:
        dataset: an object with ``.x`` and ``.y`` arrays, or a pair ``(x, y)``.
        batch_size: examples per batch (default 32); the last batch is smaller unless
            ``drop_last``.
        shuffle: draw a new permutation each epoch from ``generator`` (default True).
        generator: a ``numpy.random.Generator`` (or int seed); None: the library default.
        transform: applied to each batch: a :class:`Transform` (called with the batch's own
            generator) or a callable ``f(x, y) -> (x, y)``.
        prefetch: batches prepared ahead by a background thread (default 2; 0: synchronous).
        dtype: dtype of ``x`` batches (default float32); integer ``y`` become int64, float
            ``y`` this dtype.
        reuse_buffers: gather into a ring of ``prefetch + 2`` preallocated buffers instead of
            fresh arrays (see the module docstring for how long a batch stays valid).

    ``len(loader)`` is the number of batches per epoch. One iteration at a time: starting a
    new one (or loading a state) stops the current one.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        generator=None,
        transform=None,
        prefetch: int = 2,
        dtype=None,
        reuse_buffers: bool = False,
    ):
        if hasattr(dataset, "x") and hasattr(dataset, "y"):
            x, y = dataset.x, dataset.y
        elif isinstance(dataset, (tuple, list)) and len(dataset) == 2:
            x, y = dataset
        else:
            raise TypeError(f"DataLoader: expected a Dataset (with .x and .y) or an (x, y) pair, got {type(dataset).__name__}")
        x, y = np.asarray(x), np.asarray(y)
        dtype = resolve_dtype(dtype)
        if len(x) != len(y):
            raise DataError(f"DataLoader: x has {len(x)} examples but y has {len(y)}")
        if len(x) == 0:
            raise DataError("DataLoader: the data set is empty")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise DataError(f"DataLoader: prefetch must be a non-negative int, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.x = x if x.dtype == dtype else x.astype(dtype)
        if y.dtype.kind in "biu":
            self.y = y if y.dtype == np.int64 else y.astype(np.int64)
        else:
            self.y = y if y.dtype == dtype else y.astype(dtype)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.generator = resolve_generator(generator)
        self.transform = transform
        self.prefetch = int(prefetch)
        self.reuse_buffers = bool(reuse_buffers)
        self._random_transform = bool(getattr(transform, "random", False))
        self._epoch_state = None  # generator state at the start of the current epoch (None: between epochs)
        self._next_state = None  # generator state after the current epoch's draws
        self._delivered = 0
        self._skip = 0  # batches to skip at the start of the next epoch (from load_state_dict)
        self._active = None  # weak reference to the running iteration
        self._ring = None

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.x)} examples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, prefetch={self.prefetch}, transform={self.transform!r})"
        )

    # iteration ---------------------------------------------------------------------------
    def __iter__(self):
        self._close_active()
        iteration = self._iterate()
        self._active = weakref.ref(iteration)
        return iteration

    def _close_active(self) -> None:
        iteration = self._active() if self._active is not None else None
        if iteration is not None:
            iteration.close()
        self._active = None

    def _iterate(self):
        generator = self.generator
        start_state = copy.deepcopy(generator.bit_generator.state)
        skip, self._skip = self._skip, 0
        order = generator.permutation(len(self.x)) if self.shuffle else None
        seed = int(generator.integers(0, 2**63)) if self._random_transform else None
        self._epoch_state, self._next_state = start_state, copy.deepcopy(generator.bit_generator.state)
        self._delivered = skip
        batches = range(skip, len(self))
        make = functools.partial(self._make_batch, order=order, seed=seed)
        if self.reuse_buffers:
            self._ring = [None] * (self.prefetch + 2)
        if self.prefetch == 0:
            for b in batches:
                batch = make(b)
                self._delivered = b + 1
                yield batch
        else:
            worker = _Prefetcher(make, batches, self.prefetch)
            try:
                for batch in worker:
                    self._delivered += 1
                    yield batch
            finally:
                worker.close()
        self._epoch_state = None  # the epoch is complete: the next one starts from the generator's state

    def _buffer(self, b: int, count: int):
        """Arrays to gather batch ``b`` into: fresh ones, or a slot of the ring."""
        shape_x, shape_y = (count,) + self.x.shape[1:], (count,) + self.y.shape[1:]
        if not self.reuse_buffers:
            return np.empty(shape_x, self.x.dtype), np.empty(shape_y, self.y.dtype)
        slot = b % len(self._ring)
        if self._ring[slot] is None:
            full = min(self.batch_size, len(self.x))
            self._ring[slot] = (np.empty((full,) + self.x.shape[1:], self.x.dtype), np.empty((full,) + self.y.shape[1:], self.y.dtype))
        x_buffer, y_buffer = self._ring[slot]
        return x_buffer[:count], y_buffer[:count]

    def _make_batch(self, b: int, order, seed):
        start = b * self.batch_size
        stop = min(start + self.batch_size, len(self.x))
        x, y = self._buffer(b, stop - start)
        if order is None:
            np.copyto(x, self.x[start:stop])
            np.copyto(y, self.y[start:stop])
        else:
            index = order[start:stop]
            np.take(self.x, index, axis=0, out=x, mode="clip")  # indices are valid: 'clip' skips np.take's buffering
            np.take(self.y, index, axis=0, out=y, mode="clip")
        if self.transform is None:
            return x, y
        if isinstance(self.transform, Transform):
            rng = np.random.default_rng([seed, b]) if seed is not None else None
            return self.transform(x, y, generator=rng)
        return self.transform(x, y)

    # checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-serialisable position: generator state at the start of the current epoch, batches delivered.

        Between epochs (or after the last batch of one), the position is the start of the
        next epoch with 0 batches delivered.
        """
        if self._epoch_state is not None and self._delivered < len(self):
            generator_state, delivered = self._epoch_state, self._delivered
        elif self._epoch_state is not None:
            generator_state, delivered = self._next_state, 0
        else:
            generator_state, delivered = self.generator.bit_generator.state, self._skip
        return {
            "generator": _jsonable(copy.deepcopy(generator_state)),
            "batches_delivered": int(delivered),
            "num_examples": len(self.x),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from ``state``: the next iteration continues the saved epoch where it stopped."""
        for key in ("generator", "batches_delivered"):
            if key not in state:
                raise DataError(f"DataLoader.load_state_dict: missing key {key!r} (got {sorted(state)})")
        for key, mine in (("num_examples", len(self.x)), ("batch_size", self.batch_size), ("shuffle", self.shuffle), ("drop_last", self.drop_last)):
            if key in state and state[key] != mine:
                raise DataError(f"DataLoader.load_state_dict: the state has {key}={state[key]!r}, this loader {key}={mine!r}")
        kind = self.generator.bit_generator.state["bit_generator"]
        if state["generator"].get("bit_generator") != kind:
            raise DataError(
                f"DataLoader.load_state_dict: the state is for a {state['generator'].get('bit_generator')} generator, "
                f"this loader's is {kind}"
            )
        delivered = int(state["batches_delivered"])
        if not 0 <= delivered <= len(self):
            raise DataError(f"DataLoader.load_state_dict: batches_delivered={delivered} outside [0, {len(self)}]")
        self._close_active()
        self.generator.bit_generator.state = copy.deepcopy(state["generator"])
        self._epoch_state = None
        self._skip = delivered
