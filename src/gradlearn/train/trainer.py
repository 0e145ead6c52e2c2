"""The Trainer: fit, evaluate and predict, with callbacks, metrics, schedules and exact resume.

One training step (the lectures' loop, and nothing else per step):

    flat.grad[:] = 0                    one fill of the flat gradient vector (model.zero_grad())
    y = model(x); E = loss(y, t)        forward
    model.backward(loss.backward())     backward: every dE/dW added into the flat gradient
    optimizer.step()                    a few vectorised operations on the flat vectors

There is no Python work per parameter, and the Trainer allocates nothing per step beyond
what the modules do: shuffled batches of array data are gathered (``np.take``) into two
buffers allocated once per fit, unshuffled ones are views, and the batch logs are one dict
updated in place.

Training data is a pair ``(x, y)`` of arrays (batched here, reshuffled every epoch with the
Trainer's own seeded generator), a :class:`gradlearn.data.DataLoader` (or anything with
``state_dict``/``load_state_dict`` that iterates (x, y) batches), or any re-iterable of
(x, y) batches. ``fit`` returns a :class:`History`.

Exact resume: a checkpoint (``Checkpoint`` callback or :meth:`Trainer.save_checkpoint`)
holds the model, the optimizer and schedule states, epoch, step in the epoch, global step,
the History and the running sums of the epoch in progress, the callbacks' states and every
random generator (the shuffling generator's state at the start of the epoch, or the
DataLoader's state; the model's modules' generators; the backend's default). After
:meth:`Trainer.resume`, the next ``fit`` continues the interrupted run from exactly that
step, and ends with the same parameters, bit for bit, as a run never interrupted.
"""

from __future__ import annotations

import copy
import csv
import inspect
import io
import itertools
import os
import time
import warnings

import numpy as np

from .. import losses as _losses
from ..backend import device_of, to_device
from .callbacks import Callback, ProgressBar, list_checkpoints
from .checkpoint import CheckpointError, atomic_write, check_generator_state, checkpoint_bytes, load_checkpoint, read_checkpoint
from .metrics import get_metric

_LOSSES = {
    "cross_entropy": _losses.CrossEntropyLoss,
    "crossentropy": _losses.CrossEntropyLoss,
    "mse": _losses.MSELoss,
    "nll": _losses.NLLLoss,
    "bce_with_logits": _losses.BCEWithLogitsLoss,
}


class History:
    """What happened, epoch by epoch.

    ``history`` is a dict of lists, one entry per epoch, as in Keras: ``loss`` and each
    metric (means over the epoch's training batches, weighted by batch size),
    ``val_loss`` / ``val_<metric>`` (with validation data), ``lr`` (the learning rate used
    in the epoch), ``time`` (seconds) and ``samples_per_sec``. ``epoch`` lists the epoch
    indices (from 0). ``history['loss'][-1]`` is the last epoch's loss.
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        n = len(self.epoch)
        for key, value in logs.items():
            self.history.setdefault(key, [float("nan")] * n).append(value)
        for key, values in self.history.items():
            if len(values) == n:  # a key this epoch did not report
                values.append(float("nan"))
        self.epoch.append(int(epoch))

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epoch)

    def keys(self):
        return self.history.keys()

    def last(self) -> dict:
        """The last epoch's values, as a dict."""
        return {k: v[-1] for k, v in self.history.items()} if self.epoch else {}

    def rows(self):
        """One dict per epoch: ``{'epoch': e, 'loss': ..., ...}``."""
        for i, e in enumerate(self.epoch):
            yield {"epoch": e, **{k: v[i] for k, v in self.history.items()}}

    def to_csv(self, path, separator: str = ",") -> None:
        """Write one row per epoch (columns ``epoch`` then every key), atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=separator, lineterminator="\n")
        keys = list(self.history)
        writer.writerow(["epoch", *keys])
        for row in self.rows():
            writer.writerow([row["epoch"], *(repr(float(row[k])) if isinstance(row[k], float) else row[k] for k in keys)])
        atomic_write(path, buffer.getvalue().encode("utf-8"))

    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}, "epoch": list(self.epoch)}

    def load_state_dict(self, state) -> None:
        history, epochs = state["history"], state["epoch"]
        if not isinstance(history, dict) or not isinstance(epochs, list) or any(len(v) != len(epochs) for v in history.values()):
            raise ValueError("History.load_state_dict: inconsistent history")
        self.history = {k: list(v) for k, v in history.items()}
        self.epoch = [int(e) for e in epochs]

    def __repr__(self):
        return f"History({len(self.epoch)} epochs, keys={list(self.history)})"


# data sources ------------------------------------------------------------------------------


class _ArraySource:
    """(x, y) arrays cut into batches, shuffled every epoch by the Trainer's generator."""

    kind = "arrays"

    def __init__(self, x, y, batch_size, shuffle, generator):
        if len(x) != len(y):
            raise ValueError(f"Trainer: x has {len(x)} samples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("Trainer: the training data is empty")
        self.x, self.y = x, y
        self.n = len(x)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.order = None
        self.epoch_state = None
        if shuffle:  # gathered batches land in these buffers, allocated once
            self.x_buffer = np.empty((min(batch_size, self.n),) + x.shape[1:], dtype=x.dtype)
            self.y_buffer = np.empty((min(batch_size, self.n),) + y.shape[1:], dtype=y.dtype)

    def __len__(self):
        return -(-self.n // self.batch_size)

    def start_epoch(self):
        self.epoch_state = copy.deepcopy(self.generator.bit_generator.state)
        self.order = self.generator.permutation(self.n) if self.shuffle else None

    def batches(self, skip):
        bs, x, y = self.batch_size, self.x, self.y
        for i in range(skip, len(self)):
            lo, hi = i * bs, min((i + 1) * bs, self.n)
            if self.order is None:
                yield x[lo:hi], y[lo:hi]
            else:
                index = self.order[lo:hi]
                xb = np.take(x, index, axis=0, out=self.x_buffer[: hi - lo], mode="clip")
                yb = np.take(y, index, axis=0, out=self.y_buffer[: hi - lo], mode="clip")
                yield xb, yb

    def state_dict(self, mid_epoch):
        state = self.epoch_state if mid_epoch else self.generator.bit_generator.state
        return {"kind": self.kind, "generator": copy.deepcopy(state)}

    def load_state_dict(self, state):
        self.generator.bit_generator.state = state["generator"]


class _LoaderSource:
    """A DataLoader: it resumes itself from its state_dict (generator at epoch start + batches delivered)."""

    kind = "loader"

    def __init__(self, loader):
        self.loader = loader
        self.resumed = False

    def __len__(self):
        return len(self.loader)

    def start_epoch(self):
        pass

    def batches(self, skip):
        iterator = iter(self.loader)
        if skip and not self.resumed:
            iterator = itertools.islice(iterator, skip, None)
        self.resumed = False
        return iterator

    def state_dict(self, mid_epoch):
        return {"kind": self.kind, "state": self.loader.state_dict()}

    def load_state_dict(self, state):
        self.loader.load_state_dict(state["state"])
        self.resumed = True


class _IterableSource:
    """Any re-iterable of (x, y) batches; on resume the first batches of the epoch are skipped."""

    kind = "iterable"

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def start_epoch(self):
        pass

    def batches(self, skip):
        iterator = iter(self.data)
        return itertools.islice(iterator, skip, None) if skip else iterator

    def state_dict(self, mid_epoch):
        return {"kind": self.kind}

    def load_state_dict(self, state):
        pass


def _is_array(a):
    return hasattr(a, "shape") and hasattr(a, "dtype")


def _steps(source):
    try:
        return len(source)
    except TypeError:
        return None


# the trainer -------------------------------------------------------------------------------


class Trainer:
    """Train ``model`` on ``loss`` with ``optimizer``: ``fit``, ``evaluate``, ``predict``, ``resume``.

    Args:
        model: a Module (its parameters packed by the optimizer into one flat vector).
        loss: a Loss instance (or 'cross_entropy', 'mse', 'nll', 'bce_with_logits').
        optimizer: an optimizer from gradlearn.optim (``step``, ``param_groups``,
            ``state_dict``/``load_state_dict``).
        metrics: names ('accuracy', 'top5', 'mse'), Metric objects or functions f(y, t).
        callbacks: Callback objects (a ProgressBar is added when ``fit(verbose=1)`` and none is given).
        schedule: a learning-rate schedule stepped once per epoch, after validation
            (``step(metric)`` for ReduceLROnPlateau-like schedules, with ``val_loss`` or ``loss``).
        batch_size: batch size for array data (fit, evaluate, predict). Default 32.
        seed: seeds the Trainer's shuffling generator (``self.generator``).

    Attributes during training: ``epoch`` (from 0), ``step`` (batches done in the epoch),
    ``global_step``, ``epochs``, ``steps_per_epoch``, ``history``, ``stop_training``,
    ``diverged``, ``resumed`` (this fit continues from a checkpoint).
    """

    def __init__(
        self,
        model,
        loss,
        optimizer,
        metrics=("accuracy",),
        callbacks=(),
        schedule=None,
        batch_size: int = 32,
        seed: int = 0,
        distributed=False,
    ):
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(f"Trainer: unknown loss {loss!r}; expected a Loss or one of {sorted(_LOSSES)}")
            loss = _LOSSES[loss]()
        if int(batch_size) < 1:
            raise ValueError(f"Trainer: batch_size must be positive, got {batch_size}")
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        if isinstance(metrics, str):
            metrics = (metrics,)
        self.metrics = [get_metric(m) for m in (metrics or ())]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"Trainer: metric names must be distinct and not 'loss', got {names}")
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback objects, got {type(cb).__name__}")
        self.schedule = schedule
        # distributed=True (or a gradlearn.distributed.DataParallel): data-parallel over MPI.
        # batch_size is then the GLOBAL batch, each rank trains on its shard, gradients are
        # averaged in one all-reduce, and only rank 0 prints, logs and checkpoints.
        self.parallel = None
        if distributed:
            from ..distributed import DataParallel

            self.parallel = distributed if isinstance(distributed, DataParallel) else DataParallel()
        self._schedule_wants_metric = _wants_argument(schedule.step) if schedule is not None else False
        self.batch_size = int(batch_size)
        self.seed = seed
        self.generator = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        self.epochs = None
        self.steps_per_epoch = None
        self.stop_training = False
        self.diverged = False
        self.resumed = False
        self._pending = None  # what resume() restored, for the next fit
        self._source = None
        self._accumulators = None

    # small helpers --------------------------------------------------------------------------
    @property
    def metric_names(self):
        return [m.name for m in self.metrics]

    def current_lr(self):
        """The first parameter group's learning rate (None when the optimizer has none)."""
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            lr = groups[0].get("lr")
            return float(lr) if isinstance(lr, (int, float, np.number)) else lr
        return None

    def _zero_grad_function(self):
        """model.zero_grad as one fill of the flat vector, without walking the modules per step."""
        params = list(self.model.parameters())
        flat = params[0]._flat if params else None
        if flat is not None and not flat.superseded and len(flat.params) == len(params) and all(p._flat is flat for p in params):
            def zero_grad():
                if flat.superseded:  # the model was repacked since: fall back to the general path
                    self.model.zero_grad()
                else:
                    flat.grad.fill(0)

            return zero_grad
        return self.model.zero_grad

    def _source_for(self, data, shuffle, training=True):
        if isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0]) and _is_array(data[1]):
            x, y = data
            return _ArraySource(x, y, self.batch_size, shuffle and training, self.generator if training else None)
        if hasattr(data, "state_dict") and hasattr(data, "load_state_dict") and hasattr(data, "__iter__"):
            return _LoaderSource(data)
        if hasattr(data, "__iter__"):
            if iter(data) is data:
                raise TypeError(
                    "Trainer: the data is a one-shot iterator (a generator); pass arrays (x, y), a DataLoader "
                    "or a re-iterable (a list of batches) so that every epoch can go through it"
                )
            return _IterableSource(data)
        raise TypeError(f"Trainer: expected (x, y) arrays, a DataLoader or an iterable of (x, y) batches, got {type(data).__name__}")

    def _to_model_device(self, batches):
        """``batches`` of (x, y), moved to the model's device when that is a GPU (a model on
        the CPU gets its batches untouched), so that ``model.to('cuda')`` is all a user writes."""
        device = next((device_of(p.data) for p in self.model.parameters()), "cpu")
        if device == "cpu":
            return batches
        return ((to_device(x, device), None if y is None else to_device(y, device)) for x, y in batches)

    def _ordered_callbacks(self, verbose):
        callbacks = list(self.callbacks)
        if self.parallel is not None and not self.parallel.is_main:
            from .callbacks import Checkpoint, CSVLogger

            verbose = 0  # rank 0 alone prints, logs and writes checkpoints
            callbacks = [cb for cb in callbacks if not isinstance(cb, (Checkpoint, CSVLogger, ProgressBar))]
        if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(ProgressBar())
        callbacks.sort(key=lambda cb: cb.priority)
        for cb in callbacks:
            cb.set_trainer(self)
        return callbacks

    def _call(self, callbacks, hook, *args):
        for cb in callbacks:
            getattr(cb, hook)(*args)

    def _reset_accumulators(self):
        for m in self.metrics:
            m.reset()
        self._accumulators = {"loss_sum": 0.0, "count": 0, "elapsed": 0.0}

    # training ------------------------------------------------------------------------------
    def fit(self, train_data, epochs: int, validation_data=None, verbose: int = 1, shuffle: bool = True) -> History:
        """Train for ``epochs`` epochs (up to epoch ``epochs`` in total after :meth:`resume`).

        ``train_data``: (x, y) arrays, a DataLoader, or an iterable of (x, y) batches;
        ``validation_data`` likewise (evaluated after every epoch, in eval mode);
        ``verbose``: 1 shows a ProgressBar (unless one is among the callbacks), 0 nothing;
        ``shuffle``: reshuffle array data every epoch. Returns the :class:`History`.
        Raises :class:`DivergenceError` if a DivergenceGuard sees the loss diverge.
        """
        epochs = int(epochs)
        source = self._source_for(train_data, shuffle)
        pending, self._pending = self._pending, None
        self.resumed = pending is not None
        if pending is None:
            self.history = History()
            self.epoch, self.step, self.global_step = 0, 0, 0
            self._reset_accumulators()
        else:
            if pending["data"].get("kind") != source.kind:
                warnings.warn(
                    f"Trainer.fit: the checkpoint was taken with {pending['data'].get('kind')} data, this fit has "
                    f"{source.kind} data; the batch order cannot be restored exactly",
                    stacklevel=2,
                )
            else:
                source.load_state_dict(pending["data"])
        self._source = source
        self.epochs = epochs
        self.steps_per_epoch = _steps(source)
        self.stop_training = False
        self.diverged = False
        callbacks = self._ordered_callbacks(verbose)
        self._callbacks_running = callbacks
        zero_grad = self._zero_grad_function()
        model, loss_fn, optimizer, metrics = self.model, self.loss, self.optimizer, self.metrics
        logs = {"batch": 0, "size": 0, "batch_loss": 0.0, "loss": 0.0, "lr": self.current_lr()}
        for m in metrics:
            logs[m.name] = 0.0
        model.train()
        model.skip_input_grad()  # the input is data: no dE/dx for the first layer (undone below)
        parallel = self.parallel
        if parallel is not None:
            parallel.before_training(model)
        self._call(callbacks, "on_train_begin", {})
        try:
            while self.epoch < epochs and not self.stop_training:
                epoch = self.epoch
                skip = self.step
                if skip == 0:
                    self._reset_accumulators()
                source.start_epoch()
                acc = self._accumulators
                logs["lr"] = lr = self.current_lr()
                self._call(callbacks, "on_epoch_begin", epoch, {"lr": lr})
                model.train()
                started = time.perf_counter() - acc["elapsed"]
                for x, y in self._to_model_device(source.batches(skip)):
                    logs["batch"] = step = self.step
                    self._call(callbacks, "on_batch_begin", step, logs)
                    zero_grad()
                    if parallel is not None:
                        x, y = parallel.shard(x, y)
                    output = model(x)
                    batch_loss = float(loss_fn(output, y))
                    if parallel is None:
                        model.backward(loss_fn.backward())
                    else:
                        parallel.backward(model, loss_fn.backward())
                    optimizer.step()
                    n = len(x)
                    acc["loss_sum"] += batch_loss * n
                    acc["count"] += n
                    logs["size"] = n
                    logs["batch_loss"] = batch_loss
                    logs["loss"] = acc["loss_sum"] / acc["count"]
                    for m in metrics:
                        m.update(output, y)
                        logs[m.name] = m.result()
                    self.step += 1
                    self.global_step += 1
                    acc["elapsed"] = time.perf_counter() - started
                    self._call(callbacks, "on_batch_end", step, logs)
                    if self.stop_training:
                        break
                if self.stop_training and self.steps_per_epoch is not None and self.step < self.steps_per_epoch:
                    break  # stopped mid-epoch: the partial epoch is not recorded
                if acc["count"] == 0:
                    raise ValueError(f"Trainer.fit: the training data gave no batches in epoch {epoch + 1}")
                elapsed = time.perf_counter() - started
                epoch_logs = {"loss": acc["loss_sum"] / acc["count"]}
                for m in metrics:
                    epoch_logs[m.name] = m.result()
                if validation_data is not None:
                    for key, value in self.evaluate(validation_data).items():
                        epoch_logs[f"val_{key}"] = value
                    model.train()
                epoch_logs["lr"] = lr
                epoch_logs["time"] = elapsed
                epoch_logs["samples_per_sec"] = acc["count"] / elapsed if elapsed > 0 else float("inf")
                if parallel is not None:
                    epoch_logs = parallel.reduce_metrics(epoch_logs, count=acc["count"])
                    epoch_logs["samples_per_sec"] *= parallel.size
                self.history.append(epoch, epoch_logs)
                if self.schedule is not None:
                    if self._schedule_wants_metric:
                        self.schedule.step(epoch_logs.get("val_loss", epoch_logs["loss"]))
                    else:
                        self.schedule.step()
                self.epoch, self.step = epoch + 1, 0
                self._reset_accumulators()
                self._call(callbacks, "on_epoch_end", epoch, epoch_logs)
        except BaseException:
            for cb in callbacks:  # let callbacks finish (end a live progress line, restore best weights)
                try:
                    cb.on_train_end({"error": True})
                except Exception:
                    pass
            raise
        else:
            self._call(callbacks, "on_train_end", {})
        finally:
            self.resumed = False
            self._callbacks_running = None
            model.skip_input_grad(False)
        return self.history

    # evaluation ----------------------------------------------------------------------------
    def evaluate(self, data, batch_size: int | None = None) -> dict:
        """Loss and metrics over ``data`` in eval mode: ``{'loss': ..., 'accuracy': ...}``.

        ``data`` is (x, y) arrays (cut into batches, in order), a DataLoader or an iterable of
        (x, y) batches. The loss is the mean of batch losses weighted by batch size.
        """
        was_training = self.model.training
        self.model.eval()
        metrics = [copy.copy(m) for m in self.metrics]
        for m in metrics:
            m.reset()
        total, count = 0.0, 0
        try:
            for x, y in self._to_model_device(self._eval_batches(data, batch_size)):
                output = self.model(x)
                n = len(x)
                total += float(self.loss(output, y)) * n
                count += n
                for m in metrics:
                    m.update(output, y)
        finally:
            self.model.train(was_training)
        if count == 0:
            raise ValueError("Trainer.evaluate: the data gave no batches")
        results = {"loss": total / count}
        for m in metrics:
            results[m.name] = m.result()
        return results

    def _eval_batches(self, data, batch_size):
        bs = int(batch_size or self.batch_size)
        if isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0]) and _is_array(data[1]):
            x, y = data
            if len(x) != len(y):
                raise ValueError(f"Trainer.evaluate: x has {len(x)} samples but y has {len(y)}")
            return ((x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs))
        if hasattr(data, "__iter__"):
            return iter(data)
        raise TypeError(f"Trainer.evaluate: expected (x, y) arrays or an iterable of (x, y) batches, got {type(data).__name__}")

    def predict(self, x, batch_size: int | None = None):
        """The model's outputs for ``x`` (an array, or an iterable of x or (x, y) batches), in eval
        mode, on the model's device."""
        bs = int(batch_size or self.batch_size)
        was_training = self.model.training
        self.model.eval()
        try:
            if _is_array(x):
                inputs = (x[i : i + bs] for i in range(0, len(x), bs))
            else:
                inputs = (b[0] if isinstance(b, (tuple, list)) else b for b in x)
            batches = self._to_model_device((xb, None) for xb in inputs)
            outputs = [self.model(xb) for xb, _ in batches]
        finally:
            self.model.train(was_training)
        if not outputs:
            raise ValueError("Trainer.predict: no input")
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)

    # checkpoints ---------------------------------------------------------------------------
    def _callback_keys(self, callbacks=None):
        keys, seen = {}, {}
        for cb in callbacks if callbacks is not None else self.callbacks:
            name = type(cb).__name__
            index = seen.get(name, 0)
            seen[name] = index + 1
            keys[f"{name}#{index}" if index else name] = cb
        return keys

    def save_checkpoint(self, path) -> str:
        """Write everything needed to continue exactly from this point to ``path`` (safetensors)."""
        atomic_write(path, self.checkpoint_bytes())
        return os.fspath(path)

    def checkpoint_bytes(self) -> bytes:
        """The checkpoint of this exact point, as the bytes of a safetensors file."""
        mid_epoch = self.step > 0
        source_state = self._source.state_dict(mid_epoch) if self._source is not None else {"kind": None}
        callback_states = {}
        for key, cb in self._callback_keys().items():
            state = cb.state_dict()
            if state is not None:
                callback_states[key] = state
        accumulators = self._accumulators or {"loss_sum": 0.0, "count": 0, "elapsed": 0.0}
        extra = {
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "epochs": self.epochs,
            "history": self.history.state_dict(),
            "accumulators": dict(accumulators),
            "metrics": [m.state_dict() for m in self.metrics] if mid_epoch else None,
            "data": source_state,
            "generator": self.generator.bit_generator.state,
            "callbacks": callback_states,
        }
        return checkpoint_bytes(self.model, self.optimizer, self.schedule, extra)

    def resume(self, path, missing_ok: bool = False):
        """Restore the newest checkpoint in directory ``path`` (or the file ``path``) for the next ``fit``.

        Restores the model, optimizer, schedule, History, epoch/step counters, the epoch's
        running sums, callbacks' states and every random generator; the next
        ``fit(train_data, epochs)`` continues from there up to ``epochs`` in total. If the
        newest file of a directory is unusable, older ones are tried (with a warning).
        Returns the path loaded, or None when there is no checkpoint and ``missing_ok``.
        Raises :class:`CheckpointError` (nothing changed) when no checkpoint can be used.
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            candidates = list_checkpoints(path) or []
            others = sorted(f for f in os.listdir(path) if f.endswith(".safetensors") and os.path.join(path, f) not in candidates)
            candidates = candidates + [os.path.join(path, f) for f in others if not candidates]
        else:
            candidates = [path] if os.path.exists(path) else []
        if not candidates:
            if missing_ok:
                return None
            raise FileNotFoundError(f"Trainer.resume: no checkpoint in {path!r}")
        errors = []
        for candidate in reversed(candidates):
            try:
                ckpt = read_checkpoint(candidate)
                load_checkpoint(ckpt, self.model, self.optimizer, self.schedule, _more_stages=self._stage_trainer)
            except CheckpointError as exc:
                errors.append(str(exc))
                if len(candidates) == 1:
                    raise
                warnings.warn(f"Trainer.resume: skipping an unusable checkpoint: {exc}", stacklevel=2)
                continue
            return candidate
        raise CheckpointError(f"Trainer.resume: no usable checkpoint in {path!r}: " + " | ".join(errors))

    def _stage_trainer(self, ckpt):
        """Validate the trainer's part of ``ckpt``; return a function that applies it."""
        try:
            extra = ckpt.extra
            epoch, step, global_step = (int(extra[k]) for k in ("epoch", "step", "global_step"))
            history = History()
            history.load_state_dict(extra["history"])
            generator_state = check_generator_state(self.generator, extra["generator"], "trainer")
            data = extra["data"]
            if data.get("kind") == "arrays":
                data = dict(data, generator=check_generator_state(self.generator, data["generator"], "trainer shuffling"))
            accumulators = dict(extra["accumulators"])
            metric_states = extra.get("metrics")
            if metric_states is not None and len(metric_states) != len(self.metrics):
                raise ValueError(f"it was saved with {len(metric_states)} metrics, this trainer has {len(self.metrics)}")
            callback_states = extra.get("callbacks", {})
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"checkpoint {ckpt.path!r}: has no usable trainer state ({type(exc).__name__}: {exc})") from None
        callbacks = self._callback_keys()
        unknown = [k for k in callback_states if k not in callbacks]
        if unknown:
            warnings.warn(f"Trainer.resume: the checkpoint holds state for callbacks {unknown} that this trainer does not have", stacklevel=3)

        def apply():
            self.history = history
            self.epoch, self.step, self.global_step = epoch, step, global_step
            self._accumulators = accumulators
            for m in self.metrics:
                m.reset()
            if metric_states is not None:
                for m, state in zip(self.metrics, metric_states):
                    m.load_state_dict(state)
            self.generator.bit_generator.state = generator_state
            for key, state in callback_states.items():
                if key in callbacks:
                    callbacks[key].load_state_dict(state)
            self._pending = {"data": data}

        return apply


def _wants_argument(method) -> bool:
    """Whether ``method`` takes a positional argument: ReduceLROnPlateau.step(metric), LinearWarmup.step(metric=None)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)
