"""``summary(model, input_shape)``: a table of layers, output shapes, parameters and multiply-adds.

The shapes come from one forward pass, in evaluation mode, on zeros of shape
``(batch_size, *input_shape)`` in the model's dtype. While it runs, every module of the
tree gets a temporary instance attribute ``forward`` that calls the class's forward and
records the shapes of what went in and came out; the attributes are removed (and each
module's training flag restored) afterwards, whatever happens.

Rows: one per module, in registration order, the dotted name indented by depth so nested
containers read as a tree (a module used several times is one row, its type marked "x2",
its multiply-adds summed over the calls, its output shape the last call's). "Params" counts the parameters a module owns itself (a
container owning none shows "--"), so the column sums to the total, and a parameter
shared by several modules is counted once, where it first appears.

Multiply-adds (the convention of the published figures, e.g. AlexNet 0.71 G, VGG-16 15.5 G,
ResNet-18 1.8 G at 224x224): only the products of weights and inputs are counted,

    Linear            out_features * in_features per output row (bias additions not counted)
    Conv2d            output elements * in_channels / groups * kh * kw
    ConvTranspose2d   input elements * out_channels / groups * kh * kw

and every other module (BatchNorm, pooling, activations, dropout, shape changes, additions)
counts 0: they cost O(elements), negligible next to the convolutions, and the published
figures leave them out. The table is :data:`MULTIPLY_ADDS`; a module type is looked up
along its class's MRO by name, so a subclass of Conv2d is counted as a Conv2d.

Memory: parameters = number of parameters x itemsize of the dtype (float32: 4 bytes);
activations = the elements of the new arrays that leaf modules return in one forward
pass, for one sample, x itemsize (views, such as Flatten's output, are not counted again).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from ..backend import array_module, get_default_dtype


def _kernel_elements(kernel_size) -> int:
    if isinstance(kernel_size, (tuple, list)):
        out = 1
        for k in kernel_size:
            out *= int(k)
        return out
    return int(kernel_size) ** 2


def _linear_mult_adds(module, inputs, output) -> int:
    return int(output.size) * int(module.in_features)


def _conv_mult_adds(module, inputs, output) -> int:
    per_output = (int(module.in_channels) // int(getattr(module, "groups", 1))) * _kernel_elements(module.kernel_size)
    return int(output.size) * per_output


def _conv_transpose_mult_adds(module, inputs, output) -> int:
    per_input = (int(module.out_channels) // int(getattr(module, "groups", 1))) * _kernel_elements(module.kernel_size)
    return int(inputs[0].size) * per_input


#: Multiply-adds of one call, by module type name: f(module, inputs, output) -> int.
#: Types not listed count 0 (see the module docstring for why).
MULTIPLY_ADDS = {
    "Linear": _linear_mult_adds,
    "Conv1d": _conv_mult_adds,
    "Conv2d": _conv_mult_adds,
    "ConvTranspose2d": _conv_transpose_mult_adds,
}


def mult_adds_of(module, inputs, output) -> int:
    """The multiply-adds of one call of ``module`` (0 for types not in :data:`MULTIPLY_ADDS`)."""
    for cls in type(module).__mro__:
        fn = MULTIPLY_ADDS.get(cls.__name__)
        if fn is not None:
            return fn(module, inputs, output)
    return 0


@dataclass
class LayerRow:
    """One row of the table."""

    name: str  # dotted name ("" for the model itself)
    depth: int  # nesting depth, 0 for top-level children
    type: str  # class name
    input_shapes: list  # shapes of the inputs of the last call ([] when never called)
    output_shape: tuple | list | None  # shape (or list of shapes) of the last output, None when never called
    params: int  # parameters this module owns itself
    trainable: int  # of which requires_grad
    mult_adds: int  # over every call in the pass, for the whole batch
    calls: int = 0
    is_leaf: bool = True


@dataclass
class ModelSummary:
    """What :func:`summary` found: the rows and the totals. ``str()`` gives the table."""

    rows: list
    input_shape: tuple
    batch_size: int
    dtype: np.dtype
    total_params: int
    trainable_params: int
    total_mult_adds: int  # for the batch
    param_bytes: int
    activation_bytes: int  # for one sample
    extra: dict = field(default_factory=dict)

    @property
    def mult_adds_per_sample(self) -> int:
        return self.total_mult_adds // self.batch_size

    def __str__(self) -> str:
        return format_summary(self)

    def __repr__(self) -> str:
        return (
            f"ModelSummary({self.total_params:,} parameters, {self.mult_adds_per_sample / 1e6:,.2f} M "
            f"multiply-adds per sample, input {tuple(self.input_shape)})"
        )


def _shape_of(value):
    if type(value) is tuple:
        return [_shape_of(v) for v in value]
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else type(value).__name__


def _new_elements(output, inputs) -> int:
    """Elements of the arrays in ``output`` that are not views of an input."""
    if type(output) is tuple:
        return sum(_new_elements(o, inputs) for o in output)
    if not hasattr(output, "size"):
        return 0
    xp = array_module(output)
    for x in inputs:
        if hasattr(x, "shape") and xp.may_share_memory(output, x):
            return 0
    return int(output.size)


def summary(model, input_shape, batch_size: int = 1, file=None, *, print_table: bool = True) -> ModelSummary:
    """Print (to ``file``, standard output by default) and return a layer table of ``model``.

    Args:
        model: a Module.
        input_shape: the shape of one sample, without the batch dimension: ``(3, 224, 224)``,
            ``(784,)`` or an int.
        batch_size: the batch dimension of the zeros run through the model (default 1);
            output shapes and multiply-adds are for that batch, activation memory for one sample.
        file: where to print; ``print_table=False`` prints nothing.

    Returns:
        a :class:`ModelSummary` (``.rows``, ``.total_params``, ``.trainable_params``,
        ``.total_mult_adds``, ``.param_bytes``, ``.activation_bytes``); ``str()`` of it is the table.
    """
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"summary: input_shape must be a tuple of ints such as (3, 32, 32), got {input_shape!r}") from None
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"summary: input_shape must be non-empty with positive sizes, got {input_shape}")
    if int(batch_size) < 1:
        raise ValueError(f"summary: batch_size must be at least 1, got {batch_size}")
    batch_size = int(batch_size)
    if not hasattr(model, "named_modules") or not callable(getattr(model, "forward", None)):
        raise TypeError(f"summary: expected a gradlearn Module, got {type(model).__name__}")

    params = list(model.parameters())
    dtype = params[0].dtype if params else get_default_dtype()
    xp = array_module(params[0].data) if params else np
    x = xp.zeros((batch_size,) + input_shape, dtype=dtype)

    named = list(model.named_modules())
    records = {id(m): {"calls": 0, "inputs": [], "output": None, "mult_adds": 0, "new": 0} for _, m in named}
    leaves = {id(m) for _, m in named if not m._modules}
    installed, training = [], [(m, m.training) for _, m in named]

    def recorder(module):
        original = module.forward  # the class's method, or an instance attribute already there
        record = records[id(module)]
        leaf = id(module) in leaves

        def forward(*inputs):
            output = original(*inputs)
            record["calls"] += 1
            record["inputs"] = [_shape_of(v) for v in inputs]
            record["output"] = _shape_of(output)
            record["mult_adds"] += mult_adds_of(module, inputs, output)
            if leaf:
                record["new"] += _new_elements(output, inputs)
            return output

        return forward

    try:
        for _, m in named:
            previous = m.__dict__.get("forward")
            installed.append((m, previous))
            object.__setattr__(m, "forward", recorder(m))
        model.eval()
        try:
            model(x)
        except Exception as exc:
            message = (
                f"summary: the forward pass on zeros of shape {tuple(x.shape)} failed (is input_shape "
                f"{input_shape} right for this model?): {exc}"
            )
            try:
                new = type(exc)(message)
            except Exception:
                raise exc from None
            raise new from exc
    finally:
        for m, previous in installed:
            if previous is None:
                object.__delattr__(m, "forward")
            else:
                object.__setattr__(m, "forward", previous)
        for m, flag in training:
            object.__setattr__(m, "training", flag)

    rows, seen = [], set()
    for name, m in named:
        own = own_trainable = 0
        for p in m._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            own += p.size
            own_trainable += p.size if p.requires_grad else 0
        record = records[id(m)]
        if name == "" and m._modules and own == 0:
            continue  # the model itself: its children are the rows
        rows.append(
            LayerRow(
                name=name or type(m).__name__,
                depth=name.count(".") if name else 0,
                type=type(m).__name__,
                input_shapes=record["inputs"],
                output_shape=record["output"],
                params=own,
                trainable=own_trainable,
                mult_adds=record["mult_adds"],
                calls=record["calls"],
                is_leaf=not m._modules,
            )
        )
    total = sum(p.size for p in params)
    trainable = sum(p.size for p in params if p.requires_grad)
    itemsize = np.dtype(dtype).itemsize
    new_elements = sum(records[id(m)]["new"] for _, m in named)
    result = ModelSummary(
        rows=rows,
        input_shape=input_shape,
        batch_size=batch_size,
        dtype=np.dtype(dtype),
        total_params=total,
        trainable_params=trainable,
        total_mult_adds=sum(r.mult_adds for r in rows),
        param_bytes=total * itemsize,
        activation_bytes=(new_elements // batch_size) * itemsize,
    )
    if print_table:
        print(format_summary(result), file=file if file is not None else sys.stdout)
    return result


def _format_shape(shape) -> str:
    if shape is None:
        return "(not run)"
    if isinstance(shape, list):
        return ", ".join(_format_shape(s) for s in shape)
    if isinstance(shape, tuple):
        return "(" + ", ".join(str(s) for s in shape) + ")"
    return str(shape)


def _megabytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.2f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n:,} ({n / size:,.2f} {unit})"
    return f"{n:,}"


def format_summary(s: ModelSummary) -> str:
    """The table of a :class:`ModelSummary` as text."""
    header = ("Layer", "Type", "Output shape", "Params", "Trainable", "Mult-adds")
    body = []
    for r in s.rows:
        container = not r.is_leaf and r.params == 0
        body.append(
            (
                "  " * r.depth + r.name,
                r.type + (f" x{r.calls}" if r.calls > 1 else ""),
                _format_shape(r.output_shape),
                "--" if container else f"{r.params:,}",
                "--" if container else f"{r.trainable:,}",
                "--" if container else f"{r.mult_adds:,}",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells):
        left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3])]
        right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:])]
        return "  ".join(left + right).rstrip()

    rule_width = sum(widths) + 2 * (len(widths) - 1)
    out = ["=" * rule_width, line(header), "=" * rule_width]
    out += [line(row) for row in body]
    per_sample = s.mult_adds_per_sample
    dtype = s.dtype.name
    out += [
        "=" * rule_width,
        f"Input shape: {_format_shape((s.batch_size,) + tuple(s.input_shape))} ({dtype})",
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.total_params - s.trainable_params:,}",
        f"Total mult-adds: {_count(s.total_mult_adds)}"
        + (f"; per sample {_count(per_sample)}" if s.batch_size > 1 else ""),
        "-" * rule_width,
        f"Parameter memory ({dtype}): {_megabytes(s.param_bytes)}",
        f"Activation memory, forward, one sample ({dtype}): {_megabytes(s.activation_bytes)}",
        "=" * rule_width,
    ]
    return "\n".join(out)
