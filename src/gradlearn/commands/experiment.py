"""What a run configuration builds: the data splits, the model, the optimizer and schedule, the
run folder, and the plots drawn from a run.

Data: the data set's training split is cut into training and validation parts by a
permutation drawn from ``default_rng([seed, 1])`` (``validation_fraction`` of it held out);
:class:`~gradlearn.data.Standardize` is fitted on the training part only and applied to every
split; with ``augment``, training images are randomly cropped (zero padding of 1/8 of the
side) and, for photos and clothes (CIFAR-10, Fashion-MNIST), flipped left-right.

Models: ``convnet`` (:func:`gradlearn.models.convnet`, for any image size from 4x4), ``mlp`` (the
images flattened), ``lenet5`` (28x28, any channel count) and the zoo's other models (their
own input sizes); a model that does not fit the data is reported before training starts.

The run folder::

    config.toml              every setting: gradlearn train RUN/config.toml trains it again
    run.json                 what the data gave (input shape, classes, normalisation), status, test results
    checkpoints/             resumable checkpoints (gradlearn resume RUN)
    model.safetensors        the final weights
    history.csv              one row per epoch: loss, accuracy, val_loss, val_accuracy, lr, time
    learning_curves.png  filters.png  confusion_matrix.png  activations.png
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Transform
from ..models import convnet
from . import UserError
from .config import OPTIMIZERS, RunConfig, check, resolve, to_toml

PLOT_FILES = {
    "learning_curves": "learning_curves.png",
    "filters": "filters.png",
    "confusion_matrix": "confusion_matrix.png",
    "activations": "activations.png",
}
CONFIG_FILE = "config.toml"
META_FILE = "run.json"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"
EVAL_BATCH = 500
FASHION_HINT = (
    "Fashion-MNIST was not found (looked in $GRADLEARN_DATA/fashion-mnist, ~/.cache/gradlearn/fashion-mnist and "
    "/usr/share/datasets/fashion-mnist); to train LeNet-5 on it, install it with `apt-get install dataset-fashion-mnist` "
    "(Debian), or `gradlearn train --data fashion-mnist` downloads it"
)


# -------------------------------------------------------------------------------------------
# data


@dataclass
class Splits:
    """A data set cut for training: float32 inputs as stored (N, *sample_shape), int64 labels."""

    name: str
    classes: tuple
    train: tuple
    val: tuple | None
    test: tuple
    mean: list
    std: list

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.test[0].shape[1:])

    def normaliser(self):
        from ..data import Standardize

        return Standardize(self.mean, self.std)


_loaded = {}


def load_splits_raw(name: str, download: bool = True):
    """``(train, test)`` Datasets of ``name`` (cached for the process); DataError -> UserError."""
    from ..data import DataError, load_dataset

    if name in _loaded:
        return _loaded[name]
    kwargs = {}
    if name in ("mnist", "fashion-mnist"):
        kwargs = {"download": download}
    try:
        result = load_dataset(name, **kwargs)
    except DataError as exc:
        raise UserError(str(exc)) from None
    except ImportError as exc:  # digits without scikit-learn
        raise UserError(str(exc)) from None
    _loaded[name] = result
    return result


def main_data() -> tuple:
    """The main job's data set: ('fashion-mnist', None) when its files are found, else ('digits', note)."""
    from ..data import DataError, fashion_mnist

    try:
        _loaded["fashion-mnist"] = fashion_mnist(download=False)
        return "fashion-mnist", None
    except DataError as exc:
        if "not found" not in str(exc).split("\n")[0]:
            raise UserError(f"Fashion-MNIST was found but cannot be read: {exc}") from None
        return "digits", FASHION_HINT + "; training a small convnet on scikit-learn's 8x8 digits instead"


def resolve_config(given: RunConfig):
    """(``given`` completed with every default, a note or None): the data set defaults to the
    main job's (Fashion-MNIST when installed, else the digits, with a note saying why)."""
    if given.data is None:
        default_data, note = main_data()
    else:
        default_data, note = given.data, None
    return resolve(given, default_data), note


def load_splits(config: RunConfig, download: bool = True) -> Splits:
    """The training/validation/test splits of ``config.data`` as the run uses them."""
    train, test = load_splits_raw(config.data, download)
    # The splits made below are the run's copies: left in the cache, the raw training set
    # would stay resident beside them for the whole run (Fashion-MNIST: 179 MB).
    _loaded.pop(config.data, None)
    classes = tuple(train.classes) if train.classes is not None else tuple(str(i) for i in range(int(train.y.max()) + 1))
    x, y = np.asarray(train.x, dtype=np.float32), np.asarray(train.y)
    n_val = int(round(config.validation_fraction * len(x)))
    val = None
    if n_val > 0:
        order = np.random.default_rng([config.seed, 1]).permutation(len(x))
        val = (x[order[:n_val]], y[order[:n_val]])
        keep = np.sort(order[n_val:])
        x, y = x[keep], y[keep]
    if len(x) == 0:
        raise UserError(f"{config.data}: nothing is left for training after holding out {n_val} validation examples")
    from ..data import Standardize

    norm = Standardize.fit(x)
    test_split = (np.asarray(test.x, dtype=np.float32), np.asarray(test.y))
    return Splits(config.data, classes, (x, y), val, test_split, norm.mean.ravel().tolist(), norm.std.ravel().tolist())


class DeviceTransform(Transform):
    """Apply ``inner`` (a Transform) to a batch, then move x and y to ``device`` (the GPU)."""

    def __init__(self, inner, device: str):
        super().__init__()
        self.inner = inner
        self.device = device
        self.random = bool(getattr(inner, "random", False))

    def __call__(self, x, y=None, *, generator=None):
        from ..backend import to_device

        x, y = self.inner(x, y, generator=generator)
        return to_device(x, self.device), to_device(y, self.device)

    def extra_repr(self) -> str:
        return f"{self.inner!r}, device={self.device!r}"


class _Reshape:
    """Reshape a batch to (N, *shape): images flattened for an mlp."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __call__(self, x):
        return x.reshape((len(x),) + self.shape)

    def __repr__(self):
        return f"Reshape{self.shape}"


def make_transform(splits: Splits, config: RunConfig, training: bool, model_input_shape=None):
    """The batch transform: [random crop, flip,] standardise, [flatten], [move to the GPU]."""
    from ..data import Compose, RandomCrop, RandomHorizontalFlip

    norm = splits.normaliser()
    steps = []
    if training and config.augment and len(splits.sample_shape) == 3:
        c, h, w = splits.sample_shape
        steps.append(RandomCrop((h, w), padding=max(1, h // 8)))
        if config.data in ("cifar10", "fashion-mnist"):
            steps.append(RandomHorizontalFlip())
    steps.append(norm)
    if model_input_shape is not None and tuple(model_input_shape) != splits.sample_shape:
        steps.append(_Reshape(model_input_shape))
    transform = Compose(steps) if len(steps) > 1 else norm
    return DeviceTransform(transform, config.device) if config.device != "cpu" else transform


def loaders(splits: Splits, config: RunConfig, model_input_shape):
    """DataLoaders of the training, validation and test splits (inputs reshaped for the model)."""
    from ..data import DataLoader

    train = DataLoader(splits.train, config.batch_size, shuffle=True, generator=np.random.default_rng([config.seed, 2]),
                       transform=make_transform(splits, config, True, model_input_shape), prefetch=2)  # fmt: skip
    evaluation = make_transform(splits, config, False, model_input_shape)
    val = None
    if splits.val is not None:
        val = DataLoader(splits.val, EVAL_BATCH, shuffle=False, transform=evaluation, prefetch=1)
    test = DataLoader(splits.test, EVAL_BATCH, shuffle=False, transform=evaluation, prefetch=1)
    return train, val, test


# -------------------------------------------------------------------------------------------
# models


def build_model(config: RunConfig, sample_shape, num_classes: int):
    """``(model, model_input_shape)`` for ``config.model`` on samples of ``sample_shape``."""
    from ..models import get_model, lenet5, mlp

    rng = np.random.default_rng(config.seed)
    name = config.model
    input_shape = tuple(sample_shape)
    try:
        if name == "mlp":
            input_shape = (int(np.prod(sample_shape)),)
            model = mlp([input_shape[0], *config.hidden, num_classes], generator=rng)
        elif len(sample_shape) != 3:
            raise ValueError(f"it takes images (C, H, W), and the data are vectors of shape {tuple(sample_shape)}")
        elif name == "convnet":
            model = convnet(num_classes, *sample_shape, generator=rng)
        elif name == "lenet5":
            model = lenet5(num_classes, in_channels=sample_shape[0], generator=rng)
        else:
            model = get_model(name, num_classes=num_classes, generator=rng)
        model.eval()
        model(np.zeros((2, *input_shape), dtype=np.float32))
        model.train()
    except (ValueError, TypeError) as exc:
        shape = "x".join(map(str, sample_shape))
        raise UserError(
            f"model {name} does not fit {config.data}'s inputs of shape {shape}: {exc}. "
            f"For {config.data}, try --model convnet" + (", lenet5" if tuple(sample_shape[1:]) == (28, 28) else "") + " or mlp"
        ) from None
    return model, input_shape


def build_optimizer(config: RunConfig, model):
    from .. import optim

    cls = getattr(optim, OPTIMIZERS[config.optimizer])
    kwargs = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer in ("sgd", "rmsprop"):
        kwargs["momentum"] = config.momentum
    return cls(model.parameters(), **kwargs)


def build_schedule(config: RunConfig, optimizer):
    from .. import optim

    epochs, name = config.epochs, config.schedule
    if name == "none":
        return None
    if name == "step":
        return optim.StepLR(optimizer, step_size=max(1, math.ceil(epochs / 3)), gamma=0.1)
    if name == "multistep":
        return optim.MultiStepLR(optimizer, milestones=sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)}), gamma=0.1)
    if name == "exponential":
        return optim.ExponentialLR(optimizer, gamma=0.9)
    if name == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "warmup-cosine":
        warmup = 1 if epochs < 10 else 2
        after = optim.CosineAnnealingLR(optimizer, T_max=max(1, epochs - warmup))
        return optim.LinearWarmup(optimizer, warmup, after=after)
    if name == "plateau":
        return optim.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    raise UserError(f"unknown schedule {name!r}")


def to_device(model, device: str):
    """Move ``model`` to ``device``; a missing CuPy or GPU becomes a UserError saying which."""
    if device == "cpu":
        return model
    try:
        return model.to(device)
    except RuntimeError as exc:
        raise UserError(str(exc)) from None


# -------------------------------------------------------------------------------------------
# run folders


def new_run_folder(config: RunConfig, out=None) -> Path:
    """``out``, or ``runs/<model>-<data>-<timestamp>``; it must not hold a run already."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path("runs") / f"{config.model}-{config.data}-{stamp}"
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
    else:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {str(folder)!r} is a file, not a folder")
        if (folder / CONFIG_FILE).exists() or (folder / CHECKPOINT_DIR).exists():
            raise UserError(f"{str(folder)!r} already holds a run; continue it with `gradlearn resume {folder}` or choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {str(folder)!r}: {exc.strerror or exc}") from None
    return folder


def config_header() -> str:
    from .. import __version__

    return (
        f"gradlearn {__version__} run configuration.\n"
        "Train this run again with:  gradlearn train config.toml   (command-line options override these values)"
    )


def write_config(folder: Path, config: RunConfig) -> None:
    (folder / CONFIG_FILE).write_text(to_toml(config, config_header()), encoding="utf-8")


def write_meta(folder: Path, meta: dict) -> None:
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / META_FILE)


@dataclass
class Run:
    """A run folder as read back: its configuration and what ``run.json`` recorded."""

    folder: Path
    config: RunConfig
    meta: dict

    @property
    def classes(self) -> tuple:
        return tuple(self.meta["classes"])

    @property
    def model_input_shape(self) -> tuple:
        return tuple(self.meta["model_input_shape"])

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.meta["sample_shape"])

    def normaliser(self):
        from ..data import Standardize

        return Standardize(self.meta["mean"], self.meta["std"])

    def weights_path(self) -> Path:
        """The final weights, or the newest checkpoint of an unfinished run."""
        from ..train import latest_checkpoint

        final = self.folder / WEIGHTS_FILE
        if final.exists():
            return final
        latest = latest_checkpoint(self.folder / CHECKPOINT_DIR)
        if latest is None:
            raise UserError(f"{self.folder}: no weights yet (neither {WEIGHTS_FILE} nor a checkpoint in {CHECKPOINT_DIR}/)")
        return Path(latest)

    def build_model(self, load: bool = True):
        """The run's model with its trained weights (in evaluation mode)."""
        from ..train import CheckpointError, load_weights

        model, _ = build_model(self.config, self.sample_shape, len(self.classes))
        if load:
            path = self.weights_path()
            try:
                load_weights(path, model)
            except CheckpointError as exc:
                raise UserError(f"cannot load the weights: {exc}") from None
        return model.eval()


def open_run(folder) -> Run:
    """Read the run folder ``folder``; a missing or foreign folder raises :class:`UserError`."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"no run folder {str(folder)!r}")
    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is not a folder (give the run folder that `gradlearn train` wrote)")
    from .config import read_toml

    if not (folder / CONFIG_FILE).exists():
        raise UserError(f"{str(folder)!r} is not a gradlearn run folder: it has no {CONFIG_FILE}")
    config = check(read_toml(folder / CONFIG_FILE))
    missing = [k for k, v in config.as_dict().items() if v is None]
    if missing:
        raise UserError(f"{folder / CONFIG_FILE}: missing {', '.join(missing)}")
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        for key in ("classes", "model_input_shape", "sample_shape", "mean", "std"):
            meta[key]
    except FileNotFoundError:
        raise UserError(f"{str(folder)!r}: {META_FILE} is missing (the run did not get as far as loading its data)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder / META_FILE}: unreadable ({type(exc).__name__}: {exc})") from None
    return Run(folder, config, meta)


def read_history(path) -> dict:
    """history.csv as a dict of per-epoch lists of floats."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    history = {}
    for row in rows:
        for key, value in row.items():
            if key == "epoch":
                continue
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                history.setdefault(key, []).append(float("nan"))
    return history


# -------------------------------------------------------------------------------------------
# predictions and plots


def predict_batches(model, x, batch: int = EVAL_BATCH):
    """The model's outputs for ``x`` (evaluation mode), as a NumPy array."""
    from ..backend import to_device as move

    outputs = []
    device = "cpu"
    params = list(model.parameters())
    if params and type(params[0].data) is not np.ndarray:
        device = "cuda"
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        outputs.append(move(model(move(xb, device) if device != "cpu" else xb), "cpu"))
    return np.concatenate(outputs, axis=0)


def first_layer_weight(model):
    """(name, weight) of the first Conv2d or Linear layer."""
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is not None and not module._modules and getattr(weight, "ndim", 0) in (2, 4):
            return name, weight
    return None, None


def draw_plots(folder: Path, model, history, test_x, test_y, classes, title: str, *, stream=None) -> list:
    """Write the four plots of a run into ``folder``; returns the paths written.

    ``test_x`` is the standardised test input shaped for the model. A plot that cannot be
    drawn for this model (filters of a first layer that are not images) is skipped with a note.
    """
    from ..backend import to_device as move
    from ..diagnostics import activation_stats, plot_activations, plot_confusion_matrix, plot_filters, plot_learning_curves
    from ..train import confusion_matrix

    out = stream
    written = []
    path = folder / PLOT_FILES["learning_curves"]
    plot_learning_curves(history, path, title=f"Learning curves: {title}")
    written.append(path)

    name, weight = first_layer_weight(model)
    if weight is not None:
        path = folder / PLOT_FILES["filters"]
        try:
            w = move(weight.data, "cpu")
            kind = "filters" if w.ndim == 4 else "weights of the first Linear layer, as images"
            plot_filters(w, path, title=f"First-layer {kind} ({name}: {w.shape[0]} units), {title}")
            written.append(path)
        except ValueError as exc:
            print(f"note: no filter plot: {exc}", file=out)

    scores = predict_batches(model, test_x)
    cm = confusion_matrix(scores, np.asarray(test_y), num_classes=len(classes))
    path = folder / PLOT_FILES["confusion_matrix"]
    plot_confusion_matrix(cm, path, classes=classes, title=f"Test set: {title}")
    written.append(path)

    sample = test_x[:100]
    params = list(model.parameters())
    if params and type(params[0].data) is not np.ndarray:
        sample = move(sample, "cuda")
    report = activation_stats(model, sample, keep_outputs=True)
    if any(True for _ in report.layers):
        path = folder / PLOT_FILES["activations"]
        plot_activations(report, path, title=f"Hidden-unit activations on 100 test samples: {title}")
        written.append(path)
    return written


def plots_available() -> str | None:
    """None when matplotlib is importable, else why the plots are skipped."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from ..diagnostics.plots import PLOTS_EXTRA_HINT

        return PLOTS_EXTRA_HINT
    return None


def standardised_test(run_or_splits, model_input_shape, x, y):
    """Standardise ``x`` with the run's statistics and shape it for the model."""
    norm = run_or_splits.normaliser()
    x = norm(np.asarray(x, dtype=np.float32))
    return x.reshape((len(x),) + tuple(model_input_shape)), np.asarray(y)


def model_for_shape(name: str, input_shape, num_classes: int | None = None, hidden=(256,), seed: int = 0):
    """A model called ``name`` for inputs of ``input_shape`` (the diagnostics' models, without data).

    ``mlp`` gets sizes [prod(input_shape), *hidden, classes]; ``convnet`` and ``lenet5`` take the
    input's channels; the other zoo models their own builders' inputs. ``num_classes`` None:
    the builder's default (10 for convnet, lenet5 and mlp). Errors raise :class:`UserError`.
    """
    from ..models import get_model, lenet5, mlp

    rng = np.random.default_rng(seed)
    shape = tuple(input_shape)
    classes = {} if num_classes is None else {"num_classes": int(num_classes)}
    try:
        if name == "mlp":
            return mlp([int(np.prod(shape)), *hidden, classes.get("num_classes", 10)], generator=rng)
        if name in ("convnet", "lenet5") and len(shape) != 3:
            raise ValueError(f"it takes images: give --input-shape as C,H,W, got {','.join(map(str, shape))}")
        if name == "convnet":
            return convnet(classes.get("num_classes", 10), *shape, generator=rng)
        if name == "lenet5":
            return lenet5(classes.get("num_classes", 10), in_channels=shape[0], generator=rng)
        return get_model(name, generator=rng, **classes)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot build {name}: {exc}") from None
