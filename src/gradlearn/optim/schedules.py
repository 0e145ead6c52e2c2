"""Learning-rate schedules: set each parameter group's ``'lr'`` once per epoch.

PyTorch's protocol: build the schedule on an optimizer (this sets every group's lr for
epoch 0 and records ``'initial_lr'`` in the group), train an epoch calling
``optimizer.step()``, then call ``schedule.step()`` once; ``get_last_lr()`` gives the lrs
it set. ``ReduceLROnPlateau.step(metric)`` takes the epoch's validation metric instead.

With ``base`` a group's initial lr and ``e`` the epoch (0, 1, 2, ...), the closed forms are

- StepLR:            ``base * gamma ** (e // step_size)``
- MultiStepLR:       ``base * gamma ** (number of milestones <= e)``
- ExponentialLR:     ``base * gamma ** e``
- CosineAnnealingLR: ``eta_min + (base - eta_min) * (1 + cos(pi * e / T_max)) / 2``
- LinearWarmup:      ``base * (start_factor + (1 - start_factor) * e / warmup_epochs)`` for
  ``e < warmup_epochs``, then the schedule ``after`` at epoch ``e - warmup_epochs`` (or
  ``base`` without one); PyTorch's ``SequentialLR([LinearLR, after], [warmup_epochs])``.
- ReduceLROnPlateau: multiply lr by ``factor`` (not below ``min_lr``) when the metric has
  not improved by ``threshold`` for more than ``patience`` epochs, then wait ``cooldown``.

Schedules compute the closed form (no drift from repeated multiplication). Their
``state_dict()`` holds JSON-serialisable values only; ``load_state_dict`` validates first.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping


class LRScheduler:
    """Base class of the epoch-indexed schedules (closed form ``_lr_at(epoch)``).

    Attributes:
        optimizer: the optimizer whose ``param_groups[i]['lr']`` this sets.
        base_lrs: each group's ``'initial_lr'``.
        last_epoch: the epoch whose lrs were set last (0 right after construction).
    """

    _state_keys: tuple = ("last_epoch", "base_lrs", "last_lrs")

    def __init__(self, optimizer, last_epoch: int = -1):
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups:
            raise TypeError(
                f"{type(self).__name__}: expected an optimizer with param_groups, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{type(self).__name__}: param group {index} has no 'initial_lr'; it is needed to resume "
                        f"at last_epoch={last_epoch} (build with last_epoch=-1, or load a state dict)"
                    )
        self.base_lrs = [float(group["initial_lr"]) for group in groups]
        self.last_epoch = int(last_epoch)
        self.last_lrs = [float(group["lr"]) for group in groups]
        self.step()

    def _lr_at(self, epoch: int) -> list:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set every group's lr (call once per epoch, after optimizer.step())."""
        self.last_epoch += 1
        self._set(self._lr_at(self.last_epoch))

    def _set(self, lrs) -> None:
        groups = self.optimizer.param_groups
        if len(lrs) != len(groups):
            raise RuntimeError(
                f"{type(self).__name__}: the optimizer has {len(groups)} param groups, the schedule {len(lrs)}"
            )
        for group, lr in zip(groups, lrs):
            group["lr"] = float(lr)
        self.last_lrs = [float(lr) for lr in lrs]

    def get_last_lr(self) -> list:
        """The learning rates the last step set, one per group."""
        return list(self.last_lrs)

    # checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-serialisable state: ``'type'`` and the schedule's settings and counters."""
        state = {"type": type(self).__name__}
        for key in self._state_keys:
            value = getattr(self, key)
            state[key] = list(value) if isinstance(value, (list, tuple)) else value
        return state

    def load_state_dict(self, state_dict) -> None:
        """Restore :meth:`state_dict` output; validates everything before changing anything.

        Does not touch the optimizer's lrs (the optimizer's own state dict holds them).
        """
        self._check_state(state_dict)
        self._apply_state(state_dict)

    def _check_state(self, state_dict) -> None:
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{where}: expected a dict, got {type(state_dict).__name__}")
        if state_dict.get("type") != name:
            raise TypeError(f"{where}: the state dict is for a {state_dict.get('type')!r} schedule, this is a {name}")
        missing = [k for k in self._state_keys if k not in state_dict]
        if missing:
            raise KeyError(f"{where}: missing keys {missing}")
        unexpected = [k for k in state_dict if k != "type" and k not in self._state_keys]
        if unexpected:
            raise KeyError(f"{where}: unexpected keys {unexpected}")
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lrs", "min_lrs"):
            if key in self._state_keys:
                value = state_dict[key]
                if not isinstance(value, (list, tuple)) or len(value) != groups:
                    got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
                    raise ValueError(f"{where}: '{key}' has {got} values, the optimizer has {groups} param groups")

    def _apply_state(self, state_dict) -> None:
        for key in self._state_keys:
            value = state_dict[key]
            setattr(self, key, list(value) if isinstance(value, (list, tuple)) else value)

    def __repr__(self):
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._state_keys if k not in ("base_lrs", "last_lrs"))
        return f"{type(self).__name__}({settings})"


class StepLR(LRScheduler):
    """lr = base * gamma ** (epoch // step_size): decay by ``gamma`` every ``step_size`` epochs."""

    _state_keys = LRScheduler._state_keys + ("step_size", "gamma")

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch):
        return [base * self.gamma ** (epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base * gamma ** (how many milestones are <= epoch); a repeated milestone counts twice."""

    _state_keys = LRScheduler._state_keys + ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        milestones = sorted(int(m) for m in milestones)
        if any(m < 0 for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be >= 0, got {milestones}")
        self.milestones = milestones
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch):
        return [base * self.gamma ** bisect_right(self.milestones, epoch) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** epoch."""

    _state_keys = LRScheduler._state_keys + ("gamma",)

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch):
        return [base * self.gamma**epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (SGDR without restarts).

    Reaches ``eta_min`` at ``epoch = T_max``; past it the cosine continues (rises again),
    as PyTorch's.
    """

    _state_keys = LRScheduler._state_keys + ("T_max", "eta_min")

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch):
        cosine = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class LinearWarmup(LRScheduler):
    """Linear warm-up for ``warmup_epochs`` epochs, then the schedule ``after`` (composable).

    lr = base * (start_factor + (1 - start_factor) * epoch / warmup_epochs) while
    ``epoch < warmup_epochs``; afterwards ``after``'s lr at ``epoch - warmup_epochs`` (so a
    cosine ``after`` starts at ``base``), or ``base`` when ``after`` is None. The warm-up of
    Goyal et al. (2017) for large batches (see :func:`scale_lr_for_batch`); PyTorch's
    ``SequentialLR([LinearLR(start_factor, total_iters=warmup_epochs), after], [warmup_epochs])``.

    Build ``after`` on the same optimizer first: ``LinearWarmup(opt, 5,
    after=CosineAnnealingLR(opt, T_max=95))``; then step only the warm-up. With a
    :class:`ReduceLROnPlateau` as ``after``, call ``step(metric)``: metrics are ignored
    during the warm-up, lr is set to ``base`` when it ends, and from that call on every
    metric goes to the plateau schedule.
    """

    _state_keys = LRScheduler._state_keys + ("warmup_epochs", "start_factor")

    def __init__(self, optimizer, warmup_epochs: int, start_factor: float = 1.0 / 3.0, after=None,
                 last_epoch: int = -1):
        if int(warmup_epochs) != warmup_epochs or warmup_epochs < 1:
            raise ValueError(f"LinearWarmup: warmup_epochs must be a positive int, got {warmup_epochs!r}")
        if not 0.0 < start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in (0, 1], got {start_factor!r}")
        if after is not None:
            if not isinstance(after, (LRScheduler, ReduceLROnPlateau)):
                raise TypeError(f"LinearWarmup: 'after' must be a schedule, got {type(after).__name__}")
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: 'after' must be built on the same optimizer")
        self.warmup_epochs = int(warmup_epochs)
        self.start_factor = float(start_factor)
        self.after = after
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, epoch):
        if epoch < self.warmup_epochs:
            factor = self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_epochs
            return [base * factor for base in self.base_lrs]
        if self.after is None or isinstance(self.after, ReduceLROnPlateau):
            return list(self.base_lrs)
        self.after.last_epoch = epoch - self.warmup_epochs
        lrs = self.after._lr_at(self.after.last_epoch)
        self.after.last_lrs = [float(lr) for lr in lrs]
        return lrs

    def step(self, metric=None) -> None:
        """Advance one epoch (``metric`` is passed on to a ReduceLROnPlateau ``after``)."""
        self.last_epoch += 1
        plateau = isinstance(self.after, ReduceLROnPlateau)
        if plateau and self.last_epoch > self.warmup_epochs:
            if metric is None:
                raise ValueError("LinearWarmup.step: the ReduceLROnPlateau after the warm-up needs step(metric)")
            self.after.step(metric)
            self.last_lrs = self.after.get_last_lr()
            return
        self._set(self._lr_at(self.last_epoch))
        if plateau and self.last_epoch == self.warmup_epochs and metric is not None:
            self.after.step(metric)
            self.last_lrs = self.after.get_last_lr()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["after"] = None if self.after is None else self.after.state_dict()
        return state

    def _check_state(self, state_dict):
        if isinstance(state_dict, Mapping):
            rest = {k: v for k, v in state_dict.items() if k != "after"}
        else:
            rest = state_dict
        super()._check_state(rest)
        if "after" not in state_dict:
            raise KeyError("LinearWarmup.load_state_dict: missing key 'after'")
        saved = state_dict["after"]
        if (saved is None) != (self.after is None):
            raise ValueError(
                "LinearWarmup.load_state_dict: the saved warm-up has "
                f"after={'None' if saved is None else saved.get('type')}, "
                f"this one has {'None' if self.after is None else type(self.after).__name__}"
            )
        if saved is not None:
            self.after._check_state(saved)

    def _apply_state(self, state_dict):
        super()._apply_state(state_dict)
        if self.after is not None:
            self.after._apply_state(state_dict["after"])


class ReduceLROnPlateau:
    """Divide lr by ``1/factor`` when a metric stops improving (PyTorch semantics).

    ``step(metric)`` once per epoch. The metric improves when it beats the best so far by
    the threshold (mode 'min', 'rel': ``metric < best * (1 - threshold)``; 'abs':
    ``metric < best - threshold``; mode 'max' mirrored). After more than ``patience``
    epochs without improvement every group's lr becomes ``max(lr * factor, min_lr)``
    (changes smaller than ``eps`` are skipped) and the bad-epoch count is ignored for
    ``cooldown`` epochs. Defaults as PyTorch's: mode='min', factor=0.1, patience=10,
    threshold=1e-4, threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-8.
    """

    _state_keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lrs", "eps",
                   "best", "num_bad_epochs", "cooldown_counter", "last_epoch", "last_lrs")

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0.0,
                 eps: float = 1e-8):
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups:
            raise TypeError(
                f"ReduceLROnPlateau: expected an optimizer with param_groups, got {type(optimizer).__name__}"
            )
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(
                    f"ReduceLROnPlateau: expected {len(groups)} min_lr values (one per group), got {len(min_lr)}"
                )
            min_lrs = [float(x) for x in min_lr]
        else:
            min_lrs = [float(min_lr)] * len(groups)
        self.optimizer = optimizer
        self.mode = mode
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = int(cooldown)
        self.min_lrs = min_lrs
        self.eps = float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self.last_lrs = [float(group["lr"]) for group in groups]

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (1.0 + self.threshold)
        return value > self.best + self.threshold

    def step(self, metric) -> None:
        """Record this epoch's metric and reduce the lrs when it has plateaued."""
        value = float(metric)
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lrs = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        return list(self.last_lrs)

    def state_dict(self) -> dict:
        """JSON-serialisable state (an infinite ``best``, before the first metric, is saved as None)."""
        state = LRScheduler.state_dict(self)
        if math.isinf(state["best"]):
            state["best"] = None
        return state

    def load_state_dict(self, state_dict) -> None:
        self._check_state(state_dict)
        self._apply_state(state_dict)

    def _check_state(self, state_dict):
        LRScheduler._check_state(self, state_dict)
        where = "ReduceLROnPlateau.load_state_dict"
        if state_dict["mode"] not in ("min", "max"):
            raise ValueError(f"{where}: 'mode' must be 'min' or 'max', got {state_dict['mode']!r}")
        if state_dict["threshold_mode"] not in ("rel", "abs"):
            raise ValueError(f"{where}: 'threshold_mode' must be 'rel' or 'abs', got {state_dict['threshold_mode']!r}")

    def _apply_state(self, state_dict):
        LRScheduler._apply_state(self, state_dict)
        if self.best is None:
            self.best = math.inf if self.mode == "min" else -math.inf

    def __repr__(self):
        return (f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience}, "
                f"threshold={self.threshold}, threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown})")


def scale_lr_for_batch(base_lr: float, base_batch: int, batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): lr grows in proportion to the batch size.

    ``base_lr * batch / base_batch`` — e.g. 0.1 for 256 images gives 0.4 for 1024. Pair a
    large scaled lr with :class:`LinearWarmup` over the first epochs.
    """
    if not base_batch > 0 or not batch > 0:
        raise ValueError(
            f"scale_lr_for_batch: batch sizes must be positive, got base_batch={base_batch}, batch={batch}"
        )
    if not base_lr >= 0:
        raise ValueError(f"scale_lr_for_batch: base_lr must be >= 0, got {base_lr}")
    return float(base_lr) * batch / base_batch
