"""A caching allocator for NumPy's large arrays, so that a training step reuses the memory
of the step before instead of asking the kernel for fresh pages.

Each step of a network allocates the same arrays (layer outputs, gradients) and frees
them. Through malloc, a large block is new memory each time, whose 4 kB pages the kernel
zeroes and maps on first touch: a ResNet-20 step (batch 64) took 1500 page faults and
15 ms of system time, LeNet-5's (batch 128) 220 and 2.3 ms of a 13 ms step. The compiled
extension keeps freed blocks of at least 256 kB, by exact (page-rounded) size, up to
``limit`` bytes in all, and hands them to the next array of that size (see the allocator
section of ``_kernels.c``).

It is NumPy's own mechanism for this (NEP 49, a "memory handler"): ``install()`` sets it
for the calling thread's context, which ``import gradlearn`` does, for the importing
thread; other threads keep NumPy's default, and every array is freed by the handler that
made it. ``GRADLEARN_ALLOCATOR=0`` in the environment leaves NumPy's default alone, as does
a build without the compiled extension. Arrays are the same either way; only where their
memory comes from changes. The cache counts in the process's resident memory: at most
``limit`` bytes (512 MiB unless ``set_limit`` says otherwise), of blocks a next step would
reuse. A size that no large allocation or free has used for the last ``max_age()`` large
allocations (1024; ResNet-20's step makes 136, LeNet-5's 11) is freed: blocks of a network
trained before, of a data set's one-off conversion, or of an evaluation's batches do not
stay resident (the main job's peak memory was 800 MB with the cache against 584 MB without).
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import NamedTuple

import numpy as np

from . import compiled

_installed = threading.local()


class Stats(NamedTuple):
    hits: int  # large allocations served from the cache
    misses: int  # large allocations that found no cached block of their size
    bytes_cached: int
    blocks_cached: int


def _extension():
    if not compiled.available():
        return None
    import importlib

    return importlib.import_module("gradlearn._kernels")


def _numpy_core():
    return np._core if hasattr(np, "_core") else np.core  # NumPy 2 / 1.26


def install() -> bool:
    """Make the caching allocator NumPy's memory handler in the calling thread's context
    (once per thread). Returns whether it is installed: False without the compiled
    extension or with GRADLEARN_ALLOCATOR=0."""
    if getattr(_installed, "done", False):
        return True
    if os.environ.get("GRADLEARN_ALLOCATOR", "1").strip() == "0":
        return False
    extension = _extension()
    if extension is None:
        return False
    try:
        extension.install_numpy_allocator(_numpy_core()._multiarray_umath._ARRAY_API)
    except (AttributeError, ValueError) as error:  # a NumPy without the C-API capsule: keep its allocator
        warnings.warn(f"gradlearn: caching allocator not installed ({error}); NumPy allocates as usual", RuntimeWarning, stacklevel=2)
        return False
    _installed.done = True
    return True


def active() -> bool:
    """Whether NumPy allocates new arrays through the cache in this thread's context."""
    return _numpy_core().multiarray.get_handler_name() == "gradlearn_cache"


def stats() -> Stats:
    """Counts since the process started (all threads), and what the cache holds now."""
    extension = _extension()
    return Stats(*extension.allocator_stats()) if extension is not None else Stats(0, 0, 0, 0)


def max_age() -> int:
    """Large allocations after which a size nothing has used is freed from the cache (0
    without the compiled extension)."""
    extension = _extension()
    return extension.CACHE_MAX_AGE if extension is not None else 0


def set_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of freed blocks (0: keep none); blocks over it are freed now."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ValueError(f"allocator.set_limit: expected a number of bytes >= 0, got {nbytes!r}")
    extension = _extension()
    if extension is not None:
        extension.set_cache_limit(int(nbytes))
