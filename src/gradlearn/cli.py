"""The ``gradlearn`` command line: ``gradlearn COMMAND --help`` for each command.

The commands live in :mod:`gradlearn.commands` (one concept per file); ``summary`` is here.
A user's mistake (an unknown name, a bad value, a missing or corrupt file) is reported as
``gradlearn COMMAND: error: MESSAGE`` on stderr with exit status 1 (2 for argument-syntax
errors, from argparse), never as a traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands.diagnose import shape_arg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradlearn",
        description="Deep learning from modules with readable forward and backward passes.",
    )
    parser.add_argument("--version", action="version", version=f"gradlearn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .commands import diagnose, runs, train

    train.add_train_command(commands)
    train.add_resume_command(commands)
    runs.add_evaluate_command(commands)
    runs.add_predict_command(commands)
    runs.add_plot_command(commands)
    add_summary_command(commands)
    diagnose.add_gradcheck_command(commands)
    diagnose.add_sanity_command(commands)
    diagnose.add_lr_find_command(commands)
    diagnose.add_profile_command(commands)
    return parser


def add_summary_command(commands) -> None:
    """``gradlearn summary MODEL [--input-shape C,H,W] [--num-classes N]``."""
    from .models import DEFAULT_INPUT_SHAPES, MODEL_NAMES

    by_shape = {}
    for name in MODEL_NAMES:
        by_shape.setdefault(",".join(map(str, DEFAULT_INPUT_SHAPES[name])), []).append(name)
    defaults = "; ".join(f"{shape} for {', '.join(names)}" for shape, names in by_shape.items())
    sub = commands.add_parser(
        "summary",
        help="print a zoo model's layers, output shapes, parameters and multiply-adds",
        description="Print the layer table of a zoo model: output shapes, parameters, multiply-adds, memory.",
        epilog=f"default input shapes: {defaults}",
    )
    sub.add_argument("model", choices=MODEL_NAMES, metavar="MODEL", help=f"one of: {', '.join(MODEL_NAMES)}")
    sub.add_argument("--input-shape", type=shape_arg, default=None, metavar="C,H,W",
                     help="shape of one input sample (default: the model's, see below)")
    sub.add_argument("--num-classes", type=int, default=None, metavar="N", help="number of outputs (default: the model's)")
    sub.add_argument("--hidden", type=shape_arg, default=(256,), metavar="H1,H2",
                     help="hidden layer sizes, for mlp only (default: 256)")
    sub.add_argument("--batch-size", type=int, default=1, metavar="N", help="batch size of the forward pass (default: 1)")
    sub.set_defaults(run=_run_summary, subparser=sub)


def _run_summary(args) -> int:
    from .diagnostics.summary import summary
    from .models import DEFAULT_INPUT_SHAPES, get_model

    sub = args.subparser
    shape = args.input_shape or DEFAULT_INPUT_SHAPES[args.model]
    kwargs = {}
    if args.num_classes is not None:
        if args.num_classes < 1:
            sub.error(f"--num-classes must be positive, got {args.num_classes}")
        kwargs["num_classes"] = args.num_classes
    if args.batch_size < 1:
        sub.error(f"--batch-size must be positive, got {args.batch_size}")
    if args.model == "mlp":
        if len(shape) != 1:
            sub.error(f"mlp takes vectors: give --input-shape as one size (such as 784), got {','.join(map(str, shape))}")
        kwargs = {"sizes": [shape[0], *args.hidden, kwargs.get("num_classes", 10)]}
    try:
        model = get_model(args.model, **kwargs)
        summary(model, shape, batch_size=args.batch_size)
    except (ValueError, TypeError) as exc:
        print(f"gradlearn summary: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run = getattr(args, "run", None)
    if run is None:
        return 0
    return _run_reporting_errors(run, args)


def _run_reporting_errors(run, args) -> int:
    """Run a command; a user's mistake becomes ``gradlearn COMMAND: error: ...`` and exit status 1."""
    from .commands import UserError
    from .data import DataError
    from .train import CheckpointError

    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"gradlearn {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning  # one line per warning, not the source line that raised it
    try:
        return run(args)
    except (UserError, DataError, CheckpointError) as exc:
        message = str(exc)
    except FileNotFoundError as exc:
        message = f"{exc.strerror or 'no such file'}: {exc.filename}" if exc.filename else str(exc)
    except ImportError as exc:  # an optional extra that is not installed (scikit-learn, matplotlib, Pillow)
        message = str(exc)
    except MemoryError:
        message = "out of memory: try a smaller --batch-size (or a smaller model or input)"
    except KeyboardInterrupt:
        print(f"\ngradlearn {args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"gradlearn {args.command}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
