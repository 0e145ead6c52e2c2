"""``gradlearn evaluate``, ``predict`` and ``plot``: using a trained run folder.

- ``evaluate DIR [--data NAME]``: loss and accuracy on the test split (of the run's data
  set, or another with the same input shape and number of classes).
- ``predict DIR FILES...``: the class and its probability for each image file: PNG/JPEG
  (read with Pillow) or ``.npy`` (an array (H, W), (C, H, W) or (H, W, C); uint8 is scaled
  by 1/255, floats are taken to be in [0, 1] like the training data). Images are converted
  to the model's channels (grey or RGB) and resized to its input size.
- ``plot DIR``: re-draws the run's plots from its history, weights and test data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import UserError
from . import experiment as ex
from .config import DATA_CHOICES, RunConfig, check


def add_evaluate_command(commands) -> None:
    sub = commands.add_parser("evaluate", help="loss and accuracy of a trained run on the test split",
                              description="Evaluate the weights of the run in DIR on the test split of its data set "
                                          "(or of --data, with the same input shape and classes).")  # fmt: skip
    sub.add_argument("run_dir", metavar="DIR", help="the run folder")
    sub.add_argument("--data", metavar="NAME", help=f"another data set: {', '.join(DATA_CHOICES)}")
    sub.set_defaults(run=run_evaluate, subparser=sub)


def add_predict_command(commands) -> None:
    sub = commands.add_parser("predict", help="classify image files (PNG, JPEG or .npy) with a trained run",
                              description="Print the predicted class and its probability for each file. PNG/JPEG need "
                                          "Pillow; .npy holds one image (H, W), (C, H, W) or (H, W, C), uint8 or floats "
                                          "in [0, 1]. Images are converted and resized to the model's input.")  # fmt: skip
    sub.add_argument("run_dir", metavar="DIR", help="the run folder")
    sub.add_argument("files", nargs="+", metavar="FILE", help="image files (.png, .jpg, .npy ...)")
    sub.add_argument("--top", type=int, default=1, metavar="K", help="also list the K most likely classes (default 1)")
    sub.set_defaults(run=run_predict, subparser=sub)


def add_plot_command(commands) -> None:
    sub = commands.add_parser("plot", help="re-draw a run's plots (curves, filters, confusion matrix, activations)",
                              description="Re-draw learning_curves.png, filters.png, confusion_matrix.png and "
                                          "activations.png in the run folder DIR.")  # fmt: skip
    sub.add_argument("run_dir", metavar="DIR", help="the run folder")
    sub.set_defaults(run=run_plot, subparser=sub)


# -------------------------------------------------------------------------------------------


def _test_split(run, data_name=None):
    name = run.config.data if data_name is None else check(RunConfig(data=data_name)).data
    _, test = ex.load_splits_raw(name)
    x, y = np.asarray(test.x, dtype=np.float32), np.asarray(test.y)
    if tuple(x.shape[1:]) != run.sample_shape:
        raise UserError(f"{name}'s inputs have shape {'x'.join(map(str, x.shape[1:]))}, the run's model takes "
                        f"{'x'.join(map(str, run.sample_shape))} ({run.config.data})")  # fmt: skip
    if len(y) and int(y.max()) >= len(run.classes):
        raise UserError(f"{name} has labels up to {int(y.max())}, the run's model has {len(run.classes)} classes")
    return name, (x, y)


def run_evaluate(args) -> int:
    from ..losses import CrossEntropyLoss
    from ..train import accuracy

    run = ex.open_run(args.run_dir)
    name, (x, y) = _test_split(run, args.data)
    model = run.build_model()
    xs, ys = ex.standardised_test(run, run.model_input_shape, x, y)
    scores = ex.predict_batches(model, xs)
    loss = CrossEntropyLoss()
    value = float(loss(scores.astype(np.float32), ys))
    acc = accuracy(scores, ys)
    print(f"{run.folder} ({run.config.model}, weights {run.weights_path().name}) on the {name} test split "
          f"({len(ys):,} examples): loss {value:.4f}, accuracy {100 * acc:.2f}%")  # fmt: skip
    return 0


# -------------------------------------------------------------------------------------------
# reading images


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) float image -> (C, height, width), by Pillow's bilinear filter when present, else nearest."""
    c, h, w = image.shape
    if (h, w) == (height, width):
        return image
    try:
        from PIL import Image
    except ImportError:
        rows = (np.arange(height) * h // height).clip(0, h - 1)
        cols = (np.arange(width) * w // width).clip(0, w - 1)
        return image[:, rows][:, :, cols]
    channels = [np.asarray(Image.fromarray(ch.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR)) for ch in image]
    return np.stack(channels).astype(np.float32)


def _to_channels(image: np.ndarray, channels: int, path) -> np.ndarray:
    c = image.shape[0]
    if c == channels:
        return image
    if channels == 1 and c in (3, 4):  # RGB(A) -> luminance (ITU-R 601, as Pillow's 'L')
        return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None].astype(np.float32)
    if channels == 3 and c == 1:
        return np.repeat(image, 3, axis=0)
    if channels == 3 and c == 4:
        return image[:3]
    raise UserError(f"{path}: an image with {c} channels cannot be given to a model that takes {channels}")


def read_image(path: Path, sample_shape) -> np.ndarray:
    """One input sample of ``sample_shape`` (C, H, W) in [0, 1] from an image or .npy file."""
    if not path.exists():
        raise UserError(f"no such file {str(path)!r}")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a readable .npy file ({exc})") from None
        if array.dtype.kind not in "uif" or array.dtype.kind == "b":
            raise UserError(f"{path}: expected numbers, got an array of dtype {array.dtype}")
        scale = 1 / 255 if array.dtype == np.uint8 else 1.0
        array = np.asarray(array, dtype=np.float32) * np.float32(scale)
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim == 2:
            array = array[None]
        elif array.ndim == 3 and array.shape[0] not in (1, 3, 4) and array.shape[-1] in (1, 3, 4):
            array = array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        if array.ndim != 3:
            raise UserError(f"{path}: expected one image (H, W), (C, H, W) or (H, W, C), got shape {array.shape}")
    else:
        try:
            from PIL import Image, UnidentifiedImageError
        except ImportError:
            raise UserError(f"{path}: reading {path.suffix or 'image'} files needs Pillow (pip install pillow); "
                            "or save the image as a .npy array") from None  # fmt: skip
        try:
            with Image.open(path) as img:
                img = img.convert("L" if sample_shape[0] == 1 else "RGB")
                array = np.asarray(img, dtype=np.float32) / np.float32(255)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{path}: not a readable image ({exc})") from None
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    array = _to_channels(array, sample_shape[0], path)
    return _resize(array, sample_shape[1], sample_shape[2])


def run_predict(args) -> int:
    run = ex.open_run(args.run_dir)
    shape = run.sample_shape
    if len(shape) != 3:
        raise UserError(f"{run.folder}: the model takes vectors of shape {shape}, not images")
    if args.top < 1:
        args.subparser.error(f"--top must be at least 1, got {args.top}")
    images = np.stack([read_image(Path(f), shape) for f in args.files])
    model = run.build_model()
    x, _ = ex.standardised_test(run, run.model_input_shape, images, np.zeros(len(images), dtype=np.int64))
    scores = ex.predict_batches(model, x).astype(np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    probabilities = np.exp(scores)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    width = max(len(f) for f in args.files)
    for name, p in zip(args.files, probabilities):
        order = np.argsort(-p)[: min(args.top, len(p))]
        best = order[0]
        line = f"{name:<{width}}  {run.classes[best]}  ({100 * p[best]:.1f}%)"
        if len(order) > 1:
            line += "   next: " + ", ".join(f"{run.classes[k]} ({100 * p[k]:.1f}%)" for k in order[1:])
        print(line)
    return 0


def run_plot(args) -> int:
    run = ex.open_run(args.run_dir)
    why_not = ex.plots_available()
    if why_not is not None:
        raise UserError(why_not)
    history_path = run.folder / ex.HISTORY_FILE
    if not history_path.exists():
        raise UserError(f"{run.folder}: no {ex.HISTORY_FILE} yet (no epoch has finished)")
    history = ex.read_history(history_path)
    if not history.get("loss"):
        raise UserError(f"{history_path}: no epochs recorded")
    _, (x, y) = _test_split(run)
    model = run.build_model()
    xs, ys = ex.standardised_test(run, run.model_input_shape, x, y)
    title = f"{run.config.model} on {run.config.data}"
    written = ex.draw_plots(run.folder, model, history, xs, ys, run.classes, title)
    for path in written:
        print(path)
    return 0

