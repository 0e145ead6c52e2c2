"""The practical guide on the command line: ``gradcheck``, ``sanity``, ``lr-find``, ``profile``.

- ``gradcheck MODEL``: every leaf layer of the model checked against finite differences in
  float64 (:func:`gradlearn.gradcheck`) on a standard-normal input of the shape that layer
  receives in the network, for a small batch; a table of the largest errors per layer. Exit
  status 1 when any layer fails.
- ``sanity``: the overfit-a-small-batch check (:func:`gradlearn.diagnostics.sanity_check`) of
  a model on the first samples of a data set; prints the verdict; exit status 0 on pass, 1 on fail.
- ``lr-find``: Bottou's halving search and the exponential range test
  (:mod:`gradlearn.diagnostics.lr_finder`), their plots written to ``--out``.
- ``profile MODEL --input-shape ...``: the time of each layer's forward and backward
  (:func:`gradlearn.diagnostics.profile.profile`), slowest first.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from . import UserError
from . import experiment as ex
from .config import DATA_CHOICES, DEVICES, OPTIMIZERS, RunConfig, check, model_choices

# the per-sample input of each model when --input-shape is not given (the zoo's, smaller for
# the ImageNet models, whose adaptive pooling takes any size, to keep the checks quick)
SMALL_SHAPE = (3, 64, 64)


def shape_arg(text: str) -> tuple:
    """argparse type for "3,32,32" (or "3x32x32"): a tuple of positive sizes."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, such as 3,32,32 or 784; got {text!r}")
    return shape


def _sizes_arg(text: str) -> list:
    return list(shape_arg(text))


def _model_arg(text: str) -> str:
    name = str(text).strip().lower().replace("-", "_")
    if name not in model_choices():
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; choose one of: {', '.join(model_choices())}")
    return name


def _default_shape(name: str) -> tuple:
    from ..models import DEFAULT_INPUT_SHAPES

    if name == "convnet":
        return (1, 8, 8)
    shape = DEFAULT_INPUT_SHAPES[name]
    return SMALL_SHAPE if shape == (3, 224, 224) else shape


def _add_model_options(sub, batch_default: int) -> None:
    sub.add_argument("model", type=_model_arg, metavar="MODEL", help=f"one of: {', '.join(model_choices())}")
    sub.add_argument("--input-shape", type=shape_arg, metavar="C,H,W",
                     help="shape of one input sample (default: the model's; 3,64,64 for the ImageNet models; 1,8,8 for convnet)")
    sub.add_argument("--batch-size", type=int, default=batch_default, metavar="N", help=f"batch size (default {batch_default})")
    sub.add_argument("--num-classes", type=int, metavar="N", help="number of outputs (default: the model's)")
    sub.add_argument("--hidden", type=_sizes_arg, default=[256], metavar="H1,H2", help="hidden sizes of mlp (default 256)")


def _build(args):
    if args.batch_size < 1:
        args.subparser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_classes is not None and args.num_classes < 1:
        args.subparser.error(f"--num-classes must be at least 1, got {args.num_classes}")
    shape = args.input_shape or _default_shape(args.model)
    model = ex.model_for_shape(args.model, shape, args.num_classes, args.hidden)
    try:
        model.eval()
        model(np.zeros((1, *shape), dtype=np.float32))
    except (ValueError, TypeError) as exc:
        raise UserError(f"{args.model} does not take inputs of shape {','.join(map(str, shape))}: {exc}") from None
    return model.train(), shape


# -------------------------------------------------------------------------------------------
# gradcheck


def add_gradcheck_command(commands) -> None:
    sub = commands.add_parser(
        "gradcheck", help="check every layer's backward against finite differences (float64)",
        description="Check the backward pass of every layer of a model against central finite differences in "
                    "float64, each on a random input of the shape it receives in the network. Exit status 1 if any fails.",
    )  # fmt: skip
    _add_model_options(sub, 2)
    sub.add_argument("--whole", action="store_true", help="also check the whole network at once (ReLU and max-pool kinks "
                                                          "can make this fail by chance at large sizes)")  # fmt: skip
    sub.add_argument("--max-elements", type=int, default=512, metavar="N",
                     help="tensors up to N elements are checked element by element, larger ones along 16 random "
                          "directions (default 512)")
    sub.add_argument("--verbose", action="store_true", help="print every tensor of every layer")
    sub.set_defaults(run=run_gradcheck, subparser=sub)


def _record_inputs(model, x):
    """leaf name -> (module, tuple of input shapes) from one forward pass."""
    seen, leaves = set(), []
    for name, m in model.named_modules():
        if not m._modules and id(m) not in seen:
            seen.add(id(m))
            leaves.append((name or type(m).__name__, m))
    shapes = {}
    try:
        for name, m in leaves:
            def recorder(*inputs, _name=name, _forward=m.forward, _module=m):
                shapes.setdefault(_name, (_module, tuple(tuple(i.shape) for i in inputs)))
                return _forward(*inputs)

            object.__setattr__(m, "forward", recorder)
        model(x)
    finally:
        for _, m in leaves:
            m.__dict__.pop("forward", None)
    return [(name, *shapes[name]) for name, _ in leaves if name in shapes]


def run_gradcheck(args) -> int:
    from ..diagnostics import gradcheck

    if args.max_elements < 0:
        args.subparser.error(f"--max-elements must be >= 0, got {args.max_elements}")
    model, shape = _build(args)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, *shape)).astype(np.float32)
    layers = _record_inputs(model, x)
    print(f"gradcheck {args.model}: {len(layers)} layers, batch {args.batch_size} x {'x'.join(map(str, shape))}, float64, "
          f"central differences (eps 1e-6; tensors over {args.max_elements} elements along 16 random directions), pass when max rel error <= 1e-6 or max abs error <= 1e-10")  # fmt: skip
    w = max([5, 15 if args.whole else 0] + [len(n) for n, *_ in layers]) + 1
    header = f"{'layer':<{w}} {'module':<34} {'tensors':>7} {'max abs err':>12} {'max rel err':>12}  status"
    print(header)
    print("-" * len(header))
    failed = []
    for name, module, input_shapes in layers:
        inputs = [rng.standard_normal(s) for s in input_shapes]
        report = gradcheck(module, *inputs, max_elements=args.max_elements)
        _print_row(name, repr(module), report, w)
        if not report.passed:
            failed.append((name, report))
        if args.verbose:
            print("    " + str(report).replace("\n", "\n    "))
    if args.whole:
        report = gradcheck(model, rng.standard_normal((args.batch_size, *shape)), max_elements=args.max_elements)
        _print_row("(whole network)", type(model).__name__, report, w)
        if not report.passed:
            failed.append(("(whole network)", report))
    print("-" * len(header))
    if failed:
        print(f"FAILED: {len(failed)} of {len(layers) + bool(args.whole)} checks: {', '.join(n for n, _ in failed)}")
        for name, report in failed:
            print(f"\n{name}:\n" + str(report))
        return 1
    print(f"passed: all {len(layers) + bool(args.whole)} checks")
    return 0


def _print_row(name, module, report, w):
    rows = report.rows
    abs_err = max((r.max_abs_error for r in rows), default=0.0)
    rel_err = max((r.max_rel_error for r in rows), default=0.0)
    status = "ok" if report.passed else ("FAIL" if rows else "nothing to check")
    if report.passed and report.vacuous:
        status += f" (zero gradient for {', '.join(report.vacuous)})"
    module = module if len(module) <= 34 else module[:31] + "..."
    print(f"{name:<{w}} {module:<34} {len(rows):>7} {abs_err:>12.2e} {rel_err:>12.2e}  {status}")


# -------------------------------------------------------------------------------------------
# sanity and lr-find: a model on a data set


def _add_data_options(sub) -> None:
    sub.add_argument("--model", metavar="NAME", help=f"network: {', '.join(model_choices())} (default: as gradlearn train)")
    sub.add_argument("--data", metavar="NAME", help=f"data set: {', '.join(DATA_CHOICES)} (default: as gradlearn train)")
    sub.add_argument("--optimizer", metavar="NAME", help=f"one of: {', '.join(OPTIMIZERS)} (default sgd)")
    sub.add_argument("--momentum", type=float, metavar="X", help="momentum for sgd and rmsprop (default 0.9 for sgd)")
    sub.add_argument("--batch-size", type=int, metavar="N", help="mini-batch size")
    sub.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")


def _prepare(args, lr=None):
    """(config, model, standardised training inputs, labels) for --model/--data."""
    given = check(RunConfig(model=args.model, data=args.data, optimizer=args.optimizer, momentum=args.momentum,
                            batch_size=args.batch_size, seed=args.seed, lr=lr))  # fmt: skip
    config, note = ex.resolve_config(given)
    if note:
        print(f"note: {note}")
    splits = ex.load_splits(config)
    model, input_shape = ex.build_model(config, splits.sample_shape, len(splits.classes))
    x, y = splits.train
    x = splits.normaliser()(x).reshape((len(x), *input_shape))
    return config, model, x, y


def _optimizer_factory(config):
    from .. import optim

    cls = getattr(optim, OPTIMIZERS[config.optimizer])
    if config.optimizer == "sgd" and not config.momentum:
        return None  # plain SGD on the flat vector
    extra = {"momentum": config.momentum} if config.optimizer in ("sgd", "rmsprop") else {}
    return lambda model, lr: cls(model.parameters(), lr=lr, **extra)


def add_sanity_command(commands) -> None:
    sub = commands.add_parser(
        "sanity", help="overfit a small batch: can the model drive its training error to zero?",
        description="The practical guide's sanity check: train a copy of the model on a few training samples and "
                    "check that the training error reaches 0. Prints the verdict and what to try; exit status 0 on "
                    "pass, 1 on fail.",
    )  # fmt: skip
    _add_data_options(sub)
    sub.add_argument("--samples", type=int, default=32, metavar="N", help="training samples to overfit (default 32)")
    sub.add_argument("--steps", type=int, default=300, metavar="N", help="the most training steps (default 300)")
    sub.add_argument("--lr", type=float, metavar="X", help="learning rate (default: the optimizer's, 0.05 for sgd)")
    sub.set_defaults(run=run_sanity, subparser=sub)


def run_sanity(args) -> int:
    from ..diagnostics import sanity_check
    from ..losses import CrossEntropyLoss

    if args.samples < 1 or args.steps < 1:
        args.subparser.error(f"--samples and --steps must be at least 1, got {args.samples} and {args.steps}")
    config, model, x, y = _prepare(args, args.lr)
    batch = config.batch_size if args.batch_size else None
    print(f"sanity check: {config.model} on the first {min(args.samples, len(x))} {config.data} training samples, "
          f"{config.optimizer} lr {config.lr:g}, at most {args.steps} steps", flush=True)  # fmt: skip
    report = sanity_check(model, CrossEntropyLoss(), x, y, steps=args.steps, lr=config.lr, num_samples=args.samples,
                          batch_size=batch, optimizer_factory=_optimizer_factory(config), generator=config.seed)  # fmt: skip
    print(report)
    return 0 if report.passed else 1


def add_lr_find_command(commands) -> None:
    sub = commands.add_parser(
        "lr-find", help="search a learning rate (Bottou's halving and the range test), plots to --out",
        description="Search a learning rate on copies of the model: Bottou's recipe (start large, halve until the "
                    "loss no longer diverges over a few steps) and the exponential range test (the loss while the rate "
                    "grows from --start-lr to --end-lr). Writes lr_halving.png and lr_range_test.png to --out.",
    )  # fmt: skip
    _add_data_options(sub)
    sub.add_argument("--method", choices=("both", "halving", "range"), default="both", help="which search (default both)")
    sub.add_argument("--steps", type=int, default=200, metavar="N", help="mini-batches of the range test (default 200)")
    sub.add_argument("--start-lr", type=float, default=1e-5, metavar="X", help="range test start (default 1e-5)")
    sub.add_argument("--end-lr", type=float, default=10.0, metavar="X", help="range test end; halving starts there (default 10)")
    sub.add_argument("--out", metavar="DIR", help="folder for the plots (default runs/lr-find-<model>-<data>-<time>)")
    sub.set_defaults(run=run_lr_find, subparser=sub)


def run_lr_find(args) -> int:
    from ..diagnostics import halving_lr_search, lr_range_test, plot_lr_finder
    from ..losses import CrossEntropyLoss

    if not 0 < args.start_lr < args.end_lr:
        args.subparser.error(f"need 0 < --start-lr < --end-lr, got {args.start_lr} and {args.end_lr}")
    if args.steps < 2:
        args.subparser.error(f"--steps must be at least 2, got {args.steps}")
    why_not = ex.plots_available()
    if why_not is not None:
        raise UserError(why_not)
    config, model, x, y = _prepare(args)
    if args.out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"lr-find-{config.model}-{config.data}-{stamp}"
    else:
        out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    factory = _optimizer_factory(config)
    loss = CrossEntropyLoss()
    what = f"{config.model} on {config.data}, {config.optimizer}" + (f" momentum {config.momentum:g}" if factory and config.momentum else "")
    if args.method in ("both", "halving"):
        result = halving_lr_search(model, loss, x, y, start_lr=args.end_lr, steps=20, num_samples=256,
                                   batch_size=min(config.batch_size, 256), optimizer_factory=factory, generator=config.seed)  # fmt: skip
        print(result)
        path = out / "lr_halving.png"
        plot_lr_finder(result, path, title=f"Learning-rate search, halving (Bottou): {what}")
        print(f"wrote {path}")
    if args.method in ("both", "range"):
        result = lr_range_test(model, loss, x, y, start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps,
                               batch_size=config.batch_size, optimizer_factory=factory, generator=config.seed)  # fmt: skip
        print(result)
        path = out / "lr_range_test.png"
        plot_lr_finder(result, path, title=f"Learning-rate range test: {what}")
        print(f"wrote {path}")
    return 0


# -------------------------------------------------------------------------------------------
# profile


def add_profile_command(commands) -> None:
    sub = commands.add_parser(
        "profile", help="time each layer's forward and backward, slowest first",
        description="Time the forward and backward pass of every layer of a model over a few training steps on a "
                    "random batch; print a table sorted by time, so the slow layer is obvious.",
    )  # fmt: skip
    _add_model_options(sub, 32)
    sub.add_argument("--repeat", type=int, default=5, metavar="N", help="measured steps, after three warm-up steps (default 5)")
    sub.add_argument("--device", default="cpu", choices=DEVICES,
                     help="where the model runs (cuda: timed between GPU synchronisations; default cpu)")  # fmt: skip
    sub.set_defaults(run=run_profile, subparser=sub)


def run_profile(args) -> int:
    from ..diagnostics.profile import profile

    if args.repeat < 1:
        args.subparser.error(f"--repeat must be at least 1, got {args.repeat}")
    model, shape = _build(args)
    report = profile(ex.to_device(model, args.device), shape, batch_size=args.batch_size, repeat=args.repeat)
    report.model = args.model
    print(report.table())
    if args.device == "cpu":
        from .. import compiled

        state = "on" if compiled.available() else "off (not built at install, or GRADLEARN_COMPILED=0): NumPy paths"
        print(f"compiled CPU kernels (gradlearn.compiled): {state}")
    return 0

