"""Normalisation layers: BatchNorm1d, BatchNorm2d (Ioffe & Szegedy 2015) and
LocalContrastNorm (Jarrett et al. 2009), forward and backward side by side."""

from __future__ import annotations

import math

import numpy as np

from .. import compiled, parallel
from ..backend import array_module, channels_last, empty_channels_last, empty_like_layout, resolve_dtype
from ..gpu_kernels import channel_moments, kernel
from ..parameter import Parameter
from .base import Module
from .conv import _Scratch


class _BatchNorm(Module):
    """Batch normalisation over every dimension but the channel (dimension 1).

    Training (statistics of the batch, M = number of values per channel):

        mu = mean(x),  var = mean((x - mu)^2)   (biased),  sigma = sqrt(var + eps)
        xhat = (x - mu) / sigma,   y = gamma * xhat + beta
        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

    ``momentum=None`` uses the cumulative average (factor 1 / num_batches_tracked), as PyTorch.
    Evaluation: mu and var are the running statistics (constants), so y is affine in x.

    Backward in training, mu and sigma depend on x; the closed form (sums over the
    batch and spatial positions of each channel) is

        dE/dx = (1/M) * gamma / sigma * (M * dE/dy - sum(dE/dy) - xhat * sum(dE/dy * xhat))
        dE/dgamma += sum(dE/dy * xhat),   dE/dbeta += sum(dE/dy)

    and in evaluation dE/dx = gamma / sigma_running * dE/dy.

    Speed: the forward caches x - mu and 1/sigma, never forming xhat (y = (x - mu) *
    (gamma / sigma) + beta; sum(dE/dy * xhat) = sum(dE/dy * (x - mu)) / sigma), and the
    per-channel sums of products (the variance and sum(dE/dy * xhat)) are length-L dot
    products (a stacked matmul) with no product array: on 64x16x32x32 float32 (2-core CPU)
    forward 5.5 -> 3.9 ms, backward 5.5 -> 4.6 ms. Large inputs are computed in slices of
    channels on all cores (``gradlearn.parallel``); a channel's arithmetic is the same either way.

    State (PyTorch's names): ``weight`` (gamma, ones) and ``bias`` (beta, zeros) when
    ``affine``; buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (0-d int64) when ``track_running_stats``. Defaults: eps=1e-5,
    momentum=0.1, affine=True, track_running_stats=True, dtype float32.
    """

    _input_dims = ()
    _input_desc = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype=None):
        super().__init__()
        name = type(self).__name__
        if int(num_features) <= 0:
            raise ValueError(f"{name}: num_features must be positive, got {num_features}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = resolve_dtype(dtype)
        if self.affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._dtype = dtype
        self._cache = None
        self._scratch = _Scratch()  # the channels-last path's x - mu and its vector of ones

    def _param_dtype(self):
        if self.weight is not None:
            return self.weight.dtype
        if self.running_mean is not None:
            return self.running_mean.dtype
        return None

    def _check_input(self, x):
        self.check_float(x, dtype=self._param_dtype())
        if x.ndim not in self._input_dims:
            raise self.error("forward", f"expected {self._input_desc}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise self.error(
                "forward",
                f"expected {self.num_features} channels (dimension 1), got {x.shape[1]} (input shape {tuple(x.shape)})",
            )

    @staticmethod
    def _as3d(a):
        """(N, C, ...) viewed as (N, C, L); statistics reduce axes 0 and 2. L is given, not
        -1, which NumPy cannot infer for an empty batch."""
        return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))

    @staticmethod
    def _channel_sum(a3):
        return a3.sum(axis=2).sum(axis=0)

    @classmethod
    def _channel_dot(cls, a3, b3):
        """sum over axes 0 and 2 of a3 * b3 without the product array: one dot product of
        length L per (n, c) (a stacked (1, L) @ (L, 1) matmul), then a sum over n."""
        n, c, length = a3.shape
        if length < 64:  # stacks of tiny products cost more than the temporary
            return cls._channel_sum(a3 * b3)
        xp = array_module(a3)
        return xp.matmul(a3[:, :, None, :], b3[:, :, :, None]).reshape(n, c).sum(axis=0)

    def forward(self, x):
        self._check_input(x)
        xp = array_module(x)
        x3 = self._as3d(x)
        n, c, length = x3.shape
        count = n * length
        use_batch = self.training or not self.track_running_stats
        if use_batch and count <= 1:
            raise self.error(
                "forward",
                f"expected more than 1 value per channel when training, got input shape {tuple(x.shape)}",
            )
        if xp is not np:
            return self._forward_gpu(x, use_batch, count)
        if channels_last(x):
            return self._forward_channels_last(x, use_batch, count)
        centred = xp.empty(x3.shape, dtype=x.dtype)
        y = xp.empty(x3.shape, dtype=x.dtype)
        mean = xp.empty(c, dtype=x.dtype) if use_batch else self.running_mean
        var = xp.empty(c, dtype=x.dtype) if use_batch else self.running_var
        inv_std = xp.empty(c, dtype=x.dtype)

        def normalise_channels(c0, c1):  # every statistic is per channel
            xs, cs = x3[:, c0:c1], centred[:, c0:c1]
            if use_batch:
                mean[c0:c1] = self._channel_sum(xs) * (1.0 / count)
            np.subtract(xs, mean[None, c0:c1, None], out=cs)
            if use_batch:
                var[c0:c1] = self._channel_dot(cs, cs) * (1.0 / count)
            inv_std[c0:c1] = 1.0 / xp.sqrt(var[c0:c1] + self.eps)
            scale = inv_std[c0:c1] * self.weight.data[c0:c1] if self.affine else inv_std[c0:c1]
            np.multiply(cs, scale[None, :, None], out=y[:, c0:c1])
            if self.affine:
                y[:, c0:c1] += self.bias.data[None, c0:c1, None]

        parallel.over_batch(c, 4 * x.size, normalise_channels, xp)  # slices of channels, on the cores
        if self.training and self.track_running_stats:
            self._update_running(mean, var, count)
        # the cache keeps x - mu and 1/sigma (xhat = centred * inv_std is never formed)
        self._cache = ("batch" if use_batch else "running", centred, inv_std, count, x.shape)
        return y.reshape(x.shape)

    def _update_running(self, mean, var, count):
        self.num_batches_tracked += 1
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)
        else:
            factor = self.momentum
        self.running_mean *= 1.0 - factor
        self.running_mean += factor * mean
        self.running_var *= 1.0 - factor
        self.running_var += (factor * count / (count - 1)) * var

    def backward(self, grad_output):
        cache = self._cache
        self.check_grad(grad_output, None if cache is None else cache[4])
        mode, centred, inv_std, count, shape = cache
        if mode.endswith("channels-last"):
            return self._backward_channels_last(grad_output, mode, centred, inv_std, count)
        if mode.startswith("gpu"):
            return self._backward_gpu(grad_output, mode, centred, inv_std, count)
        dy = self._as3d(grad_output)
        xp = array_module(grad_output)
        c = dy.shape[1]
        need_sums = mode == "batch" or (self.affine and (self.weight.requires_grad or self.bias.requires_grad))
        sum_dy = xp.empty(c, dtype=dy.dtype)
        sum_dy_xhat = xp.empty(c, dtype=dy.dtype)
        grad_input = xp.empty(dy.shape, dtype=dy.dtype)

        def grad_channels(c0, c1):  # every sum is per channel
            dys, cs, inv = dy[:, c0:c1], centred[:, c0:c1], inv_std[c0:c1]
            if need_sums:
                sum_dy[c0:c1] = self._channel_sum(dys)
                sum_dy_xhat[c0:c1] = self._channel_dot(dys, cs) * inv
            scale = self.weight.data[c0:c1] * inv if self.affine else inv
            gi = grad_input[:, c0:c1]
            if mode == "batch":
                np.subtract(dys, (sum_dy[c0:c1] * (1.0 / count))[None, :, None], out=gi)
                gi -= cs * (sum_dy_xhat[c0:c1] * inv * (1.0 / count))[None, :, None]
                gi *= scale[None, :, None]
            else:
                np.multiply(dys, scale[None, :, None], out=gi)

        parallel.over_batch(c, 4 * dy.size, grad_channels, xp)  # slices of channels, on the cores
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += sum_dy_xhat
            if self.bias.requires_grad:
                self.bias.grad += sum_dy
        return grad_input.reshape(shape)

    # the GPU: the same maths in a few kernels (gradlearn.gpu_kernels) ---------------------
    # Training: forward 4 GPU calls (zeroed sums; sum x and x^2 in float64, one kernel; the
    # per-channel statistics with the running update; y), backward 4 (zeroed sums; sum dy and
    # dy * (x - mean); the per-channel coefficients with the parameter gradients; dE/dx),
    # against about 20 and 15 CuPy operations. The cache keeps x and the mean, not x - mean.
    # On the GPU each call costs the host tens of µs, far more than a BatchNorm's arithmetic.

    def _per_channel(self, a, ndim):
        """A (C,) array viewed to broadcast against this layer's (N, C, ...) arrays of ``ndim``."""
        return a.reshape((1, self.num_features) + (1,) * (ndim - 2))

    def _forward_gpu(self, x, use_batch, count):
        xp = array_module(x)
        c, t, d = self.num_features, x.dtype.type, x.ndim
        weight = self.weight.data if self.affine else t(1)
        mean, inv_std, scale = (xp.empty(c, x.dtype) for _ in range(3))
        if use_batch:
            sums = channel_moments(x, x)  # sum(x), sum(x^2)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                running_mean, running_var = self.running_mean, self.running_var
            else:  # the running statistics stay as they are
                factor, running_mean, running_var = 0.0, xp.empty(c, x.dtype), xp.empty(c, x.dtype)
            kernel("bn_moments")(
                sums[0], sums[1], weight, 1.0 / count, float(self.eps), t(factor), t(count / max(count - 1, 1)),
                mean, inv_std, scale, running_mean, running_var,
            )  # fmt: skip
        else:
            kernel("bn_running")(self.running_mean, self.running_var, weight, t(self.eps), mean, inv_std, scale)
        bias = self._per_channel(self.bias.data, d) if self.affine else t(0)
        y = empty_like_layout(x)
        kernel("bn_normalize")(x, self._per_channel(mean, d), self._per_channel(scale, d), bias, y)
        self._cache = ("gpu-batch" if use_batch else "gpu-running", (x, mean), inv_std, count, x.shape)
        return y

    def _backward_gpu(self, grad_output, mode, kept, inv_std, count):
        x, mean = kept
        xp = array_module(grad_output)
        c, t, d, dtype = self.num_features, grad_output.dtype.type, grad_output.ndim, grad_output.dtype
        sums = channel_moments(grad_output, x, mean)  # sum(dy), sum(dy * (x - mean))
        mean_dy, k, scale = (xp.empty(c, dtype) for _ in range(3))
        # a parameter's gradient is added into its own array; a frozen or absent one's is discarded
        weight_grad, bias_grad = (
            p.grad if p is not None and p.requires_grad else xp.zeros(c, dtype) for p in (self.weight, self.bias)
        )
        kernel("bn_grad_moments")(
            sums[0], sums[1], inv_std, self.weight.data if self.affine else t(1), 1.0 / count,
            mean_dy, k, scale, weight_grad, bias_grad,
        )  # fmt: skip
        grad_input = empty_like_layout(x)
        if mode == "gpu-batch":
            per_channel = (self._per_channel(a, d) for a in (mean, mean_dy, k, scale))
            kernel("bn_input_grad")(grad_output, x, *per_channel, grad_input)
        else:  # the running statistics are constants: dE/dx = dE/dy * weight / sigma
            xp.multiply(grad_output, self._per_channel(scale, d), out=grad_input)
        return grad_input

    # channels-last (N, C, H, W) arrays: memory (N*H*W, C) --------------------------------
    # A pixel-major convolution writes its output channels-last; slices of channels of such
    # an array are short strided runs, so this path works on whole (N*H*W, C) rows instead:
    # per-channel sums are ones (1, rows) @ (rows, C) products, and per-channel constants
    # are tiled to one sample's H*W*C values so every operation runs along long rows. Large
    # inputs split their samples over the cores, each slice adding its partial sums (in
    # slice order). Measured on 64x16x32x32 float32 (2 cores): forward 2.1-2.3 ms and
    # backward 2.3-2.5 ms, about the contiguous path's 1.9-2.2 and 2.2-2.3; the channel
    # slices of a channels-last array took 6.3 ms forward. With the compiled kernels each
    # pass is one kernel call over all the rows, shared by the kernels' team of threads
    # (gradlearn.compiled): 64x16x32x32, forward 1.3-1.4 -> 1.1-1.3 ms, backward 1.6-1.8 ->
    # 1.2-1.7 ms; 64x64x8x8, 0.6-0.7 -> 0.4-0.6 and 0.6 -> 0.4 ms (alternating runs).

    def _ones(self, length, dtype):
        """``length`` ones, kept between calls (per-channel sums are ``ones @ rows``)."""
        return self._scratch.get("ones", (length,), dtype, np, fill=1.0)

    @staticmethod
    def _sum_in_order(parts):
        """The slices' partial sums (arrays, or tuples of arrays) added in slice order."""
        total = parts[0]
        for p in parts[1:]:
            total = tuple(a + b for a, b in zip(total, p)) if isinstance(total, tuple) else total + p
        return total

    @staticmethod
    def _row_helpers(L, c, dtype):
        """(tiled, as2d): a per-channel (C,) vector repeated over a sample's H*W positions
        (one value per element of a (N, H*W*C) row), and (m, H*W*C) rows seen as (m*H*W, C)."""
        return (lambda v: np.tile(v.astype(dtype, copy=False), L)), (lambda a: a.reshape(-1, c))

    def _forward_channels_last(self, x, use_batch, count):
        n, c, h, w = x.shape
        L = h * w
        rows = x.transpose(0, 2, 3, 1).reshape(n, L * c)  # views: sample n's H*W*C values in a row
        y = empty_channels_last(x.shape, x.dtype)
        y_rows = y.transpose(0, 2, 3, 1).reshape(n, L * c)
        tiled, as2d = self._row_helpers(L, c, x.dtype)
        if not use_batch:
            inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
            scale = inv_std * self.weight.data if self.affine else inv_std
            if compiled.available():  # (x - mu) * scale + beta in one compiled pass (NumPy: two)
                centre, scale = self.running_mean.astype(x.dtype), np.asarray(scale, x.dtype)
                beta = self.bias.data.astype(x.dtype) if self.affine else np.zeros(c, x.dtype)
                compiled.kernel("bn_scale_shift")(as2d(rows), centre, scale, beta, as2d(y_rows), threads=parallel.team_threads(x.size))
            else:
                shift = -self.running_mean * scale + (self.bias.data if self.affine else 0)
                scale_t, shift_t = tiled(scale), tiled(shift)

                def affine_slice(start, stop):
                    np.multiply(rows[start:stop], scale_t, out=y_rows[start:stop])
                    y_rows[start:stop] += shift_t

                parallel.over_batch(n, 2 * x.size, affine_slice, np)
            kept = (x, self.running_mean.copy())  # for dE/dgamma
            self._cache = ("running, channels-last", kept, inv_std.astype(x.dtype, copy=False), count, x.shape)
            return y
        if compiled.available():
            return self._forward_channels_last_compiled(x, rows, y, y_rows, count)
        centred = self._scratch.get("centred", (n, h, w, c), x.dtype, np).transpose(0, 3, 1, 2)
        centred_rows = centred.transpose(0, 2, 3, 1).reshape(n, L * c)
        ones = self._ones(n * L, x.dtype)  # a slice of m samples sums with ones[:m*L]

        def sum_slice(start, stop):
            return ones[: (stop - start) * L] @ as2d(rows[start:stop])

        mean = self._sum_in_order(parallel.over_batch(n, x.size, sum_slice, np)) * (1.0 / count)
        mean_t = tiled(mean)

        def centre_slice(start, stop):  # x - mu, and the sum of its square (in y, overwritten below)
            np.subtract(rows[start:stop], mean_t, out=centred_rows[start:stop])
            np.multiply(centred_rows[start:stop], centred_rows[start:stop], out=y_rows[start:stop])
            return ones[: (stop - start) * L] @ as2d(y_rows[start:stop])

        var = self._sum_in_order(parallel.over_batch(n, 2 * x.size, centre_slice, np)) * (1.0 / count)
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        scale = inv_std * self.weight.data if self.affine else inv_std
        scale_t, bias_t = tiled(scale), (tiled(self.bias.data) if self.affine else None)

        def normalise_slice(start, stop):
            np.multiply(centred_rows[start:stop], scale_t, out=y_rows[start:stop])
            if bias_t is not None:
                y_rows[start:stop] += bias_t

        parallel.over_batch(n, 2 * x.size, normalise_slice, np)
        if self.training and self.track_running_stats:
            self._update_running(mean, var, count)
        self._cache = ("batch, channels-last", centred, inv_std, count, x.shape)
        return y

    def _forward_channels_last_compiled(self, x, rows, y, y_rows, count):
        """Training mode with the compiled kernels: two passes over x. The first sums x - s
        and its square per channel in double (s: the batch's first pixel, so the variance
        E[(x-s)^2] - E[x-s]^2 does not lose digits when the mean is large against the
        spread), the second writes y = (x - mu) * scale + beta. The backward reads x and mu
        (the NumPy path keeps x - mu: one more pass, and an array per layer).
        ResNet-20's 64x16x32x32 (2-core CPU, alternating runs): forward 2.3-2.7 -> 1.3-1.6 ms."""
        n, c, h, w = x.shape
        as2d = self._row_helpers(h * w, c, x.dtype)[1]
        threads = parallel.team_threads(x.size)
        shift = np.ascontiguousarray(x[0, :, 0, 0])
        s1, s2 = np.zeros(c), np.zeros(c)
        compiled.kernel("bn_sums")(as2d(rows), shift, s1, s2, threads=threads)
        mean_shifted = s1 / count
        var = np.maximum(s2 / count - mean_shifted * mean_shifted, 0.0)
        mean = (shift + mean_shifted).astype(x.dtype)
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        scale = (inv_std * self.weight.data if self.affine else inv_std).astype(x.dtype, copy=False)
        beta = self.bias.data if self.affine else np.zeros(c, x.dtype)
        compiled.kernel("bn_scale_shift")(as2d(rows), mean, scale, beta, as2d(y_rows), threads=threads)
        if self.training and self.track_running_stats:
            self._update_running(mean, var.astype(x.dtype), count)
        self._cache = ("batch of x, channels-last", (x, mean), inv_std, count, x.shape)
        return y

    def _backward_channels_last(self, grad_output, mode, kept, inv_std, count):
        """``kept``: x - mu (training, NumPy path), or (x, mu) (training with the compiled
        kernels, and evaluation mode)."""
        n, c, h, w = grad_output.shape
        L = h * w
        dtype = grad_output.dtype
        if not channels_last(grad_output):  # one copy into this path's layout
            dy = empty_channels_last(grad_output.shape, dtype)
            dy[...] = grad_output
            grad_output = dy
        dy_rows = grad_output.transpose(0, 2, 3, 1).reshape(n, L * c)
        grad_input = empty_channels_last(grad_output.shape, dtype)
        gi_rows = grad_input.transpose(0, 2, 3, 1).reshape(n, L * c)
        tiled, as2d = self._row_helpers(L, c, dtype)
        scale = inv_std * self.weight.data if self.affine else inv_std
        batch = mode.startswith("batch")
        need_sums = batch or (self.affine and (self.weight.requires_grad or self.bias.requires_grad))
        fused = compiled.available()  # one compiled pass for the sums, one for dE/dx (gradlearn.compiled)
        threads = parallel.team_threads(grad_output.size)
        source, mean = (kept, None) if mode.startswith("batch,") else kept  # x - mu, or x and mu
        source_rows = source.transpose(0, 2, 3, 1).reshape(n, L * c)
        centre = np.zeros(c, dtype) if mean is None else np.asarray(mean, dtype)  # the kernels read source - centre
        if need_sums:  # sum dy * xhat = inv * sum dy * (x - mu)
            ones = self._ones(n * L, dtype)

            def sums_slice(start, stop):  # sum dy and sum dy * source (the product in grad_input, overwritten below)
                np.multiply(dy_rows[start:stop], source_rows[start:stop], out=gi_rows[start:stop])
                front = ones[: (stop - start) * L]
                return front @ as2d(dy_rows[start:stop]), front @ as2d(gi_rows[start:stop])

            if fused:
                sums = np.zeros((2, c))
                compiled.kernel("bn_grad_sums")(as2d(dy_rows), as2d(source_rows), centre, sums[0], sums[1], threads=threads)
                sum_dy, sum_dy_source = sums.astype(dtype)
            else:
                sum_dy, sum_dy_source = self._sum_in_order(parallel.over_batch(n, 2 * grad_output.size, sums_slice, np))
            if mean is not None and not fused:
                sum_dy_source = sum_dy_source - mean * sum_dy
            sum_dy_xhat = sum_dy_source * inv_std
        scale_t = None if batch and fused else tiled(scale)
        if batch and fused:  # scale * (dy - mean(dy)) - (x - mu) * scale * inv * mean(dy * xhat), one pass
            k_centred = (scale * inv_std * sum_dy_xhat * (1.0 / count)).astype(dtype, copy=False)
            k_const = (scale * sum_dy * (1.0 / count)).astype(dtype, copy=False)
            compiled.kernel("bn_input_grad")(as2d(dy_rows), as2d(source_rows), centre, np.asarray(scale, dtype), k_const, k_centred,
                                             as2d(gi_rows), threads=threads)
            grad_slice = None
        elif batch:
            k_centred = tiled(scale * inv_std * sum_dy_xhat * (1.0 / count))
            k_const = tiled(scale * sum_dy * (1.0 / count))
            centred_rows = source_rows if mean is None else source_rows - tiled(mean)  # x and mu kept by a compiled forward

            def grad_slice(start, stop):  # scale * (dy - mean(dy)) - (x - mu) * scale * inv * mean(dy * xhat)
                gi = gi_rows[start:stop]
                np.multiply(dy_rows[start:stop], scale_t, out=gi)
                gi -= k_const
                gi -= centred_rows[start:stop] * k_centred
        else:

            def grad_slice(start, stop):  # y is affine in x
                np.multiply(dy_rows[start:stop], scale_t, out=gi_rows[start:stop])

        if grad_slice is not None:
            parallel.over_batch(n, 3 * grad_output.size, grad_slice, np)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += sum_dy_xhat
            if self.bias.requires_grad:
                self.bias.grad += sum_dy
        return grad_input

    def extra_repr(self):
        parts = [f"{self.num_features}"]
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps:g}")
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if not self.affine:
            parts.append("affine=False")
        if not self.track_running_stats:
            parts.append("track_running_stats=False")
        return ", ".join(parts)


class BatchNorm1d(_BatchNorm):
    __doc__ = (
        "Batch normalisation of (N, C) or (N, C, L) inputs, per channel C.\n\n" + _BatchNorm.__doc__
    )
    _input_dims = (2, 3)
    _input_desc = "a 2-D (N, C) or 3-D (N, C, L) input"


class BatchNorm2d(_BatchNorm):
    __doc__ = "Batch normalisation of (N, C, H, W) inputs, per channel C.\n\n" + _BatchNorm.__doc__
    _input_dims = (4,)
    _input_desc = "a 4-D input (N, C, H, W)"


# Local contrast normalisation ------------------------------------------------------------------


class LocalContrastNorm(Module):
    """Local contrast normalisation across features and space (Jarrett et al., ICCV 2009).

    With w[p, q] = g[p] g[q] / C, g a 1-D Gaussian window of ``kernel_size`` taps and
    standard deviation ``sigma`` normalised to sum 1 (so w sums to 1 over (channel, p, q)),
    and (F a)[i, j] = sum_{p, q} g[p] g[q] a[i + p, j + q] the spatial filter (window
    centred on (i, j); zero padding at the borders, so near an edge the window weight that
    falls outside the image counts zeros), per sample:

        subtractive:  m = F(S),   S = (1/C) sum_c x_c,   v_c = x_c - m       (m shared by every channel)
        divisive:     sigma_ij = sqrt(F(Q)_ij),  Q = (1/C) sum_c v_c^2
                      cbar = mean_{ij} sigma_ij   (one number per sample)
                      d = max(cbar, sigma),       y_c = v_c / d

    Defaults: kernel_size 9, sigma = kernel_size / 4 (2.25 for 9x9). Shapes (N, C, H, W)
    -> same, C = ``num_channels``. No parameters.

    Backward (the exact Jacobian of the above, including cbar and the max):

        dv_c  = dE/dy_c / d                                 (direct path)
        dd    = -sum_c dE/dy_c * y_c / d
        dsigma_ij = dd_ij [sigma_ij > cbar] + (1/(H W)) sum_{kl} dd_kl [sigma_kl <= cbar]
        dQ    = F^T(dsigma / (2 sigma))
        dv_c += (2/C) v_c dQ
        dm    = -sum_c dv_c,   dS = F^T(dm),   dE/dx_c = dv_c + dS / C

    F is separable and applied as two small banded matrices, F(a) = T_H a T_W^T with
    T[i, i'] = g[i' - i + (k-1)//2], and F^T(a) = T_H^T a T_W. At a tie sigma_ij == cbar
    the max is not differentiable; the gradient goes to cbar. A constant image (sigma = 0
    everywhere) gives y = 0 with the divisor clamped to the dtype's smallest normal number.
    """

    def __init__(self, num_channels: int, kernel_size: int = 9, sigma=None):
        super().__init__()
        if int(num_channels) <= 0:
            raise ValueError(f"LocalContrastNorm: num_channels must be positive, got {num_channels}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size <= 0:
            raise ValueError(f"LocalContrastNorm: kernel_size must be a positive int, got {kernel_size!r}")
        self.num_channels = int(num_channels)
        self.kernel_size = int(kernel_size)
        self.sigma = self.kernel_size / 4.0 if sigma is None else float(sigma)
        if not self.sigma > 0:
            raise ValueError(f"LocalContrastNorm: sigma must be positive, got {sigma!r}")
        offsets = np.arange(self.kernel_size) - (self.kernel_size - 1) / 2.0
        g = np.exp(-(offsets**2) / (2 * self.sigma**2))
        self.window = g / g.sum()  # the 1-D window g (float64); w = outer(g, g) / C
        self._matrices = {}
        self._cache = None

    def _band(self, size, dtype, xp):
        key = (size, np.dtype(dtype).str, xp.__name__)
        if key not in self._matrices:
            k = self.kernel_size
            left = (k - 1) // 2
            t = np.zeros((size, size))
            for p in range(k):
                offset = p - left  # output i reads input i + offset
                idx = np.arange(max(0, -offset), min(size, size - offset))
                t[idx, idx + offset] = self.window[p]
            self._matrices[key] = xp.asarray(t, dtype=dtype)
        return self._matrices[key]

    def _filter(self, a, th, tw):
        """F(a) for a of shape (N, H, W): T_H a T_W^T."""
        return th @ (a @ tw.T)

    def _filter_t(self, a, th, tw):
        """F^T(a) = T_H^T a T_W."""
        return th.T @ (a @ tw)

    def forward(self, x):
        self.check_float(x)
        if x.ndim != 4:
            raise self.error("forward", f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        if c != self.num_channels:
            raise self.error(
                "forward", f"expected {self.num_channels} input channels, got {c} (input shape {tuple(x.shape)})"
            )
        xp = array_module(x)
        th, tw = self._band(h, x.dtype, xp), self._band(w, x.dtype, xp)
        inv_c = 1.0 / c
        mean = self._filter(x.sum(axis=1) * inv_c, th, tw)  # (N, H, W)
        v = x - mean[:, None]
        local_var = self._filter((v * v).sum(axis=1) * inv_c, th, tw)
        local_std = xp.sqrt(xp.maximum(local_var, 0))
        cbar = local_std.mean(axis=(1, 2))  # (N,)
        above = local_std > cbar[:, None, None]
        divisor = xp.where(above, local_std, cbar[:, None, None])
        divisor = xp.maximum(divisor, np.finfo(x.dtype).tiny)
        y = v / divisor[:, None]
        self._cache = (v, y, local_std, above, divisor, th, tw, x.shape)
        return y

    def backward(self, grad_output):
        cache = self._cache
        self.check_grad(grad_output, None if cache is None else cache[7])
        v, y, local_std, above, divisor, th, tw, shape = cache
        xp = array_module(grad_output)
        n, c, h, w = shape
        grad_v = grad_output / divisor[:, None]
        grad_divisor = -(grad_output * y).sum(axis=1) / divisor  # (N, H, W)
        to_cbar = xp.where(above, 0, grad_divisor).sum(axis=(1, 2)) * (1.0 / (h * w))  # (N,)
        grad_std = xp.where(above, grad_divisor, 0) + to_cbar[:, None, None]
        positive = local_std > 0
        grad_var = xp.where(positive, grad_std / xp.where(positive, 2 * local_std, 1), 0)
        grad_q = self._filter_t(grad_var, th, tw)
        grad_v += v * (grad_q * (2.0 / c))[:, None]
        grad_mean = -grad_v.sum(axis=1)
        grad_s = self._filter_t(grad_mean, th, tw)
        grad_v += (grad_s * (1.0 / c))[:, None]
        return grad_v

    def extra_repr(self):
        return f"{self.num_channels}, kernel_size={self.kernel_size}, sigma={self.sigma:g}"
