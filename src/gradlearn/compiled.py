"""Compiled CPU kernels (numba), for the layers where NumPy's copies and narrow matrix
products are the bottleneck and a loop written out is measured to be faster.

Optional: without numba (``pip install 'gradlearn[fast]'``), or with the environment
variable ``GRADLEARN_NUMBA=0``, ``available()`` is False and every layer takes its NumPy
path, which computes the same sums. numba is imported, and each kernel compiled (cached
on disk after the first time), only when a layer first needs it.

The kernels release the GIL (``nogil``), so ``gradlearn.parallel``'s workers run them on
every core, each over its own slice of the batch. Floating-point flags: only
re-association and fused multiply-adds (``reassoc``, ``contract``), so sums may round
differently from NumPy's, but NaN and infinity propagate as in NumPy.

The kernels (``_compiled_kernels``), each measured faster than its NumPy path:

- ReLU's backward: one pass, dE/dx = dE/dy where y > 0 else 0, where NumPy needs a
  comparison and a product (LeNet-5's 128x6x28x28 on one core: 0.79 -> 0.35 ms).
- MaxPool2d over 2x2 tiles of a C-order input: one pass each way, the forward noting each
  tile's first maximum (uint8) for the backward, where NumPy's separable path takes
  several strided passes (the same 128x6x28x28 on one core: backward 1.98 -> 0.83 ms;
  forward about equal, 0.98 against 1.07 ms, as it now also writes the indices).
- BatchNorm2d in training on channels-last arrays (after the pixel-major convolutions):
  x - mu with the sum of its squares, the scale and shift, the backward's two sums, and
  dE/dx, one pass each over (rows, channels) with the channels innermost, sums in
  float64; NumPy needs two or three passes for each. 64x16x32x32 with 2 workers: forward
  2.5 -> 1.6-2.1 ms, backward 3.1-4.2 -> 1.7-2.1 ms.
- Conv2d with one input channel, below.

Direct convolution ("wide rows"), for one input channel (a grayscale first layer, as
LeNet-5's), stride 1 and dilation 1. Sample n's padded input is one flat row per
channel, ``xpad[c, r*Wp + s]`` (Hp x Wp padded image). Computing the output over the full
padded width Wp, ``ywide[o, a*Wp + b] = sum_{c,i,j} W[o,c,i,j] * xpad[c, a*Wp + b + i*Wp + j]``,
turns every tap (c, i, j) into one contiguous multiply-add over the whole image,
``ywide[o, :L] += W[o,c,i,j] * xpad[c, off:off + L]`` with ``off = i*Wp + j`` and
``L = (Ho - 1)*Wp + Wo``; the columns b >= Wo are discarded. The backward reads the same
taps the other way: ``dE/dW[o,c,i,j] += dywide[o, :L] . xpad[c, off:off + L]`` (dE/dy
written into zeroed wide rows) and ``dE/dxpad[c, off:off + L] += W[o,c,i,j] * dywide[o, :L]``.
Measured on a 2-core CPU, LeNet-5's first layer (1 -> 6 channels, 5x5, padding 2, batch
128, both cores): forward 1.15 against 3.3 ms by im2col, weight gradient 1.0 against about
3.8 ms. With 3 or more input channels (3 -> 32, 32 -> 32 at 32x32) im2col and one matrix
product were faster, so only one-channel inputs take this path.
"""

from __future__ import annotations

import importlib.util
import os

_kernels = None  # the kernels' module, imported on first use (False: numba is missing or disabled)


def kernel(name: str):
    """The compiled function ``name`` (compiling the kernels on first use); only call when
    ``available()``."""
    return getattr(_load(), name)


def available() -> bool:
    """Whether the compiled kernels can be used: numba imports and ``GRADLEARN_NUMBA`` is not 0."""
    return bool(_load())


def _load():
    global _kernels
    if _kernels is None:
        if os.environ.get("GRADLEARN_NUMBA", "1").strip() == "0":
            _kernels = False
        elif importlib.util.find_spec("numba") is None:
            _kernels = False
        else:
            from . import _compiled_kernels

            _kernels = _compiled_kernels
    return _kernels
