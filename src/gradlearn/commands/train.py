"""``gradlearn train`` (a run from a configuration, into a run folder) and ``gradlearn resume``.

With no arguments, ``gradlearn train`` runs the main job: LeNet-5 on Fashion-MNIST when its
files are found (Debian's ``dataset-fashion-mnist`` package, or a download), otherwise a
small convnet on scikit-learn's 8x8 digits, saying so. Every epoch prints its training and
validation loss and accuracy (a live progress bar on a terminal); the end prints the test
accuracy. The run folder's files are described in :mod:`gradlearn.commands.experiment`.

``gradlearn resume RUN`` rebuilds the run from ``RUN/config.toml``, restores the newest
usable checkpoint (model, optimizer, schedule, epoch, step, random generators) and continues
to the configured number of epochs; the result is the one an uninterrupted run would have
given, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from . import UserError
from .config import DATA_CHOICES, DEVICES, OPTIMIZERS, SCHEDULES, RunConfig, check, model_choices, read_toml
from . import experiment as ex


def _int_list(text: str) -> list:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected sizes separated by commas, such as 256,128; got {text!r}")
    return values


def add_train_command(commands) -> None:
    sub = commands.add_parser(
        "train",
        help="train a network into a run folder (no arguments: LeNet-5 on Fashion-MNIST)",
        description=(
            "Train a network and write a run folder: config.toml, checkpoints, model.safetensors, history.csv and "
            "plots (learning curves, first-layer filters, confusion matrix, activations). With no arguments: "
            "LeNet-5 on Fashion-MNIST if it is installed (apt-get install dataset-fashion-mnist), otherwise a small "
            "convnet on scikit-learn's digits. Options override the CONFIG file."
        ),
        epilog="schedules: " + "; ".join(f"{k}: {v}" for k, v in SCHEDULES.items()),
    )
    sub.add_argument("config", nargs="?", metavar="CONFIG.toml", help="settings file (a run folder's config.toml reruns that run)")
    sub.add_argument("--model", metavar="NAME", help=f"network: {', '.join(model_choices())}")
    sub.add_argument("--data", metavar="NAME", help=f"data set: {', '.join(DATA_CHOICES)}")
    sub.add_argument("--epochs", type=int, metavar="N", help="passes over the training data")
    sub.add_argument("--batch-size", type=int, metavar="N", help="examples per mini-batch")
    sub.add_argument("--optimizer", metavar="NAME", help=f"one of: {', '.join(OPTIMIZERS)} (default sgd)")
    sub.add_argument("--lr", type=float, metavar="X", help="learning rate (default: 0.05 for sgd, 1e-3 for adam)")
    sub.add_argument("--momentum", type=float, metavar="X", help="momentum in [0, 1) for sgd and rmsprop (default 0.9 for sgd)")
    sub.add_argument("--weight-decay", type=float, metavar="X", help="L2 weight decay (default 5e-4 for sgd, else 0)")
    sub.add_argument("--schedule", metavar="NAME", help=f"learning-rate schedule: {', '.join(SCHEDULES)} (default cosine)")
    sub.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                     help="random crops (and flips for clothes and photos) of the training images")
    sub.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    sub.add_argument("--hidden", type=_int_list, metavar="H1,H2", help="hidden layer sizes of mlp (default 256)")
    sub.add_argument("--validation-fraction", type=float, metavar="X", help="held-out fraction of the training set (default 0.1)")
    sub.add_argument("--out", metavar="DIR", help="run folder (default runs/<model>-<data>-<time>)")
    sub.add_argument("--device", metavar="DEVICE", help=f"one of: {', '.join(DEVICES)} (default cpu)")
    sub.add_argument("--distributed", action="store_true",
                     help="data-parallel over MPI: run as `mpirun -n N gradlearn train --distributed ...`; "
                          "--batch-size is the global batch, rank 0 alone prints and writes the run folder")
    sub.set_defaults(run=run_train, subparser=sub)


def add_resume_command(commands) -> None:
    sub = commands.add_parser(
        "resume",
        help="continue an interrupted run to its configured epochs",
        description="Continue the run in DIR from its newest checkpoint up to the epochs in DIR/config.toml, "
        "exactly as if it had never stopped; then write the final weights, test results and plots.",
    )
    sub.add_argument("run_dir", metavar="DIR", help="the run folder")
    sub.add_argument("--distributed", action="store_true",
                     help="resume data-parallel over MPI (any number of ranks; the run folder must be shared)")
    sub.set_defaults(run=run_resume, subparser=sub)


def _config_from_args(args) -> RunConfig:
    return RunConfig(
        model=args.model, data=args.data, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        augment=args.augment, seed=args.seed, device=args.device, validation_fraction=args.validation_fraction,
        hidden=args.hidden,
    )  # fmt: skip


def _describe(config, splits, folder, n_params) -> str:
    shape = "x".join(map(str, splits.sample_shape))
    n_val = 0 if splits.val is None else len(splits.val[0])
    optimizer = f"{config.optimizer} lr {config.lr:g}"
    if config.optimizer in ("sgd", "rmsprop") and config.momentum:
        optimizer += f" momentum {config.momentum:g}"
    if config.weight_decay:
        optimizer += f" weight decay {config.weight_decay:g}"
    return (
        f"Training {config.model} ({n_params:,} parameters) on {config.data}: {len(splits.train[0]):,} training, "
        f"{n_val:,} validation, {len(splits.test[0]):,} test examples of shape {shape}, {len(splits.classes)} classes\n"
        f"  {config.epochs} epochs, batch size {config.batch_size}, {optimizer}, schedule {config.schedule}"
        f"{', augmented' if config.augment else ''}, seed {config.seed}, device {config.device}\n"
        f"  run folder: {folder}"
    )


class _Session:
    """Everything a run needs, built from its configuration (the same way for train and resume)."""

    def __init__(self, config: RunConfig, splits, distributed: bool = False):
        from ..losses import CrossEntropyLoss
        from ..train import Checkpoint, CSVLogger, DivergenceGuard, Trainer

        self.config, self.splits = config, splits
        self.model, self.model_input_shape = ex.build_model(config, splits.sample_shape, len(splits.classes))
        ex.to_device(self.model, config.device)
        self.optimizer = ex.build_optimizer(config, self.model)
        self.schedule = ex.build_schedule(config, self.optimizer)
        self.train_loader, self.val_loader, self.test_loader = ex.loaders(splits, config, self.model_input_shape)
        self.folder = None
        self.callbacks = []
        self._trainer_args = (CrossEntropyLoss(), Checkpoint, CSVLogger, DivergenceGuard, Trainer)
        self.distributed = distributed

    def attach(self, folder):
        loss, Checkpoint, CSVLogger, DivergenceGuard, Trainer = self._trainer_args
        self.folder = folder
        steps = len(self.train_loader)
        every_steps = 200 if steps > 400 else None  # long epochs: checkpoints within the epoch too
        self.callbacks = [
            DivergenceGuard(),
            CSVLogger(folder / ex.HISTORY_FILE),
            Checkpoint(folder / ex.CHECKPOINT_DIR, every=1, every_steps=every_steps, keep=2),
        ]
        self.trainer = Trainer(self.model, loss, self.optimizer, metrics=("accuracy",), callbacks=self.callbacks,
                               schedule=self.schedule, batch_size=self.config.batch_size, seed=self.config.seed,
                               distributed=self.distributed)  # fmt: skip

    def meta(self, status: str, **more) -> dict:
        from .. import __version__

        splits = self.splits
        return {
            "gradlearn": __version__,
            "status": status,
            "data": splits.name,
            "classes": list(splits.classes),
            "sample_shape": list(splits.sample_shape),
            "model_input_shape": list(self.model_input_shape),
            "mean": splits.mean,
            "std": splits.std,
            "num_parameters": int(sum(p.size for p in self.model.parameters())),
            **more,
        }

    def fit(self):
        from ..train import DivergenceError

        try:
            started = time.perf_counter()
            history = self.trainer.fit(self.train_loader, self.config.epochs, validation_data=self.val_loader, verbose=1)
        except DivergenceError as exc:
            ex.write_meta(self.folder, self.meta("diverged", error=str(exc)))
            raise UserError(f"training diverged: {exc}") from None
        except KeyboardInterrupt:
            print(f"\ninterrupted: continue with `gradlearn resume {self.folder}`", file=sys.stderr)
            raise SystemExit(130) from None
        return history, time.perf_counter() - started

    def finish(self, history, seconds: float, previous_seconds: float = 0.0) -> int:
        from ..train import save_weights

        save_weights(self.folder / ex.WEIGHTS_FILE, self.model)
        result = self.trainer.evaluate(self.test_loader)
        total = previous_seconds + seconds
        print(f"Test: loss {result['loss']:.4f}, accuracy {100 * result['accuracy']:.2f}% "
              f"({len(self.splits.test[0]):,} examples); trained {len(history)} epochs in {total:.1f} s")  # fmt: skip
        self.model.eval()
        written = []
        why_not = ex.plots_available()
        if why_not is None:
            test_x, test_y = ex.standardised_test(self.splits, self.model_input_shape, *self.splits.test)
            title = f"{self.config.model} on {self.config.data}"
            written = ex.draw_plots(self.folder, self.model, history.history, test_x, test_y, self.splits.classes, title)
        else:
            print(f"note: plots skipped: {why_not}")
        ex.write_meta(self.folder, self.meta("finished", test={"loss": result["loss"], "accuracy": result["accuracy"]},
                                             epochs_done=len(history), train_seconds=total))  # fmt: skip
        files = [ex.CONFIG_FILE, ex.WEIGHTS_FILE, ex.HISTORY_FILE, ex.CHECKPOINT_DIR + "/", *(p.name for p in written)]
        print(f"Wrote {self.folder}/: {', '.join(files)}")
        return 0


def _load(config, distributed: bool = False):
    splits = ex.load_splits(config)
    return _Session(config, splits, distributed)


def _worker_rank(distributed: bool) -> int:
    """This process's MPI rank under --distributed (0 otherwise). Ranks other than 0 train
    silently: rank 0 alone prints, checkpoints and writes the run folder."""
    if not distributed:
        return 0
    from .. import distributed as dist

    try:
        dist.install_excepthook()
        rank = dist.rank()
    except RuntimeError as exc:  # launched by mpirun without mpi4py
        raise UserError(str(exc)) from None
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return rank


def run_train(args) -> int:
    given = RunConfig()
    if args.config is not None:
        given = check(read_toml(args.config))
    given = given.merged(check(_config_from_args(args)))
    config, note = ex.resolve_config(given)
    rank = _worker_rank(args.distributed)
    if note:
        print(f"note: {note}")
    session = _load(config, args.distributed)
    if rank != 0:  # a worker: trains its shards, writes nothing (its folder is a scratch one)
        session.attach(Path(tempfile.mkdtemp(prefix="gradlearn-rank")))
        session.fit()
        return 0
    folder = ex.new_run_folder(config, args.out)
    ex.write_config(folder, config)
    ex.write_meta(folder, session.meta("running"))
    session.attach(folder)
    n_params = sum(p.size for p in session.model.parameters())
    print(_describe(config, session.splits, folder, n_params), flush=True)
    history, seconds = session.fit()
    return session.finish(history, seconds)


def run_resume(args) -> int:
    from ..train import CheckpointError

    run = ex.open_run(args.run_dir)
    config = run.config
    finished = run.meta.get("status") == "finished" and (run.folder / ex.WEIGHTS_FILE).exists()
    if finished and int(run.meta.get("epochs_done", 0)) >= config.epochs:
        print(f"{run.folder}: the run already finished its {config.epochs} epochs "
              f"(test accuracy {100 * run.meta['test']['accuracy']:.2f}%); nothing to resume")  # fmt: skip
        return 0
    rank = _worker_rank(args.distributed)
    session = _load(config, args.distributed)
    if list(session.splits.classes) != list(run.meta["classes"]) or list(session.splits.sample_shape) != list(run.sample_shape):
        raise UserError(f"{config.data} now has other classes or shapes than when {run.folder} was trained")
    session.attach(run.folder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = session.trainer.resume(run.folder / ex.CHECKPOINT_DIR)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except FileNotFoundError:
        raise UserError(f"{run.folder}: no checkpoint to resume from in {ex.CHECKPOINT_DIR}/ (train it again with "
                        f"`gradlearn train {run.folder / ex.CONFIG_FILE}`)") from None  # fmt: skip
    except CheckpointError as exc:
        raise UserError(f"cannot resume {run.folder}: {exc}") from None
    trainer = session.trainer
    previous = float(sum(v for v in trainer.history.history.get("time", []) if v == v))
    where = f"epoch {trainer.epoch + 1}" + (f", batch {trainer.step + 1}" if trainer.step else "")
    print(f"Resuming {run.folder} from {loaded} at {where} of {config.epochs}", flush=True)
    if trainer.epoch >= config.epochs:
        history = trainer.history
        seconds = 0.0
    else:
        history, seconds = session.fit()
    if rank != 0:
        return 0
    return session.finish(history, seconds, previous)
