"""``profile(model, input_shape, batch_size, repeat)``: where the time of a training step goes.

Each leaf module (a layer, an activation; not a container) of a *copy* of the model gets
temporary instance attributes ``forward`` and ``backward`` that call the class's methods
and add the elapsed wall time (``time.perf_counter``) to that layer's account; on the GPU
each timed call starts and ends with a device synchronisation, so it is the layer's real
time, not the time to queue its kernels. One
training step is then run ``warmup`` times unmeasured (buffers, caches) and ``repeat``
times measured, in training mode, on a standard-normal batch ``(batch_size, *input_shape)``
in the model's dtype, with a standard-normal gradient of the output:

    y = model(x);  model.backward(g)            (parameter gradients zeroed before each step)

and, as in the Trainer, the first layer computes no gradient for the data input.

A layer's time is the mean over the measured steps of the time spent in its forward and
backward (a module used several times in the network sums its calls). Only leaves are
timed, so nothing is counted twice; the whole step is timed too, and the difference is the
containers' own overhead. The report's rows are sorted by total time, slowest first, so the
layer to optimise is the first one.

The caller's model is not touched (its gradients, BatchNorm running statistics and modes
stay as they were); the copy costs one model's memory.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..backend import array_module


@dataclass
class ProfileRow:
    """One leaf module's mean time per training step, in seconds."""

    name: str
    module: str
    forward: float
    backward: float
    calls: int  # forward calls per step

    @property
    def total(self) -> float:
        return self.forward + self.backward


@dataclass
class ProfileReport:
    """Per-layer times (rows, slowest first) and the whole step's, in seconds per step."""

    model: str
    input_shape: tuple
    batch_size: int
    repeat: int
    rows: list = field(default_factory=list)
    step_forward: float = 0.0
    step_backward: float = 0.0

    @property
    def layers_total(self) -> float:
        return sum(r.total for r in self.rows)

    @property
    def step_total(self) -> float:
        return self.step_forward + self.step_backward

    @property
    def slowest(self) -> ProfileRow | None:
        return self.rows[0] if self.rows else None

    def table(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        total = self.layers_total or 1.0
        w = max([5] + [len(r.name) for r in self.rows])
        m = min(40, max([6] + [len(r.module) for r in self.rows]))
        lines = [
            f"profile of {self.model}: batch {self.batch_size} x {shape}, training step (forward + backward), "
            f"mean of {self.repeat} steps",
            f"{'#':>3}  {'layer':<{w}}  {'module':<{m}}  {'forward ms':>10}  {'backward ms':>11}  {'total ms':>9}  {'share':>6}",
        ]
        lines.append("-" * len(lines[-1]))
        for i, r in enumerate(self.rows, 1):
            module = r.module if len(r.module) <= m else r.module[: m - 3] + "..."
            calls = f" x{r.calls}" if r.calls > 1 else ""
            lines.append(
                f"{i:>3}  {r.name + calls:<{w}}  {module:<{m}}  {1e3 * r.forward:>10.3f}  {1e3 * r.backward:>11.3f}  "
                f"{1e3 * r.total:>9.3f}  {100 * r.total / total:>5.1f}%"
            )
        lines.append("-" * len(lines[1]))
        overhead = self.step_total - self.layers_total
        lines.append(
            f"layers {1e3 * self.layers_total:.3f} ms; whole step {1e3 * self.step_total:.3f} ms "
            f"(forward {1e3 * self.step_forward:.3f}, backward {1e3 * self.step_backward:.3f}; "
            f"containers and calls {1e3 * max(overhead, 0.0):.3f}); "
            f"{self.batch_size / self.step_total if self.step_total > 0 else float('inf'):,.0f} samples/s"
        )
        if self.slowest is not None:
            s = self.slowest
            lines.append(f"slowest: {s.name} {s.module} ({100 * s.total / total:.0f}% of the layers' time)")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _leaves(model):
    seen = set()
    for name, m in model.named_modules():
        if m._modules or id(m) in seen:
            continue
        seen.add(id(m))
        yield (name or type(m).__name__), m


def _model_dtype(model):
    for p in model.parameters():
        return p.dtype
    return np.dtype(np.float32)


def profile(model, input_shape, batch_size: int = 32, repeat: int = 5, *, warmup: int = 3, seed: int = 0,
            print_table: bool = False, file=None) -> ProfileReport:  # fmt: skip
    """Time every leaf module's forward and backward on a copy of ``model``.

    Args:
        input_shape: the shape of one input sample, e.g. (1, 28, 28) or (784,).
        batch_size: the batch of the measured steps (default 32).
        repeat: measured steps (default 5); ``warmup`` unmeasured steps before (default 3:
            on a 2-core CPU the first steps of LeNet-5 took up to 3x the steady time).
        seed: seeds the random input and output gradient.
        print_table: print :meth:`ProfileReport.table` to ``file`` (default sys.stdout).

    Returns a :class:`ProfileReport` whose rows are sorted slowest first.
    """
    input_shape = tuple(int(s) for s in (input_shape if hasattr(input_shape, "__len__") else (input_shape,)))
    if int(batch_size) < 1 or int(repeat) < 1 or int(warmup) < 0:
        raise ValueError(f"profile: batch_size and repeat must be positive and warmup >= 0, got {batch_size}, {repeat}, {warmup}")
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"profile: input_shape must be positive sizes, got {input_shape}")
    clone = model.copy().train()
    clone.skip_input_grad()  # as in training: the data input needs no dE/dx
    dtype = _model_dtype(clone)
    params = list(clone.parameters())
    xp = array_module(params[0].data) if params else np
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.standard_normal((int(batch_size), *input_shape)).astype(dtype))

    times = {}  # name -> [forward seconds, backward seconds, forward calls]
    leaves = list(_leaves(clone))
    for name, module in leaves:
        account = times.setdefault(name, [0.0, 0.0, 0])
        object.__setattr__(module, "forward", _timed(module.forward, account, 0, xp))
        object.__setattr__(module, "backward", _timed(module.backward, account, 1, xp))

    grad_output = None
    step_forward = step_backward = 0.0
    for i in range(int(warmup) + int(repeat)):
        if i == int(warmup):
            for account in times.values():
                account[:] = [0.0, 0.0, 0]
            step_forward = step_backward = 0.0
        clone.zero_grad()
        started = time.perf_counter()
        y = clone(x)
        _synchronise(xp)
        middle = time.perf_counter()
        if grad_output is None:
            outputs = y if isinstance(y, tuple) else (y,)
            grad_output = tuple(xp.asarray(rng.standard_normal(o.shape).astype(o.dtype)) for o in outputs)
        clone.backward(*grad_output)
        _synchronise(xp)
        ended = time.perf_counter()
        step_forward += middle - started
        step_backward += ended - middle

    n = int(repeat)
    rows = [ProfileRow(name, repr(module), times[name][0] / n, times[name][1] / n, times[name][2] // n) for name, module in leaves]
    rows.sort(key=lambda r: r.total, reverse=True)
    report = ProfileReport(type(model).__name__, input_shape, int(batch_size), n, rows, step_forward / n, step_backward / n)
    if print_table:
        print(report.table(), file=file or sys.stdout)
    return report


def _timed(method, account, slot, xp):
    def timed(*args):
        _synchronise(xp)
        started = time.perf_counter()
        result = method(*args)
        _synchronise(xp)
        account[slot] += time.perf_counter() - started
        if slot == 0:
            account[2] += 1
        return result

    return timed


def _synchronise(xp):
    """Wait for the GPU (CuPy) so a step's time is its real time; nothing on the CPU."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()
