"""Compiled CPU kernels, for the layers where NumPy's passes are the bottleneck and a loop
written out is measured to be faster.

The kernels are plain C (``_kernels.c``), built at install as an optional extension
(``setup.py``) and called through ctypes, which releases the GIL, so
``gradlearn.parallel``'s workers can run them on every core, each over its own slice of
the batch. Most calls instead share their work with a team of C threads (``threads=``,
chosen by ``parallel.team_threads``): the memory-bound kernels (ReLU, BatchNorm's four
passes, residual sums, the SGD step) and the blocked convolutions of a channels-last input
(in chunks of samples). The call is cut into fixed chunks that the caller and the helpers
take from one counter, with no Python or GIL per slice. A Python section costs
about 50 us, the time of a whole 4 MB ReLU; on the team that ReLU went 0.46-0.50 ->
0.24-0.30 ms (2 cores; PyTorch 0.25), and ResNet-20's training step took 0.89-0.91x the
time (alternating runs, medians of paired ratios); with the convolutions on the team too,
0.93x again. Chunks are cut by size and partial sums added in chunk
order, so one thread or several give the same bits.

Without a C compiler at install time, or with the environment variable
``GRADLEARN_COMPILED=0``, ``available()`` is False and every layer takes its NumPy path,
which computes the same sums (the tests compare the two). No -ffast-math: NaN and
infinity behave as in NumPy; sums may round differently (dot products are vectorised
through OpenMP SIMD reductions; BatchNorm's sums are accumulated in double).

Why C and not numba: the same loops written for numba ran as fast, but importing numba and
loading its LLVM JIT added about 120 MB to every process (LeNet-5's training peak 94 ->
198 MB, against PyTorch's 333), where this library is 40 kB.

The kernels, each measured faster than its NumPy path (2-core CPU):

- ReLU, one pass each way (NumPy's maximum handles NaN in its inner loop; its backward is
  a comparison, then a product). One core, 128x6x28x28: forward 0.56 -> 0.21 ms, backward
  0.79 -> 0.35 ms; 64x32x32x32 forward 2.4 -> 1.2 ms.
- MaxPool2d over 2x2 tiles of a channels-last input: one pass each way, the forward
  noting each tile's first maximum (uint8) for the backward, where NumPy's separable path
  takes several strided passes; the inner loop runs over the contiguous channels and is
  vectorised. 64x32x32x32, 2 workers: forward 2.6 -> 0.67 ms, forward + backward 6.3 ->
  5.4 ms. In C order (``max_pool_2x2``), the same loop ran scalar, 13 ns a tile of
  mispredicted branches, slower than NumPy; the float kernel takes 8 tiles of a row at a
  time, splitting each row's even and odd values with vector shuffles and choosing by
  vector selects. LeNet-5's 128x6x28x28, one core: forward 0.93 -> 0.24 ms, backward
  about 2.0 -> 0.26 ms. (The double kernel stays scalar.)
- BatchNorm2d in training on channels-last arrays (after the pixel-major convolutions):
  the sums of x - s and its square (s one value per channel; in double), (x - mu) * scale +
  beta, the backward's two sums, and dE/dx, one pass each over (rows, channels) with the
  channels innermost, always subtracting the mean before scaling; NumPy needs two or three
  passes for each. 64x16x32x32, 2 workers: forward 2.5 -> 1.6-2.1 ms, backward 3.1-4.2 ->
  1.7-2.1 ms; keeping x and mu instead of writing x - mu, forward 2.3-2.7 -> 1.3-1.6 ms.
- SGD with momentum (the common case: no dampening, Nesterov or L1; one learning rate and
  decay): w and b updated in one pass over the flat vectors where NumPy makes four. W1's
  670k parameters: 1.75-1.96 -> 0.88-1.07 ms a step.
- Conv2d with one input channel, and Conv2d's pixel-major path (register-blocked), below.

Direct convolution ("wide rows"), for one input channel (a grayscale first layer, as
LeNet-5's), stride 1 and dilation 1. Sample n's padded input is one flat row per
channel, ``xpad[c, r*Wp + s]`` (Hp x Wp padded image). Computed over the full padded width
Wp, the output is ``ywide[o, p] = b[o] + sum_t W[o, t] * xpad[off(t) + p]`` for the taps
t = (c, i, j), ``off(t) = c*Hp*Wp + i*Wp + j`` and positions ``p = a*Wp + b`` (the columns
b >= Wo are computed and dropped). A tile keeps 6 outputs x 2 vectors of positions of sums
in registers over all the taps, so each vector of x loaded serves 6 outputs (the first
version made one multiply-add pass over the image per tap and output: 0.44 -> 0.29-0.31 ms
for LeNet-5's first layer, one core, batch 64). The backward reads the same sums the other
way: ``dE/dW[o, t]`` is the dot product of the wide dE/dy row o (zeros in its columns >= Wo)
with x's row t, kept as per-lane vector sums over the batch and added across lanes once
(0.93 -> 0.35 ms), and dE/dx is the same tile over dE/dy (given a zero front) with the
flipped kernel, taps (o, i, j) at offsets -(i*Wp + j). LeNet-5's first layer (1 -> 6
channels, 5x5, padding 2, batch 128, both cores), against im2col: forward 4.6 -> 0.7-0.9
ms, backward 4.5 -> 0.7-1.5 ms. With 3 or more input channels the blocked kernels below
are faster, and so they are with one input channel and 16 outputs; only one-channel inputs
with fewer outputs take this path.

With x, dE/dW and dE/db NULL (``direct_conv_input_grad``) the direct backward computes dE/dx
alone, for any channel counts: Conv2d uses it for the stride-1 input gradient of layers with
fewer input channels than one vector of the blocked kernels (LeNet-5's 6 -> 16, one core,
batch 64: 0.82 against 2.9-5.1 ms by the blocked kernel over 16 channels, 10 of them zero).

Register-blocked direct convolution (``conv_cl_forward``, ``conv_cl_weight_grad``,
``conv_cl_input_grad``), for Conv2d's pixel-major path (one group; any channel counts,
stride, dilation and padding). The input is a slice of the batch, channels-last (m, H, W,
C), which the kernel zero-pads one sample at a time into a small buffer that stays in cache
(Conv2d first copied each chunk of samples padded, in NumPy: the ResNet-20 training step went
310-327 -> 295-300 ms, alternating runs); the weight is a (kh*kw*C, Q) matrix with rows
(i, j, c), Q a multiple of the vector width (Conv2d adds zero columns). No im2col matrix is
written.

- Forward: a tile keeps 8 output pixels x 16 output channels of sums (8 vectors of 64
  bytes: AVX-512 registers here) over all kh*kw*C products, so each weight vector loaded
  serves 8 pixels; when Q is a multiple of 32 the tile is 2 vectors wide (16 sums), so each
  value of x read serves 32 channels (one core, batch 32, alternating builds, 32 and 64
  channels: 41-65 -> 59-86 GFLOP/s).
- Weight gradient: a tile keeps 12 rows (tap, input channel) x 16 or 32 output channels over
  a band of about 32 output pixels, so each dE/dy vector serves 12 rows (the rest in 6, 3,
  2, 1: a first layer's 3 channels x 3 taps are 6 + 3).
- When the kernel is not dilated along the width, a tap row's kw*C inputs are consecutive
  in x and in w and are summed as one run.
- Input gradient: of a stride-1 layer, the forward over the padded dE/dy with the flipped
  kernel; of other strides, ``conv_cl_input_grad`` takes the taps one by one: the same tile
  sums dE/dy's pixels times the tap's (Q, C) matrix over Q and adds the result where the
  tap read x (ResNet-20's stride-2 layers, whole backward, batch 64, 2-core CPU: 13.0 ->
  5.8 and 6.3 -> 3.3 ms against col2im).

One core, batch 64, 3x3 pad 1, 1-vector tiles, GFLOP/s (PyTorch 2.13's oneDNN on one core,
NCHW / channels-last, forward):

    16 -> 16 at 32x32: forward 87-92, weight gradient 80-83 (oneDNN 28 / 53)
    32 -> 32 at 16x16: forward 68-70, weight gradient 81-83 (oneDNN 81 / 110)
    64 -> 64 at 8x8:   forward 73-74, weight gradient 85-89 (oneDNN 101 / 117)
    3 -> 16 at 32x32:  forward 61-67, weight gradient 56-57

Written with GCC's vector extension, not intrinsics. The vector width is the building
machine's (``-march=native``): 64 bytes with AVX-512, else 32 (AVX) or 16, with tiles of
half as many pixels and rows so that the sums stay in its 16 registers; ``vector_bytes()``
tells Python (``LANES``). The first version used 64-byte vectors everywhere, which an AVX2
build turned into memory operations: 2-9 GFLOP/s. Built with ``-mavx2 -mfma`` on this
machine now, forward 34-51 GFLOP/s on one core against 61-117 for its AVX-512 build, and
the tests pass with it.

Every kernel takes C-contiguous arrays of one float dtype (float32 or float64); the
wrappers below check that and derive the sizes from the shapes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import warnings

import numpy as np

_library = None  # the loaded C library, on first use (False: not built, or turned off)
_address = None  # _kernels.address: where an array's data starts (NumPy's a.ctypes.data is 10x slower)


def available() -> bool:
    """Whether the compiled kernels can be used: the extension was built and
    ``GRADLEARN_COMPILED`` is not 0."""
    return bool(_load())


def kernel(name: str):
    """The kernel ``name`` (a Python function taking NumPy arrays); only call when ``available()``."""
    _load()
    return _KERNELS[name]


def _load():
    global _library
    if _library is None:
        spec = importlib.util.find_spec("gradlearn._kernels")
        if os.environ.get("GRADLEARN_COMPILED", "1").strip() == "0" or spec is None or not spec.origin:
            _library = False
        else:
            try:
                _library = ctypes.CDLL(spec.origin)
                global _address
                _address = importlib.import_module("gradlearn._kernels").address
                _library.team_chunks_helped.restype = ctypes.c_int64
                vector_bytes = _library.vector_bytes()  # the width the build found on its machine
                LANES.update({np.dtype(np.float32): vector_bytes // 4, np.dtype(np.float64): vector_bytes // 8})
            except (OSError, AttributeError, ImportError) as error:  # a broken build: say so once, and run the NumPy paths
                warnings.warn(f"gradlearn: compiled kernels unusable ({error}); using the NumPy paths", RuntimeWarning, stacklevel=2)
                _library = False
    return _library


def team_chunks_helped() -> int:
    """How many chunks of kernel calls the team's helper threads have computed in this
    process (the caller computes the rest): shows that a call was shared."""
    _load()
    return _library.team_chunks_helped() if _library else 0


_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


_ALLOCATING = {"direct_conv_forward", "direct_conv_backward", "conv_cl_forward", "conv_cl_weight_grad", "bn_sums", "bn_grad_sums"}  # return -1 when malloc fails


_FUNCTIONS = {}  # (C name, kinds of its arguments) -> the ctypes function, its argtypes set


def _call(name, *args, doubles=()):
    """Call C function ``name_f32`` or ``name_f64`` (by the first array's dtype) with the
    arrays as pointers (None: NULL), the ints as int64 and the floats as double. Every array must be C-contiguous
    and of that dtype, but uint8 and int64 index arrays and the float64 sums at positions
    ``doubles``. Returns the C function's int.
    A ctypes prototype is built once per signature, so ctypes converts the plain values
    itself: a call took about 8 us against 10.5 wrapping each value in a ctypes object
    (W4's step makes two such calls, W1's six)."""
    dtype = None
    for a in args:
        if isinstance(a, np.ndarray):
            dtype = a.dtype  # the first array's
            break
    c_args, kinds = [], ""
    for position, a in enumerate(args):
        if a is None:
            c_args.append(None)
            kinds += "p"
        elif isinstance(a, np.ndarray):
            expected = _FLOAT64 if position in doubles else (a.dtype if a.dtype in _INDICES else dtype)
            if a.dtype != expected:
                raise ValueError(f"compiled.{name}: expected {expected} arrays, got {a.dtype} (argument {position})")
            if not a.flags.c_contiguous:
                raise ValueError(f"compiled.{name}: arrays must be C-contiguous, got strides {a.strides} (argument {position})")
            c_args.append(_address(a))
            kinds += "p"
        elif isinstance(a, float):  # a scalar the kernel takes as a double
            c_args.append(a)
            kinds += "d"
        else:
            c_args.append(int(a))
            kinds += "i"
    c_name = f"{name}_{_SUFFIX[dtype]}"
    function = _FUNCTIONS.get((c_name, kinds))
    if function is None:
        result = ctypes.c_int64 if name in _RETURNING_I64 else ctypes.c_int
        function = ctypes.CFUNCTYPE(result, *(_C_TYPES[k] for k in kinds))((c_name, _library))
        _FUNCTIONS[c_name, kinds] = function
    status = function(*c_args)
    if name in _ALLOCATING and status != 0:  # the others return void (ctypes reads an undefined int)
        raise MemoryError(f"compiled.{name}: could not allocate its scratch")
    return status


_C_TYPES = {"p": ctypes.c_void_p, "d": ctypes.c_double, "i": ctypes.c_int64}
_FLOAT64 = np.dtype(np.float64)
_INDICES = (np.dtype(np.uint8), np.dtype(np.int64))  # index arrays: a max-pool's codes, class indices
_RETURNING_I64 = {"cross_entropy"}


def _direct_conv_forward(x, weight, bias, out, top, left, hp, wp):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    _call("direct_conv_forward", x, weight, bias, out, n, c, h, w, o, kh, kw, out.shape[2], out.shape[3], top, left, hp, wp)


def _direct_conv_backward(x, grad_output, weight, grad_weight, grad_bias, grad_input, top, left, hp, wp, need_input_grad):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = grad_output.shape[2:]
    target = grad_input if not need_input_grad or grad_input.flags.c_contiguous else np.empty(x.shape, x.dtype)
    _call("direct_conv_backward", x, grad_output, weight, grad_weight, grad_bias, target if need_input_grad else None,
          n, c, h, w, o, kh, kw, ho, wo, top, left, hp, wp)
    if need_input_grad and target is not grad_input:
        grad_input[...] = target


LANES = {}  # elements per vector of the blocked kernels, by dtype: filled when the library loads (16 and 8 floats and doubles with AVX-512)


def _conv_cl_geometry(name, x, pads, kernel, stride, dilation):
    """(m, h, w, c), (top, left, hp, wp), (ho, wo) of a channels-last (m, H, W, C) input
    zero-padded by pads (top, bottom, left, right)."""
    if x.ndim != 4:
        raise ValueError(f"compiled.{name}: expected a channels-last (m, H, W, C) image, got shape {x.shape}")
    m, h, w, c = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    ho = (hp - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return (m, h, w, c), (top, left, hp, wp), (ho, wo)


def _conv_cl_forward(x, pads, weight, bias, out, kernel, stride, dilation, threads=1):
    """out (m*Ho*Wo, Q) = the correlation of x (m, H, W, C), channels-last, zero-padded by
    pads (top, bottom, left, right) (the kernel pads one sample at a time), with weight
    (kh*kw*C, Q) (rows (i, j, c)), plus bias (Q,) unless None; Q a multiple of LANES."""
    (m, h, w, c), padding, (ho, wo) = _conv_cl_geometry("conv_cl_forward", x, pads, kernel, stride, dilation)
    q = weight.shape[1]
    _check_conv_cl("conv_cl_forward", x, {"weight": (weight, (kernel[0] * kernel[1] * c, q)), "output": (out, (m * ho * wo, q))}, q)
    _call("conv_cl_forward", x, weight, bias, out, m, h, w, c, q, *kernel, ho, wo, *stride, *dilation, *padding, threads)


def _conv_cl_weight_grad(x, pads, grad_output, grad_weight, kernel, stride, dilation, threads=1):
    """grad_weight (kh*kw*C, Q) += the weight gradient of that correlation, from x (m, H, W,
    C) (padded as there) and grad_output (m*Ho*Wo, Q); Q a multiple of LANES."""
    (m, h, w, c), padding, (ho, wo) = _conv_cl_geometry("conv_cl_weight_grad", x, pads, kernel, stride, dilation)
    q = grad_weight.shape[1]
    _check_conv_cl("conv_cl_weight_grad", x,
                   {"weight gradient": (grad_weight, (kernel[0] * kernel[1] * c, q)), "output gradient": (grad_output, (m * ho * wo, q))}, q)
    _call("conv_cl_weight_grad", x, grad_output, grad_weight, m, h, w, c, q, *kernel, ho, wo, *stride, *dilation, *padding, threads)


def _conv_cl_input_grad(grad_output, weight_t, grad_padded, kernel, stride, dilation, threads=1):
    """grad_padded (m, Hp, Wp, C) += the input gradient of that correlation (any stride),
    from grad_output (m*Ho*Wo, Q) and weight_t (kh*kw*Q, C) (rows (i, j, o)); C a multiple
    of LANES."""
    _, _, (ho, wo) = _conv_cl_geometry("conv_cl_input_grad", grad_padded, (0, 0, 0, 0), kernel, stride, dilation)
    m, hp, wp, c = grad_padded.shape
    q = grad_output.shape[1]
    _check_conv_cl("conv_cl_input_grad", grad_padded,
                   {"weight": (weight_t, (kernel[0] * kernel[1] * q, c)), "output gradient": (grad_output, (m * ho * wo, q))}, c)
    _call("conv_cl_input_grad", grad_output, weight_t, grad_padded, m, hp, wp, c, q, *kernel, ho, wo, *stride, *dilation, threads)


def _check_conv_cl(name, image, expected, vector_channels):
    """The shapes the kernel's loops assume (it reads and writes them without bounds):
    ``expected`` maps a name to (array, shape); ``vector_channels`` must fill whole vectors."""
    for what, (array, shape) in expected.items():
        if array.shape != shape:
            raise ValueError(f"compiled.{name}: {what} of shape {array.shape}, expected {shape} (image {image.shape})")
    if vector_channels % LANES.get(image.dtype, 1):
        raise ValueError(f"compiled.{name}: {vector_channels} channels, expected a multiple of {LANES[image.dtype]}")


def _direct_conv_input_grad(grad_output, weight, grad_input, top, left, hp, wp):
    """grad_input (N, C, H, W) = dE/dx alone, by the direct backward (any channel counts)."""
    n, c, h, w = grad_input.shape
    o, _, kh, kw = weight.shape
    ho, wo = grad_output.shape[2:]
    target = grad_input if grad_input.flags.c_contiguous else np.empty(grad_input.shape, grad_input.dtype)
    _call("direct_conv_backward", None, grad_output, weight, None, None, target, n, c, h, w, o, kh, kw, ho, wo, top, left, hp, wp)
    if target is not grad_input:
        grad_input[...] = target


def _max_pool_2x2(x, out, first):  # C-order (N, C, H, W) arrays, H and W twice out's
    _check_pool_tiles("max_pool_2x2", x.shape, out.shape, first.shape)
    _call("max_pool_2x2", x, out, first, out.shape[0] * out.shape[1] * out.shape[2], out.shape[3])


def _max_pool_2x2_grad(grad_output, first, grad_input):  # C-order (N, C, H, W) arrays
    _check_pool_tiles("max_pool_2x2_grad", grad_input.shape, grad_output.shape, first.shape)
    _call("max_pool_2x2_grad", grad_output, first, grad_input, grad_output.shape[0] * grad_output.shape[1] * grad_output.shape[2], grad_output.shape[3])


def _check_pool_tiles(name, image, pooled, first):
    n, c, ho, wo = pooled
    if len(image) != 4 or tuple(image) != (n, c, 2 * ho, 2 * wo) or tuple(first) != tuple(pooled):
        raise ValueError(f"compiled.{name}: 2x2 tiles of {tuple(image)} need pooled arrays of {(n, c, image[2] // 2, image[3] // 2) if len(image) == 4 else '(N, C, H/2, W/2)'} and H, W even, got {tuple(pooled)} and {tuple(first)}")


def _max_pool_2x2_channels_last(x, out, first):  # (N, H, W, C) views
    n, h, w, c = x.shape
    _call("max_pool_2x2_channels_last", x, out, first, n, h, w, c, out.shape[1], out.shape[2])


def _max_pool_2x2_channels_last_grad(grad_output, first, grad_input):  # (N, H, W, C) views
    n, h, w, c = grad_input.shape
    _call("max_pool_2x2_channels_last_grad", grad_output, first, grad_input, n, h, w, c, grad_output.shape[1], grad_output.shape[2])


def _sgd_momentum(w, b, g, decay, momentum, lr, threads=1):
    """In place, one pass: b = momentum * b + (g + decay * w); w -= lr * b."""
    if not (w.shape == b.shape == g.shape and w.ndim == 1):
        raise ValueError(f"compiled.sgd_momentum: expected three flat vectors of one size, got {w.shape}, {b.shape}, {g.shape}")
    _call("sgd_momentum", w, b, g, float(decay), float(momentum), float(lr), w.size, threads)


def _cross_entropy(logits, target, grad, total, scale):
    """Cross-entropy of C-contiguous logits (N, C) with int64 class indices (N,): writes
    grad = scale * (softmax(logits) - onehot(target)) and total[0] = the sum of the rows'
    losses (total: a float64 array of one element). Returns -1, or the first row whose
    index is out of [0, C) (grad and total then meaningless)."""
    n, c = logits.shape
    if grad.shape != (n, c) or target.shape != (n,) or total.shape != (1,):
        raise ValueError(f"compiled.cross_entropy: expected logits and grad (N, C), target (N,), total (1,); got {logits.shape}, {grad.shape}, {target.shape}, {total.shape}")
    if target.dtype != np.int64 or not target.flags.c_contiguous:
        raise ValueError(f"compiled.cross_entropy: target must be C-contiguous int64, got {target.dtype} with strides {target.strides}")
    return _call("cross_entropy", logits, target, grad, total, n, c, float(scale), doubles=(3,)) - 1


def _same_size(name, *arrays):
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"compiled.{name}: expected arrays of one size, got shapes {[a.shape for a in arrays]}")


def _relu(x, y, threads=1):
    _same_size("relu", x, y)
    _call("relu", x, y, x.size, threads)


def _relu_grad(grad_output, y, grad_input, threads=1):
    _same_size("relu_grad", grad_output, y, grad_input)
    _call("relu_grad", grad_output, y, grad_input, y.size, threads)


def _add(a, b, out, threads=1):
    _same_size("add", a, b, out)
    _call("add", a, b, out, a.size, threads)


def _bn_sums(x, shift, total, sum_squares, threads=1):
    _call("bn_sums", x, shift, total, sum_squares, *x.shape, threads, doubles=(2, 3))


def _bn_scale_shift(source, centre, scale, shift, out, threads=1):
    _call("bn_scale_shift", source, centre, scale, shift, out, *source.shape, threads)


def _bn_grad_sums(grad_output, source, centre, sum_dy, sum_dy_centred, threads=1):
    _call("bn_grad_sums", grad_output, source, centre, sum_dy, sum_dy_centred, *grad_output.shape, threads, doubles=(3, 4))


def _bn_input_grad(grad_output, source, centre, scale, k_const, k_centred, grad_input, threads=1):
    _call("bn_input_grad", grad_output, source, centre, scale, k_const, k_centred, grad_input, *grad_output.shape, threads)


_KERNELS = {
    "direct_conv_forward": _direct_conv_forward,
    "direct_conv_backward": _direct_conv_backward,
    "direct_conv_input_grad": _direct_conv_input_grad,
    "conv_cl_forward": _conv_cl_forward,
    "conv_cl_weight_grad": _conv_cl_weight_grad,
    "conv_cl_input_grad": _conv_cl_input_grad,
    "max_pool_2x2": _max_pool_2x2,
    "max_pool_2x2_grad": _max_pool_2x2_grad,
    "max_pool_2x2_channels_last": _max_pool_2x2_channels_last,
    "max_pool_2x2_channels_last_grad": _max_pool_2x2_channels_last_grad,
    "sgd_momentum": _sgd_momentum,
    "cross_entropy": _cross_entropy,
    "relu": _relu,
    "relu_grad": _relu_grad,
    "add": _add,
    "bn_sums": _bn_sums,
    "bn_scale_shift": _bn_scale_shift,
    "bn_grad_sums": _bn_grad_sums,
    "bn_input_grad": _bn_input_grad,
}
