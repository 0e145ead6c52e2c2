"""Fused GPU kernels (CuPy), for the few places where CuPy's one kernel per operation
costs more in launches than in arithmetic.

On the GPU a training step of the networks our users train is bound by kernel launches,
not by arithmetic: each CuPy operation costs 15-50 µs of host time (measured on an H100
machine), while a BatchNorm over 64x16x32x32 values takes a few µs of GPU time. So
where the NumPy path takes several operations, the GPU path here takes one kernel. Each
function states its NumPy meaning; the NumPy path never calls them, and every caller
checks ``array_module(...) is not numpy`` first. The kernels are compiled by CuPy on
first use and are generic in the float type ``T`` (float32 or float64).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .backend import channels_last


@functools.cache
def _kernels():
    import cupy

    elementwise = cupy.ElementwiseKernel
    return {
        # ReLU's backward: gi = dy * (y > 0)
        "relu_grad": elementwise("T dy, Y y", "T gi", "gi = y > (Y)0 ? dy : (T)0", "gradlearn_relu_grad"),
        # BatchNorm, per channel, from the batch's float64 sums of x and x^2
        # (channel_moments): the mean, 1/sigma, the scale weight/sigma, and the running
        # statistics updated in place (factor 0 leaves them; unbias = count / (count - 1))
        "bn_moments": elementwise(
            "float64 sum, float64 sum_sq, T weight, float64 inv_count, float64 eps, T factor, T unbias",
            "T mean, T inv_std, T scale, T running_mean, T running_var",
            """
            double m = sum * inv_count;
            double var = sum_sq * inv_count - m * m;
            var = var > 0.0 ? var : 0.0;
            double r = 1.0 / sqrt(var + eps);
            mean = (T)m;
            inv_std = (T)r;
            scale = (T)(r * (double)weight);
            running_mean = running_mean * ((T)1 - factor) + factor * (T)m;
            running_var = running_var * ((T)1 - factor) + (factor * unbias) * (T)var;
            """,
            "gradlearn_bn_moments",
        ),
        # BatchNorm in evaluation, per channel: the same from the running statistics
        "bn_running": elementwise(
            "T running_mean, T running_var, T weight, T eps",
            "T mean, T inv_std, T scale",
            "mean = running_mean; inv_std = (T)1 / sqrt(running_var + eps); scale = inv_std * weight;",
            "gradlearn_bn_running",
        ),
        # y = (x - mean) * scale + bias (per-channel mean, scale and bias broadcast)
        "bn_normalize": elementwise(
            "T x, T mean, T scale, T bias", "T y", "y = (x - mean) * scale + bias", "gradlearn_bn_normalize"
        ),
        # BatchNorm backward, per channel, from the float64 sums of dy and dy * (x - mean):
        # the coefficients of the input gradient below, and the parameter gradients added in
        # place (dE/dweight += sum(dy * xhat), dE/dbias += sum(dy))
        "bn_grad_moments": elementwise(
            "float64 sum_dy, float64 sum_dy_centred, T inv_std, T weight, float64 inv_count",
            "T mean_dy, T k, T scale, T weight_grad, T bias_grad",
            """
            mean_dy = (T)(sum_dy * inv_count);
            scale = inv_std * weight;
            k = (T)(sum_dy_centred * inv_count) * inv_std * inv_std;
            weight_grad += (T)sum_dy_centred * inv_std;
            bias_grad += (T)sum_dy;
            """,
            "gradlearn_bn_grad_moments",
        ),
        # BatchNorm backward with batch statistics, per element:
        # gi = (dy - mean(dy) - (x - mean) * sum(dy * (x - mean)) / (count * sigma^2)) * weight / sigma
        "bn_input_grad": elementwise(
            "T dy, T x, T mean, T mean_dy, T k, T scale", "T gi",
            "gi = (dy - mean_dy - (x - mean) * k) * scale", "gradlearn_bn_input_grad",
        ),
        # Conv2d's col2im as a gather: every input element (n, c, y, x) of dE/dx sums the
        # column-gradient entries cols[c, i, j, n, a, b] of the outputs (a, b) whose window
        # reads it (y + top = a*sh + i*dh, x + left = b*sw + j*dw), kernel offsets in
        # row-major order; cols is (C, kh, kw, N, Ho, Wo), C-contiguous
        "col2im": elementwise(
            "raw T cols, int32 n, int32 c, int32 h, int32 w, int32 ho, int32 wo, int32 kh, int32 kw, "
            "int32 sh, int32 sw, int32 dh, int32 dw, int32 top, int32 left",
            "T gx",
            """
            int x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, sample = i / (w * h * c);
            T total = 0;
            for (int ki = 0; ki < kh; ++ki) {
                int row = y + top - ki * dh;
                if (row < 0 || row % sh != 0 || row / sh >= ho) continue;
                for (int kj = 0; kj < kw; ++kj) {
                    int col = x + left - kj * dw;
                    if (col < 0 || col % sw != 0 || col / sw >= wo) continue;
                    ptrdiff_t at = (((ptrdiff_t)(ch * kh + ki) * kw + kj) * n + sample) * ho * wo
                                   + (ptrdiff_t)(row / sh) * wo + col / sw;
                    total += cols[at];
                }
            }
            gx = total;
            """,
            "gradlearn_col2im",
        ),
        # Conv2d's pixel-major im2col straight from x (N, C, H, W), any strides, the zero
        # padding read as zeros: column (n, a, b; i, j, c) = x[n, c, a*sh - top + i*dh,
        # b*sw - left + j*dw], the columns (N*Ho*Wo, kh*kw*C) C-contiguous
        "im2col": elementwise(
            "raw T x, int32 c, int32 h, int32 w, int32 ho, int32 wo, int32 kh, int32 kw, "
            "int32 sh, int32 sw, int32 dh, int32 dw, int32 top, int32 left",
            "T col",
            """
            ptrdiff_t k = (ptrdiff_t)kh * kw * c, row = i / k, rest = i % k;
            int ch = rest % c, kj = (rest / c) % kw, ki = rest / (c * kw);
            int b = row % wo, a = (row / wo) % ho;
            ptrdiff_t sample = row / ((ptrdiff_t)wo * ho);
            int y = a * sh - top + ki * dh, xx = b * sw - left + kj * dw;
            if (y < 0 || y >= h || xx < 0 || xx >= w) {
                col = 0;
            } else {
                ptrdiff_t idx[] = {sample, ch, y, xx};
                col = x[idx];
            }
            """,
            "gradlearn_im2col",
        ),
        # MaxPool2d with tiling windows (kernel == stride, no padding): y = the window's
        # maximum, first = the offset i*kw + j of its first maximum in row-major order (a
        # NaN counts as the maximum, as in PyTorch)
        "max_pool_tiles": elementwise(
            "raw T x, int32 c, int32 ho, int32 wo, int32 kh, int32 kw",
            "T y, int32 first",
            """
            int b = i % wo, a = (i / wo) % ho, ch = (i / (wo * ho)) % c, sample = i / (wo * ho * c);
            T best = 0;
            int at = 0;
            for (int ki = 0; ki < kh; ++ki) {
                for (int kj = 0; kj < kw; ++kj) {
                    ptrdiff_t idx[] = {sample, ch, a * kh + ki, b * kw + kj};
                    T v = x[idx];
                    if ((ki == 0 && kj == 0) || v > best || (v != v && best == best)) {
                        best = v;
                        at = ki * kw + kj;
                    }
                }
            }
            y = best;
            first = at;
            """,
            "gradlearn_max_pool_tiles",
        ),
        # its backward: each input element gets its window's dE/dy if it is the window's first maximum
        "max_pool_tiles_grad": elementwise(
            "raw T dy, raw int32 first, int32 c, int32 h, int32 w, int32 kh, int32 kw",
            "T gx",
            """
            int col = i % w, row = (i / w) % h, ch = (i / (w * h)) % c, sample = i / (w * h * c);
            ptrdiff_t idx[] = {sample, ch, row / kh, col / kw};
            gx = first[idx] == (row % kh) * kw + col % kw ? dy[idx] : (T)0;
            """,
            "gradlearn_max_pool_tiles_grad",
        ),
        # Tanh's and Sigmoid's backward: gi = dy * (1 - y^2), gi = dy * y * (1 - y)
        "tanh_grad": elementwise("T dy, Y y", "T gi", "gi = dy * ((T)1 - (T)y * (T)y)", "gradlearn_tanh_grad"),
        "sigmoid_grad": elementwise("T dy, Y y", "T gi", "gi = dy * (T)y * ((T)1 - (T)y)", "gradlearn_sigmoid_grad"),
        # CrossEntropyLoss from class indices, one thread per row i of the (N, C) logits x:
        # with s = x_i - max(x_i), the row's loss l = scale * (log sum_c exp(s_c) - s_t) and
        # its gradient row scale * (softmax(s) - onehot(t)); scale is 1/N for 'mean', 1 for
        # 'sum'. An index t outside [0, C) makes l NaN (the caller then names it), as does a
        # NaN logit (its row's loss and gradient are NaN, as on the CPU).
        "cross_entropy_rows": elementwise(
            "I t, raw T x, int32 classes, T scale",
            "T l, raw T grad",
            """
            ptrdiff_t at[] = {i, 0};
            T top = x[at];
            for (int c = 1; c < classes; ++c) {
                at[1] = c;
                T v = x[at];
                if (v > top || v != v) top = v;
            }
            T total = 0;
            for (int c = 0; c < classes; ++c) {
                at[1] = c;
                total += exp(x[at] - top);
            }
            bool valid = t >= 0 && t < classes;
            at[1] = valid ? (ptrdiff_t)t : 0;
            T zero = 0;
            l = valid ? (log(total) - (x[at] - top)) * scale : zero / zero;
            T inv = (T)1 / total;
            for (int c = 0; c < classes; ++c) {
                at[1] = c;
                ptrdiff_t g[] = {i, c};
                grad[g] = (exp(x[at] - top) * inv - (c == t ? (T)1 : (T)0)) * scale;
            }
            """,
            "gradlearn_cross_entropy_rows",
        ),
        # SGD with momentum and L2 decay, on the flat vector, in one pass:
        # d = g + decay * w;  buf = momentum * buf + d;  w -= lr * buf
        "sgd_momentum": elementwise(
            "T g, T decay, T momentum, T lr", "T w, T buf",
            "T d = g + decay * w; buf = momentum * buf + d; w = w - lr * buf;", "gradlearn_sgd_momentum",
        ),
    }


# Per-channel sums of an (N, C, ...) array a, and of a * (b - shift), over every axis but 1,
# for any strides (C order, channels-last, sliced): thread k of block (c, j) adds, in
# float64, channel c's positions j * THREADS + k, then every chunks * THREADS further; the
# block sums its threads' totals in shared memory and adds them to sums[c] and sums[C + c]
# with atomicAdd (in an order that varies from run to run: the sums agree to float64's
# rounding, far below float32's).
_CHANNEL_MOMENTS = """
extern "C" __global__ void gradlearn_channel_moments_{T}(
        const {T}* a, const {T}* b, const {T}* shift, int use_shift,
        long long n, long long channels, long long h, long long w,
        long long an, long long ac, long long ah, long long aw,
        long long bn, long long bc, long long bh, long long bw, double* sums) {{
    __shared__ double first[{threads}], second[{threads}];
    long long ch = blockIdx.x, hw = h * w, total = n * hw;
    double m = use_shift ? (double)shift[ch] : 0.0, s = 0.0, q = 0.0;
    for (long long p = (long long)blockIdx.y * blockDim.x + threadIdx.x; p < total; p += (long long)gridDim.y * blockDim.x) {{
        long long i = p / hw, r = p - i * hw, y = r / w, x = r - y * w;
        double u = (double)a[i * an + ch * ac + y * ah + x * aw];
        s += u;
        q += u * ((double)b[i * bn + ch * bc + y * bh + x * bw] - m);
    }}
    first[threadIdx.x] = s;
    second[threadIdx.x] = q;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {{
        if (threadIdx.x < k) {{
            first[threadIdx.x] += first[threadIdx.x + k];
            second[threadIdx.x] += second[threadIdx.x + k];
        }}
        __syncthreads();
    }}
    if (threadIdx.x == 0) {{
        atomicAdd(sums + ch, first[0]);
        atomicAdd(sums + channels + ch, second[0]);
    }}
}}
"""
THREADS = 256  # per block of channel_moments (a power of 2: the shared-memory sum halves it)
MOMENT_BLOCKS = 1024  # blocks channel_moments aims at in all, at least one per channel


@functools.cache
def _moments_kernel(type_name: str):
    import cupy

    return cupy.RawKernel(_CHANNEL_MOMENTS.format(T=type_name, threads=THREADS), f"gradlearn_channel_moments_{type_name}")


def channel_moments(a, b, shift=None):
    """Per-channel sum(a) and sum(a * (b - shift)) of two (N, C, ...) arrays of 2 to 4
    dimensions in any memory layouts, over every axis but 1, accumulated in float64, in one
    kernel: a (2, C) float64 array. ``shift`` is a (C,) array, or None for 0: BatchNorm's
    forward takes (x, x) for sum(x) and sum(x^2), its backward (dy, x, mean) for sum(dy) and
    sum(dy * (x - mean)). In float64 the one-pass variance E[x^2] - mean^2 keeps its digits:
    a float32 x's square is exact in it. Two CuPy reductions per sum took 3.8 ms of a 24 ms
    ResNet-20 step (H100 machine): the host's time, not the GPU's."""
    import cupy

    types = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
    if a.dtype not in types:
        raise TypeError(f"channel_moments: expected float32 or float64 arrays, got {a.dtype}")
    b = b if b.dtype == a.dtype else b.astype(a.dtype)
    shape = tuple(a.shape) + (1,) * (4 - a.ndim)
    n, c, h, w = shape
    chunks = max(1, min(-(-(n * h * w) // THREADS), MOMENT_BLOCKS // c))
    sums = cupy.zeros((2, c), np.float64)

    def strides(x):  # in elements, for the (N, C, H, W) view
        return [np.int64(s // x.itemsize) for s in x.strides] + [np.int64(0)] * (4 - x.ndim)

    _moments_kernel(types[a.dtype])(
        (c, chunks), (THREADS,),
        (a, b, a if shift is None else shift.astype(a.dtype, copy=False), np.int32(shift is not None),
         *(np.int64(v) for v in shape), *strides(a), *strides(b), sums),
    )  # fmt: skip
    return sums


def kernel(name: str):
    """The compiled CuPy kernel ``name`` (see :func:`_kernels`)."""
    return _kernels()[name]


def add_product(out, a, b, trans_a: bool = False):
    """``out += op(a) @ b`` as one cuBLAS GEMM with beta = 1 (no product array, no separate
    addition); op(a) is a.T when ``trans_a``. ``out`` must be C-contiguous (a parameter's
    gradient, a view into the flat vector)."""
    from cupy import cublas

    cublas.gemm("T" if trans_a else "N", "N", a, b, out=out, alpha=1.0, beta=1.0)
    return out


@functools.cache
def _ones(n: int, dtype, device: int):
    import cupy

    with cupy.cuda.Device(device):
        return cupy.ones((1, n), dtype=dtype)


def add_column_sums(out, a):
    """``out += a.sum(axis=0)`` for a (N, F) array, as a (1, N) @ (N, F) GEMM with beta = 1."""
    ones = _ones(a.shape[0], a.dtype, a.device.id)
    return add_product(out.reshape(1, -1), ones, a)


def channel_sum(a):
    """Per-channel sums of an (N, C, ...) array over every axis but 1 (a convolution's bias
    gradient). In two stages, partial sums of blocks of rows and then their sum: CuPy's
    one-stage reduction gives each of the C outputs one thread block, and took 330 µs for a
    channels-last 64x16x32x32 array against 35 µs in two stages (H100)."""
    c = a.shape[1]
    if channels_last(a):  # memory (N*H*W, C): blocks of rows
        rows = a.transpose(0, 2, 3, 1).reshape(-1, c)
        blocks = math.gcd(rows.shape[0], 1024)
        return rows.reshape(blocks, -1, c).sum(axis=1).sum(axis=0)
    if a.flags.c_contiguous:  # memory (N, C, L): each sample's rows, then the samples
        return a.reshape(a.shape[0], c, -1).sum(axis=2).sum(axis=0)
    if a.ndim > 2:  # another layout: each sample's channels, then the samples
        return a.sum(axis=tuple(range(2, a.ndim))).sum(axis=0)
    return a.sum(axis=0)
