"""The array backend: which array module computes, the default dtype, random generators.

All array code in gradlearn goes through an array module ``xp`` (NumPy now, CuPy for the
GPU later). NumPy functions applied to a CuPy array dispatch to CuPy (NEP 13/18), so module
code calls ``np.tanh(x)`` freely; only array *creation* must ask for the module of its
inputs, with :func:`array_module`.

Global state is limited to the default dtype and the default random generator.
"""

from __future__ import annotations

import numpy as np

xp = np  # the default array module

_default_dtype = np.dtype(np.float32)
_default_generator = np.random.default_rng()

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def array_module(*arrays):
    """The array module (numpy or cupy) that owns ``arrays``: numpy unless one is a CuPy array."""
    for a in arrays:
        if type(a) is not np.ndarray and type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


def channels_last(a) -> bool:
    """Whether the (N, C, H, W) array ``a`` is stored channels-last (memory order N, H, W, C,
    what PyTorch calls ``channels_last``) and not also in C order (C = 1 or H*W = 1, where
    the two are the same memory)."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def flat_views(*arrays):
    """Flat views of arrays of one dtype that hold their elements in the same order, sample
    after sample (all C order, or all channels-last), else None: for element-wise kernels."""
    if len({a.dtype for a in arrays}) != 1:
        return None
    if all(a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1) for a in arrays]
    if all(a.ndim == 4 and channels_last(a) for a in arrays):
        return [a.transpose(0, 2, 3, 1).reshape(-1) for a in arrays]
    return None


def empty_channels_last(shape, dtype, xp=np):
    """A new (N, C, H, W) array stored channels-last."""
    n, c, h, w = shape
    return xp.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)


def empty_like_layout(x, shape=None, dtype=None, fill=None):
    """A new array of ``shape`` (default x's) and ``dtype`` (default x's), stored
    channels-last when ``x`` is, else in C order; filled with ``fill`` when given. Layers
    give their outputs and input gradients their input's layout with it, so a network that
    a convolution made channels-last stays so."""
    xp = array_module(x)
    shape = x.shape if shape is None else tuple(shape)
    dtype = x.dtype if dtype is None else dtype
    out = empty_channels_last(shape, dtype, xp) if channels_last(x) else xp.empty(shape, dtype=dtype)
    if fill is not None:
        out.fill(fill)
    return out


DEVICES = ("cpu", "cuda")


def parse_device(device) -> str:
    """'cpu' or 'cuda' (also 'cuda:0'); anything else is a ValueError listing the choices."""
    name = str(device).lower()
    if name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"unknown device {device!r}; expected one of {DEVICES} (or 'cuda:N')")


def cuda_module():
    """CuPy, when it is installed and sees a CUDA device; otherwise a RuntimeError saying which is missing."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed: pip install 'gradlearn[cuda]' "
            "(on a machine with an NVIDIA GPU and its driver)"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        raise RuntimeError(f"device 'cuda': CuPy is installed but finds no CUDA device ({exc})") from None
    if count == 0:
        raise RuntimeError("device 'cuda': CuPy is installed but finds no CUDA device")
    return cupy


def to_device(array, device):
    """``array`` on ``device``: a NumPy array for 'cpu', a CuPy array for 'cuda[:N]'."""
    name = parse_device(device)
    if name == "cpu":
        if type(array) is np.ndarray:
            return array
        return array.get() if hasattr(array, "get") else np.asarray(array)
    cupy = cuda_module()
    index = int(name[5:]) if ":" in name else 0
    with cupy.cuda.Device(index):
        return cupy.asarray(array)


def device_of(array) -> str:
    """'cpu' for a NumPy array, 'cuda:N' for a CuPy array."""
    if array_module(array) is np:  # NumPy 2's arrays have a .device too: the string 'cpu'
        return "cpu"
    return f"cuda:{array.device.id}"


def set_default_dtype(dtype) -> None:
    """Set the dtype new parameters are created in: ``np.float32`` (default) or ``np.float64``."""
    global _default_dtype
    d = np.dtype(dtype)
    if d not in FLOAT_DTYPES:
        raise ValueError(f"set_default_dtype: expected float32 or float64, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The dtype new parameters are created in (float32 unless changed)."""
    return _default_dtype


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (used wherever no explicit generator is given)."""
    global _default_generator
    _default_generator = np.random.default_rng(seed)
    return _default_generator


def default_generator() -> np.random.Generator:
    """The generator used when a random draw is given none."""
    return _default_generator


def resolve_generator(generator) -> np.random.Generator:
    """``generator`` itself, a new generator seeded by an int, or the default generator."""
    if generator is None:
        return _default_generator
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)):
        return np.random.default_rng(int(generator))
    raise TypeError(f"expected a numpy.random.Generator, an int seed or None, got {type(generator).__name__}")


def resolve_dtype(dtype) -> np.dtype:
    """``dtype`` as a float dtype, or the default dtype when None."""
    if dtype is None:
        return _default_dtype
    d = np.dtype(dtype)
    if d not in FLOAT_DTYPES:
        raise ValueError(f"expected dtype float32 or float64, got {d}")
    return d
