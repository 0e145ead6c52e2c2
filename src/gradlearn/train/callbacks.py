"""Callbacks: code the Trainer runs at the start and end of training, of each epoch and of each batch.

Hooks (all optional): ``on_train_begin(logs)``, ``on_train_end(logs)``,
``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_batch_begin(step, logs)``,
``on_batch_end(step, logs)``. ``self.trainer`` is the running Trainer; setting
``trainer.stop_training = True`` stops training (after the current batch from a batch hook,
after the current epoch from an epoch hook; a partly run epoch is not recorded in History).

Batch logs: ``batch`` (index in the epoch), ``size``, ``batch_loss`` (this batch), ``loss`` and
each metric (running means over the epoch so far), ``lr``. Epoch logs: ``loss``, the
metrics, ``val_loss`` and ``val_<metric>`` with validation data, ``lr``, ``time`` (seconds),
``samples_per_sec``.

Callbacks run in order of ``priority`` (stable): guards that must see a step first
(DivergenceGuard, -100), then ordinary callbacks (0), then Checkpoint (100), so a checkpoint
never records a state that a guard has rejected, and records EarlyStopping's latest state.

A callback with state (EarlyStopping's best value and weights) has ``state_dict()`` /
``load_state_dict()``; checkpoints save it and ``Trainer.resume`` restores it.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
import warnings
from collections import deque

from .checkpoint import atomic_write


class Callback:
    """Base class: every hook does nothing. Subclass and override the hooks you need."""

    priority = 0

    def __init__(self):
        self.trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, step, logs=None):
        pass

    def on_batch_end(self, step, logs=None):
        pass

    def state_dict(self):
        """State a checkpoint should keep (JSON values and arrays), or None when stateless."""
        return None

    def load_state_dict(self, state) -> None:
        pass


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, priority: int = 0, **hooks):
        super().__init__()
        self.priority = priority
        for name, function in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, function)


# progress ---------------------------------------------------------------------------------


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3e}"
    return str(value)


class ProgressBar(Callback):
    """Progress on ``stream`` (default sys.stdout).

    On a terminal (``stream.isatty()``, or ``tty=True``) one live line per epoch, rewritten
    with ``\\r`` at most every ``min_interval`` seconds and at the last batch:
    ``Epoch 2/10 [=======>......] 12/50 - loss 0.4123 - accuracy 0.8711 - 18,304 samples/s - ETA 2.1s``;
    at the end of the epoch the line is completed with the time and validation results.
    Otherwise (a log file) one plain line per epoch:
    ``Epoch 2/10 - 50 batches - 2.7s - loss 0.4123 - accuracy 0.8711 - val_loss 0.4410 - 18,304 samples/s``.
    """

    def __init__(self, stream=None, tty: bool | None = None, min_interval: float = 0.1, width: int = 25):
        super().__init__()
        self.stream = stream
        self.tty = tty
        self.min_interval = float(min_interval)
        self.width = int(width)
        self._last_len = 0
        self._last_draw = 0.0

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return bool(self.tty)
        isatty = getattr(self._out(), "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._samples = 0
        self._first_step = self.trainer.step if self.trainer is not None else 0
        self._last_draw = 0.0
        self._last_len = 0

    def _prefix(self, epoch):
        epochs = getattr(self.trainer, "epochs", None)
        return f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"

    def _metrics(self, logs, keys):
        return "".join(f" - {k} {_format_value(logs[k])}" for k in keys if k in logs)

    def on_batch_end(self, step, logs=None):
        if not self._is_tty():
            return
        logs = logs or {}
        self._samples += int(logs.get("size", 0))
        now = time.perf_counter()
        total = getattr(self.trainer, "steps_per_epoch", None)
        done = step + 1
        if now - self._last_draw < self.min_interval and done != total:
            return
        self._last_draw = now
        elapsed = now - self._epoch_start
        rate = self._samples / elapsed if elapsed > 0 else float("inf")
        if total:
            filled = int(self.width * done / total)
            bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") + "." * (self.width - filled)
            bar = bar[: self.width] if filled else "." * self.width
            run_steps = done - self._first_step
            eta = elapsed / run_steps * (total - done) if run_steps > 0 else float("nan")
            head = f"{self._prefix(self.trainer.epoch)} [{bar}] {done}/{total}"
            tail = f" - ETA {_format_duration(eta)}"
        else:
            head = f"{self._prefix(self.trainer.epoch)} batch {done}"
            tail = ""
        keys = ["loss", *getattr(self.trainer, "metric_names", [])]
        line = f"{head}{self._metrics(logs, keys)} - {rate:,.0f} samples/s{tail}"
        self._write_live(line)

    def _write_live(self, line):
        pad = " " * max(self._last_len - len(line), 0)
        out = self._out()
        out.write("\r" + line + pad)
        out.flush()
        self._last_len = len(line)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = [k for k in logs if k not in ("lr", "time", "samples_per_sec")]
        summary = f" - {_format_duration(logs.get('time', float('nan')))}{self._metrics(logs, keys)}"
        if "samples_per_sec" in logs:
            summary += f" - {logs['samples_per_sec']:,.0f} samples/s"
        total = getattr(self.trainer, "steps_per_epoch", None)
        if self._is_tty():
            bar = "=" * self.width
            done = f" [{bar}] {total}/{total}" if total else ""
            self._write_live(f"{self._prefix(epoch)}{done}{summary}")
            self._out().write("\n")
        else:
            batches = f" - {total} batches" if total else ""
            self._out().write(f"{self._prefix(epoch)}{batches}{summary}\n")
        self._out().flush()
        self._last_len = 0

    def on_train_end(self, logs=None):
        if self._last_len and self._is_tty():  # interrupted mid-epoch: end the live line
            self._out().write("\n")
            self._out().flush()
            self._last_len = 0


# early stopping ---------------------------------------------------------------------------


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode``: 'min', 'max', or 'auto' (the metric's own direction: max for accuracies, min for
    losses and errors). With ``restore_best`` the model's ``state_dict`` at the best epoch is
    kept, and put back at the end of training (when training stops early, runs out of epochs
    or fails) unless the last epoch was the best. Attributes after training: ``best``,
    ``best_epoch``, ``stopped_epoch`` (None when it did not stop training).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "auto", restore_best: bool = True, verbose: bool = False):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if int(patience) < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = mode
        self.restore_best = bool(restore_best)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.best = None
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None
        self.best_state = None
        self.last_epoch = None

    def _direction(self) -> str:
        if self.mode != "auto":
            return self.mode
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        for metric in getattr(self.trainer, "metrics", ()):
            if metric.name == name:
                return metric.mode
        return "max" if re.search(r"acc|top\d|auc|precision|recall|f1", name) else "min"

    def on_train_begin(self, logs=None):
        if not getattr(self.trainer, "resumed", False):
            self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            hint = " (pass validation_data to fit, or monitor='loss')" if self.monitor.startswith("val_") else ""
            raise KeyError(f"EarlyStopping: monitors {self.monitor!r}, but the epoch logs have only {sorted(logs)}{hint}")
        value = float(logs[self.monitor])
        self.last_epoch = epoch
        if self.best is None:
            improved = math.isfinite(value)
        elif self._direction() == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = self.trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= max(self.patience, 1):
                self.stopped_epoch = epoch
                self.trainer.stop_training = True
                if self.verbose:
                    print(f"EarlyStopping: {self.monitor} has not improved for {self.wait} epochs (best {self.best:.4g} at epoch {self.best_epoch + 1}); stopping")

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_state is not None and self.best_epoch != self.last_epoch:
            self.trainer.model.load_state_dict(self.best_state)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} ({self.monitor} {self.best:.4g})")

    def state_dict(self):
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "last_epoch": self.last_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state):
        for key in ("best", "best_epoch", "wait", "stopped_epoch", "last_epoch", "best_state"):
            setattr(self, key, state.get(key))


# checkpoints ------------------------------------------------------------------------------

_CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<step>\d{10})\.safetensors$")


def list_checkpoints(directory, prefix: str = "ckpt"):
    """Checkpoint files ``<prefix>-<global step>.safetensors`` in ``directory``, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _CHECKPOINT_NAME.match(name)
        if match and match.group("prefix") == prefix:
            found.append((int(match.group("step")), os.path.join(directory, name)))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory, prefix: str = "ckpt"):
    """The newest checkpoint in ``directory`` (highest global step), or None."""
    found = list_checkpoints(directory, prefix)
    return found[-1] if found else None


class Checkpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs and/or every ``every_steps`` steps.

    Files are ``<directory>/<prefix>-<global step, 10 digits>.safetensors`` (see
    :mod:`gradlearn.train.checkpoint` for the contents and the crash-safe write); only the
    newest ``keep`` are kept (``keep=None`` keeps all). With neither ``every`` nor
    ``every_steps`` given, it saves after every epoch.

    Never a diverged state: the loss of a step is measured on the weights *before* its
    update, so the weights a checkpoint holds are only known to be healthy once the next
    batch's loss is in. A scheduled checkpoint is therefore staged in memory (its exact
    bytes) and written when the next batch's loss is finite and has passed any
    DivergenceGuard (which runs first), or when training ends without diverging; a
    diverged run leaves the last confirmed checkpoint as the newest file. ``save()`` writes
    at once. ``last_path`` is the newest file this callback wrote.
    """

    priority = 100

    def __init__(self, directory, every: int | None = None, every_steps: int | None = None, keep: int | None = 3, prefix: str = "ckpt"):
        super().__init__()
        if every is None and every_steps is None:
            every = 1
        for name, value in (("every", every), ("every_steps", every_steps), ("keep", keep)):
            if value is not None and int(value) < 1:
                raise ValueError(f"Checkpoint: {name} must be a positive integer or None, got {value}")
        if "/" in prefix or os.sep in prefix:
            raise ValueError(f"Checkpoint: prefix must be a plain file name part, got {prefix!r}")
        self.directory = os.fspath(directory)
        self.every = None if every is None else int(every)
        self.every_steps = None if every_steps is None else int(every_steps)
        self.keep = None if keep is None else int(keep)
        self.prefix = prefix
        self.last_path = None
        self._staged = None  # (path, bytes) waiting for the next batch's loss

    def path_for(self, global_step: int) -> str:
        return os.path.join(self.directory, f"{self.prefix}-{int(global_step):010d}.safetensors")

    def on_train_begin(self, logs=None):
        self._staged = None
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):  # temporary files of a write cut short by a crash
            if name.startswith(f".{self.prefix}-") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass
        if not getattr(self.trainer, "resumed", False) and list_checkpoints(self.directory, self.prefix):
            warnings.warn(
                f"Checkpoint: {self.directory!r} already holds checkpoints that this run did not resume from; "
                "the run's own checkpoints will be mixed with them (use a fresh directory, or trainer.resume(directory))",
                stacklevel=2,
            )

    def _healthy(self, *losses) -> bool:
        if getattr(self.trainer, "diverged", False):
            return False
        return all(loss is None or math.isfinite(loss) for loss in losses)

    def _stage(self, *losses):
        if not self._healthy(*losses):
            warnings.warn(f"Checkpoint: not saving at step {self.trainer.global_step}: the loss is {losses}", stacklevel=3)
            return
        self._staged = (self.path_for(self.trainer.global_step), self.trainer.checkpoint_bytes())

    def _commit(self):
        path, data = self._staged
        self._staged = None
        atomic_write(path, data)
        self.last_path = path
        self.prune()

    def on_batch_end(self, step, logs=None):
        loss = (logs or {}).get("batch_loss")
        if self._staged is not None:
            if self._healthy(loss):
                self._commit()
            else:
                self._staged = None
        if self.every_steps and self.trainer.global_step % self.every_steps == 0:
            self._stage(loss)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.every and (epoch + 1) % self.every == 0:
            self._stage(logs.get("loss"), logs.get("val_loss"))

    def on_train_end(self, logs=None):
        if self._staged is not None and self._healthy():
            self._commit()
        self._staged = None

    def save(self, loss=None):
        """Write a checkpoint of the trainer's current state now (unless ``loss`` is not finite)."""
        if not self._healthy(loss):
            warnings.warn(f"Checkpoint: not saving at step {self.trainer.global_step}: the loss is {loss}", stacklevel=2)
            return None
        self._staged = (self.path_for(self.trainer.global_step), self.trainer.checkpoint_bytes())
        self._commit()
        return self.last_path

    def prune(self):
        if self.keep is None:
            return
        for path in list_checkpoints(self.directory, self.prefix)[: -self.keep]:
            try:
                os.unlink(path)
            except OSError:
                pass


# logging ----------------------------------------------------------------------------------


class CSVLogger(Callback):
    """Write the History to ``path`` as CSV, one row per epoch, rewritten after every epoch.

    The file is replaced atomically each time, so it always holds every finished epoch
    (a resumed run rewrites it from the restored History: no duplicated or lost rows).
    """

    def __init__(self, path, separator: str = ","):
        super().__init__()
        self.path = os.fspath(path)
        self.separator = separator

    def on_epoch_end(self, epoch, logs=None):
        self.trainer.history.to_csv(self.path, separator=self.separator)


# divergence -------------------------------------------------------------------------------


class DivergenceError(RuntimeError):
    """Training diverged: the loss became NaN/inf or exploded. Attributes: step, loss, lr, checkpoint."""

    def __init__(self, message, step=None, loss=None, lr=None, checkpoint=None):
        super().__init__(message)
        self.step, self.loss, self.lr, self.checkpoint = step, loss, lr, checkpoint


class DivergenceGuard(Callback):
    """Stop training when the loss diverges, by raising :class:`DivergenceError`.

    A batch loss diverges when it is NaN or infinite, or when it exceeds ``factor`` times
    the reference loss: the larger of the median of the last ``window`` batch losses and the
    median of the first ``min(window, 5)`` losses of the run (so a loss that has come
    close to zero does not make ordinary batch noise look like an explosion). ``factor=None``
    checks only for NaN/inf (for losses that may be negative, such as energies).

    Raising (rather than quietly stopping) is deliberate: a script must not go on to
    evaluate or save a model whose weights are NaN. The message names the step, the loss
    and the learning rate, says what to try, and points to the last good checkpoint, which
    is left in place (the guard runs before Checkpoint, which never saves a diverged state).
    """

    priority = -100

    def __init__(self, factor: float | None = 10.0, window: int = 50):
        super().__init__()
        if factor is not None and float(factor) <= 1:
            raise ValueError(f"DivergenceGuard: factor must be > 1 or None, got {factor}")
        if int(window) < 1:
            raise ValueError(f"DivergenceGuard: window must be >= 1, got {window}")
        self.factor = None if factor is None else float(factor)
        self.window = int(window)
        self._reset()

    def _reset(self):
        self.recent = deque(maxlen=self.window)
        self.initial = []
        self.reference0 = None

    def on_train_begin(self, logs=None):
        if not getattr(self.trainer, "resumed", False):
            self._reset()

    def on_batch_end(self, step, logs=None):
        loss = float((logs or {}).get("batch_loss", float("nan")))
        if not math.isfinite(loss):
            self._diverged(step, loss, f"the loss is {loss}")
        if self.factor is not None and self.recent:
            reference = statistics.median(self.recent)
            if self.reference0 is not None:
                reference = max(reference, self.reference0)
            if len(self.recent) >= min(self.window, 5) and reference > 0 and loss > self.factor * reference:
                self._diverged(step, loss, f"the loss {loss:.4g} is {loss / reference:.0f}x its reference {reference:.4g} (median of recent batches)")
        self.recent.append(loss)
        if self.reference0 is None:
            self.initial.append(loss)
            if len(self.initial) >= min(self.window, 5):
                self.reference0 = statistics.median(self.initial)

    def _diverged(self, step, loss, what):
        trainer = self.trainer
        trainer.diverged = True
        lr = trainer.current_lr()
        lower = f" (lr={lr / 10:g})" if isinstance(lr, (int, float)) else ""
        checkpoint = None
        for cb in trainer.callbacks:
            if isinstance(cb, Checkpoint):
                checkpoint = cb.last_path or latest_checkpoint(cb.directory, cb.prefix)
        where = (
            f"The last good checkpoint, {checkpoint!r}, is left in place (trainer.resume(directory) continues from it)."
            if checkpoint
            else "No checkpoint was saved; add gl.Checkpoint(directory, every_steps=...) to keep a good state to go back to."
        )
        message = (
            f"Training diverged at step {trainer.global_step} (epoch {trainer.epoch + 1}, batch {step + 1}): {what}, "
            f"at learning rate {lr if lr is None else format(lr, 'g')}. What to try: lower the learning rate, e.g. by 10x{lower}; "
            "check the gradients with gl.gradcheck(model, x); check the data for NaNs or infinities "
            "(np.isfinite(x).all()) and its scale (standardise the inputs). " + where
        )
        raise DivergenceError(message, step=trainer.global_step, loss=loss, lr=lr, checkpoint=checkpoint)

    def state_dict(self):
        return {"recent": list(self.recent), "initial": list(self.initial), "reference0": self.reference0}

    def load_state_dict(self, state):
        self.recent = deque(state.get("recent", []), maxlen=self.window)
        self.initial = list(state.get("initial", []))
        self.reference0 = state.get("reference0")
