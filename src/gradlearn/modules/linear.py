"""Linear (fully connected) layer and Identity."""

from __future__ import annotations

import math

from .. import init
from ..backend import resolve_dtype, resolve_generator
from ..parameter import Parameter
from .base import Module
import numpy as np


class Linear(Module):
    """y = x @ W.T + b.

    Shapes: x (N, in_features) -> y (N, out_features); ``weight`` (out_features,
    in_features), ``bias`` (out_features,), as in PyTorch, so weights trade without
    transposes.

    Backward: dE/dx = dE/dy @ W;  dE/dW += dE/dy.T @ x;  dE/db += sum_n dE/dy.

    Default initialisation (PyTorch's): W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype=None, generator=None):
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError(f"Linear: in_features and out_features must be positive, got {in_features}, {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = resolve_dtype(dtype)
        rng = resolve_generator(generator)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        init.uniform_(self.weight, -bound, bound, generator=rng)
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dtype))
            init.uniform_(self.bias, -bound, bound, generator=rng)
        else:
            self.bias = None
        self.x = None

    def forward(self, x):
        weight = self.weight.data
        self.check_float(x, dtype=weight.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise self.error("forward", f"expected input (N, {self.in_features}), got {tuple(x.shape)}")
        self.x = x
        y = x @ weight.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, grad_output):
        x = self.x
        self.check_grad(grad_output, None if x is None else (x.shape[0], self.out_features))
        if self.weight.requires_grad:
            # dE/dW = dE/dy^T @ x. For very long batches (the GEMM's inner dimension) it is
            # computed with the longer side as the product's rows, as OpenBLAS's sgemm is much
            # slower on the other orientation there (see Conv2d); for ordinary batches adding
            # the transposed product would cost more than it saves (1.4 ms for 784x512).
            if x.shape[0] >= 4096 and self.in_features >= self.out_features:
                self.weight.grad += (x.T @ grad_output).T
            else:
                self.weight.grad += grad_output.T @ x
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += grad_output.sum(axis=0)
        if not self.input_grad:
            return None  # the network's data input: nobody needs dE/dx
        return grad_output @ self.weight.data

    def extra_repr(self):
        bias = "" if self.bias is not None else ", bias=False"
        return f"{self.in_features} -> {self.out_features}{bias}"


class Identity(Module):
    """y = x; dE/dx = dE/dy. Accepts and ignores constructor arguments, as PyTorch's."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output
