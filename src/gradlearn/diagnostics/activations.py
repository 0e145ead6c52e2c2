"""Per-layer activation statistics: what every leaf module outputs, in numbers.

The practical guide: inspect the hidden units. In good training they are "sparse across
samples and across features"; in bad training units ignore the input (dead ReLUs,
saturated tanh/sigmoid) or are strongly correlated. For each leaf module's output
(shape (N, units) or (N, C, ...)) this reports:

- mean and std over the whole batch;
- dead (ReLU only): the fraction of units that are zero for every sample of the batch,
  a unit being a feature of an (N, F) output or a channel of an (N, C, H, W) one (dead
  when zero at every sample and position). A dead ReLU gets no gradient, ever;
- saturated (Tanh and Sigmoid only): the fraction of activations in the flat tails,
  |tanh| > 0.97, or sigmoid < 0.03 or > 0.97, where the derivative is below about 0.06.

Recording works by temporarily replacing each leaf's ``forward`` with a wrapper (an
instance attribute, so the class is untouched) and removing the wrappers afterwards;
:class:`ActivationRecorder` keeps them while you train.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backend import to_device
from ..modules.activation import ReLU, Sigmoid, Tanh

TANH_SATURATION = 0.97
SIGMOID_SATURATION = 0.03  # below this or above 1 - this


@dataclass
class LayerStats:
    """Statistics of one leaf module's output on one batch (``dead``/``saturated`` are
    None where they do not apply)."""

    name: str
    module: str
    shape: tuple
    mean: float
    std: float
    dead: float | None = None
    saturated: float | None = None


def _kind(module):
    if isinstance(module, ReLU) or type(module).__name__ in ("ReLU", "ReLU6"):
        return "relu"
    if isinstance(module, Tanh) or type(module).__name__ == "Tanh":
        return "tanh"
    if isinstance(module, Sigmoid) or type(module).__name__ == "Sigmoid":
        return "sigmoid"
    return None


def layer_stats(name: str, module, output) -> LayerStats | None:
    """The :class:`LayerStats` of ``module``'s ``output`` (None for a non-array output)."""
    if not (hasattr(output, "shape") and hasattr(output, "dtype")) or output.dtype.kind != "f" or output.size == 0:
        return None
    y = to_device(output, "cpu")  # the statistics are read on the host, from a GPU output too
    kind = _kind(module)
    dead = saturated = None
    if kind == "relu":
        if y.ndim >= 2:
            other_axes = (0,) + tuple(range(2, y.ndim))
            alive = (y != 0).any(axis=other_axes)
        else:
            alive = np.asarray([(y != 0).any()])
        dead = 1.0 - float(alive.mean())
    elif kind == "tanh":
        saturated = float((np.abs(y) > TANH_SATURATION).mean())
    elif kind == "sigmoid":
        saturated = float(((y < SIGMOID_SATURATION) | (y > 1 - SIGMOID_SATURATION)).mean())
    description = repr(module)
    if len(description) > 28:
        description = description[:27] + "…"
    return LayerStats(
        name=name,
        module=description,
        shape=tuple(y.shape),
        mean=float(y.mean(dtype=np.float64)),
        std=float(y.std(dtype=np.float64)),
        dead=dead,
        saturated=saturated,
    )


@dataclass
class ActivationReport:
    """Per-layer statistics, in forward order; ``outputs`` holds copies of the outputs
    when recorded with ``keep_outputs=True`` (for :func:`plot_activations`)."""

    layers: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)

    def __getitem__(self, name) -> LayerStats:
        for s in self.layers:
            if s.name == name:
                return s
        raise KeyError(f"no recorded layer named {name!r}; recorded: {[s.name for s in self.layers]}")

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def table(self) -> str:
        """The statistics as a text table, one row per layer."""
        w = max([14] + [len(s.name) for s in self.layers])
        header = f"{'layer':<{w}} {'module':<28} {'output shape':<18} {'mean':>10} {'std':>10} {'dead':>7} {'saturated':>10}"
        lines = [header, "-" * len(header)]
        for s in self.layers:
            dead = "" if s.dead is None else f"{100 * s.dead:.1f}%"
            sat = "" if s.saturated is None else f"{100 * s.saturated:.1f}%"
            lines.append(
                f"{s.name:<{w}} {s.module:<28} {str(s.shape):<18} {s.mean:>10.4g} {s.std:>10.4g} {dead:>7} {sat:>10}"
            )
        warnings = []
        for s in self.layers:
            if s.dead is not None and s.dead >= 0.5:
                warnings.append(f"{s.name}: {100 * s.dead:.0f}% of the ReLU units are dead (lower the rate, check the init or biases, try LeakyReLU)")
            if s.saturated is not None and s.saturated >= 0.5:
                warnings.append(f"{s.name}: {100 * s.saturated:.0f}% of the activations are saturated (scale the init or the inputs down)")
        if warnings:
            lines.append("")
            lines.extend("warning: " + w for w in warnings)
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _leaves(model):
    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]
    return [(name or type(m).__name__, m) for name, m in leaves]


class ActivationRecorder:
    """Records the output statistics of every leaf module of ``model`` while it runs.

    Use as a context manager (or ``start()`` / ``stop()``) around training or
    evaluation::

        with ActivationRecorder(model, every=50) as recorder:
            trainer.fit(...)
        print(recorder.report())             # the last recorded batch
        recorder.history['1']                # LayerStats of layer '1' at each recording

    Args:
        every: record one forward call in ``every`` per layer (statistics cost a few
            passes over the output).
        keep_outputs: keep a copy of the last recorded output of each layer (for plots).

    While recording, each leaf's ``forward`` is an instance attribute wrapping the
    class's one; ``stop()`` removes the wrappers (restoring any that were there before).
    """

    def __init__(self, model, every: int = 1, keep_outputs: bool = False):
        if int(every) < 1:
            raise ValueError(f"ActivationRecorder: every must be at least 1, got {every}")
        self.model = model
        self.every = int(every)
        self.keep_outputs = bool(keep_outputs)
        self.history = {}
        self.outputs = {}
        self._order = []
        self._saved = None

    @property
    def recording(self) -> bool:
        return self._saved is not None

    def start(self) -> "ActivationRecorder":
        if self._saved is not None:
            return self
        self._saved = []
        for name, module in _leaves(self.model):
            previous = module.__dict__.get("forward")
            self._saved.append((module, previous))
            object.__setattr__(module, "forward", self._wrap(name, module, module.forward))
            if name not in self._order:
                self._order.append(name)
        return self

    def stop(self) -> None:
        if self._saved is None:
            return
        for module, previous in self._saved:
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                object.__setattr__(module, "forward", previous)
        self._saved = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _wrap(self, name, module, forward):
        calls = [0]
        recorder = self

        def recording_forward(*inputs):
            output = forward(*inputs)
            calls[0] += 1
            if (calls[0] - 1) % recorder.every == 0:
                stats = layer_stats(name, module, output)
                if stats is not None:
                    recorder.history.setdefault(name, []).append(stats)
                    if recorder.keep_outputs:
                        recorder.outputs[name] = np.array(to_device(output, "cpu"), copy=True)
            return output

        recording_forward.__wrapped__ = forward
        return recording_forward

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self.history.clear()
        self.outputs.clear()

    def report(self) -> ActivationReport:
        """The statistics of the last recorded call of each layer, in forward order."""
        layers = [self.history[name][-1] for name in self._order if self.history.get(name)]
        return ActivationReport(layers, dict(self.outputs))


def activation_stats(model, x, *, mode: str = "eval", keep_outputs: bool = False, print_table: bool = False) -> ActivationReport:
    """One forward pass of ``model`` on ``x``, with every leaf's output statistics.

    ``mode='eval'`` (default) runs in evaluation mode, so BatchNorm's running statistics
    are not updated and Dropout is off; ``'train'`` runs in training mode; ``'current'``
    keeps the model's modes. The modes are restored afterwards, and the wrappers removed.
    ``keep_outputs`` keeps each layer's output (for :func:`plot_activations`);
    ``print_table`` prints the table. Returns an :class:`ActivationReport`.
    """
    if mode not in ("eval", "train", "current"):
        raise ValueError(f"activation_stats: mode must be 'eval', 'train' or 'current', got {mode!r}")
    modes = [(m, m.training) for m in model.modules()]
    if mode != "current":
        model.train(mode == "train")
    recorder = ActivationRecorder(model, keep_outputs=keep_outputs)
    try:
        with recorder, np.errstate(over="ignore", invalid="ignore"):
            model(x)
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)
    report = recorder.report()
    if print_table:
        print(report.table())
    return report
