"""The configuration of a training run: its settings, their defaults and checks, ``config.toml``.

A run is fully described by the flat table of :data:`FIELDS` (a TOML file holds the same
keys at top level)::

    model = "lenet5"            data = "fashion-mnist"      epochs = 12    batch_size = 64
    optimizer = "sgd"           lr = 0.05                   momentum = 0.9 weight_decay = 0.0005
    schedule = "cosine"         augment = false             seed = 0       device = "cpu"
    validation_fraction = 0.1   hidden = [256]

Precedence: the command-line options, then the TOML file given to ``gradlearn train``, then
the defaults, some of which depend on the data (:data:`DATA_DEFAULTS`: the model, epochs
and batch size) or the optimizer (:data:`DEFAULT_LR`). The run folder's ``config.toml`` holds
every resolved value, so ``gradlearn train RUN/config.toml`` trains the same run again.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

from . import UserError

#: Data sets ``gradlearn train --data`` accepts (classification sets of gradlearn.data).
DATA_CHOICES = ("fashion-mnist", "mnist", "digits", "cifar10", "xor", "two-spirals", "moons", "circles")
IMAGE_DATA = ("fashion-mnist", "mnist", "digits", "cifar10")

#: Per data set: the default model, epochs and batch size.
DATA_DEFAULTS = {
    "fashion-mnist": {"model": "lenet5", "epochs": 12, "batch_size": 64},
    "mnist": {"model": "lenet5", "epochs": 12, "batch_size": 64},
    "digits": {"model": "convnet", "epochs": 20, "batch_size": 32},
    "cifar10": {"model": "resnet20", "epochs": 10, "batch_size": 128},
    **{name: {"model": "mlp", "epochs": 30, "batch_size": 32} for name in ("xor", "two-spirals", "moons", "circles")},
}

#: Optimizer names and their gradlearn.optim classes.
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad", "nadam": "NAdam"}
#: The learning rate used when none is given, per optimizer.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adagrad": 0.01, "nadam": 2e-3}

#: Learning-rate schedules (stepped once per epoch), described in :func:`describe_schedule`.
SCHEDULES = {
    "none": "constant learning rate",
    "step": "divide by 10 every third of the epochs (StepLR)",
    "multistep": "divide by 10 at 50% and 75% of the epochs (MultiStepLR)",
    "exponential": "multiply by 0.9 every epoch (ExponentialLR)",
    "cosine": "cosine annealing to 0 over the epochs (CosineAnnealingLR)",
    "warmup-cosine": "linear warm-up for 1 epoch (2 from 10 epochs), then cosine annealing (LinearWarmup)",
    "plateau": "halve when the validation loss stops improving for 2 epochs (ReduceLROnPlateau)",
}
DEVICES = ("cpu", "cuda")


def model_choices() -> tuple:
    """The zoo's models (``convnet`` among them: two convolutions, any image size from 4x4)."""
    from ..models import MODEL_NAMES

    return MODEL_NAMES


@dataclass
class RunConfig:
    """Every setting of a training run (None: not given yet, to be defaulted by :func:`resolve`)."""

    model: str | None = None
    data: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    augment: bool | None = None
    seed: int | None = None
    device: str | None = None
    validation_fraction: float | None = None
    hidden: list | None = field(default=None)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def merged(self, other: "RunConfig") -> "RunConfig":
        """A copy where every value that ``other`` gives replaces this one's."""
        values = self.as_dict()
        values.update({k: v for k, v in other.as_dict().items() if v is not None})
        return RunConfig(**values)


#: key -> (Python type, what it is): the keys config.toml may hold, in the order written.
FIELDS = {
    "model": (str, "network: convnet or a zoo model (gradlearn summary MODEL shows its layers)"),
    "data": (str, "data set: " + ", ".join(DATA_CHOICES)),
    "epochs": (int, "passes over the training split"),
    "batch_size": (int, "examples per mini-batch"),
    "optimizer": (str, "optimizer: " + ", ".join(OPTIMIZERS)),
    "lr": (float, "learning rate (the first epoch's, before the schedule)"),
    "momentum": (float, "momentum in [0, 1) (SGD and RMSprop; unused by the others)"),
    "weight_decay": (float, "L2 weight decay, >= 0"),
    "schedule": (str, "learning-rate schedule: " + ", ".join(SCHEDULES)),
    "augment": (bool, "random crops (and flips for photos and clothes) of the training images"),
    "seed": (int, "seeds the initial weights, the validation split, the shuffling and the augmentation"),
    "device": (str, "cpu or cuda (needs CuPy and an NVIDIA GPU)"),
    "validation_fraction": (float, "fraction of the training set held out for validation, in [0, 0.5]"),
    "hidden": (list, "hidden layer sizes of mlp (unused by the other models)"),
}


def read_toml(path) -> RunConfig:
    """The settings in the TOML file ``path``; unknown keys and wrong types raise :class:`UserError`."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"no configuration file {str(path)!r}") from None
    except IsADirectoryError:
        raise UserError(f"{str(path)!r} is a folder, not a configuration file (to continue a run: gradlearn resume {path})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    unknown = [k for k in table if k not in FIELDS]
    if unknown:
        raise UserError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                        f"allowed keys: {', '.join(FIELDS)}")
    values = {}
    for key, value in table.items():
        kind = FIELDS[key][0]
        ok = (
            isinstance(value, bool) if kind is bool
            else isinstance(value, int) and not isinstance(value, bool) if kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
            else isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value) if kind is list
            else isinstance(value, str)
        )  # fmt: skip
        if not ok:
            expected = {bool: "true or false", int: "an integer", float: "a number", list: "a list of integers", str: "a string"}[kind]
            raise UserError(f"{path}: {key} must be {expected}, got {value!r}")
        values[key] = float(value) if kind is float else value
    return RunConfig(**values)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(config: RunConfig, header: str = "") -> str:
    """``config`` as a TOML document, one commented key per line (every value must be set)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    values = config.as_dict()
    for key, (_, description) in FIELDS.items():
        lines.append(f"# {description}")
        lines.append(f"{key} = {_toml_value(values[key])}")
    return "\n".join(lines) + "\n"


def normalise_name(value: str) -> str:
    return str(value).strip().lower().replace("_", "-")


def _choose(what: str, value, choices) -> str:
    name = normalise_name(value)
    if what == "model":
        name = name.replace("-", "_")  # zoo names use underscores (vgg11_bn)
    if name not in choices:
        raise UserError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return name


def check(config: RunConfig) -> RunConfig:
    """Check every value that is set; return a copy with names normalised. Raises :class:`UserError`."""
    c = RunConfig(**config.as_dict())
    if c.model is not None:
        c.model = _choose("model", c.model, model_choices())
    if c.data is not None:
        c.data = _choose("data set", c.data, DATA_CHOICES)
    if c.optimizer is not None:
        c.optimizer = _choose("optimizer", c.optimizer, tuple(OPTIMIZERS))
    if c.schedule is not None:
        c.schedule = _choose("schedule", c.schedule, tuple(SCHEDULES))
    if c.device is not None:
        c.device = _choose("device", c.device, DEVICES)
    if c.epochs is not None and c.epochs < 1:
        raise UserError(f"epochs must be at least 1, got {c.epochs}")
    if c.batch_size is not None and c.batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {c.batch_size}")
    if c.lr is not None and not c.lr > 0:  # also rejects NaN
        raise UserError(f"the learning rate must be positive, got {c.lr}")
    if c.momentum is not None and not 0 <= c.momentum < 1:
        raise UserError(f"momentum must be in [0, 1), got {c.momentum}")
    if c.weight_decay is not None and not c.weight_decay >= 0:
        raise UserError(f"weight decay must be >= 0, got {c.weight_decay}")
    if c.validation_fraction is not None and not 0 <= c.validation_fraction <= 0.5:
        raise UserError(f"validation_fraction must be in [0, 0.5], got {c.validation_fraction}")
    if c.hidden is not None and (not c.hidden or any(h < 1 for h in c.hidden)):
        raise UserError(f"hidden must list positive layer sizes, got {c.hidden}")
    if c.seed is not None and c.seed < 0:
        raise UserError(f"seed must be >= 0, got {c.seed}")
    return c


def resolve(config: RunConfig, default_data: str) -> RunConfig:
    """Fill every unset value with its default (``default_data`` when no data set is given)."""
    c = check(config)
    data = c.data or default_data
    defaults = DATA_DEFAULTS[data]
    optimizer = c.optimizer or "sgd"
    values = {
        "model": c.model or defaults["model"],
        "data": data,
        "epochs": c.epochs or defaults["epochs"],
        "batch_size": c.batch_size or defaults["batch_size"],
        "optimizer": optimizer,
        "lr": c.lr if c.lr is not None else DEFAULT_LR[optimizer],
        "momentum": c.momentum if c.momentum is not None else (0.9 if optimizer == "sgd" else 0.0),
        "weight_decay": c.weight_decay if c.weight_decay is not None else (5e-4 if optimizer == "sgd" else 0.0),
        "schedule": c.schedule or "cosine",
        "augment": bool(c.augment) if c.augment is not None else False,
        "seed": c.seed if c.seed is not None else 0,
        "device": c.device or "cpu",
        "validation_fraction": c.validation_fraction if c.validation_fraction is not None else 0.1,
        "hidden": list(c.hidden) if c.hidden is not None else [256],
    }
    return check(RunConfig(**values))
