"""Containers: modules made of modules. Their backward is their forward, reversed.

- ``Sequential(m1, ..., mn)``: y = mn(...m1(x)); backward runs the children in reverse.
- ``Branch(k)``: one input to k copies; backward sums the k gradients (the lectures'
  branch module).
- ``Add()``: k inputs summed; backward hands the same gradient to each (the plus module).
- ``Parallel(m1, ..., mk)``: k inputs, the i-th through mi; k outputs.
- ``Concat(dim=1)``: k inputs joined along ``dim``; backward splits the gradient.
- ``Residual(body, shortcut=None)``: y = body(x) + shortcut(x) (identity when None).

A tuple output feeds the next module of a Sequential as separate arguments, so
``Sequential(Branch(2), Parallel(body, Identity()), Add())`` computes ``Residual(body)``.
An error inside a child is re-raised with the child's place: ``in Sequential[3] ...``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import parallel
from .base import Module, add_error_context


def _call(module, x):
    return module(*x) if type(x) is tuple else module(x)


def _back(module, g):
    return module.backward(*g) if type(g) is tuple else module.backward(g)


class Sequential(Module):
    """y = mn(...m2(m1(x))). Children are named "0", "1", ... (or by an OrderedDict's keys)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: element {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)
        self._sequence = [m for _, m in items]
        self._names = [name for name, _ in items]

    def append(self, module: Module) -> "Sequential":
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        name = str(len(self._sequence))
        setattr(self, name, module)
        self._sequence.append(module)
        self._names.append(name)
        return self

    def __len__(self):
        return len(self._sequence)

    def __iter__(self):
        return iter(self._sequence)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(zip(self._names[index], self._sequence[index])))
        return self._sequence[index]

    def skip_input_grad(self, skip: bool = True) -> "Sequential":
        """The first child decides whether dE/dinput is computed (see Module.skip_input_grad)."""
        object.__setattr__(self, "input_grad", not skip)
        if self._sequence:
            self._sequence[0].skip_input_grad(skip)
        return self

    def forward(self, *inputs):
        x = inputs if len(inputs) != 1 else inputs[0]
        i = 0
        try:
            for i, m in enumerate(self._sequence):
                x = _call(m, x)
        except Exception as exc:
            add_error_context(exc, self, self._names[i])
            raise
        return x

    def backward(self, *grad_outputs):
        g = grad_outputs if len(grad_outputs) != 1 else grad_outputs[0]
        i = len(self._sequence) - 1
        try:
            for i in range(len(self._sequence) - 1, -1, -1):
                g = _back(self._sequence[i], g)
        except Exception as exc:
            add_error_context(exc, self, self._names[i])
            raise
        return g


class Branch(Module):
    """One input to ``k`` outputs, each the input itself: (x) -> (x, ..., x).

    Backward: dE/dx = sum_k dE/dx_k.
    """

    def __init__(self, k: int = 2):
        super().__init__()
        if int(k) < 1:
            raise ValueError(f"Branch: k must be at least 1, got {k}")
        self.k = int(k)
        self.shape = None

    def forward(self, x):
        self.shape = getattr(x, "shape", None)
        return (x,) * self.k

    def backward(self, *grad_outputs):
        if len(grad_outputs) != self.k:
            raise self.error("backward", f"expected {self.k} gradients, got {len(grad_outputs)}")
        for g in grad_outputs:
            self.check_grad(g, self.shape)
        total = grad_outputs[0].copy()
        for g in grad_outputs[1:]:
            total += g
        return total

    def extra_repr(self):
        return f"k={self.k}"


class Add(Module):
    """y = x1 + ... + xk (the lectures' plus module). Backward: dE/dxi = dE/dy for each i."""

    def __init__(self):
        super().__init__()
        self.shape = None
        self.k = 0

    def forward(self, *inputs):
        if not inputs:
            raise self.error("forward", "expected at least one input, got none")
        shape = inputs[0].shape
        for i, x in enumerate(inputs[1:], 1):
            if x.shape != shape:
                raise self.error("forward", f"input {i} has shape {tuple(x.shape)}, expected {tuple(shape)} (input 0's)")
        self.shape, self.k = shape, len(inputs)
        y = parallel.add(inputs[0], inputs[1]) if len(inputs) > 1 else inputs[0].copy()
        for x in inputs[2:]:
            y += x
        return y

    def backward(self, grad_output):
        self.check_grad(grad_output, self.shape)
        return grad_output if self.k == 1 else (grad_output,) * self.k


class Parallel(Module):
    """k inputs to k outputs: (x1, ..., xk) -> (m1(x1), ..., mk(xk)). Backward likewise, per child."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._sequence = list(modules)

    def forward(self, *inputs):
        if len(inputs) != len(self._sequence):
            raise self.error("forward", f"expected {len(self._sequence)} inputs, got {len(inputs)}")
        outputs, i = [], 0
        try:
            for i, (m, x) in enumerate(zip(self._sequence, inputs)):
                outputs.append(m(x))
        except Exception as exc:
            add_error_context(exc, self, i)
            raise
        return tuple(outputs)

    def backward(self, *grad_outputs):
        if len(grad_outputs) != len(self._sequence):
            raise self.error("backward", f"expected {len(self._sequence)} gradients, got {len(grad_outputs)}")
        grads, i = [], 0
        try:
            for i, (m, g) in enumerate(zip(self._sequence, grad_outputs)):
                grads.append(m.backward(g))
        except Exception as exc:
            add_error_context(exc, self, i)
            raise
        return tuple(grads)


class Concat(Module):
    """y = [x1, ..., xk] joined along ``dim`` (default 1, the feature/channel axis).

    Backward splits dE/dy back into the k pieces.
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = int(dim)
        self.sizes = None

    def forward(self, *inputs):
        if not inputs:
            raise self.error("forward", "expected at least one input, got none")
        ref = inputs[0]
        dim = self.dim % ref.ndim if -ref.ndim <= self.dim < ref.ndim else None
        if dim is None:
            raise self.error("forward", f"dim {self.dim} is out of range for an input of shape {tuple(ref.shape)}")
        for i, x in enumerate(inputs[1:], 1):
            if x.ndim != ref.ndim or x.shape[:dim] + x.shape[dim + 1 :] != ref.shape[:dim] + ref.shape[dim + 1 :]:
                raise self.error(
                    "forward",
                    f"input {i} has shape {tuple(x.shape)}, which does not match input 0's {tuple(ref.shape)} "
                    f"outside dim {self.dim}",
                )
        self.sizes = [x.shape[dim] for x in inputs]
        self.out_shape = ref.shape[:dim] + (sum(self.sizes),) + ref.shape[dim + 1 :]
        return np.concatenate(inputs, axis=dim)

    def backward(self, grad_output):
        self.check_grad(grad_output, None if self.sizes is None else self.out_shape)
        cuts = np.cumsum(self.sizes)[:-1]
        pieces = np.split(grad_output, cuts, axis=self.dim)
        return pieces[0] if len(pieces) == 1 else tuple(pieces)

    def extra_repr(self):
        return f"dim={self.dim}"


class Residual(Module):
    """y = body(x) + shortcut(x), the shortcut the identity when None (He et al. 2016).

    Backward: dE/dx = body.backward(dE/dy) + shortcut.backward(dE/dy).
    """

    def __init__(self, body: Module, shortcut: Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        where = "body"
        try:
            y = self.body(x)
            where = "shortcut"
            s = x if self.shortcut is None else self.shortcut(x)
        except Exception as exc:
            add_error_context(exc, self, where)
            raise
        if y.shape != s.shape:
            raise self.error(
                "forward", f"body output {tuple(y.shape)} and shortcut output {tuple(s.shape)} differ; give a shortcut that matches"
            )
        return parallel.add(y, s)

    def backward(self, grad_output):
        where = "body"
        try:
            grad_input = self.body.backward(grad_output)
            where = "shortcut"
            if self.shortcut is None:
                grad_input = parallel.add(grad_input, grad_output)
            else:
                grad_input = parallel.add(grad_input, self.shortcut.backward(grad_output))
        except Exception as exc:
            add_error_context(exc, self, where)
            raise
        return grad_input
