"""2-D convolution (Conv2d) and zero padding (ZeroPad2d), NCHW, forward and backward side by side.

On the CPU, forward and backward split the batch over the cores (``gradlearn.parallel``):
each worker thread computes its slice's output and input gradient in place, using the
paths below with its own scratch, and returns the slice's weight and bias gradients,
which are summed in slice order.

How the convolution is computed (no Python loop over single samples or output pixels; the
pixel-major path loops over cache-sized chunks of samples):

- register-blocked, compiled (one group, NumPy arrays of one dtype, when the C kernels are
  built: ``gradlearn.compiled``, ``_blocked``): the pixel-major path below, but one kernel
  call per slice of the batch instead of im2col and a GEMM per chunk; the kernels read the
  channels-last input and zero-pad one sample at a time themselves. They compute the
  forward (and the stride-1 input gradient, the same correlation over the padded dE/dy
  with the flipped kernel) and the weight gradient, for any channel counts, stride,
  dilation and padding. Channel counts that are not a multiple of the vector width (16
  floats, 8 doubles) get zero columns, dropped after; below one vector of input channels
  (LeNet-5's 6 -> 16) the input gradient takes the wide-rows kernel of the direct path,
  which computes no padding channels; other strides scatter each tap's products back
  (``conv_cl_input_grad``), 2x faster than col2im for ResNet's stride-2 layers. ResNet-20,
  batch 64, ``gradlearn profile`` (2-core CPU): a 16 -> 16 layer 19 -> 8.5 ms a step, the
  whole step 318 -> 212 ms; LeNet-5's second layer 3.6 -> 1.1 ms forward.

- direct, compiled (one input channel, one group, stride 1, dilation 1, when the C
  kernels are built: ``gradlearn.compiled``): each sample's padded image is one flat row,
  and tiles of outputs x positions sum all the kernel taps in registers; the backward
  reads the same taps the other way. LeNet-5's first layer, batch 128, both cores: forward
  0.7-0.9 against 4.6 ms, backward 0.7-1.5 against 4.5 ms by im2col. With 3 or more input
  channels, or 16 outputs, the blocked kernels are faster, so only one-channel inputs with
  fewer than 16 outputs take it.
- im2col, channel-major (the other cases): the input is copied once, transposed to (C, N, Hp, Wp) and
  zero-padded, into a scratch array; viewed through ``as_strided`` its windows
  (C, kh, kw, N, Ho, Wo) are copied into the scratch ``cols``, i.e. a (K, N*P)
  matrix (K = C*kh*kw, P = Ho*Wo). The convolution is then ONE 2-D matrix product over the
  whole batch, W (O, K) @ cols (K, N*P) (one per group), and the (O, N, P) result is
  transposed into the NCHW output (a new array) with the bias added in the same pass.
  One large GEMM is much faster on OpenBLAS than N small per-sample ones.
- pixel-major path (one group; without the compiled kernels only for in_channels >= 16 and
  kh*kw*C >= O: all of ResNet-20's and W3's convolutions but the first): the batch is processed in chunks of samples, each
  copied into a small zero-padded pixel-major (m, Hp, Wp, C) scratch, whose
  columns (m*P, kh*kw*C) (rows (n, a, b), columns (i, j, c); ~2.4 MB, see
  ``_CHUNK_FLOATS``) stay in cache: per chunk one copy of the windows, one GEMM
  columns @ W as (kh*kw*C, O) -> (m*P, O), and a transpose (+ bias) into the NCHW output.
  The weight gradient sums columns^T @ dE/dy (m*P, O) over the same chunks, and the stride-1
  "transposed" input gradient is the same chunked correlation of the padded pixel-major
  dE/dy with the flipped kernel as a (kh*kw*O, C) matrix. Measured (2-core CPU, batch 64,
  3x3 pad 1, forward / backward ms): 16->16 at 32x32 19.6/35.6 -> 16.3/32.5, 32->32 at
  16x16 12.9/24.2 -> 8.2/17.3, 64->64 at 8x8 10.0/19.2 -> 5.7/11.6: the chunk's columns
  are written and read in cache instead of memory, and (m*P, K) @ (K, O) runs at
  ~70-100 GFLOP/s where the whole-batch (O, K) @ (K, N*P) ran at ~35-55. Below 16 input
  channels (RGB inputs) the channel-major path below is faster.
- layout: the pixel-major path writes its output channels-last, a (N, O, Ho, Wo) array
  whose memory is (N, Ho, Wo, O) (``empty_channels_last``): its GEMM's (m*P, O) product
  is then the output itself, with no transpose. ReLU, MaxPool2d, BatchNorm2d and the
  ResNet shortcut keep the layout they are given, so the next convolution reads its input
  without a transposing copy, and every input gradient has its input's layout (the
  weight gradient reads a channels-last dE/dy in place). Values and shapes are what they
  would be in C order (tested for every registry case); ``np.ascontiguousarray`` gives C
  order. Measured (training samples/s, 5 alternating runs in separate processes,
  medians): the 4-conv CNN 292 -> 312, ResNet-20 111 -> 117.
- memory: scratch arrays are shared by all the convolutions of a thread (one buffer per
  purpose, sized for the largest layer) and reused across calls; so the forward keeps only
  a reference to its input and the backward recomputes the columns (one copy, cheap next
  to the GEMMs) instead of every layer holding its own K x N*P matrix (ResNet-20, batch
  64: 352 MB -> 206 MB of training memory). The exception: in training mode the
  channel-major path keeps its columns in a per-layer array when they take at most
  ``_KEEP_COLUMNS_BYTES`` (LeNet-5, batch 128: 10 + 8 MB), and its weight gradient reads
  them instead of rebuilding them (LeNet-5 trained 3592 -> 3782 samples/s at batch 128).
- weight gradient: one GEMM, (dE/dW)^T = cols (K, N*P) @ dE/dy^T (N*P, O) when K >= O,
  else dE/dW = dE/dy (O, N*P) @ cols^T: OpenBLAS (SkylakeX sgemm, both operands with the
  huge inner dimension last) is ~50x slower when the product has fewer rows than columns
  (measured 1.7 s against 34 ms for 32 x 288 from 65536, and 1.7 s against 20 ms for 27 x 32).
- input gradient, two exact ways (chosen per shape, see ``Conv2d.input_grad_method``):
  ``"col2im"`` multiplies by the weights, W^T (K, O) @ dE/dy (O, N*P) (one GEMM), and
  adds the kh*kw column slices back into the channel-major padded input gradient (a loop
  over the kernel offsets only, each a strided slice of the whole batch); ``"transposed"``
  (stride 1 only) pads the output gradient and convolves it with the flipped, transposed
  kernel (the same im2col + one GEMM as the forward). Measured on a 2-core CPU (float32,
  batch 64): the transposed form wins when out_channels <= in_channels (32->32 3x3 on
  32x32: 270 ms against 335 ms under load), col2im wins otherwise (LeNet's 1->6 5x5 on
  28x28, batch 128: 48 ms against 67 ms), so "auto" picks by that rule.
"""

from __future__ import annotations

import math
import threading

import numpy as np

# gpu_kernels.kernel is called so where a parameter named ``kernel`` (a kernel size) hides the import below
from .. import compiled, gpu_kernels, init, parallel
from ..backend import array_module, channels_last, empty_channels_last, empty_like_layout, resolve_dtype, resolve_generator
from ..gpu_kernels import channel_sum, kernel
from ..parameter import Parameter
from .base import Module


# helpers shared with pooling ----------------------------------------------------------------


def _pair(value, what: str, owner: str):
    """An int or a pair of ints as a tuple of two Python ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{owner}: {what} must be an int or a pair of ints, got {value!r}")


def _positive_pair(value, what: str, owner: str):
    pair = _pair(value, what, owner)
    if min(pair) <= 0:
        raise ValueError(f"{owner}: {what} must be positive, got {value!r}")
    return pair


def _size_str(pair):
    return f"{pair[0]}x{pair[1]}"


def _option_str(pair):
    """``2`` for a square pair, ``(2, 1)`` otherwise (PyTorch's repr style)."""
    return str(pair[0]) if pair[0] == pair[1] else str(tuple(pair))


def _windows(xp_array, kernel, out_size, stride, dilation, channels_first=True):
    """A read-only strided view of the windows of a padded (N, C, Hp, Wp) array:
    shape (N, C, kh, kw, Ho, Wo), element [n, c, i, j, a, b] =
    padded[n, c, a*sh + i*dh, b*sw + j*dw]. Nothing is copied."""
    n, c = xp_array.shape[:2]
    s_n, s_c, s_h, s_w = xp_array.strides
    return _strided_view(
        xp_array,
        shape=(n, c, kernel[0], kernel[1], out_size[0], out_size[1]),
        strides=(s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1]),
    )


def _strided_view(a, shape, strides):
    """``a``'s memory seen with ``shape`` and byte ``strides``: read-only on NumPy (CuPy's
    arrays have no such flag)."""
    xp = array_module(a)
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


def _offset_slices(kernel, out_size, stride, dilation):
    """For each kernel offset (i, j), row-major, the (row, column) slices of the padded
    input that the offset touches across all output pixels."""
    slices = []
    for i in range(kernel[0]):
        rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (out_size[0] - 1) + 1, stride[0])
        for j in range(kernel[1]):
            cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (out_size[1] - 1) + 1, stride[1])
            slices.append((rows, cols))
    return slices


class _Scratch:
    """Internal work arrays reused between calls when shape and dtype repeat (im2col
    columns, padded copies). Never handed to a caller."""

    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, dtype, xp, fill=None):
        """An array of ``shape``; ``fill`` is applied only when the array is new (so a
        padded buffer keeps its zero/-inf border between calls)."""
        arr = self.arrays.get(name)
        if arr is None or arr.shape != tuple(shape) or arr.dtype != dtype or array_module(arr) is not xp:
            arr = xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype=dtype)
            self.arrays[name] = arr
        return arr

    def __deepcopy__(self, memo):  # copies of a module start with fresh scratch
        return _Scratch()


class _SharedScratch(threading.local):
    """Work arrays shared by every Conv2d of a thread: a layer's im2col columns and padded
    copies live only during one forward or backward call, so one buffer per purpose serves
    the whole network (ResNet-20's 19 convolutions share one column buffer, sized for the
    largest). Never handed to a caller; the forward's columns are recomputed in backward."""

    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, dtype, xp, fill=None):
        """An array of ``shape``. Without ``fill``: a view of the front of ONE flat buffer
        per name, grown to the largest size asked for (contents undefined). With ``fill``
        (padded copies, whose border must keep it): one array per exact shape, filled once."""
        if fill is not None:
            key = (name, tuple(shape), np.dtype(dtype).str, xp.__name__)
            arr = self.arrays.get(key)
            if arr is None:
                arr = self.arrays[key] = xp.full(shape, fill, dtype=dtype)
            return arr
        key = (name, np.dtype(dtype).str, xp.__name__)
        size = math.prod(shape)
        flat = self.arrays.get(key)
        if flat is None or flat.size < size:
            flat = self.arrays[key] = xp.empty(size, dtype=dtype)
        return flat[:size].reshape(shape)


_SHARED = _SharedScratch()


def _pad_into(scratch, name, x, pads, fill=0.0):
    """``x`` (N, C, H, W) padded by (top, bottom, left, right) with ``fill``, in a reused
    scratch array whose border keeps ``fill``; ``x`` itself when there is no padding. The
    scratch is kept per padding as well as per shape: two layers whose padded copies have one
    shape but different paddings (7x7 padded (0, 1) and 6x6 padded (1, 1)) would otherwise
    write each other's border."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    xp = array_module(x)
    padded = scratch.get(f"{name}{pads}", (n, c, h + top + bottom, w + left + right), x.dtype, xp, fill=fill)
    padded[:, :, top : top + h, left : left + w] = x
    return padded


def _matmul(a, b, out):
    """out = a @ b for stacks (G, M, K) @ (G, K, P): a plain 2-D product when G == 1."""
    xp = array_module(out)
    if out.shape[0] == 1:
        return xp.matmul(a[0], b[0], out=out[0])
    return xp.matmul(a, b, out=out)


# pixel-major (NHWC) path, chunked over the batch ---------------------------------------------

_KEEP_COLUMNS_BYTES = 32 << 20  # the channel-major forward keeps its columns for the backward up to this size
_CHUNK_FLOATS = 600_000  # columns per chunk, ~2.4 MB of float32: they stay in cache for the GEMM


def _blocked(xp, *dtypes):
    """Whether the pixel-major path computes its products with the compiled register-blocked
    kernels (``gradlearn.compiled``: ``conv_cl_forward``, ``conv_cl_weight_grad``) instead of
    im2col and a GEMM: NumPy arrays, all of one dtype, float32 or float64, and the kernels built."""
    return xp is np and len(set(dtypes)) == 1 and compiled.available() and np.dtype(dtypes[0]) in compiled.LANES


def _lanes_padded(count, dtype):
    """``count`` rounded up to a multiple of the kernels' vector width (with AVX-512 16 floats, 8 doubles)."""
    lanes = compiled.LANES[np.dtype(dtype)]
    return -(-count // lanes) * lanes


def _pm_chunk(n, pixels, k, xp=np):
    """Samples per chunk so that a chunk's (samples*pixels, k) columns hold ~_CHUNK_FLOATS;
    on the GPU the whole batch (no cache to stay in, and every chunk costs kernel launches)."""
    if xp is not np:
        return n
    return max(1, min(n, _CHUNK_FLOATS // (pixels * k)))


def _pm_pad(name, x, n0, m, nb, pads):
    """Samples n0:n0+m of x (N, C, H, W), transposed to pixel-major (m, Hp, Wp, C) and
    zero-padded, in a shared scratch of nb samples (small enough to stay in cache) whose
    border stays zero (one per padding and shape, as ``_pad_into``'s)."""
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    shape = (nb, h + top + bottom, w + left + right, c)
    padded = _SHARED.get(f"{name}{pads}", shape, x.dtype, array_module(x), fill=0.0)[:m]
    padded[:, top : top + h, left : left + w, :] = x[n0 : n0 + m].transpose(0, 2, 3, 1)
    return padded


def _pm_columns(padded, kernel, out_size, stride, dilation):
    """The pixel-major im2col of ``padded`` (m, Hp, Wp, C), copied into shared scratch:
    (m, Ho, Wo, kh, kw, C) = (m*P, kh*kw*C)."""
    xp = array_module(padded)
    s_n, s_h, s_w, s_c = padded.strides
    m = padded.shape[0]
    shape = (m, out_size[0], out_size[1], kernel[0], kernel[1], padded.shape[3])
    windows = _strided_view(
        padded, shape, strides=(s_n, s_h * stride[0], s_w * stride[1], s_h * dilation[0], s_w * dilation[1], s_c)
    )
    cols = _SHARED.get("cols", shape, padded.dtype, xp)
    xp.copyto(cols, windows)
    return cols.reshape(m * out_size[0] * out_size[1], -1)


def _pm_chunk_columns(name, x, n0, m, nb, pads, kernel, out_size, stride, dilation):
    """The pixel-major columns (m*P, kh*kw*C) of samples n0:n0+m of x (N, C, H, W) zero-padded
    by ``pads``: a padded copy, then its im2col (above); on the GPU (one chunk: the whole
    batch) one kernel reads x in place (gpu_kernels 'im2col'), two CuPy copies fewer."""
    xp = array_module(x)
    if xp is np or (n0, m) != (0, x.shape[0]):
        return _pm_columns(_pm_pad(name, x, n0, m, nb, pads), kernel, out_size, stride, dilation)
    n, c, h, w = x.shape
    cols = _SHARED.get("cols", (n * out_size[0] * out_size[1], kernel[0] * kernel[1] * c), x.dtype, xp)
    top, _, left, _ = pads
    return gpu_kernels.kernel("im2col")(x, c, h, w, *out_size, *kernel, *stride, *dilation, top, left, cols)


def _pm_conv(x, pads, wmat, out, kernel, stride, dilation, bias=None, name="pm_padded", threads=1):
    """out (N, Q, Ho, Wo) (written in place) = the correlation of ``x`` (N, C, H, W)
    zero-padded by ``pads`` with ``wmat`` (kh*kw*C, Q) (rows (i, j, c)), plus ``bias`` (Q,):
    per chunk of samples, a pixel-major padded copy, its columns (m*P, kh*kw*C) @ wmat ->
    (m*P, Q). When ``out`` is channels-last that product is written straight into it;
    else it is transposed into out (NCHW). ``threads``: the compiled kernel's team (below)."""
    xp = array_module(out)
    if _blocked(xp, x.dtype, wmat.dtype, out.dtype):
        return _blocked_conv(x, pads, wmat, out, kernel, stride, dilation, bias, name, threads)
    n, q, ho, wo = out.shape
    pixels = ho * wo
    nb = _pm_chunk(n, pixels, wmat.shape[0], xp)
    direct = channels_last(out)
    prod = None if direct else _SHARED.get("pm_prod", (nb * pixels, q), out.dtype, xp)
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        cols = _pm_chunk_columns(name, x, n0, m, nb, pads, kernel, (ho, wo), stride, dilation)
        if direct:
            part = out[n0 : n0 + m].transpose(0, 2, 3, 1).reshape(m * pixels, q)  # a view
            xp.matmul(cols, wmat, out=part)
            if bias is not None:
                part += bias
            continue
        part = prod[: m * pixels]
        xp.matmul(cols, wmat, out=part)
        src = part.reshape(m, pixels, q).transpose(0, 2, 1)
        dst = out[n0 : n0 + m].reshape(m, q, pixels)
        if bias is None:
            xp.copyto(dst, src)
        else:
            xp.add(src, bias.reshape(1, q, 1), out=dst)
    return out


_FEW_CHANNELS = 8  # up to this many channels, _nhwc copies channel by channel


def _nhwc(x, name):
    """x (N, C, H, W) as a C-contiguous channels-last (N, H, W, C) array: a view when x is
    channels-last, else a copy in shared scratch. With few channels the copy goes one
    channel at a time (contiguous reads, writes C apart): NumPy's one transposing copy
    walks the source C-order-strided instead, 2-3.7x slower there (1 core: LeNet-5's
    128 x 6 x 14 x 14 0.246 -> 0.111 ms, 64 x 3 x 32 x 32 0.546 -> 0.149 ms), but faster
    from about 10 channels (64 x 16 x 16 x 16: 0.205 against 0.588 ms)."""
    view = x.transpose(0, 2, 3, 1)
    if view.flags.c_contiguous:
        return view
    copy = _SHARED.get(name, view.shape, x.dtype, np)
    if x.shape[1] <= _FEW_CHANNELS:
        for channel in range(x.shape[1]):
            copy[..., channel] = x[:, channel]
    else:
        np.copyto(copy, view)
    return copy


def _blocked_conv(x, pads, wmat, out, kernel, stride, dilation, bias, name, threads=1):
    """``_pm_conv`` by the compiled kernel (``_blocked``): one call over the slice, which
    pads each sample itself (in cache, no padded copy of the batch); Q not a multiple of the
    vector width gets zero columns, dropped after."""
    n, q, ho, wo = out.shape
    width = _lanes_padded(q, out.dtype)
    if width != q:
        wide = np.zeros((wmat.shape[0], width), out.dtype)
        wide[:, :q] = wmat
        wmat = wide
        if bias is not None:
            bias = np.concatenate([bias, np.zeros(width - q, out.dtype)])
    direct = channels_last(out) and width == q
    part = out.transpose(0, 2, 3, 1).reshape(n * ho * wo, q) if direct else _SHARED.get("pm_prod", (n * ho * wo, width), out.dtype, np)
    compiled.kernel("conv_cl_forward")(_nhwc(x, name), pads, wmat, bias, part, kernel, stride, dilation, threads=threads)
    if not direct:
        np.copyto(out.transpose(0, 2, 3, 1), part[:, :q].reshape(n, ho, wo, q))
    return out


def _blocked_weight_grad(x, pads, grad_output, kernel, stride, dilation, threads=1):
    """``_pm_weight_grad`` by the compiled kernel (``_blocked``), one call over the slice;
    O not a multiple of the vector width gets zero columns in a copy of dE/dy."""
    n, o, ho, wo = grad_output.shape
    dtype = grad_output.dtype
    width = _lanes_padded(o, dtype)
    acc = _SHARED.get("pm_dw", (kernel[0] * kernel[1] * x.shape[1], width), dtype, np)
    acc.fill(0)
    if channels_last(grad_output) and width == o:
        dy = grad_output.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)  # a view
    else:
        dy = _SHARED.get("pm_dy", (n * ho * wo, width), dtype, np, fill=0.0)  # columns past o stay zero
        np.copyto(dy[:, :o].reshape(n, ho, wo, o), grad_output.transpose(0, 2, 3, 1))
    compiled.kernel("conv_cl_weight_grad")(_nhwc(x, "pm_nhwc"), pads, dy, acc, kernel, stride, dilation, threads=threads)
    return acc[:, :o]


def _pm_weight_grad(x, pads, grad_output, kernel, stride, dilation, threads=1):
    """(dE/dW) as (kh*kw*C, O) = sum over chunks of columns^T (kh*kw*C, m*P) @ dE/dy
    pixel-major (m*P, O) (read in place when dE/dy is channels-last); a shared scratch array."""
    xp = array_module(grad_output)
    if _blocked(xp, x.dtype, grad_output.dtype):
        return _blocked_weight_grad(x, pads, grad_output, kernel, stride, dilation, threads)
    n, o, ho, wo = grad_output.shape
    pixels = ho * wo
    k = kernel[0] * kernel[1] * x.shape[1]
    nb = _pm_chunk(n, pixels, k, xp)
    direct = channels_last(grad_output)
    dyt = None if direct else _SHARED.get("pm_dy", (nb * pixels, o), grad_output.dtype, xp)
    acc = _SHARED.get("pm_dw", (k, o), grad_output.dtype, xp)
    part = _SHARED.get("pm_dw_part", (k, o), grad_output.dtype, xp)
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        cols = _pm_chunk_columns("pm_padded", x, n0, m, nb, pads, kernel, (ho, wo), stride, dilation)
        if direct:
            dy = grad_output[n0 : n0 + m].transpose(0, 2, 3, 1).reshape(m * pixels, o)  # a view
        else:
            dy = dyt[: m * pixels]
            xp.copyto(dy.reshape(m, pixels, o), grad_output[n0 : n0 + m].reshape(m, o, pixels).transpose(0, 2, 1))
        if n0 == 0:
            xp.matmul(cols.T, dy, out=acc)
        else:
            xp.matmul(cols.T, dy, out=part)
            acc += part
    return acc


def _check_4d(module, x, method="forward"):
    if getattr(x, "ndim", None) != 4:
        raise module.error(
            method, f"expected a 4-D input (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}"
        )


# Conv2d --------------------------------------------------------------------------------------


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in every deep-learning library), NCHW.

    Forward, for output pixel (a, b) of sample n and output channel o in group g:

        y[n, o, a, b] = b[o] + sum_{c in g, i, j} W[o, c, i, j] * xpad[n, c, a*sh + i*dh, b*sw + j*dw]

    with xpad the input zero-padded by ``padding``. Shapes: x (N, in_channels, H, W) ->
    y (N, out_channels, Ho, Wo), Ho = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1;
    ``weight`` (out_channels, in_channels / groups, kh, kw), ``bias`` (out_channels,).

    Backward (the Jacobians are the same sums read the other way):

        dE/dW[o, c, i, j] += sum_{n, a, b} dE/dy[n, o, a, b] * xpad[n, c, a*sh + i*dh, b*sw + j*dw]
        dE/db[o]          += sum_{n, a, b} dE/dy[n, o, a, b]
        dE/dxpad[n, c, a*sh + i*dh, b*sw + j*dw] += sum_{o in g} W[o, c, i, j] * dE/dy[n, o, a, b]

    and dE/dx is dE/dxpad without the border.

    Arguments (PyTorch's): ``kernel_size``, ``stride``, ``dilation``: an int or a pair,
    positive; ``padding``: an int or a pair (non-negative), ``'valid'`` (0) or ``'same'``
    (stride 1 only; total padding dilation*(kernel-1) per axis, the odd extra on the
    bottom/right, as PyTorch); ``groups`` divides both channel counts (groups ==
    in_channels is a depthwise convolution); ``bias``; ``dtype`` (default float32);
    ``generator`` for the initialisation.

    Initialisation (PyTorch's default): kaiming_uniform with a = sqrt(5), i.e. W and b ~
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels / groups * kh * kw.

    ``input_grad_method``: "auto" (default), "col2im" or "transposed" (see the module
    docstring); both are exact, the choice is speed only.
    """

    input_grad_method = "auto"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        *,
        dtype=None,
        generator=None,
    ):
        super().__init__()
        if int(in_channels) <= 0 or int(out_channels) <= 0:
            raise ValueError(
                f"Conv2d: in_channels and out_channels must be positive, got {in_channels}, {out_channels}"
            )
        if int(groups) <= 0:
            raise ValueError(f"Conv2d: groups must be positive, got {groups}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.groups = int(groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"Conv2d: in_channels ({self.in_channels}) and out_channels ({self.out_channels}) "
                f"must both be divisible by groups ({self.groups})"
            )
        self.kernel_size = _positive_pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _positive_pair(stride, "stride", "Conv2d")
        self.dilation = _positive_pair(dilation, "dilation", "Conv2d")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1 (as in PyTorch), got stride {self.stride}")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding", "Conv2d")
            if min(self.padding) < 0:
                raise ValueError(f"Conv2d: padding must be non-negative, got {padding!r}")
        self._pads = self._compute_pads()

        dtype = resolve_dtype(dtype)
        rng = resolve_generator(generator)
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels // self.groups, kh, kw), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=rng)
        if bias:
            fan_in = self.in_channels // self.groups * kh * kw
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(np.empty(self.out_channels, dtype=dtype))
            init.uniform_(self.bias, -bound, bound, generator=rng)
        else:
            self.bias = None
        self._cache = None
        self._x = None
        self._kept = _Scratch()  # the forward's columns, kept for the backward (channel-major path)
        self._kept_columns = None

    def _compute_pads(self):
        """(top, bottom, left, right)."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            pads = []
            for k, d in zip(self.kernel_size, self.dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    # forward -----------------------------------------------------------------------------
    def forward(self, x):
        weight = self.weight.data
        self.check_float(x, dtype=weight.dtype)
        _check_4d(self, x)
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise self.error(
                "forward", f"expected {self.in_channels} input channels, got {c} (input shape {tuple(x.shape)})"
            )
        top, bottom, left, right = self._pads
        (kh, kw), (dh, dw), (sh, sw) = self.kernel_size, self.dilation, self.stride
        hp, wp = h + top + bottom, w + left + right
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        if hp < span_h or wp < span_w:
            dilated = "dilated " if (dh, dw) != (1, 1) else ""
            raise self.error(
                "forward",
                f"input of {h}x{w} (padded to {hp}x{wp}) is smaller than the {dilated}kernel "
                f"{span_h}x{span_w} (input shape {tuple(x.shape)})",
            )
        ho, wo = (hp - span_h) // sh + 1, (wp - span_w) // sw + 1
        xp = array_module(x)
        o = self.out_channels
        self._cache = (x.shape, (n, o, ho, wo))
        self._x = x  # the caller's array, kept (not copied) for the weight gradient
        self._kept_columns = None
        if self._direct(xp):
            return self._forward_direct(x)
        pixel_major = self._pixel_major(xp, x.dtype, weight.dtype)  # writes its output channels-last (module docstring)
        y = empty_channels_last((n, o, ho, wo), x.dtype, xp) if pixel_major else xp.empty((n, o, ho, wo), dtype=x.dtype)
        bias = None if self.bias is None else self.bias.data
        if pixel_major:
            wmat = xp.ascontiguousarray(weight.transpose(2, 3, 1, 0)).reshape(kh * kw * c, o)
            if self._on_team(x, x.dtype, weight.dtype):  # one kernel call, its samples shared by the kernels' team
                threads = parallel.team_threads(n * c * kh * kw * ho * wo)
                return _pm_conv(x, self._pads, wmat, y, self.kernel_size, self.stride, self.dilation, bias, threads=threads)

            def forward_slice(start, stop):
                _pm_conv(x[start:stop], self._pads, wmat, y[start:stop], self.kernel_size, self.stride, self.dilation, bias)
        else:
            kept = self._columns_to_keep(x, (ho, wo))

            def forward_slice(start, stop):
                self._forward_channel_major(x[start:stop], y[start:stop], None if kept is None else kept[:, :, :, start:stop])

            self._kept_columns = kept
        parallel.over_batch(n, n * c * kh * kw * ho * wo, forward_slice, xp)
        return y

    def _on_team(self, x, *dtypes, input_grad=None):
        """Whether this call runs whole, each compiled kernel's chunks of samples shared by the
        kernels' team (``parallel.team_threads``), instead of in slices on the Python workers:
        the pixel-major path with the blocked kernels on a channels-last x (another layout
        would be copied whole on one thread first: LeNet-5's 6 -> 16 took 1.07x the step),
        and for the backward (``input_grad``: (needed, use_transposed)) a dE/dx they
        compute too (not the wide-rows kernel of LeNet-5's 6 -> 16, which is
        single-threaded, nor col2im). ResNet-20, alternating runs: 0.93x the step's time."""
        xp = array_module(x)
        if not (self._pixel_major(xp, *dtypes) and _blocked(xp, *dtypes) and channels_last(x)):
            return False
        if input_grad is None or not input_grad[0]:
            return True
        use_transposed = input_grad[1]
        if not self._pm_input_grad(use_transposed, xp, *dtypes):
            return False
        narrow = self.in_channels < compiled.LANES[np.dtype(dtypes[0])] and self.dilation == (1, 1)
        return not (use_transposed and narrow)

    def _direct(self, xp):
        """Whether this call takes the compiled direct path (``gradlearn.compiled``, "wide
        rows"): NumPy arrays, one input channel, fewer than 16 outputs, one group, stride 1,
        dilation 1, and the compiled kernels available. With more input channels, or 16
        outputs (a whole vector of the blocked kernels), the blocked kernels are faster (one
        core, batch 64, 3x3 at 32x32: 1 -> 16 0.50 against 0.69 ms, 3 -> 32 1.29 against
        2.37 ms); with fewer outputs they would compute mostly zero channels."""
        return (
            xp is np
            and self.in_channels == 1
            and self.out_channels < 16
            and self.groups == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and compiled.available()
        )

    def _direct_args(self, x):
        top, bottom, left, right = self._pads
        return top, left, x.shape[2] + top + bottom, x.shape[3] + left + right

    def _forward_direct(self, x):
        n, _, ho, wo = self._cache[1]
        y = np.empty((n, self.out_channels, ho, wo), dtype=x.dtype)
        weight = self.weight.data
        bias = self.bias.data if self.bias is not None else np.zeros(self.out_channels, dtype=x.dtype)
        conv = compiled.kernel("direct_conv_forward")
        args = self._direct_args(x)

        def forward_slice(start, stop):  # the kernel reads C order
            conv(np.ascontiguousarray(x[start:stop]), weight, bias, y[start:stop], *args)

        parallel.over_batch(n, y.size * weight[0].size, forward_slice)
        return y

    def _backward_direct(self, grad_output, grad_input):
        """The compiled backward: each slice returns its (dE/dW, dE/db)."""
        x = self._x
        weight = self.weight.data
        conv = compiled.kernel("direct_conv_backward")
        args = self._direct_args(x)
        need_input = grad_input is not None

        def backward_slice(start, stop):
            dw = np.zeros_like(weight)
            db = np.zeros(self.out_channels, dtype=weight.dtype)
            gi = grad_input[start:stop] if need_input else None
            xs, dys = np.ascontiguousarray(x[start:stop]), np.ascontiguousarray(grad_output[start:stop])
            conv(xs, dys, weight, dw, db, gi, *args, need_input)
            return dw, db

        return parallel.over_batch(len(x), 2 * grad_output.size * weight[0].size, backward_slice)

    def _forward_channel_major(self, x, y, cols=None):
        """y (N, O, Ho, Wo) (written in place) from x by the channel-major im2col and one
        GEMM per group (module docstring); the columns go into ``cols`` (C, kh, kw, N, Ho,
        Wo) when given (kept for the backward), else into shared scratch."""
        n, c = x.shape[:2]
        _, o, ho, wo = y.shape
        xp = array_module(x)
        kh, kw = self.kernel_size
        cols = self._columns(x, (ho, wo), cols)
        g = self.groups
        og, kg = o // g, c // g * kh * kw
        y_t = _SHARED.get("y_t", (g, og, n * ho * wo), x.dtype, xp)
        _matmul(self.weight.data.reshape(g, og, kg), cols.reshape(g, kg, n * ho * wo), y_t)  # (O, N*P)
        y_view = y_t.reshape(o, n, ho * wo).transpose(1, 0, 2)
        if self.bias is not None:
            xp.add(y_view, self.bias.data.reshape(1, o, 1), out=y.reshape(n, o, ho * wo))
        else:
            xp.copyto(y.reshape(n, o, ho * wo), y_view)

    def _pm_input_grad(self, use_transposed, xp=np, *dtypes):
        """Whether the input gradient takes the pixel-major path (one group): with the
        compiled kernels always, unless ``input_grad_method`` asks for col2im (the
        'transposed' form where it applies, else the kernels' scatter); with im2col and GEMMs
        the 'transposed' form only, for at least 16 output channels."""
        kh, kw = self.kernel_size
        if self.groups != 1:
            return False
        if _blocked(xp, *dtypes):
            return use_transposed or self.input_grad_method != "col2im"
        return use_transposed and self.out_channels >= 16 and kh * kw * self.out_channels >= self.in_channels

    def _columns_to_keep(self, x, out_size):
        """Where the channel-major forward writes its columns (C, kh, kw, N, Ho, Wo) to
        keep them for the weight gradient, or None (they are recomputed): kept in training
        mode when the weight needs a gradient and they take at most _KEEP_COLUMNS_BYTES.
        LeNet-5 at batch 128 keeps 10 + 8 MB, and saves rebuilding them in the backward."""
        n, c = x.shape[:2]
        (kh, kw), (ho, wo) = self.kernel_size, out_size
        shape = (c, kh, kw, n, ho, wo)
        if not (self.training and self.weight.requires_grad) or math.prod(shape) * x.dtype.itemsize > _KEEP_COLUMNS_BYTES:
            return None
        return self._kept.get("columns", shape, x.dtype, array_module(x))

    def _pixel_major(self, xp=np, *dtypes):
        """Whether forward and weight gradient take the pixel-major chunked path (module
        docstring): one group, and either the compiled blocked kernels or at least 16 input
        channels and kh*kw*C >= O (the weight gradient's GEMM orientation)."""
        kh, kw = self.kernel_size
        if self.groups != 1:
            return False
        return _blocked(xp, *dtypes) or (self.in_channels >= 16 and kh * kw * self.in_channels >= self.out_channels)

    def _columns(self, x, out_size, cols=None):
        """The im2col matrix of x, (C, kh, kw, N, Ho, Wo) = (K, N*P), in ``cols`` or else
        shared scratch: a channel-major (C, N, Hp, Wp) padded copy, then its windows copied
        once."""
        n, c = x.shape[:2]
        (kh, kw), (ho, wo) = self.kernel_size, out_size
        xp = array_module(x)
        padded = _pad_into(_SHARED, "padded", x.transpose(1, 0, 2, 3), self._pads)
        if cols is None:
            cols = _SHARED.get("cols", (c, kh, kw, n, ho, wo), x.dtype, xp)
        windows = _windows(padded, self.kernel_size, (ho, wo), self.stride, self.dilation)
        xp.copyto(cols, windows.transpose(0, 2, 3, 1, 4, 5))
        return cols

    # backward ----------------------------------------------------------------------------
    def backward(self, grad_output):
        cache = self._cache
        self.check_grad(grad_output, None if cache is None else cache[1])
        x_shape, y_shape = cache
        n, c, h, w = x_shape
        _, o, ho, wo = y_shape
        kh, kw = self.kernel_size
        xp = array_module(grad_output)
        x = self._x
        need_weight = self.weight.requires_grad
        need_bias = self.bias is not None and self.bias.requires_grad
        use_transposed = self.input_grad and self._use_transposed(h, w, ho, wo, _blocked(xp, x.dtype, grad_output.dtype, self.weight.data.dtype))
        grad_input = None  # for the network's data input: nobody needs dE/dx
        if self.input_grad:  # a new array, in x's layout (channels-last or not)
            grad_input = empty_like_layout(x, dtype=grad_output.dtype)

        kept = self._kept_columns if need_weight else None

        def backward_slice(start, stop):
            gi = None if grad_input is None else grad_input[start:stop]
            cols = None if kept is None else kept[:, :, :, start:stop]
            return self._backward_slice(x[start:stop], grad_output[start:stop], gi, need_weight, need_bias, use_transposed, cols)

        if self._direct(xp) and grad_output.dtype == x.dtype:
            parts = self._backward_direct(grad_output, grad_input)
        elif self._on_team(x, x.dtype, grad_output.dtype, self.weight.data.dtype, input_grad=(grad_input is not None, use_transposed)):
            threads = parallel.team_threads(2 * n * c * kh * kw * ho * wo)
            with parallel.one_blas_thread():  # the bias gradient's product
                parts = [self._backward_slice(x, grad_output, grad_input, need_weight, need_bias, use_transposed, None, threads)]
        else:
            parts = parallel.over_batch(n, 2 * n * c * kh * kw * ho * wo, backward_slice, xp)
        for dw, db in parts:  # the slices' parameter gradients, summed in slice order
            if need_weight and dw is not None:
                self.weight.grad += dw
            if need_bias and db is not None:
                self.bias.grad += db
        return grad_input  # None for the network's data input: nobody needs dE/dx

    def _backward_slice(self, x, grad_output, grad_input, need_weight, need_bias, use_transposed, cols=None, threads=1):
        """The backward of one slice of the batch: writes dE/dx into ``grad_input`` (when
        given) and returns (dE/dW, dE/db) of the slice (new arrays, or None). ``cols``: the
        slice's channel-major columns kept by the forward, if any."""
        n, c, h, w = x.shape
        _, o, ho, wo = grad_output.shape
        kh, kw = self.kernel_size
        g = self.groups
        og = o // g
        xp = array_module(grad_output)
        dtypes = (x.dtype, grad_output.dtype, self.weight.data.dtype)
        pixel_major = self._pixel_major(xp, *dtypes)
        pm_input_grad = self._pm_input_grad(use_transposed, xp, *dtypes)
        dy = None
        if not (pixel_major and (pm_input_grad or grad_input is None)):
            # dE/dy channel-major: (G, Og, N*P)
            dy = _SHARED.get("dy_t", (g, og, n * ho * wo), grad_output.dtype, xp)
            xp.copyto(dy.reshape(o, n, ho, wo), grad_output.transpose(1, 0, 2, 3))
        dw = db = None
        if need_weight:
            if pixel_major:
                # columns recomputed chunk by chunk: shared, not kept per layer
                dw_t = _pm_weight_grad(x, self._pads, grad_output, self.kernel_size, self.stride, self.dilation, threads)
                dw = dw_t.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)
            else:
                dw = self._weight_grad_channel_major(x, dy, (ho, wo), cols)
            if xp is np:  # copied out of the scratch, which the thread's next slice may reuse
                dw = dw.copy()
        if need_bias:
            if xp is not np:
                db = channel_sum(grad_output)
            elif dy is not None:
                db = dy.reshape(o, n * ho * wo).sum(axis=1)
            elif channels_last(grad_output):  # ones @ (N*P, O): NumPy's sum over the strided axes (0, 2, 3) took 2-3.4 ms for 64x32x32x32, this 0.4-0.5
                ones = _SHARED.get("ones", (n * ho * wo,), grad_output.dtype, xp, fill=1.0)
                db = ones @ grad_output.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)
            else:
                db = grad_output.sum(axis=(0, 2, 3))
        if grad_input is None:
            return dw, db
        if pm_input_grad:
            if use_transposed:
                self._input_grad_pixel_major(grad_output, grad_input, threads)
            else:
                self._input_grad_scatter(grad_output, grad_input, threads)
            return dw, db
        if xp is not np and not use_transposed:
            self._input_grad_col2im_gpu(dy, grad_input, (ho, wo))
            return dw, db
        if use_transposed:
            grad_t = self._input_grad_transposed(dy, x.shape, (ho, wo))
        else:
            grad_t = self._input_grad_col2im(dy, x.shape, (ho, wo))
        xp.copyto(grad_input, grad_t.transpose(1, 0, 2, 3))
        return dw, db

    def _weight_grad_channel_major(self, x, dy, out_size, cols=None):
        """dE/dW (weight-shaped, a view of scratch) from the channel-major columns of x
        (``cols``, kept by the forward, or recomputed); ``dy`` is (G, Og, N*P)."""
        ho, wo = out_size
        kh, kw = self.kernel_size
        g = self.groups
        weight = self.weight.data
        og, kg = self.out_channels // g, self.in_channels // g * kh * kw
        xp = array_module(dy)
        n = x.shape[0]
        if cols is None:
            cols = self._columns(x, (ho, wo))  # recomputed: shared, not kept per layer
        # both operands have the huge inner dimension N*P last; OpenBLAS is ~50x slower
        # on such a product when it has fewer rows than columns, so put the longer side
        # first: (dE/dW)^T = cols @ dy^T when Kg >= Og, else dE/dW = dy @ cols^T
        cols3 = cols.reshape(g, kg, n * ho * wo)
        if kg >= og:
            dw_t = _SHARED.get("dw", (g, kg, og), dy.dtype, xp)
            _matmul(cols3, dy.swapaxes(1, 2), dw_t)
            return dw_t.swapaxes(1, 2).reshape(weight.shape)
        dw = _SHARED.get("dw", (g, og, kg), dy.dtype, xp)
        _matmul(dy, cols3.swapaxes(1, 2), dw)
        return dw.reshape(weight.shape)

    def _input_grad_pixel_major(self, grad_output, grad_input, threads=1):
        """Stride 1, one group: the 'transposed' input gradient on the pixel-major chunked
        path: dE/dy (N, O, Ho, Wo) padded by dilation*(k-1) - pad, pixel-major, correlated
        with the flipped kernel as a (kh*kw*O, C) matrix, written into ``grad_input`` (NCHW)."""
        c = grad_input.shape[1]
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        o = self.out_channels
        top, bottom, left, right = self._pads
        xp = array_module(grad_output)
        if _blocked(xp, grad_output.dtype, grad_input.dtype, self.weight.data.dtype) and c < compiled.LANES[grad_output.dtype] and (dh, dw) == (1, 1):
            # fewer input channels than a vector: the blocked kernel would mostly compute the
            # zero channels that pad them (LeNet-5's 6 -> 16: 16 for 6); the wide-rows kernel
            # computes dE/dx alone, in C order (one core, batch 64: 0.82 against 2.9-5.1 ms)
            compiled.kernel("direct_conv_input_grad")(
                np.ascontiguousarray(grad_output), self.weight.data, grad_input, top, left,
                grad_input.shape[2] + top + bottom, grad_input.shape[3] + left + right,
            )
            return grad_input
        pads = (dh * (kh - 1) - top, dh * (kh - 1) - bottom, dw * (kw - 1) - left, dw * (kw - 1) - right)
        flipped = xp.ascontiguousarray(self.weight.data[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)).reshape(kh * kw * o, c)
        return _pm_conv(grad_output, pads, flipped, grad_input, self.kernel_size, (1, 1), self.dilation, name="pm_grad_padded", threads=threads)

    def _input_grad_scatter(self, grad_output, grad_input, threads=1):
        """With the compiled kernels, any stride (ResNet's stride-2 layers): dE/dxpad,
        pixel-major and zero-padded to whole vectors of channels, accumulated tap by tap by
        ``conv_cl_input_grad`` (each tap's (O, C) matrix times dE/dy, added where the tap read
        x), in chunks of samples; its interior is copied into ``grad_input`` (x's layout).
        ResNet-20's stride-2 layers (batch 64, 2-core CPU, whole backward, alternating): 16 -> 32
        13.0 -> 5.8 ms, 32 -> 64 6.3 -> 3.3 ms against col2im."""
        n, c, h, w = grad_input.shape
        _, o, ho, wo = grad_output.shape
        (kh, kw), dtype = self.kernel_size, grad_output.dtype
        top, bottom, left, right = self._pads
        hp, wp, cv = h + top + bottom, w + left + right, _lanes_padded(c, dtype)
        weight_t = np.zeros((kh, kw, o, cv), dtype)
        weight_t[..., :c] = self.weight.data.transpose(2, 3, 0, 1)
        weight_t = weight_t.reshape(kh * kw * o, cv)
        nb = _pm_chunk(n, hp * wp, cv)
        padded = _SHARED.get("pm_grad_scatter", (nb, hp, wp, cv), dtype, np)
        direct = channels_last(grad_output)
        dyt = None if direct else _SHARED.get("pm_dy", (nb * ho * wo, o), dtype, np)
        scatter = compiled.kernel("conv_cl_input_grad")
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            part = padded[:m]
            part.fill(0)
            dy = grad_output[n0 : n0 + m].transpose(0, 2, 3, 1)
            if direct:
                dy = dy.reshape(m * ho * wo, o)  # a view
            else:
                np.copyto(dyt[: m * ho * wo].reshape(m, ho, wo, o), dy)
                dy = dyt[: m * ho * wo]
            scatter(dy, weight_t, part, self.kernel_size, self.stride, self.dilation, threads=threads)
            np.copyto(grad_input[n0 : n0 + m].transpose(0, 2, 3, 1), part[:, top : top + h, left : left + w, :c])
        return grad_input

    def _use_transposed(self, h, w, ho, wo, blocked=False):
        method = self.input_grad_method
        if method not in ("auto", "col2im", "transposed"):
            raise self.error("backward", f"input_grad_method must be 'auto', 'col2im' or 'transposed', got {method!r}")
        top, bottom, left, right = self._pads
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        possible = (
            self.stride == (1, 1)
            and max(top, bottom) <= dh * (kh - 1)
            and max(left, right) <= dw * (kw - 1)
        )
        if method == "transposed":
            if not possible:
                raise self.error("backward", "input_grad_method='transposed' needs stride 1 and padding <= dilation*(kernel-1)")
            return True
        if method == "col2im":
            return False
        return possible and (self.groups == 1 and blocked or self.out_channels <= self.in_channels)

    def _column_grads(self, dy):
        """The column gradients W^T dE/dy, (C*kh*kw, N*P) per group as (G, Kg, N*P) in
        shared scratch (the forward's columns are dead by now); ``dy`` is (G, Og, N*P)."""
        g = self.groups
        og, kg = self.out_channels // g, self.in_channels // g * self.kernel_size[0] * self.kernel_size[1]
        grad_cols = _SHARED.get("cols", (g, kg, dy.shape[2]), dy.dtype, array_module(dy))
        _matmul(self.weight.data.reshape(g, og, kg).swapaxes(1, 2), dy, grad_cols)
        return grad_cols

    def _input_grad_col2im(self, dy, x_shape, out_size):
        """dE/dxpad = sum over kernel offsets of the column gradients W^T dE/dy, placed back.
        ``dy`` is (G, Og, N*P); returns dE/dx channel-major (C, N, H, W) (a scratch view)."""
        n, c, h, w = x_shape
        kh, kw = self.kernel_size
        xp = array_module(dy)
        top, bottom, left, right = self._pads
        grad_cols = self._column_grads(dy).reshape(c, kh, kw, n, out_size[0], out_size[1])
        hp, wp = h + top + bottom, w + left + right
        grad_padded = _SHARED.get("grad_padded", (c, n, hp, wp), dy.dtype, xp)
        grad_padded.fill(0)
        for k, (rows, cols) in enumerate(_offset_slices(self.kernel_size, out_size, self.stride, self.dilation)):
            grad_padded[:, :, rows, cols] += grad_cols[:, k // kw, k % kw]
        return grad_padded[:, :, top : top + h, left : left + w]

    def _input_grad_col2im_gpu(self, dy, grad_input, out_size):
        """The GPU's col2im: the column gradients W^T dE/dy as above, then one kernel in which
        each element of dE/dx gathers the column entries that read it, written straight into
        ``grad_input`` (a 5x5 kernel's 25 slice additions cost 25 launches)."""
        n, c, h, w = grad_input.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, _, left, _ = self._pads
        grad_cols = self._column_grads(dy)
        kernel("col2im")(grad_cols, n, c, h, w, out_size[0], out_size[1], kh, kw, sh, sw, dh, dw, top, left, grad_input)

    def _input_grad_transposed(self, dy, x_shape, out_size):
        """Stride 1: dE/dx = dE/dy padded by dilation*(k-1) - pad, correlated with the
        flipped kernel whose in/out channels are swapped (a 'full' convolution).
        ``dy`` is (G, Og, N*P); returns dE/dx channel-major (C, N, H, W)."""
        n, c, h, w = x_shape
        (kh, kw), (dh, dw), g = self.kernel_size, self.dilation, self.groups
        o = self.out_channels
        og, cg = o // g, c // g
        ho, wo = out_size
        top, bottom, left, right = self._pads
        xp = array_module(dy)
        pads = (dh * (kh - 1) - top, dh * (kh - 1) - bottom, dw * (kw - 1) - left, dw * (kw - 1) - right)
        padded = _pad_into(_SHARED, "grad_out_padded", dy.reshape(o, n, ho, wo), pads)
        cols = _SHARED.get("cols", (o, kh, kw, n, h, w), dy.dtype, xp)  # the forward columns are dead by now
        xp.copyto(cols, _windows(padded, self.kernel_size, (h, w), (1, 1), self.dilation).transpose(0, 2, 3, 1, 4, 5))
        flipped = self.weight.data.reshape(g, og, cg, kh, kw)[:, :, :, ::-1, ::-1]
        flipped = xp.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4)).reshape(g, cg, og * kh * kw)
        grad_t = _SHARED.get("grad_t", (g, cg, n * h * w), dy.dtype, xp)
        _matmul(flipped, cols.reshape(g, og * kh * kw, n * h * w), grad_t)  # (C, N*H*W)
        return grad_t.reshape(c, n, h, w)

    def extra_repr(self):
        parts = [f"{self.in_channels} -> {self.out_channels}, {_size_str(self.kernel_size)}"]
        if self.stride != (1, 1):
            parts.append(f"stride={_option_str(self.stride)}")
        if isinstance(self.padding, str):
            parts.append(f"padding={self.padding!r}")
        elif self.padding != (0, 0):
            parts.append(f"padding={_option_str(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={_option_str(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        return ", ".join(parts)


# ZeroPad2d -----------------------------------------------------------------------------------


class ZeroPad2d(Module):
    """Pad the last two dimensions with zeros: (..., H, W) -> (..., H + top + bottom, W + left + right).

    ``padding``: an int (all four sides) or a 4-tuple (left, right, top, bottom), as
    PyTorch. Negative amounts crop. Backward: dE/dx is the slice of dE/dy that covers the
    input (zero where the input was cropped away).
    """

    def __init__(self, padding):
        super().__init__()
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            padding = (int(padding),) * 4
        elif (
            isinstance(padding, (tuple, list))
            and len(padding) == 4
            and all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding)
        ):
            padding = tuple(int(p) for p in padding)
        else:
            raise TypeError(f"ZeroPad2d: padding must be an int or a 4-tuple (left, right, top, bottom), got {padding!r}")
        self.padding = padding
        self._shapes = None

    def _regions(self, h, w):
        """(slices into the input, slices into the output) of the region they share."""
        left, right, top, bottom = self.padding
        src = (slice(max(-top, 0), h - max(-bottom, 0)), slice(max(-left, 0), w - max(-right, 0)))
        dst = (slice(max(top, 0), max(top, 0) + src[0].stop - src[0].start),
               slice(max(left, 0), max(left, 0) + src[1].stop - src[1].start))
        return src, dst

    def forward(self, x):
        self.check_float(x)
        if x.ndim < 2:
            raise self.error("forward", f"expected an input with at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}")
        left, right, top, bottom = self.padding
        h, w = x.shape[-2:]
        ho, wo = h + top + bottom, w + left + right
        if ho <= 0 or wo <= 0:
            raise self.error("forward", f"padding {self.padding} leaves an empty output {ho}x{wo} (input shape {tuple(x.shape)})")
        xp = array_module(x)
        y = xp.zeros(x.shape[:-2] + (ho, wo), dtype=x.dtype)
        src, dst = self._regions(h, w)
        y[..., dst[0], dst[1]] = x[..., src[0], src[1]]
        self._shapes = (x.shape, y.shape)
        return y

    def backward(self, grad_output):
        shapes = self._shapes
        self.check_grad(grad_output, None if shapes is None else shapes[1])
        x_shape = shapes[0]
        src, dst = self._regions(*x_shape[-2:])
        if min(self.padding) >= 0:
            return grad_output[..., dst[0], dst[1]].copy()
        xp = array_module(grad_output)
        grad_input = xp.zeros(x_shape, dtype=grad_output.dtype)
        grad_input[..., src[0], src[1]] = grad_output[..., dst[0], dst[1]]
        return grad_input

    def extra_repr(self):
        return f"{self.padding}"
