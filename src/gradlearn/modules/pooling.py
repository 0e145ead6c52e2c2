"""2-D pooling, NCHW: MaxPool2d, AvgPool2d, LPPool2d, AdaptiveAvgPool2d.

No Python loop over the batch or over output pixels: the windowed pools loop over the
kh*kw kernel offsets, each step one vectorised operation on a strided slice of the whole
batch. When the window tiles the input (kernel == stride, no padding, sizes divisible),
the input gradient is viewed as (N, C, Ho, kh, Wo, kw) and written once per offset (or
by one broadcast copy) instead of accumulated into a zeroed array. AdaptiveAvgPool2d is
a reshaped mean when the output divides the input, else one matrix product.
"""

from __future__ import annotations

import math

import numpy as np

from .. import compiled, parallel
from ..backend import array_module, channels_last, empty_channels_last, empty_like_layout
from ..gpu_kernels import kernel
from .base import Module
from .conv import _check_4d, _offset_slices, _option_str, _pad_into, _pair, _positive_pair, _Scratch, _size_str


class _Pool2d(Module):
    """Window geometry shared by the windowed pools: kernel, stride (default: the
    kernel), padding (at most half the kernel, as PyTorch), output size
    floor((H + 2*pad - kh) / sh) + 1."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _positive_pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else _positive_pair(stride, "stride", name)
        self.padding = _pair(padding, "padding", name)
        if min(self.padding) < 0:
            raise ValueError(f"{name}: padding must be non-negative, got {padding!r}")
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(
                f"{name}: padding {self.padding} must be at most half the kernel size {self.kernel_size} (as in PyTorch)"
            )
        self._scratch = _Scratch()
        self._shapes = None

    def _geometry(self, x):
        """Validate x and return (padded height, padded width, Ho, Wo)."""
        self.check_float(x)
        _check_4d(self, x)
        h, w = x.shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        if hp < kh or wp < kw:
            raise self.error(
                "forward",
                f"input of {h}x{w} (padded to {hp}x{wp}) is smaller than the kernel {kh}x{kw} "
                f"(input shape {tuple(x.shape)})",
            )
        return hp, wp, (hp - kh) // sh + 1, (wp - kw) // sw + 1

    def _tiles(self, x_shape):
        """True when the windows tile the input exactly (kernel == stride, no padding, divisible)."""
        h, w = x_shape[2:]
        (kh, kw) = self.kernel_size
        return self.stride == self.kernel_size and self.padding == (0, 0) and h % kh == 0 and w % kw == 0

    def _pads(self):
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def _slices(self, out_size):
        return _offset_slices(self.kernel_size, out_size, self.stride, (1, 1))

    def _window_sum(self, x, out_size):
        """s[n, c, a, b] = sum over the (zero-padded) window of x: one strided add per
        kernel offset (measured 5x faster than a reshaped ``sum(axis=(3, 5))`` when the
        window tiles the input)."""
        padded = _pad_into(self._scratch, "padded", x, self._pads())
        total = None
        for rows, cols in self._slices(out_size):
            if total is None:
                total = padded[:, :, rows, cols].copy()
            else:
                total += padded[:, :, rows, cols]
        return total

    def _window_scatter(self, g, x_shape):
        """The adjoint of _window_sum: dx[n, c, p, q] = sum of g over the windows containing (p, q)."""
        xp = array_module(g)
        n, c, h, w = x_shape
        (kh, kw) = self.kernel_size
        ho, wo = g.shape[2:]
        if self._tiles(x_shape):
            grad_input = xp.empty(x_shape, dtype=g.dtype)
            xp.copyto(grad_input.reshape(n, c, ho, kh, wo, kw), g[:, :, :, None, :, None])
            return grad_input
        ph, pw = self.padding
        padded = (ph or pw) != 0
        shape = (n, c, h + 2 * ph, w + 2 * pw)
        if padded:
            grad_padded = self._scratch.get("grad_padded", shape, g.dtype, xp)
            grad_padded.fill(0)
        else:
            grad_padded = xp.zeros(shape, dtype=g.dtype)
        for rows, cols in self._slices((ho, wo)):
            grad_padded[:, :, rows, cols] += g
        if not padded:
            return grad_padded
        return grad_padded[:, :, ph : ph + h, pw : pw + w].copy()

    def extra_repr(self):
        parts = [_size_str(self.kernel_size)]
        if self.stride != self.kernel_size:
            parts.append(f"stride={_option_str(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={_option_str(self.padding)}")
        return ", ".join(parts)


class MaxPool2d(_Pool2d):
    """y[n, c, a, b] = max over the window of xpad, xpad = x padded with -inf.

    Shapes: (N, C, H, W) -> (N, C, Ho, Wo), Ho = floor((H + 2*pad - kh) / sh) + 1.
    Defaults: stride = kernel_size, padding = 0.

    Backward: the Jacobian routes dE/dy[n, c, a, b] to exactly ONE input, the first
    maximum of the window in row-major order (PyTorch's choice, so ties do not double the
    gradient); windows that overlap add their contributions.

    Speed: the forward is a chain of ``maximum`` over the kernel offsets and stores no
    indices (inference pays nothing for the backward); the backward finds, offset by
    offset in row-major order, the first input equal to its window's maximum. On a
    2-core CPU this measured 9 + 24 ms against 51 + 9 ms for tracking argmax indices in
    the forward (2x2 on 64x32x32x32, float32).

    When the windows tile the input (kernel == stride, no padding, sizes divisible) the
    max is taken in two separable steps, first across each window's kw columns, then
    across its kh rows of those column maxima (kept for the backward, half the input's
    size for 2x2), and the backward routes the same way: to the first row whose column
    maximum is the window's maximum, then to the first column of that row holding it,
    which is the first maximum in row-major order. Both steps read whole rows or every
    kw-th element instead of every (kh*kw)-th, so fewer strided passes: on one core,
    backward 14.2 -> 8.2 ms (2x2 on 64x32x32x32), 3.3 -> 2.7 ms (LeNet-5's 128x6x28x28),
    forward 5.0 -> 4.0 ms and 1.33 -> 0.94 ms. (A window holding a NaN sends its gradient
    to its last row and column instead of to the NaN.) On the GPU, tiling windows take one
    kernel each way (gradlearn.gpu_kernels): the forward also notes each window's first
    maximum (a NaN counts as the maximum there), the backward hands each input its
    window's dE/dy where it is that maximum. With the compiled kernels
    (``gradlearn.compiled``), 2x2 tiles of a channels-last or C-order float input do the
    same on the CPU in one pass each way (``_forward_tiles_compiled``), so there too a NaN
    takes its window's gradient; other layouts and windows take the NumPy paths.
    """

    def forward(self, x):
        hp, wp, ho, wo = self._geometry(x)
        xp = array_module(x)
        n, c = x.shape[:2]
        y = empty_like_layout(x, (n, c, ho, wo))
        if self._tiles(x.shape):
            return self._forward_tiles(x, y)
        padded = _pad_into(self._scratch, "padded", x, self._pads(), fill=-np.inf)
        slices = self._slices((ho, wo))

        def max_slice(start, stop):
            source, out = padded[start:stop], y[start:stop]
            (rows, cols), rest = slices[0], slices[1:]
            xp.copyto(out, source[:, :, rows, cols])
            for rows, cols in rest:
                xp.maximum(out, source[:, :, rows, cols], out=out)

        parallel.over_batch(n, padded.size, max_slice, xp)
        self._source, self._y, self._column_max, self._first_max = padded, y, None, None
        self._shapes = (x.shape, y.shape)
        return y

    def _forward_tiles(self, x, y):
        """Tiling windows: column maxima (N, C, H, Wo) over each window's kw columns, then
        y = their maxima over each window's kh rows."""
        xp = array_module(x)
        n, c, h, _ = x.shape
        (kh, kw), wo = self.kernel_size, y.shape[3]
        self._shapes = (x.shape, y.shape)
        if xp is not np:  # one kernel, which also notes each window's first maximum for the backward
            first = xp.empty(y.shape, dtype=xp.int32)
            kernel("max_pool_tiles")(x, c, y.shape[2], wo, kh, kw, y, first)
            self._source, self._y, self._column_max, self._first_max = x, y, None, first
            return y
        if (kh, kw) == (2, 2) and (channels_last(x) or x.flags.c_contiguous) and x.dtype in (np.float32, np.float64) and compiled.available():
            return self._forward_tiles_compiled(x, y)
        column_max = empty_like_layout(x, (n, c, h, wo))

        def max_slice(start, stop):
            source, cmax, out = x[start:stop], column_max[start:stop], y[start:stop]
            xp.copyto(cmax, source[..., 0::kw])
            for j in range(1, kw):
                xp.maximum(cmax, source[..., j::kw], out=cmax)
            xp.copyto(out, cmax[:, :, 0::kh])
            for i in range(1, kh):
                xp.maximum(out, cmax[:, :, i::kh], out=out)

        parallel.over_batch(n, x.size, max_slice, xp)
        self._source, self._y, self._column_max, self._first_max = x, y, column_max, None
        return y

    def _forward_tiles_compiled(self, x, y):
        """2x2 tiles of a channels-last or C-order input, compiled (gradlearn.compiled): one
        pass that writes each tile's maximum and the index of its first maximum in
        row-major order (uint8, in y's layout; a NaN counts as the maximum, as on the GPU).
        Channels-last, over the (N, H, W, C) view: 64x32x32x32 with 2 workers, forward 2.6
        -> 0.67 ms, forward + backward 6.3 -> 5.4 ms. C order, 8 tiles of a row at a time:
        LeNet-5's 128x6x28x28 on one core, forward 0.93 -> 0.24 ms, backward about 2.0 ->
        0.26 ms (NumPy's separable path)."""
        first = empty_like_layout(y, dtype=np.uint8)
        self._first_channels_last = channels_last(x)
        if self._first_channels_last:
            pool = compiled.kernel("max_pool_2x2_channels_last")
            x_in, y_in, first_in = (a.transpose(0, 2, 3, 1) for a in (x, y, first))
        else:
            pool = compiled.kernel("max_pool_2x2")
            x_in, y_in, first_in = x, y, first

        def max_slice(start, stop):
            pool(x_in[start:stop], y_in[start:stop], first_in[start:stop])

        parallel.over_batch(x.shape[0], x.size, max_slice)
        self._source, self._y, self._column_max, self._first_max = x, y, None, first
        return y

    def backward(self, grad_output):
        shapes = self._shapes
        self.check_grad(grad_output, None if shapes is None else shapes[1])
        x_shape = shapes[0]
        n, c, h, w = x_shape
        xp = array_module(grad_output)
        source, y = self._source, self._y
        if self._first_max is not None and xp is not np:  # the GPU's tiling windows
            grad_input = empty_like_layout(source, dtype=grad_output.dtype)
            kernel("max_pool_tiles_grad")(grad_output, self._first_max, c, h, w, *self.kernel_size, grad_input)
            return grad_input
        if self._first_max is not None and self._first_channels_last:  # compiled 2x2 tiles, channels-last: (N, H, W, C) views
            grad_input = empty_channels_last((n, c, h, w), grad_output.dtype)
            route = compiled.kernel("max_pool_2x2_channels_last_grad")
            g = np.ascontiguousarray(grad_output.transpose(0, 2, 3, 1))
            first, gi = self._first_max.transpose(0, 2, 3, 1), grad_input.transpose(0, 2, 3, 1)
        elif self._first_max is not None:  # compiled 2x2 tiles, C order
            grad_input = np.empty((n, c, h, w), grad_output.dtype)
            route = compiled.kernel("max_pool_2x2_grad")
            g, first, gi = np.ascontiguousarray(grad_output), self._first_max, grad_input
        if self._first_max is not None:

            def route_slice(start, stop):
                route(g[start:stop], first[start:stop], gi[start:stop])

            parallel.over_batch(n, grad_input.size, route_slice)
            return grad_input
        if self._column_max is not None:
            return self._backward_tiles(grad_output)
        ho, wo = grad_output.shape[2:]
        slices = self._slices((ho, wo))
        ph, pw = self.padding
        grad_padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_output.dtype)

        def route_slice(start, stop):
            g, src, top = grad_output[start:stop], source[start:stop], y[start:stop]
            unrouted = xp.ones(top.shape, dtype=bool)  # windows whose maximum is not yet found
            for rows, cols in slices:
                hit = src[:, :, rows, cols] == top
                hit &= unrouted
                unrouted ^= hit
                grad_padded[start:stop, :, rows, cols] += g * hit

        parallel.over_batch(n, source.size, route_slice, xp)
        if ph or pw:
            return grad_padded[:, :, ph : ph + h, pw : pw + w].copy()
        return grad_padded

    def _backward_tiles(self, grad_output):
        """Tiling windows: dE/dy goes to the first of each window's kh rows whose column
        maximum is the window's maximum, then to the first of that row's kw inputs equal
        to it (together: the first maximum in row-major order)."""
        xp = array_module(grad_output)
        source, y, column_max = self._source, self._y, self._column_max
        (kh, kw) = self.kernel_size
        grad_input = empty_like_layout(source, dtype=grad_output.dtype)
        n, c, h, wo = column_max.shape  # scratch, in the column maxima's layout
        if channels_last(column_max):
            grad_columns = self._scratch.get("grad_columns", (n, h, wo, c), grad_output.dtype, xp).transpose(0, 3, 1, 2)
        else:
            grad_columns = self._scratch.get("grad_columns", column_max.shape, grad_output.dtype, xp)

        def route_slice(start, stop):
            part = slice(start, stop)
            _route_to_first_max(column_max[part], y[part], grad_output[part], grad_columns[part], kh, lambda i: (slice(None), slice(None), slice(i, None, kh)))
            _route_to_first_max(source[part], column_max[part], grad_columns[part], grad_input[part], kw, lambda j: (Ellipsis, slice(j, None, kw)))

        parallel.over_batch(source.shape[0], source.size, route_slice, xp)
        return grad_input


def _route_to_first_max(values, maxima, grad, out, k, offset):
    """out[offset(i)] = grad where values[offset(i)] is the first of the k candidates
    i = 0..k-1 equal to ``maxima``, else 0 (the last candidate takes what the others left:
    one of them is the maximum). ``offset(i)`` indexes candidate i, shaped like ``maxima``."""
    xp = array_module(grad)
    unrouted = None  # where no earlier candidate was the maximum
    for i in range(k - 1):
        hit = values[offset(i)] == maxima
        if unrouted is None:
            unrouted = ~hit
        else:
            hit &= unrouted
            unrouted ^= hit
        xp.multiply(grad, hit, out=out[offset(i)])
    if unrouted is None:
        xp.copyto(out[offset(k - 1)], grad)
    else:
        xp.multiply(grad, unrouted, out=out[offset(k - 1)])


class AvgPool2d(_Pool2d):
    """y[n, c, a, b] = (1 / (kh*kw)) * sum over the window of xpad, xpad = x zero-padded.

    The divisor is always kh*kw, padding included (PyTorch's default count_include_pad=True).
    Shapes and defaults as MaxPool2d. Backward: every input in a window receives
    dE/dy / (kh*kw) from that window.
    """

    def forward(self, x):
        hp, wp, ho, wo = self._geometry(x)
        y = self._window_sum(x, (ho, wo))
        y *= 1.0 / (self.kernel_size[0] * self.kernel_size[1])
        self._shapes = (x.shape, y.shape)
        return y

    def backward(self, grad_output):
        shapes = self._shapes
        self.check_grad(grad_output, None if shapes is None else shapes[1])
        scaled = grad_output * (1.0 / (self.kernel_size[0] * self.kernel_size[1]))
        return self._window_scatter(scaled, shapes[0])


class LPPool2d(_Pool2d):
    """Power-average (L_p) pooling: y = (sum over the window of x^p)^(1/p), as PyTorch.

    p = 2 is the L2 pooling of the lectures; p -> inf approaches max pooling, p = 1 is sum
    pooling. No padding. Shapes: (N, C, H, W) -> (N, C, Ho, Wo); stride defaults to the
    kernel. For non-integer p the input must be positive (x^p is undefined below 0).

    Backward: dy/dx = x^(p-1) * y^(1-p) for every x in the window, so
    dE/dx = x^(p-1) * (sum over the windows containing x of dE/dy * y^(1-p)); windows whose
    sum is 0 pass no gradient.
    """

    def __init__(self, norm_type, kernel_size, stride=None):
        super().__init__(kernel_size, stride, 0)
        self.norm_type = float(norm_type)
        if not self.norm_type > 0 or math.isinf(self.norm_type):
            raise ValueError(f"LPPool2d: norm_type must be a positive finite number, got {norm_type!r}")

    def _power(self, a, exponent):
        if exponent == 1:
            return a
        if exponent == 2:
            return a * a
        return a**exponent

    def forward(self, x):
        hp, wp, ho, wo = self._geometry(x)
        p = self.norm_type
        total = self._window_sum(self._power(x, p), (ho, wo))
        y = total ** (1.0 / p) if p != 1 else total
        self.x, self.y = x, y
        self._shapes = (x.shape, y.shape)
        return y

    def backward(self, grad_output):
        shapes = self._shapes
        self.check_grad(grad_output, None if shapes is None else shapes[1])
        xp = array_module(grad_output)
        p, y = self.norm_type, self.y
        if p == 1:
            scaled = grad_output
        else:
            nonzero = y != 0
            safe = xp.where(nonzero, y, 1)
            scaled = xp.where(nonzero, grad_output * self._power(safe, 1 - p), 0).astype(grad_output.dtype, copy=False)
        grad_input = self._window_scatter(scaled, shapes[0])
        if p != 1:
            grad_input *= self._power(self.x, p - 1)
        return grad_input

    def extra_repr(self):
        p = int(self.norm_type) if self.norm_type.is_integer() else self.norm_type
        return f"norm_type={p}, " + super().extra_repr()


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's windows).

    Output pixel (a, b) averages rows floor(a*H/Ho) .. ceil((a+1)*H/Ho) - 1 and columns
    floor(b*W/Wo) .. ceil((b+1)*W/Wo) - 1, so windows may overlap or differ in size when
    the output does not divide the input (AlexNet's 13x13 -> 6x6). ``output_size``: an
    int or a pair (an entry None keeps that input size); 1 is global average pooling.

    The average is separable: y = A_h x A_w^T per (n, c), with A_h[a, r] = 1/len(window a)
    on the window's rows; so y = x @ A^T with A = kron(A_h, A_w) of shape (Ho*Wo, H*W)
    applied to x viewed as (N*C, H*W), and the Jacobian gives dE/dx = dE/dy @ A.
    When the output divides the input the windows tile it and a reshaped mean is used.
    """

    def __init__(self, output_size):
        super().__init__()
        if output_size is None or isinstance(output_size, (int, np.integer)):
            output_size = (output_size, output_size)
        if not (isinstance(output_size, (tuple, list)) and len(output_size) == 2):
            raise TypeError(f"AdaptiveAvgPool2d: output_size must be an int, a pair or None entries, got {output_size!r}")
        for s in output_size:
            if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0):
                raise ValueError(f"AdaptiveAvgPool2d: output_size must be positive ints (or None), got {output_size!r}")
        self.output_size = tuple(None if s is None else int(s) for s in output_size)
        self._matrices = {}
        self._shapes = None
        self._x_channels_last = False

    @staticmethod
    def _averaging(size_in, size_out, dtype):
        matrix = np.zeros((size_out, size_in), dtype=dtype)
        for a in range(size_out):
            start = (a * size_in) // size_out
            end = -((-(a + 1) * size_in) // size_out)
            matrix[a, start:end] = 1.0 / (end - start)
        return matrix

    def _matrix(self, h, w, ho, wo, dtype, xp):
        key = (h, w, ho, wo, np.dtype(dtype).str, xp.__name__)
        if key not in self._matrices:
            a = np.kron(self._averaging(h, ho, np.float64), self._averaging(w, wo, np.float64))
            self._matrices[key] = xp.asarray(a, dtype=dtype)
        return self._matrices[key]

    def forward(self, x):
        self.check_float(x)
        _check_4d(self, x)
        n, c, h, w = x.shape
        ho = h if self.output_size[0] is None else self.output_size[0]
        wo = w if self.output_size[1] is None else self.output_size[1]
        xp = array_module(x)
        if h % ho == 0 and w % wo == 0:
            kh, kw = h // ho, w // wo
            if kh == 1 and kw == 1:
                y = x.copy()
            elif ho == 1 and wo == 1:
                y = x.reshape(n, c, h * w).mean(axis=2).reshape(n, c, 1, 1)
            else:
                y = x.reshape(n, c, ho, kh, wo, kw).mean(axis=(3, 5))
        else:
            a = self._matrix(h, w, ho, wo, x.dtype, xp)
            y = (x.reshape(n * c, h * w) @ a.T).reshape(n, c, ho, wo)
        self._shapes = (x.shape, y.shape)
        self._x_channels_last = channels_last(x)
        return y

    def backward(self, grad_output):
        shapes = self._shapes
        self.check_grad(grad_output, None if shapes is None else shapes[1])
        (n, c, h, w), (_, _, ho, wo) = shapes
        xp = array_module(grad_output)
        if h % ho == 0 and w % wo == 0:
            kh, kw = h // ho, w // wo
            if kh == 1 and kw == 1:
                return grad_output.copy()
            scaled = grad_output * (1.0 / (kh * kw))
            if self._x_channels_last:  # dE/dx in x's layout, so the layer before (a ReLU) reads both alike
                grad_input = empty_channels_last((n, c, h, w), grad_output.dtype, xp)
                xp.copyto(grad_input.transpose(0, 2, 3, 1).reshape(n, ho, kh, wo, kw, c), scaled.transpose(0, 2, 3, 1)[:, :, None, :, None, :])
                return grad_input
            grad_input = xp.empty((n, c, h, w), dtype=grad_output.dtype)
            xp.copyto(grad_input.reshape(n, c, ho, kh, wo, kw), scaled[:, :, :, None, :, None])
            return grad_input
        a = self._matrix(h, w, ho, wo, grad_output.dtype, xp)
        return (grad_output.reshape(n * c, ho * wo) @ a).reshape(n, c, h, w)

    def extra_repr(self):
        ho, wo = self.output_size
        return f"{ho}" if ho == wo else f"{ho}x{wo}"
