"""Element-wise non-linearities and the (log-)softmax, each with its closed-form Jacobian."""

from __future__ import annotations

import numpy as np

from .. import compiled, parallel
from ..backend import array_module, flat_views, resolve_dtype
from ..gpu_kernels import kernel
from ..parameter import Parameter
from .base import Module


class Activation(Module):
    """Shared checks for shape-preserving activations: ``forward`` validates, ``backward``
    checks the gradient's shape; subclasses implement ``_forward`` and ``_backward``."""

    def __init__(self):
        super().__init__()
        self.shape = None

    def forward(self, x):
        self.check_float(x)
        self.shape = x.shape
        return self._forward(x)

    def backward(self, grad_output):
        self.check_grad(grad_output, self.shape)
        return self._backward(grad_output)


class Tanh(Activation):
    """y = tanh(x); dy/dx = 1 - y²."""

    def _forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def _backward(self, grad_output):
        y = self.y
        if array_module(grad_output) is not np:  # one fused kernel, not three
            return kernel("tanh_grad")(grad_output, y, array_module(y).empty_like(y, dtype=grad_output.dtype))
        return grad_output * (1 - y * y)


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y). Computed as (1 + tanh(x/2)) / 2, which
    cannot overflow."""

    def _forward(self, x):
        y = np.tanh(x * 0.5)
        y += 1
        y *= 0.5
        self.y = y
        return y

    def _backward(self, grad_output):
        y = self.y
        if array_module(grad_output) is not np:  # one fused kernel, not three
            return kernel("sigmoid_grad")(grad_output, y, array_module(y).empty_like(y, dtype=grad_output.dtype))
        return grad_output * y * (1 - y)


class ReLU(Activation):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0.

    With the compiled kernels (``gradlearn.compiled``) forward and backward are one
    compiled pass each when their arrays hold their elements in the same order (C order or
    channels-last), shared by the kernels' team of threads when large: one core,
    64x32x32x32, forward 2.4 -> 1.2 ms; 128x6x28x28, forward 0.56 -> 0.21 ms and backward
    (NumPy: a comparison, then a product) 0.79 -> 0.35 ms; 64x16x32x32 on 2 cores, forward
    0.46-0.50 ms over the Python workers -> 0.24-0.30 ms on the team. The NumPy path splits
    large batches slice by slice over the workers (``gradlearn.parallel``)."""

    def _forward(self, x):
        if x.ndim == 0:
            self.y = np.maximum(x, 0)
            return self.y
        xp = array_module(x)
        y = xp.empty_like(x)  # x's memory layout (channels-last stays channels-last)
        flat = flat_views(x, y) if xp is np and compiled.available() else None
        if flat is not None:  # one compiled pass, on the kernels' team: NumPy's maximum also handles NaN in its loop
            compiled.kernel("relu")(*flat, threads=parallel.team_threads(x.size))
        else:
            parallel.over_batch(len(x), x.size, lambda start, stop: np.maximum(x[start:stop], 0, out=y[start:stop]), xp)
        self.y = y
        return y

    def _backward(self, grad_output):
        y = self.y
        if y.ndim == 0:
            return grad_output * (y > 0)
        xp = array_module(grad_output)
        grad_input = xp.empty_like(y, dtype=grad_output.dtype)  # the layout of x (and y)
        if xp is not np:  # one fused kernel, not a comparison and a product
            return kernel("relu_grad")(grad_output, y, grad_input)

        flat = flat_views(grad_output, y, grad_input) if compiled.available() else None
        if flat is not None:  # one compiled pass instead of a comparison and a product
            compiled.kernel("relu_grad")(*flat, threads=parallel.team_threads(y.size))
        else:

            def relu_grad_slice(start, stop):
                np.multiply(grad_output[start:stop], y[start:stop] > 0, out=grad_input[start:stop])

            parallel.over_batch(len(y), y.size, relu_grad_slice, xp)
        return grad_input


class LeakyReLU(Activation):
    """y = x where x > 0, else negative_slope * x; dy/dx = 1 or negative_slope."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, x * self.negative_slope)

    def _backward(self, grad_output):
        return np.where(self.positive, grad_output, grad_output * self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """y = x where x > 0, else a * x, with a learned slope ``a`` (He et al. 2015).

    ``weight`` has shape (num_parameters,): one slope shared by all channels (1) or one per
    channel (dimension 1 of the input). Backward: dE/dx = dE/dy * (1 or a);
    dE/da += sum over the slope's elements of dE/dy * x where x <= 0.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype=None):
        super().__init__()
        if int(num_parameters) <= 0:
            raise ValueError(f"PReLU: num_parameters must be positive, got {num_parameters}")
        self.num_parameters = int(num_parameters)
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=resolve_dtype(dtype)))
        self.x = None

    def _slope_shape(self, x):
        if self.num_parameters == 1:
            return (1,) * x.ndim
        return (1, self.num_parameters) + (1,) * (x.ndim - 2)

    def forward(self, x):
        self.check_float(x, dtype=self.weight.dtype)
        if self.num_parameters > 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise self.error("forward", f"expected input (N, {self.num_parameters}, ...), got {tuple(x.shape)}")
        self.x = x
        a = self.weight.data.reshape(self._slope_shape(x))
        return np.where(x > 0, x, a * x)

    def backward(self, grad_output):
        x = self.x
        self.check_grad(grad_output, None if x is None else x.shape)
        positive = x > 0
        a = self.weight.data.reshape(self._slope_shape(x))
        if self.weight.requires_grad:
            contrib = np.where(positive, 0, grad_output * x)
            if self.num_parameters == 1:
                self.weight.grad += contrib.sum()
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                self.weight.grad += contrib.sum(axis=axes)
        return np.where(positive, grad_output, grad_output * a)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


def _check_dim(module, x, dim):
    if not -x.ndim <= dim < x.ndim:
        raise module.error("forward", f"dim {dim} is out of range for an input of shape {tuple(x.shape)}")


class Softmax(Activation):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim`` (shifted by the max for stability).

    Backward: dE/dx = y * (dE/dy - sum_j dE/dy_j y_j).
    """

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def _forward(self, x):
        _check_dim(self, x, self.dim)
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        e /= e.sum(axis=self.dim, keepdims=True)
        self.y = e
        return e

    def _backward(self, grad_output):
        y = self.y
        return y * (grad_output - (grad_output * y).sum(axis=self.dim, keepdims=True))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Activation):
    """y_i = x_i - log sum_j exp(x_j) along ``dim`` (log-sum-exp shifted by the max).

    Backward: dE/dx = dE/dy - softmax(x) * sum_j dE/dy_j.
    """

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def _forward(self, x):
        _check_dim(self, x, self.dim)
        shifted = x - x.max(axis=self.dim, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.y = y
        return y

    def _backward(self, grad_output):
        return grad_output - np.exp(self.y) * grad_output.sum(axis=self.dim, keepdims=True)

    def extra_repr(self):
        return f"dim={self.dim}"
