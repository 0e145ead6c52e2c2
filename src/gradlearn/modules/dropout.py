"""Dropout (Srivastava et al. 2014), inverted: element-wise (Dropout) or whole channels (Dropout2d)."""

from __future__ import annotations

import numpy as np

from ..backend import array_module, default_generator, resolve_generator
from .base import Module


def _check_p(name, p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not 0 <= p < 1:
        raise ValueError(f"{name}: p must be a probability in [0, 1), got {p!r}")
    return float(p)


def _own_generator(generator):
    """The generator a dropout module draws its masks from: the one given (a Generator,
    or a new one seeded by an int), or, when None, a child spawned from the default
    generator, so that ``gl.manual_seed`` before building the model makes the masks
    reproducible and each module owns a state that a checkpoint can save and restore."""
    if generator is None:
        return default_generator().spawn(1)[0]
    return resolve_generator(generator)


class Dropout(Module):
    """y = x * mask / (1 - p) in training, with mask[i] ~ Bernoulli(1 - p) independently;
    y = x in evaluation (the inverted scaling keeps E[y] = x, so nothing changes at test time).

    Backward: dE/dx = dE/dy * mask / (1 - p) (the same mask). Masks are drawn from
    ``self.generator`` (a numpy Generator; see ``generator=``), in the input's dtype.
    Shapes: any. Default p = 0.5; p must lie in [0, 1).
    """

    def __init__(self, p: float = 0.5, *, generator=None):
        super().__init__()
        self.p = _check_p(type(self).__name__, p)
        self.generator = _own_generator(generator)
        self.mask = None
        self._shape = None

    def _mask_shape(self, x):
        return x.shape

    def forward(self, x):
        self.check_float(x)
        self._mask_shape(x)  # validates
        self._shape = x.shape
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = self.generator.random(self._mask_shape(x), dtype=x.dtype) >= self.p
        mask = array_module(x).asarray(keep, dtype=x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        self.mask = mask
        return x * mask

    def backward(self, grad_output):
        self.check_grad(grad_output, self._shape)
        if self.mask is None:
            return grad_output
        return grad_output * self.mask

    def extra_repr(self):
        return f"p={self.p:g}"


class Dropout2d(Dropout):
    """Channel dropout (Tompson et al. 2015): every channel of every sample is kept (and
    scaled by 1/(1-p)) or zeroed as a whole, for (N, C, H, W) inputs; mask shape
    (N, C, 1, 1). Identity in evaluation. Backward: dE/dx = dE/dy * mask / (1 - p)."""

    def _mask_shape(self, x):
        if x.ndim != 4:
            raise self.error("forward", f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        return x.shape[:2] + (1, 1)
