"""Optimizers that update the whole flat parameter vector in a handful of vectorised operations.

An optimizer packs its parameters once (:func:`gradlearn.parameter.pack_parameters`, which
is idempotent), so every ``Parameter.data`` is a view into ``flat.data`` and every
``.grad`` a view into ``flat.grad``. Its state (momentum, Adam's moments, ...) is flat
arrays of the same length. ``step()`` is then a few whole-array NumPy operations, whatever
the number of layers: **step() contains no Python loop over parameters or layers**. The
only Python iteration in a step is over the (few) parameter groups to read their
hyperparameters, and a C-level ``map`` that reads every parameter's ``requires_grad`` flag
so that freezing or unfreezing a layer between steps takes effect.

Parameter groups (as in PyTorch) carry their own options: ``[{'params': decay, 'weight_decay':
1e-4}, {'params': no_decay, 'weight_decay': 0}]``. An option that every group shares is a
Python scalar in the step; one that differs becomes a per-element array over the flat
vector (``xp.take`` of the group values by each element's group index), rebuilt only when a
group's value changes (a schedule setting ``'lr'``, found by comparing the values with a
cached tuple). The learning rate (and every option that would change a frozen parameter:
weight decay, L1) is *masked*: zero on the elements of frozen parameters
(``requires_grad=False``) and on the alignment gaps between parameters, so those elements
never change. Gradients in the gaps are zero by construction, so the state stays zero there.

Update rules (g = gradient, w = parameters, t = step count starting at 1; every optimizer
adds ``weight_decay * w + l1 * sign(w)`` to g first, except AdamW's decoupled decay):

- SGD: ``b = momentum*b + (1-dampening)*g`` (``b = g`` at the first step);
  ``w -= lr * (g + momentum*b if nesterov else b)``.
- Adagrad: ``s += g²``; ``w -= lr / (1 + (t-1)*lr_decay) * g / (sqrt(s) + eps)``.
- RMSprop: ``v = alpha*v + (1-alpha)*g²``; centered: ``a = alpha*a + (1-alpha)*g`` and
  ``v - a²`` under the root; ``d = g / (sqrt(.) + eps)``; with momentum ``b = momentum*b + d``,
  ``w -= lr*b``, else ``w -= lr*d``.
- Adam: ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g²`` (AMSGrad: ``vmax = max(vmax, v)``
  used instead of v); ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
- AdamW: Adam, with the decay decoupled from the gradient: ``w *= 1 - lr*weight_decay`` first.
- NAdam: ``mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay))``, ``P_t = prod mu_1..mu_t``;
  ``w -= lr*[(1-mu_t)/(1-P_t) * g + mu_(t+1)/(1-P_t*mu_(t+1)) * m] / (sqrt(v/(1-b2^t)) + eps)``.

These are PyTorch's ``torch.optim`` algorithms with the same defaults and option names; the
tests check 50 steps against PyTorch. Differences: the step count is one per optimizer (not
one per parameter), so a parameter unfrozen late in training inherits the global Adam bias
correction; ``eps`` must be positive (a zero eps would divide 0 by 0 in the gaps).

Checkpoints: :meth:`Optimizer.state_dict` returns flat NumPy arrays (the state) and
JSON-serialisable values (``type``, ``step``, ``param_shapes``, ``param_groups`` with
parameter membership as indices into the packed order); :meth:`Optimizer.load_state_dict`
validates everything before changing anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import attrgetter, itemgetter

import numpy as np

from .. import compiled, parallel
from ..backend import array_module
from ..gpu_kernels import kernel
from ..parameter import FlatParameters, Parameter, pack_parameters

_requires_grad = attrgetter("requires_grad")

# keys of state_dict() that are not flat state arrays
_META_KEYS = ("type", "step", "param_shapes", "param_groups")


class Optimizer:
    """Base class: parameter groups, the packed flat vector, flat state arrays, checkpoints.

    Subclasses declare ``state_names`` (every flat state array they may keep), implement
    ``_required_state(groups)`` (the arrays the given options need), ``_check_group`` and
    ``step``.

    Attributes:
        param_groups: list of dicts, each with ``'params'`` (a list of Parameters) and every
            option; change ``group['lr']`` (or any option) between steps freely.
        flat: the :class:`FlatParameters` every step updates.
        state: name -> flat array (length ``flat.size``), e.g. ``state['exp_avg']``.
        defaults: the constructor's options.
    """

    state_names: tuple = ()
    extra_state_names: tuple = ()  # JSON-serialisable state beside the arrays (NAdam's mu_product)

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        self.defaults = dict(defaults)
        groups = _normalise_groups(params, name)
        owner = {}
        for index, group in enumerate(groups):
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            for p in group["params"]:
                if id(p) in owner:
                    raise ValueError(
                        f"{name}: a parameter {p!r} appears in param groups {owner[id(p)]} and {index}; "
                        "each parameter may belong to one group only"
                    )
                owner[id(p)] = index
        for index, group in enumerate(groups):
            self._check_group(index, group)
        self.param_groups = groups
        self.flat: FlatParameters = pack_parameters([p for g in groups for p in g["params"]])
        self._group_of_param = [owner[id(p)] for p in self.flat.params]
        self._option_getter = itemgetter(*self.defaults)
        self._options_key = None
        self._trainable_key = None
        self._element_group = None
        self._all_trainable = True
        self._cache = {}
        self._work_arrays = {}
        self.state = {}
        self._step = 0
        self._sync()

    # options -> per-element values --------------------------------------------------------
    def _sync(self) -> None:
        """Bring cached per-element options up to date with param_groups and requires_grad.

        Cheap when nothing changed: two tuple comparisons (group option values, and the
        parameters' ``requires_grad`` flags read by a C-level ``map``).
        """
        self.flat.check_current()
        trainable = tuple(map(_requires_grad, self.flat.params))
        if trainable != self._trainable_key:
            self._index_elements(trainable)
            self._trainable_key = trainable
        groups = self.param_groups
        options = tuple(map(self._option_getter, groups))
        if options != self._options_key:
            for index, group in enumerate(groups):
                self._check_group(index, group)
            self._options_key = tuple(map(self._option_getter, groups))
            self._allocate_state()

    def _index_elements(self, trainable) -> None:
        """Each flat element's group index; ``len(groups)`` on gaps and frozen parameters.

        Loops over the parameters, but runs only at construction and when a parameter is
        frozen or unfrozen, never in an ordinary step.
        """
        flat = self.flat
        outside = len(self.param_groups)
        index = np.full(flat.size, outside, dtype=np.intp)
        for s, group, is_trainable in zip(flat.slices, self._group_of_param, trainable):
            if is_trainable:
                index[s] = group
        xp = array_module(flat.data)
        self._element_group = xp.asarray(index)
        self._all_trainable = all(trainable)
        self._cache.clear()

    def _per_group(self, name: str, values, masked: bool = False):
        """One value per group, as a Python float when they agree, else a flat array.

        ``masked`` values are zero on frozen parameters and gaps (so a masked value is an
        array whenever some parameter is frozen). Unmasked arrays hold the first group's
        value there (harmless, and never zero where a zero would divide). Cached by the
        values, so an unchanged option costs a tuple comparison.
        """
        key = tuple(values)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        first = float(key[0])
        if all(v == first for v in key) and (not masked or self._all_trainable):
            result = first
        else:
            xp = array_module(self.flat.data)
            table = xp.asarray([float(v) for v in key] + [0.0 if masked else first], dtype=self.flat.dtype)
            out = hit[1] if hit is not None and not isinstance(hit[1], float) else None
            result = xp.take(table, self._element_group, out=out)
        self._cache[name] = (key, result)
        return result

    def _option(self, key: str, masked: bool = False):
        return self._per_group(key, [g[key] for g in self.param_groups], masked)

    def _lr(self):
        """The learning rate per element: zero on frozen parameters and gaps."""
        return self._option("lr", masked=True)

    def _work(self, name: str):
        """A preallocated scratch array of the flat vector's size (reused every step)."""
        arr = self._work_arrays.get(name)
        if arr is None:
            xp = array_module(self.flat.data)
            arr = self._work_arrays[name] = xp.empty_like(self.flat.data)
        return arr

    # pieces of a step -----------------------------------------------------------------------
    def _gradient(self, coupled_decay: bool = True):
        """g = grad + weight_decay * w + l1 * sign(w) (masked); ``flat.grad`` itself when both are 0.

        The result lives in the 'grad' scratch array (or is ``flat.grad``): never modify it.
        """
        flat = self.flat
        decay = self._option("weight_decay", masked=True) if coupled_decay else 0.0
        l1 = self._option("l1", masked=True)
        if not _nonzero(decay) and not _nonzero(l1):
            return flat.grad
        g = self._work("grad")
        if _nonzero(decay):
            np.multiply(flat.data, decay, out=g)
            g += flat.grad
        else:
            np.copyto(g, flat.grad)
        if _nonzero(l1):
            tmp = self._work("tmp")
            np.sign(flat.data, out=tmp)
            tmp *= l1
            g += tmp
        return g

    def _descend(self, direction, *factors, out=None) -> None:
        """w -= direction * factor_1 * factor_2 ... (Python scalars multiplied together first).

        ``out`` is the scratch array to use (it may be ``direction`` itself).
        """
        scalar, arrays = -1.0, []
        for f in factors:
            if isinstance(f, float):
                scalar *= f
            else:
                arrays.append(f)
        if out is None:
            out = self._work("step")
        np.multiply(direction, scalar, out=out)
        for a in arrays:
            out *= a
        self.flat.data += out

    def _evaluate(self, closure):
        if closure is None:
            return None
        return closure()

    # public API -------------------------------------------------------------------------------
    def step(self, closure=None):
        """Update every parameter once from its ``.grad`` (see the module docstring)."""
        raise NotImplementedError

    def zero_grad(self, set_to_none=None) -> None:
        """Clear every gradient: one fill of the flat gradient vector (gradients are views, never None)."""
        self.flat.zero_grad()

    def add_param_group(self, param_group) -> None:
        raise NotImplementedError(
            f"{type(self).__name__}.add_param_group: the parameters are packed once into one flat "
            "vector; build the optimizer with every group up front (a group may start with lr=0)"
        )

    @property
    def step_count(self) -> int:
        """How many steps this optimizer has taken."""
        return self._step

    def _allocate_state(self) -> None:
        xp = array_module(self.flat.data)
        for name in self._required_state(self.param_groups):
            if name not in self.state:
                self.state[name] = xp.zeros_like(self.flat.data)
                self._state_allocated(name)

    def _state_allocated(self, name: str) -> None:
        """Hook: a state array was just created (zeros)."""

    def _required_state(self, groups) -> list:
        return []

    def _check_group(self, index: int, group: dict) -> None:
        """Validate one group's options (raise ValueError naming the group and option)."""
        _check_nonnegative(self, index, group, "lr", "weight_decay", "l1")

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, values: dict) -> None:
        pass

    def _check_extra_state(self, state_dict) -> dict:
        return {}

    # checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state: flat NumPy arrays (copies) and JSON-serialisable values.

        Keys: ``'type'`` (class name), ``'step'`` (int), ``'param_shapes'`` (the packed
        parameters' shapes, in packed order), ``'param_groups'`` (each group's options as
        numbers/bools/lists, with ``'params'`` the indices of its parameters in packed
        order), then one key per flat state array (PyTorch's names: ``'momentum_buffer'``,
        ``'exp_avg'``, ``'exp_avg_sq'``, ``'max_exp_avg_sq'``, ``'sum'``, ``'square_avg'``,
        ``'grad_avg'``) and NAdam's ``'mu_product'`` (a list, one per group).
        """
        position = {id(p): i for i, p in enumerate(self.flat.params)}
        groups = []
        for index, group in enumerate(self.param_groups):
            saved = {}
            for key, value in group.items():
                if key == "params":
                    continue
                saved[key] = _jsonable(value, f"{type(self).__name__}.state_dict: param_groups[{index}]['{key}']")
            saved["params"] = [position[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {
            "type": type(self).__name__,
            "step": int(self._step),
            "param_shapes": [list(p.shape) for p in self.flat.params],
            "param_groups": groups,
        }
        for name, array in self.state.items():
            state[name] = array.copy()
        state.update(self._extra_state())
        return state

    def load_state_dict(self, state_dict) -> None:
        """Restore a state saved by :meth:`state_dict` (after a JSON round trip too).

        Everything is validated first — type, missing or unexpected keys, the parameter
        shapes, the groups and their options, every array's shape — and a clear error names
        the key and both values; nothing changes on error.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{where}: expected a dict, got {type(state_dict).__name__}")
        missing = [k for k in _META_KEYS if k not in state_dict]
        if missing:
            raise KeyError(f"{where}: missing keys {missing}")
        if state_dict["type"] != name:
            raise TypeError(f"{where}: the state dict is for a {state_dict['type']} optimizer, this is a {name}")
        step = state_dict["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{where}: 'step' must be a non-negative int, got {step!r}")
        shapes = state_dict["param_shapes"]
        ours = [tuple(p.shape) for p in self.flat.params]
        if not isinstance(shapes, (list, tuple)) or len(shapes) != len(ours):
            got = len(shapes) if isinstance(shapes, (list, tuple)) else type(shapes).__name__
            raise ValueError(f"{where}: 'param_shapes' lists {got} parameters, this optimizer has {len(ours)}")
        for i, (saved, current) in enumerate(zip(shapes, ours)):
            if tuple(saved) != current:
                raise ValueError(
                    f"{where}: 'param_shapes'[{i}] is {tuple(saved)}, "
                    f"this optimizer's parameter {i} has shape {current}"
                )
        new_groups = self._check_loaded_groups(state_dict["param_groups"], where)
        known = set(_META_KEYS) | set(self.state_names) | set(self.extra_state_names)
        unexpected = [k for k in state_dict if k not in known]
        if unexpected:
            raise KeyError(f"{where}: unexpected keys {unexpected} (a {name} keeps {list(self.state_names)})")
        required = self._required_state(new_groups)
        missing = [k for k in required if k not in state_dict]
        if missing:
            raise KeyError(f"{where}: missing state arrays {missing}")
        xp = array_module(self.flat.data)
        arrays = {}
        for key in self.state_names:
            if key not in state_dict:
                continue
            value = _to_array(state_dict[key])
            if tuple(value.shape) != (self.flat.size,):
                raise ValueError(
                    f"{where}: '{key}' has shape {tuple(value.shape)}, expected ({self.flat.size},) "
                    "(the flat parameter vector)"
                )
            if value.dtype.kind != "f":
                raise TypeError(f"{where}: '{key}' has dtype {value.dtype}, expected a floating-point array")
            arrays[key] = value
        extra = self._check_extra_state(state_dict)
        # everything checked: commit
        for group, options in zip(self.param_groups, new_groups):
            params = group["params"]
            group.clear()
            group.update(options)
            group["params"] = params
        self.state = {key: xp.array(value, dtype=self.flat.dtype) for key, value in arrays.items()}
        self._step = int(step)
        self._load_extra_state(extra)
        self._options_key = None
        self._cache.clear()
        self._sync()

    def _check_loaded_groups(self, groups, where):
        if not isinstance(groups, (list, tuple)):
            raise TypeError(f"{where}: 'param_groups' must be a list, got {type(groups).__name__}")
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{where}: 'param_groups' has {len(groups)} groups, this optimizer has {len(self.param_groups)}"
            )
        position = {id(p): i for i, p in enumerate(self.flat.params)}
        new_groups = []
        for index, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if not isinstance(saved, Mapping):
                raise TypeError(f"{where}: param_groups[{index}] must be a dict, got {type(saved).__name__}")
            missing = [k for k in list(self.defaults) + ["params"] if k not in saved]
            if missing:
                raise KeyError(f"{where}: param_groups[{index}] is missing {missing}")
            members = [position[id(p)] for p in group["params"]]
            if list(saved["params"]) != members:
                raise ValueError(
                    f"{where}: param_groups[{index}]['params'] is {list(saved['params'])}, "
                    f"this optimizer's group {index} holds parameters {members}"
                )
            options = {k: v for k, v in saved.items() if k != "params"}
            for key, default in self.defaults.items():
                if isinstance(default, tuple) and isinstance(options[key], list):
                    options[key] = tuple(options[key])
            trial = dict(options, params=group["params"])
            try:
                self._check_group(index, trial)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"{where}: {exc}") from None
            new_groups.append({k: v for k, v in trial.items() if k != "params"})
        return new_groups

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, L2 and L1 penalties.

    ``g = grad + weight_decay*w + l1*sign(w)``; with momentum ``b = momentum*b +
    (1-dampening)*g`` (``b = g`` at the first step), ``d = g + momentum*b`` (Nesterov) or
    ``b``; without momentum ``d = g``; then ``w -= lr*d``. Defaults as PyTorch's
    (lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False); l1=0.

    State: ``'momentum_buffer'`` (flat), when some group has momentum.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, l1=0):
        self._fresh_buffer = True
        self._fused_plan_for = None  # (options key, trainable key, plan) of _fused_plan
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, l1=l1)
        super().__init__(params, defaults)

    def _check_group(self, index, group):
        super()._check_group(index, group)
        _check_nonnegative(self, index, group, "momentum", "dampening")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{type(self).__name__}: param group {index}: Nesterov momentum requires momentum > 0 and "
                f"dampening = 0, got momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _required_state(self, groups):
        return ["momentum_buffer"] if any(g["momentum"] != 0 for g in groups) else []

    def _state_allocated(self, name):
        self._fresh_buffer = True

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._fresh_buffer = self._step == 0

    def step(self, closure=None):
        """One SGD step on the flat vector (no loop over parameters)."""
        loss = self._evaluate(closure)
        self._sync()
        if self._fused_step():
            self._step += 1
            return loss
        g = self._gradient()
        lr = self._lr()
        momentum = self._option("momentum")
        direction = g
        if _nonzero(momentum):
            groups = self.param_groups
            buf = self.state["momentum_buffer"]
            if self._fresh_buffer:
                np.copyto(buf, g)
                self._fresh_buffer = False
            else:
                buf *= momentum
                # a group without momentum uses b = g (no dampening), as if it kept no buffer
                keep = self._per_group("1-dampening", [1.0 - gr["dampening"] if gr["momentum"] != 0 else 1.0
                                                       for gr in groups])
                if isinstance(keep, float) and keep == 1.0:
                    buf += g
                else:
                    tmp = self._work("tmp")
                    np.multiply(g, keep, out=tmp)
                    buf += tmp
            nesterov = self._per_group("nesterov", [1.0 if gr["nesterov"] else 0.0 for gr in groups])
            if not _nonzero(nesterov):
                direction = buf
            else:
                direction = self._work("tmp")
                np.multiply(buf, momentum, out=direction)
                direction += g
                if not isinstance(nesterov, float):  # groups disagree: buf + nesterov*(g + m*b - b)
                    direction -= buf
                    direction *= nesterov
                    direction += buf
        self._descend(direction, lr)
        self._step += 1
        return loss

    def _fused_step(self) -> bool:
        """The common case in one pass over the flat vector: momentum with no dampening and
        no Nesterov, no L1, one learning rate and one L2 decay for every element. On the GPU
        one kernel (gpu_kernels 'sgd_momentum': the same formulas as below, without their
        six launches); on the CPU the compiled kernel (``gradlearn.compiled``), its chunks shared
        by the kernels' team (``parallel.team_threads``), reading w, b and g and writing w and b once where NumPy
        makes four passes (W1's 670k parameters, alternating runs: 1.75-1.96 -> 0.88-1.07 ms).
        False (nothing done) where it does not apply."""
        on_cpu = array_module(self.flat.data) is np
        if self._fresh_buffer or (on_cpu and not compiled.available()):
            return False
        plan = self._fused_plan()
        if plan is None:
            return False
        decay, momentum, lr = plan
        w, g, b = self.flat.data, self.flat.grad, self.state["momentum_buffer"]
        if on_cpu:
            compiled.kernel("sgd_momentum")(w, b, g, decay, momentum, lr, threads=parallel.team_threads(w.size, follower=True))
            return True
        t = w.dtype.type
        kernel("sgd_momentum")(g, t(decay), t(momentum), t(lr), w, b)
        return True

    def _fused_plan(self):
        """(weight decay, momentum, lr) as floats where the fused step applies, else None.
        Worked out again only when ``_sync`` has found the options or the frozen parameters
        changed (it then replaces its keys, so an identity test sees it): a step with the
        same options costs two comparisons instead of six option look-ups (a tiny MLP's
        SGD step, alone: 18 -> 12 us)."""
        known = self._fused_plan_for
        if known is not None and known[0] is self._options_key and known[1] is self._trainable_key:
            return known[2]
        groups = self.param_groups
        momentum, lr = self._option("momentum"), self._lr()
        decay, l1 = self._option("weight_decay", masked=True), self._option("l1", masked=True)
        keep = self._per_group("1-dampening", [1.0 - g["dampening"] if g["momentum"] != 0 else 1.0 for g in groups])
        nesterov = self._per_group("nesterov", [1.0 if g["nesterov"] else 0.0 for g in groups])
        plan = (decay, momentum, lr)
        if not all(isinstance(v, float) for v in (momentum, lr, decay, l1, keep, nesterov)):
            plan = None  # the groups disagree, or some parameters are frozen
        elif momentum == 0 or l1 != 0 or keep != 1.0 or nesterov != 0:
            plan = None
        self._fused_plan_for = (self._options_key, self._trainable_key, plan)
        return plan


# -------------------------------------------------------------------------------------------
class Adagrad(Optimizer):
    """Adagrad: per-element learning rates from the accumulated squared gradient.

    ``s += g²``; ``w -= lr / (1 + (t-1)*lr_decay) * g / (sqrt(s) + eps)``, with
    ``g = grad + weight_decay*w + l1*sign(w)``. Defaults as PyTorch's (lr=0.01,
    lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10); l1=0.

    State: ``'sum'`` (flat, starts at ``initial_accumulator_value``).
    """

    state_names = ("sum",)

    def __init__(self, params, lr=0.01, lr_decay=0, weight_decay=0, eps=1e-10, l1=0, initial_accumulator_value=0):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, l1=l1,
                        initial_accumulator_value=initial_accumulator_value)
        super().__init__(params, defaults)

    def _check_group(self, index, group):
        super()._check_group(index, group)
        _check_nonnegative(self, index, group, "lr_decay", "initial_accumulator_value")
        _check_positive(self, index, group, "eps")

    def _required_state(self, groups):
        return ["sum"]

    def _state_allocated(self, name):
        self.state[name][...] = self._option("initial_accumulator_value")
        self.state[name] *= self.flat.mask(self.flat.params)  # keep the gaps zero

    def step(self, closure=None):
        """One Adagrad step on the flat vector (no loop over parameters)."""
        loss = self._evaluate(closure)
        self._sync()
        t = self._step + 1
        g = self._gradient()
        lr = self._lr()
        decay = self._per_group("1/(1+(t-1)*lr_decay)", [1.0 / (1.0 + (t - 1) * gr["lr_decay"])
                                                           for gr in self.param_groups])
        total = self.state["sum"]
        tmp = self._work("tmp")
        np.multiply(g, g, out=tmp)
        total += tmp
        np.sqrt(total, out=tmp)
        tmp += self._option("eps")
        np.divide(g, tmp, out=tmp)
        self._descend(tmp, lr, decay, out=tmp)
        self._step = t
        return loss


# -------------------------------------------------------------------------------------------
class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root-mean-square of recent gradients.

    ``v = alpha*v + (1-alpha)*g²``; centered: ``a = alpha*a + (1-alpha)*g`` and the root of
    ``v - a²``; ``d = g / (sqrt(.) + eps)``; momentum: ``b = momentum*b + d``, ``w -= lr*b``,
    else ``w -= lr*d``. ``g = grad + weight_decay*w + l1*sign(w)``. Defaults as PyTorch's
    (lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False); l1=0.

    State: ``'square_avg'``, ``'grad_avg'`` (centered), ``'momentum_buffer'`` (momentum).
    """

    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, l1=0):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, l1=l1)
        super().__init__(params, defaults)

    def _check_group(self, index, group):
        super()._check_group(index, group)
        _check_nonnegative(self, index, group, "alpha", "momentum")
        _check_positive(self, index, group, "eps")

    def _required_state(self, groups):
        names = ["square_avg"]
        if any(g["centered"] for g in groups):
            names.append("grad_avg")
        if any(g["momentum"] != 0 for g in groups):
            names.append("momentum_buffer")
        return names

    def step(self, closure=None):
        """One RMSprop step on the flat vector (no loop over parameters)."""
        loss = self._evaluate(closure)
        self._sync()
        groups = self.param_groups
        g = self._gradient()
        lr = self._lr()
        alpha = self._option("alpha")
        one_minus_alpha = self._per_group("1-alpha", [1.0 - gr["alpha"] for gr in groups])
        square_avg = self.state["square_avg"]
        tmp = self._work("tmp")
        square_avg *= alpha
        np.multiply(g, one_minus_alpha, out=tmp)
        tmp *= g
        square_avg += tmp
        centered = self._per_group("centered", [1.0 if gr["centered"] else 0.0 for gr in groups])
        if _nonzero(centered):
            grad_avg = self.state["grad_avg"]
            grad_avg *= alpha
            np.multiply(g, one_minus_alpha, out=tmp)
            grad_avg += tmp
            np.multiply(grad_avg, grad_avg, out=tmp)
            if not isinstance(centered, float):
                tmp *= centered
            np.subtract(square_avg, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(square_avg, out=tmp)
        tmp += self._option("eps")
        np.divide(g, tmp, out=tmp)
        momentum = self._option("momentum")
        if _nonzero(momentum):
            buf = self.state["momentum_buffer"]
            buf *= momentum
            buf += tmp
            self._descend(buf, lr, out=tmp)
        else:
            self._descend(tmp, lr, out=tmp)
        self._step += 1
        return loss


# -------------------------------------------------------------------------------------------
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), optionally AMSGrad, with L2 and L1 penalties in the gradient.

    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g²``; AMSGrad keeps ``vmax = max(vmax, v)``
    and uses it in place of v; ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``, with
    ``g = grad + weight_decay*w + l1*sign(w)``. Defaults as PyTorch's (lr=1e-3,
    betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False); l1=0.

    State: ``'exp_avg'``, ``'exp_avg_sq'``, ``'max_exp_avg_sq'`` (AMSGrad).
    """

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, l1=0):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, l1=l1)
        super().__init__(params, defaults)

    def _check_group(self, index, group):
        super()._check_group(index, group)
        _check_betas(self, index, group)
        _check_positive(self, index, group, "eps")

    def _required_state(self, groups):
        names = ["exp_avg", "exp_avg_sq"]
        if any(g["amsgrad"] for g in groups):
            names.append("max_exp_avg_sq")
        return names

    def _decoupled_decay(self) -> None:
        """w *= 1 - lr*weight_decay (AdamW), masked like lr."""
        factor = self._per_group("lr*weight_decay", [gr["lr"] * gr["weight_decay"] for gr in self.param_groups],
                                 masked=True)
        if not _nonzero(factor):
            return
        data = self.flat.data
        if isinstance(factor, float):
            data *= 1.0 - factor
        else:
            tmp = self._work("tmp")
            np.multiply(data, factor, out=tmp)
            data -= tmp

    def _moments(self, g, groups):
        """Update m and v in place from g; returns (m, v)."""
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        tmp = self._work("tmp")
        m *= self._per_group("beta1", [gr["betas"][0] for gr in groups])
        np.multiply(g, self._per_group("1-beta1", [1.0 - gr["betas"][0] for gr in groups]), out=tmp)
        m += tmp
        v *= self._per_group("beta2", [gr["betas"][1] for gr in groups])
        np.multiply(g, self._per_group("1-beta2", [1.0 - gr["betas"][1] for gr in groups]), out=tmp)
        tmp *= g
        v += tmp
        return m, v

    def step(self, closure=None):
        """One Adam step on the flat vector (no loop over parameters)."""
        loss = self._evaluate(closure)
        self._sync()
        groups = self.param_groups
        t = self._step + 1
        g = self._gradient(coupled_decay=not self.decoupled_weight_decay)
        lr = self._lr()
        if self.decoupled_weight_decay:
            self._decoupled_decay()
        m, v = self._moments(g, groups)
        second = v
        amsgrad = self._per_group("amsgrad", [1.0 if gr["amsgrad"] else 0.0 for gr in groups])
        if _nonzero(amsgrad):
            vmax = self.state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            if isinstance(amsgrad, float):
                second = vmax
            else:
                second = self._work("second")
                np.copyto(second, v)
                np.copyto(second, vmax, where=amsgrad > 0)
        # m / (sqrt(v)/sqrt(bc2) + eps) = sqrt(bc2) * m / (sqrt(v) + eps*sqrt(bc2)): one pass fewer
        sqrt_bc2 = [math.sqrt(1.0 - gr["betas"][1] ** t) for gr in groups]
        tmp = self._work("tmp")
        np.sqrt(second, out=tmp)
        tmp += self._per_group("eps*sqrt(bc2)", [gr["eps"] * c for gr, c in zip(groups, sqrt_bc2)])
        np.divide(m, tmp, out=tmp)
        factor = self._per_group("sqrt(bc2)/bc1", [c / (1.0 - gr["betas"][0] ** t) for gr, c in zip(groups, sqrt_bc2)])
        self._descend(tmp, lr, factor, out=tmp)
        self._step = t
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019).

    ``w *= 1 - lr*weight_decay`` first, then the Adam update from ``g = grad + l1*sign(w)``
    (the decay never enters the moments). Defaults as PyTorch's (lr=1e-3, betas=(0.9,
    0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False); l1=0.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, l1=0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, l1=l1)


# -------------------------------------------------------------------------------------------
class NAdam(Adam):
    """NAdam (Dozat 2016): Adam with Nesterov momentum and a momentum schedule.

    ``mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay))``, ``P_t = mu_1*...*mu_t``;
    ``w -= lr*[(1-mu_t)/(1-P_t)*g + mu_(t+1)/(1-P_t*mu_(t+1))*m] / (sqrt(v/(1-b2^t)) + eps)``
    with m, v Adam's moments and ``g = grad + weight_decay*w + l1*sign(w)`` (with
    ``decoupled_weight_decay``, ``w *= 1 - lr*weight_decay`` instead, as PyTorch's option).
    Defaults as PyTorch's (lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    momentum_decay=4e-3); l1=0.

    State: ``'exp_avg'``, ``'exp_avg_sq'``, and ``'mu_product'`` (one float per group).
    """

    state_names = ("exp_avg", "exp_avg_sq")
    extra_state_names = ("mu_product",)

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3, l1=0,
                 decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, l1=l1, decoupled_weight_decay=decoupled_weight_decay)
        Optimizer.__init__(self, params, defaults)
        self.mu_product = [1.0] * len(self.param_groups)

    def _check_group(self, index, group):
        Optimizer._check_group(self, index, group)
        _check_betas(self, index, group)
        _check_positive(self, index, group, "eps")
        _check_nonnegative(self, index, group, "momentum_decay")

    def _required_state(self, groups):
        return ["exp_avg", "exp_avg_sq"]

    def _extra_state(self):
        return {"mu_product": [float(x) for x in self.mu_product]}

    def _check_extra_state(self, state_dict):
        where = f"{type(self).__name__}.load_state_dict"
        if "mu_product" not in state_dict:
            raise KeyError(f"{where}: missing key 'mu_product'")
        values = state_dict["mu_product"]
        if not isinstance(values, (list, tuple)) or len(values) != len(self.param_groups):
            got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise ValueError(
                f"{where}: 'mu_product' has {got} values, expected {len(self.param_groups)} (one per group)"
            )
        return {"mu_product": [float(x) for x in values]}

    def _load_extra_state(self, values):
        self.mu_product = list(values["mu_product"])

    def step(self, closure=None):
        """One NAdam step on the flat vector (no loop over parameters)."""
        loss = self._evaluate(closure)
        self._sync()
        groups = self.param_groups
        t = self._step + 1
        decoupled = [bool(gr["decoupled_weight_decay"]) for gr in groups]
        if all(decoupled):
            g = self._gradient(coupled_decay=False)
        elif not any(decoupled):
            g = self._gradient(coupled_decay=True)
        else:
            raise ValueError(f"{type(self).__name__}: decoupled_weight_decay must be the same in every group")
        lr = self._lr()
        if decoupled[0]:
            self._decoupled_decay()
        mu = [gr["betas"][0] * (1.0 - 0.5 * 0.96 ** (t * gr["momentum_decay"])) for gr in groups]
        mu_next = [gr["betas"][0] * (1.0 - 0.5 * 0.96 ** ((t + 1) * gr["momentum_decay"])) for gr in groups]
        mu_product = [p * u for p, u in zip(self.mu_product, mu)]
        m, v = self._moments(g, groups)
        # [c_g*g + c_m*m] / (sqrt(v)/sqrt(bc2) + eps) = c_m*sqrt(bc2) * [(c_g/c_m)*g + m] / (sqrt(v) + eps*sqrt(bc2))
        sqrt_bc2 = [math.sqrt(1.0 - gr["betas"][1] ** t) for gr in groups]
        c_m = [un / (1.0 - p * un) for un, p in zip(mu_next, mu_product)]
        c_g = [(1.0 - u) / (1.0 - p) for u, p in zip(mu, mu_product)]
        denom = self._work("tmp")
        np.sqrt(v, out=denom)
        denom += self._per_group("eps*sqrt(bc2)", [gr["eps"] * c for gr, c in zip(groups, sqrt_bc2)])
        numerator = self._work("step")
        if all(c != 0.0 for c in c_m):
            np.multiply(g, self._per_group("c_g/c_m", [a / b for a, b in zip(c_g, c_m)]), out=numerator)
            numerator += m
            factor = self._per_group("c_m*sqrt(bc2)", [a * b for a, b in zip(c_m, sqrt_bc2)])
        else:  # beta1 = 0 in some group: no momentum term to factor out
            np.multiply(g, self._per_group("c_g", c_g), out=numerator)
            tmp = self._work("second")
            np.multiply(m, self._per_group("c_m", c_m), out=tmp)
            numerator += tmp
            factor = self._per_group("sqrt(bc2)", sqrt_bc2)
        numerator /= denom
        self._descend(numerator, lr, factor, out=numerator)
        self.mu_product = mu_product
        self._step = t
        return loss


# -------------------------------------------------------------------------------------------
def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so their global norm is at most ``max_norm``; return the norm before.

    ``params``: an optimizer, a :class:`FlatParameters`, a Module, or an iterable of
    Parameters. When the parameters are packed together the norm is one pass over the flat
    gradient vector (``sqrt(g·g)``, or ``max|g|`` for ``norm_type=inf``) and the scaling one
    multiply. As ``torch.nn.utils.clip_grad_norm_``: gradients are multiplied by
    ``max_norm / (norm + 1e-6)`` when that is below 1.
    """
    if norm_type not in (2, 2.0, math.inf):
        raise ValueError(f"clip_grad_norm: norm_type must be 2 or inf, got {norm_type}")
    grads = _flat_grads(params)
    if norm_type == math.inf:
        norm = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
    else:
        norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(
            f"clip_grad_norm: the total gradient norm is {norm}; set error_if_nonfinite=False to clip anyway"
        )
    coefficient = float(max_norm) / (norm + 1e-6)
    if coefficient < 1.0:
        for g in grads:
            g *= coefficient
    return norm


def clip_grad_value(params, clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place (one pass when packed)."""
    clip_value = float(clip_value)
    for g in _flat_grads(params):
        np.clip(g, -clip_value, clip_value, out=g)


def _flat_grads(params):
    """The gradient arrays to treat as one vector: the flat one when the parameters are packed together.

    Never packs (packing a subset of a packed model would supersede its flat vector).
    """
    if isinstance(params, Optimizer):
        params.flat.check_current()
        return [params.flat.grad]
    if isinstance(params, FlatParameters):
        params.check_current()
        return [params.grad]
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    if isinstance(params, Parameter):
        params = [params]
    params = list(params)
    if not params:
        return []
    flat = params[0]._flat
    if flat is not None and not flat.superseded and len({id(p) for p in params}) == len(flat.params) and all(
        p._flat is flat for p in params
    ):
        return [flat.grad]
    unique = {id(p): p for p in params}
    return [p.grad for p in unique.values()]


# -------------------------------------------------------------------------------------------
def _normalise_groups(params, name):
    """params (Module, FlatParameters, iterable of Parameters, or of group dicts) -> list of group dicts."""
    if isinstance(params, FlatParameters):
        params = list(params.params)
    elif hasattr(params, "parameters") and callable(params.parameters):
        params = list(params.parameters())
    elif isinstance(params, (Parameter, Mapping)):
        params = [params]
    else:
        params = list(params)
    if not params:
        raise ValueError(f"{name}: got an empty parameter list")
    if all(isinstance(p, Mapping) for p in params):
        groups = []
        for index, group in enumerate(params):
            if "params" not in group:
                raise KeyError(f"{name}: param group {index} has no 'params' key")
            group = dict(group)
            members = group["params"]
            if isinstance(members, Parameter):
                members = [members]
            elif hasattr(members, "parameters") and callable(members.parameters):
                members = members.parameters()
            members = list(members)
            for p in members:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{name}: param group {index} holds a {type(p).__name__}, expected Parameters")
            if not members:
                raise ValueError(f"{name}: param group {index} is empty")
            group["params"] = members
            groups.append(group)
        return groups
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(
                f"{name}: expected Parameters, a Module, or a list of param group dicts; got a {type(p).__name__}"
            )
    return [{"params": params}]


def _nonzero(value) -> bool:
    """False only for a Python scalar equal to 0 (an array means some group uses the option)."""
    return not isinstance(value, float) or value != 0.0


def _check_nonnegative(optimizer, index, group, *keys):
    for key in keys:
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 0:
            raise ValueError(
                f"{type(optimizer).__name__}: param group {index}: invalid {key} {value!r} (expected a number >= 0)"
            )


def _check_positive(optimizer, index, group, *keys):
    for key in keys:
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
            raise ValueError(
                f"{type(optimizer).__name__}: param group {index}: invalid {key} {value!r} (expected a number > 0)"
            )


def _check_betas(optimizer, index, group):
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{type(optimizer).__name__}: param group {index}: betas must be a pair, got {betas!r}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(
                f"{type(optimizer).__name__}: param group {index}: invalid beta{i + 1} {beta!r} "
                "(expected 0 <= beta < 1)"
            )
    group["betas"] = (float(betas[0]), float(betas[1]))


def _jsonable(value, what):
    """value as plain Python numbers / bools / strings / lists (JSON-serialisable)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, what) for v in value]
    raise TypeError(f"{what}: a {type(value).__name__} is not JSON-serialisable")


def _to_array(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        value = np.asarray(value)
    return value
