"""Linear (fully connected) layer and Identity."""

from __future__ import annotations

import math

import numpy as np

from .. import blas, init, parallel
from ..backend import array_module, resolve_dtype, resolve_generator
from ..gpu_kernels import add_column_sums, add_product
from ..parameter import Parameter
from .base import Module


TRANSPOSED_WEIGHT_SIZE = blas.MIN_OUT  # elements from which Linear stores its weight transposed (see __init__)


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
        # A large weight is stored transposed (Parameter): x @ W.T and dE/dW's product then
        # run in BLAS's fastest orientation (an MLP's step 0.977x the time, its inference
        # 0.93x; W3's 4096 -> 256 head on the workers: forward slower, backward faster, the
        # step level). Small weights stay C-ordered: there dE/dx's product and NumPy's sums
        # into a Fortran-ordered gradient lost more than the forward gained (a tiny MLP's
        # step 1.11x).
        transposed = self.out_features * self.in_features >= TRANSPOSED_WEIGHT_SIZE
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype), transposed=transposed)
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
        if self._batch_parallel():
            return self._forward_parallel(x)
        y = x @ weight.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def _batch_parallel(self):
        """Whether this call goes through ``gradlearn.parallel`` instead of BLAS's threads:
        when other layers of the network have just run there (``parallel.recently_active``);
        it then splits the batch over the workers when the product is large, and runs it on
        one BLAS thread when small. Measured on a 2-core CPU: an MLP's own layers (784 ->
        512, batch 128) are faster on BLAS's threads (1.1 ms against 1.4 ms forward), so an
        MLP stays there; but after convolutions that ran on the workers, one BLAS-threaded
        product leaves BLAS's threads spinning for ~0.1 s and the convolutions' workers
        lose their core (W3 training 251 -> 197 samples/s with the head on BLAS's threads).
        The plain products stay beside the sliced ones because routing every call through
        ``over_batch`` cost a tiny MLP (2-64-64-2, batch 32) about 10% per step."""
        return parallel.recently_active()

    def _forward_parallel(self, x):
        """The product split over output features: each worker reads x and only its rows of W
        (split over the batch, each read all of W): W3's 4096 -> 256 head at batch 64, 2
        workers, 2.5-3.8 -> 1.5-2.1 ms. Each slice writes a contiguous block, joined once."""
        n = x.shape[0]
        xp = array_module(x)
        weight = self.weight.data
        bias = None if self.bias is None else self.bias.data

        def forward_slice(start, stop):  # output features
            part = x @ weight[start:stop].T
            if bias is not None:
                part += bias[start:stop]
            return part

        parts = parallel.over_batch(self.out_features, n * self.in_features * self.out_features, forward_slice, xp, follower=True)
        return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=1)

    def backward(self, grad_output):
        x = self.x
        self.check_grad(grad_output, None if x is None else (x.shape[0], self.out_features))
        xp = array_module(grad_output)
        if xp is not np:
            return self._backward_gpu(x, grad_output)
        parallel_ok = self._batch_parallel()
        if self.weight.requires_grad:
            # dE/dW += dE/dy^T @ x, added by BLAS as it computes it (blas.add_product). For
            # very long batches (the GEMM's inner dimension) it is computed with the longer
            # side as the product's rows, as OpenBLAS's sgemm is much slower on the other
            # orientation there (see Conv2d); for ordinary batches adding the transposed
            # product would cost more than it saves (1.4 ms for 784x512).
            grad_w = self.weight.grad
            if parallel_ok:

                def weight_grad_slice(start, stop):  # rows of dE/dW: output features
                    blas.add_product(grad_w[start:stop], grad_output[:, start:stop], x, trans_a=True)

                parallel.over_batch(self.out_features, x.size * self.out_features, weight_grad_slice, xp, follower=True)
            elif x.shape[0] >= 4096 and self.in_features >= self.out_features:
                grad_w += (x.T @ grad_output).T
            else:
                blas.add_product(grad_w, grad_output, x, trans_a=True)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += grad_output.sum(axis=0)
        if not self.input_grad:
            return None  # the network's data input: nobody needs dE/dx
        if not parallel_ok:
            return grad_output @ self.weight.data
        weight = self.weight.data
        grad_input = xp.empty(x.shape, dtype=grad_output.dtype)

        def input_grad_slice(start, stop):  # rows of the batch
            xp.matmul(grad_output[start:stop], weight, out=grad_input[start:stop])

        parallel.over_batch(x.shape[0], x.size * self.out_features, input_grad_slice, xp, follower=True)
        return grad_input

    def _backward_gpu(self, x, grad_output):
        """The same products on the GPU, each parameter gradient added in place by one cuBLAS
        GEMM with beta = 1 (dE/dW += dE/dy^T @ x; dE/db += ones @ dE/dy): no product
        arrays and no separate additions, whose kernel launches cost more than the maths."""
        if self.weight.requires_grad and self.weight.transposed:  # its C-contiguous storage: dE/dW.T += x^T @ dE/dy
            add_product(self.weight.grad.T, x, grad_output, trans_a=True)
        elif self.weight.requires_grad:
            add_product(self.weight.grad, grad_output, x, trans_a=True)
        if self.bias is not None and self.bias.requires_grad:
            add_column_sums(self.bias.grad, grad_output)
        return grad_output @ self.weight.data if self.input_grad else None

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
