"""Gradient checking: a module's backward against central finite differences, in float64.

For a module F with inputs x and parameters W, pick a fixed random projection r of its
output and check the gradient of the scalar S = <r, F(x, W)>:

    backward(r)  gives  dS/dx and dS/dW  (analytic)
    (S(t + eps e_i) - S(t - eps e_i)) / (2 eps)  for every element i of each tensor t   (numeric)

For a loss, S is the loss itself and only the prediction is differentiated. Tensors larger
than ``max_elements`` are checked along ``directions`` random unit directions v instead:
(S(t + eps v) - S(t - eps v)) / (2 eps) against <dS/dt, v>.

The error of a tensor is its largest absolute difference, and that divided by the
larger of max |analytic| and max |numeric| (a norm-wise relative error, robust to
near-zero elements). A tensor passes when the relative error is below ``rtol`` or the
absolute error below ``atol``. A tensor whose gradient is zero both ways checked
nothing and is reported as vacuous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..losses import Loss


@dataclass
class GradcheckRow:
    name: str
    shape: tuple
    checked: str  # "all 12 elements" or "8 directions"
    max_abs_error: float
    max_rel_error: float
    scale: float  # max |gradient|
    passed: bool

    @property
    def vacuous(self) -> bool:
        return self.scale == 0.0


@dataclass
class GradcheckReport:
    target: str
    rows: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when at least one tensor was checked and every tensor passed."""
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def vacuous(self) -> list:
        """Names of the tensors whose gradient was zero both ways (they checked nothing)."""
        return [r.name for r in self.rows if r.vacuous]

    def __bool__(self):
        return self.passed

    def __str__(self):
        header = f"gradcheck {self.target}: {'passed' if self.passed else 'FAILED'}"
        lines = [header, f"  {'tensor':<24} {'shape':<18} {'checked':<18} {'max abs err':>12} {'max rel err':>12}  status"]
        for r in self.rows:
            status = "ok" if r.passed else "FAIL"
            if r.vacuous:
                status += " (zero gradient: checked nothing)"
            lines.append(
                f"  {r.name:<24} {str(r.shape):<18} {r.checked:<18} {r.max_abs_error:>12.3e} {r.max_rel_error:>12.3e}  {status}"
            )
        if not self.rows:
            lines.append("  nothing was checked: no floating-point input and no trainable parameter")
        return "\n".join(lines)


class GradcheckError(AssertionError):
    pass


def _generators(module):
    """Every numpy Generator held by the module tree (dropout masks), to replay draws."""
    found = []
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, np.random.Generator):
                found.append(value)
    return found


def gradcheck(
    target,
    *inputs,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-10,
    max_elements: int = 4096,
    directions: int = 16,
    seed: int = 271828,
    raise_on_failure: bool = False,
) -> GradcheckReport:
    """Check ``target``'s backward (a Module or a Loss) at ``inputs`` in float64.

    The target is copied and cast to float64; the caller's module is not touched. ``seed``
    draws the output projection and the random directions (its default differs from the
    seeds tests commonly draw inputs from: a projection equal to the input would make a
    scale-invariant module's input gradient vanish and the check vacuous).
    Integer inputs (class indices) are passed through, not differentiated. Returns a
    :class:`GradcheckReport`; raises :class:`GradcheckError` on failure only when
    ``raise_on_failure``.
    """
    module = target.copy().double()
    is_loss = isinstance(module, Loss)
    xs = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x) for x in inputs]
    rng = np.random.default_rng(seed)
    generators = _generators(module)
    states = [g.bit_generator.state for g in generators]

    def run():
        for g, s in zip(generators, states):
            g.bit_generator.state = s
        return module(*xs)

    out = run()
    if is_loss:
        projection = None
    else:
        outs = out if isinstance(out, tuple) else (out,)
        projection = [rng.standard_normal(o.shape) for o in outs]

    def objective():
        y = run()
        if is_loss:
            return float(y)
        ys = y if isinstance(y, tuple) else (y,)
        return float(sum((r * o).sum() for r, o in zip(projection, ys)))

    # analytic gradients
    module.zero_grad()
    run()
    grads_in = module.backward() if is_loss else module.backward(*projection)
    if not isinstance(grads_in, tuple):
        grads_in = (grads_in,)

    tensors = []  # (name, array to perturb, analytic gradient)
    for i, x in enumerate(xs):
        if x.dtype.kind != "f" or (is_loss and i > 0):
            continue
        tensors.append((f"input {i}" if len(xs) > 1 else "input", x, np.asarray(grads_in[i], dtype=np.float64)))
    for name, p in module.named_parameters():
        if p.requires_grad:
            tensors.append((name, p.data, p.grad.copy()))

    report = GradcheckReport(type(target).__name__)
    for name, arr, analytic in tensors:
        order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"  # memory order (a transposed Linear weight: F)
        flat = arr.reshape(-1, order=order)  # a view, perturbed in place
        analytic = analytic.reshape(-1, order=order)  # its elements in flat's order
        if arr.size > 1 and not np.shares_memory(flat, arr):
            raise RuntimeError(f"gradcheck: cannot perturb {name} in place (not contiguous)")
        if arr.size <= max_elements:
            numeric = np.empty(arr.size)
            for i in range(arr.size):
                keep = flat[i]
                flat[i] = keep + eps
                plus = objective()
                flat[i] = keep - eps
                minus = objective()
                flat[i] = keep
                numeric[i] = (plus - minus) / (2 * eps)
            analytic_values = analytic
            checked = f"all {arr.size} elements"
        else:
            numeric = np.empty(directions)
            analytic_values = np.empty(directions)
            keep = flat.copy()
            for k in range(directions):
                v = rng.standard_normal(arr.size)
                v /= np.linalg.norm(v)
                flat[:] = keep + eps * v
                plus = objective()
                flat[:] = keep - eps * v
                minus = objective()
                flat[:] = keep
                numeric[k] = (plus - minus) / (2 * eps)
                analytic_values[k] = analytic @ v
            checked = f"{directions} directions"
        abs_error = float(np.max(np.abs(analytic_values - numeric))) if numeric.size else 0.0
        scale = float(max(np.max(np.abs(numeric), initial=0.0), np.max(np.abs(analytic_values), initial=0.0)))
        rel_error = abs_error / scale if scale > 0 else 0.0
        passed = rel_error <= rtol or abs_error <= atol
        report.rows.append(GradcheckRow(name, tuple(arr.shape), checked, abs_error, rel_error, scale, passed))

    if raise_on_failure and not report.passed:
        raise GradcheckError(str(report))
    return report
