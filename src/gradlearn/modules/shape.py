"""Modules that only change an array's shape: Flatten and Reshape. Backward restores the shape."""

from __future__ import annotations

from ..backend import array_module, channels_last, empty_channels_last
from .base import Module


class Flatten(Module):
    """Merge dimensions ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default.

    Backward reshapes the gradient back to the input's shape (a channels-last copy when
    the input was channels-last, so the layer before gets its own layout back).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self.in_shape = None
        self._in_channels_last = False

    def forward(self, x):
        ndim = getattr(x, "ndim", None)
        if ndim is None:
            raise self.error("forward", f"expected an array, got {type(x).__name__}", TypeError)
        start = self.start_dim % ndim if ndim else 0
        end = self.end_dim % ndim if ndim else 0
        if not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim) or start > end:
            raise self.error(
                "forward", f"cannot flatten dims {self.start_dim}..{self.end_dim} of an input of shape {tuple(x.shape)}"
            )
        self.in_shape = x.shape
        self._in_channels_last = channels_last(x)
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :])

    def backward(self, grad_output):
        if self.in_shape is None:
            raise self.error("backward", "backward called before forward", RuntimeError)
        if grad_output.size != _prod(self.in_shape):
            raise self.error(
                "backward", f"expected grad_output with {_prod(self.in_shape)} elements, got shape {tuple(grad_output.shape)}"
            )
        if self._in_channels_last:  # the input's layout, so the layer before runs on one layout
            grad_input = empty_channels_last(self.in_shape, grad_output.dtype, array_module(grad_output))
            grad_input[...] = grad_output.reshape(self.in_shape)
            return grad_input
        return grad_output.reshape(self.in_shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Reshape(Module):
    """Reshape each sample: (N, ...) -> (N, *shape), keeping the batch dimension.

    ``Reshape(16, 5, 5)`` turns (N, 400) into (N, 16, 5, 5); one entry may be -1.
    Backward reshapes the gradient back to the input's shape.
    """

    def __init__(self, *shape):
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self.shape = tuple(int(s) for s in shape)
        if sum(s == -1 for s in self.shape) > 1 or any(s == 0 or s < -1 for s in self.shape):
            raise ValueError(f"Reshape: invalid target shape {self.shape}")
        self.in_shape = None

    def forward(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise self.error("forward", f"expected an array with a batch dimension, got {type(x).__name__}", TypeError)
        per_sample = _prod(x.shape[1:])
        known = _prod([s for s in self.shape if s != -1])
        if (-1 in self.shape and per_sample % known) or (-1 not in self.shape and per_sample != known):
            raise self.error(
                "forward", f"cannot reshape an input of shape {tuple(x.shape)} to (N, {', '.join(map(str, self.shape))})"
            )
        self.in_shape = x.shape
        return x.reshape((x.shape[0],) + self.shape)

    def backward(self, grad_output):
        if self.in_shape is None:
            raise self.error("backward", "backward called before forward", RuntimeError)
        if grad_output.size != _prod(self.in_shape):
            raise self.error("backward", f"expected grad_output with {_prod(self.in_shape)} elements, got {tuple(grad_output.shape)}")
        return grad_output.reshape(self.in_shape)

    def extra_repr(self):
        return ", ".join(map(str, self.shape))


def _prod(values):
    out = 1
    for v in values:
        out *= int(v)
    return out
