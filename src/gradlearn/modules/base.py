"""Module: the unit of a network, with an explicit forward and backward pass.

A module maps inputs to outputs (``forward``) and gradients of the outputs back to
gradients of the inputs (``backward``), *adding* the gradient of each of its parameters
into ``Parameter.grad``:

    y = F(x, W)                 forward(x) -> y
    dE/dx = dE/dy . dF/dx       backward(dE/dy) -> dE/dx
    dE/dW += dE/dy . dF/dW      (accumulated, so shared weights and repeated calls add up)

``forward`` caches only what ``backward`` needs. Modules never modify their inputs or the
gradients they are given; an array a module returns belongs to the caller.

Multi-input / multi-output convention: a module with K inputs takes them as K positional
arguments and its backward returns a tuple of K gradients; a module with K outputs
returns a tuple from forward and takes K gradients in backward. Containers pass a tuple
output to the next module as separate arguments, so ``Sequential(Branch(2),
Parallel(body, Identity()), Add())`` is a residual block.
"""

from __future__ import annotations

import copy

import numpy as np

from ..backend import array_module, parse_device, resolve_dtype, to_device
from ..parameter import Parameter, pack_parameters


class Module:
    """Base class of every layer, activation, container and loss.

    Subclasses implement ``forward(*inputs)`` and ``backward(*grad_outputs)``. Parameters
    and child modules assigned as attributes are registered automatically, in order, so
    ``named_parameters()`` yields PyTorch's names (``0.weight``, ``body.2.bias``).
    """

    training: bool = True
    # False: backward still adds every parameter gradient but skips dE/dinput and returns
    # None (the first layer of a network, whose input is data: PyTorch skips it likewise).
    input_grad: bool = True
    _structure_version: int = 0  # bumped whenever any module gains or loses a parameter or child

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # registration ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if params is None:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__() before assigning attributes")
        modules, buffers = d["_modules"], d["_buffers"]
        if (
            type(value) is not Parameter
            and not isinstance(value, (Parameter, Module))
            and name not in params
            and name not in modules
            and name not in buffers
        ):  # the common case in a forward pass: caching an array for backward
            d[name] = value
            return
        if isinstance(value, (Parameter, Module)) or name in params or name in modules:
            Module._structure_version += 1  # invalidates every cached packing (see zero_grad)
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in buffers:
            buffers[name] = value
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Register a non-learned array (running statistics) saved in ``state_dict``."""
        self._buffers[name] = array
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, array)

    def add_module(self, name: str, module: "Module") -> None:
        setattr(self, name, module)

    # the protocol -----------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs):
        return self.forward(*inputs)

    # traversal ---------------------------------------------------------------------------
    def named_children(self):
        yield from self._modules.items()

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = ""):
        """Every module in the tree, depth first, with its dotted name ('' for self)."""
        seen = set()
        stack = [(prefix, self)]
        while stack:  # an explicit stack: no recursive closure, no reference cycle per call
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child) for child_name, child in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(name, Parameter) pairs with PyTorch's dotted names; a shared parameter once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, module in modules:
            for name, p in module._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = ""):
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # modes -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (Dropout drops, BatchNorm uses batch statistics); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode: the same as ``train(False)``."""
        return self.train(False)

    def skip_input_grad(self, skip: bool = True) -> "Module":
        """Let backward skip dE/dinput where nobody needs it: the data input of a network.

        On a leaf it sets ``input_grad = not skip``; a Sequential passes it to its first
        child. Trainer.fit does this for the model it trains (and undoes it afterwards),
        saving the first layer's input-gradient product (about 10% of an MLP's step).
        """
        object.__setattr__(self, "input_grad", not skip)
        return self

    # gradients and the flat vector -------------------------------------------------------
    def flat_parameters(self):
        """Pack every parameter into one flat vector (idempotent); see ``pack_parameters``."""
        flat = pack_parameters(self.parameters())
        object.__setattr__(self, "_packed", (flat, Module._structure_version))
        return flat

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero: one fill of the flat gradient vector when
        the model is packed and its structure has not changed since (no walk of the tree)."""
        packed = self.__dict__.get("_packed")
        if packed is not None and packed[1] == Module._structure_version and not packed[0].superseded:
            packed[0].grad.fill(0)
            return
        params = list(self.parameters())
        if not params:
            return
        flat = params[0]._flat
        if flat is not None and not flat.superseded and len(flat.params) == len(params) and all(p._flat is flat for p in params):
            object.__setattr__(self, "_packed", (flat, Module._structure_version))  # next time: one fill
            flat.zero_grad()
            return
        for p in params:
            p.zero_grad()

    # state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Copies of every parameter and persistent buffer, keyed by PyTorch-style names."""
        state = {}
        for mod_name, module in self.named_modules():
            for name, p in module._parameters.items():
                key = f"{mod_name}.{name}" if mod_name else name
                state.setdefault(key, p.data.copy())
            for name, b in module._buffers.items():
                if name in module._non_persistent or b is None:
                    continue
                key = f"{mod_name}.{name}" if mod_name else name
                state[key] = b.copy()
        return state

    def _state_slots(self):
        """name -> (module, attribute, is_parameter) for everything state_dict saves."""
        slots = {}
        for mod_name, module in self.named_modules():
            for name in module._parameters:
                slots.setdefault(f"{mod_name}.{name}" if mod_name else name, (module, name, True))
            for name, b in module._buffers.items():
                if name not in module._non_persistent and b is not None:
                    slots[f"{mod_name}.{name}" if mod_name else name] = (module, name, False)
        return slots

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays from ``state_dict`` into this module's parameters and buffers.

        Everything is checked before anything is written, so a bad dict leaves the module
        untouched. With ``strict`` a missing or unexpected key raises ``KeyError``; a
        wrong shape always raises ``ValueError`` naming the key and both shapes. Values
        may be NumPy arrays or anything convertible (a torch tensor works). Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict({type(self).__name__}): " + "; ".join(parts))
        staged = []
        for key, (module, name, is_param) in slots.items():
            if key not in state_dict:
                continue
            value = _to_array(state_dict[key], key)
            current = module._parameters[name].data if is_param else module._buffers[name]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"load_state_dict({type(self).__name__}): '{key}' has shape "
                    f"{tuple(value.shape)}, expected {tuple(current.shape)}"
                )
            if value.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict({type(self).__name__}): '{key}' has dtype {value.dtype}")
            staged.append((current, value))
        for current, value in staged:
            xp = array_module(current)
            current[...] = xp.asarray(value, dtype=current.dtype)
        return missing, unexpected

    # dtype and device --------------------------------------------------------------------
    def to(self, dtype_or_device) -> "Module":
        """Cast to a dtype (float32/float64) or move to a device ('cpu', 'cuda'), in place.

        Casting unpacks the parameters (their flat vector, if any, is superseded); pack
        again, or build the optimizer, afterwards. Moving packed parameters moves the two
        flat arrays and re-makes the views, so the packing survives. Without CuPy or a CUDA
        device, ``to('cuda')`` raises a RuntimeError that says which is missing.
        """
        if isinstance(dtype_or_device, str) and not dtype_or_device.startswith("float"):
            return self._to_device(parse_device(dtype_or_device))
        dtype = resolve_dtype(dtype_or_device)
        for m in self.modules():
            for name, p in m._parameters.items():
                if p.dtype != dtype:
                    if p._flat is not None:
                        p._flat.superseded = True
                        p._flat = None
                    p._data = p._data.astype(dtype)
                    p._grad = p._grad.astype(dtype)
            for name, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    m._buffers[name] = b.astype(dtype)
                    object.__setattr__(m, name, m._buffers[name])
        return self

    def _to_device(self, device) -> "Module":
        params = list(self.parameters())
        moved = {}
        for p in params:
            flat = p._flat
            if flat is not None and not flat.superseded and id(flat) not in moved:
                moved[id(flat)] = flat
                flat.data = to_device(flat.data, device)
                flat.grad = to_device(flat.grad, device)
                for q, s in zip(flat.params, flat.slices):
                    q._data = q._view(flat.data[s])
                    q._grad = q._view(flat.grad[s])
            elif flat is None or flat.superseded:
                p._data = to_device(p._data, device)
                p._grad = to_device(p._grad, device)
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = to_device(b, device)
                    object.__setattr__(m, name, m._buffers[name])
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def copy(self) -> "Module":
        """A deep copy with its own (unpacked) parameters."""
        clone = copy.deepcopy(self)
        for m in clone.modules():
            m.__dict__.pop("_packed", None)  # the copied packing no longer holds the clone's arrays
        for p in clone.parameters():
            if p._flat is not None:
                p._data = p._data.copy(order="K")  # (a transposed parameter stays transposed)
                p._grad = p._grad.copy(order="K")
                p._flat = None
        return clone

    # messages ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        extra = self.extra_repr()
        if extra:
            lines.append("  " + extra)
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)

    def error(self, method: str, message: str, kind=ValueError):
        """An exception of ``kind`` reading ``<module>.<method>: <message>``."""
        name = type(self).__name__ if self._modules else repr(self)
        return kind(f"{name}.{method}: {message}")

    def check_float(self, x, method: str = "forward", name: str = "input", dtype=None):
        """Raise a TypeError unless ``x`` is a floating array (of ``dtype`` when given)."""
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        if kind != "f":
            got = f"dtype {x.dtype}" if kind is not None else type(x).__name__
            raise self.error(method, f"expected {name} to be a floating-point array, got {got}", TypeError)
        if dtype is not None and x.dtype != dtype:
            raise self.error(
                method,
                f"expected {name} of dtype {dtype} (the module's parameters), got {x.dtype}; "
                f"convert the input with .astype(np.{dtype}) or the module with .to(np.{x.dtype})",
                TypeError,
            )

    def check_grad(self, grad_output, expected_shape, method: str = "backward"):
        """Raise unless ``grad_output`` has the shape of the output forward produced."""
        if expected_shape is None:
            raise self.error(method, "backward called before forward", RuntimeError)
        shape = getattr(grad_output, "shape", None)
        if shape != expected_shape:
            raise self.error(
                method, f"expected grad_output of shape {tuple(expected_shape)} (the output's), got {_shape_str(grad_output)}"
            )


def _shape_str(x):
    shape = getattr(x, "shape", None)
    return str(tuple(shape)) if shape is not None else type(x).__name__


def _to_array(value, key):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        value = np.asarray(value)
    return value


def add_error_context(exc: BaseException, container: Module, key) -> None:
    """Prefix ``exc``'s message with where in ``container`` it happened, in place.

    The innermost failing module writes ``Conv2d(6 -> 16, 5x5).forward: expected ...``;
    each enclosing container adds its index, giving
    ``in Sequential[3] Conv2d(6 -> 16, 5x5).forward: expected ...`` or, nested,
    ``in Sequential[1][3] ...``.
    """
    try:
        path = exc.__dict__.get("_gl_path")
        if path is None:
            exc._gl_message = exc.args[0] if len(exc.args) == 1 else str(exc)
            exc._gl_path = path = []
        path.insert(0, key)
        where = "".join(f"[{k}]" for k in path)
        exc.args = (f"in {type(container).__name__}{where} {exc._gl_message}",)
    except Exception:  # an exception type that does not take a new message: leave it
        pass
