"""Plots of the practical guide: learning curves, filters, activations, decision surfaces.

Every function draws on its own matplotlib ``Figure`` rendered by the Agg backend (no
display and no pyplot global state, so it works on servers and in tests), writes a PNG to
``path`` when one is given, and returns the figure. matplotlib is an optional extra::

    pip install 'gradlearn[plots]'

and is imported only when a plot is drawn; without it these functions raise an
ImportError that says so.

- :func:`plot_learning_curves`: training/validation loss and error per epoch (two panels).
- :func:`plot_filters`: first-layer filters (out, in, kh, kw) as an image grid, each
  filter normalised to [0, 1] on its own; three input channels are shown in colour.
- :func:`plot_activations`: hidden-unit activations, units x samples ("good training:
  sparse across samples and features").
- :func:`plot_confusion_matrix`: counts annotated, true class down, predicted across.
- :func:`plot_decision_surfaces`: decision regions of several 2-D classifiers side by side;
  :func:`decision_surface_demo` trains 1-, 2- and 3-layer nets on two spirals or moons
  and plots them (Fergus's slide: a linear boundary, then ever more complex ones).
- :func:`plot_function_fit`: data points and the fitted curve(s) (universal approximation);
  :func:`function_fit_demo` fits one-hidden-layer nets of growing width.
- :func:`plot_lr_finder`: the learning-rate finder's loss curve on a log axis, suggestion marked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

PLOTS_EXTRA_HINT = "gradlearn's plots need matplotlib, an optional extra: pip install 'gradlearn[plots]'"

TRAIN_COLOR = "#1f77b4"
VALID_COLOR = "#d62728"
CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


# -------------------------------------------------------------------------------------------
# matplotlib, lazily


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(PLOTS_EXTRA_HINT) from exc


def _figure(figsize):
    """A new Figure with an Agg canvas (no pyplot, no display)."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    return fig


def _to_numpy(a):
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        a = a.get()
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


# -------------------------------------------------------------------------------------------
# learning curves


def _series(history, *keys):
    for key in keys:
        if key in history and history[key] is not None and len(history[key]):
            return np.array([np.nan if v is None else float(v) for v in history[key]], dtype=np.float64)
    return None


def _error_percent(history, prefix):
    error = _series(history, prefix + "error", prefix + "err")
    if error is not None:
        return error * 100 if np.nanmax(error) <= 1 else error
    accuracy = _series(history, prefix + "accuracy", prefix + "acc")
    if accuracy is not None:
        return (1 - accuracy) * 100 if np.nanmax(accuracy) <= 1 else 100 - accuracy
    return None


def plot_learning_curves(history, path=None, *, title: str = "Learning curves"):
    """Training and validation loss (left) and error in % (right) against the epoch.

    ``history`` is a trainer History (with a ``.history`` dict) or a dict of per-epoch
    lists: 'loss', 'val_loss', and 'accuracy'/'val_accuracy' (fractions or %) or
    'error'/'val_error'. Without any accuracy or error, the right panel shows the
    learning rate ('lr') when recorded, and is left out otherwise. The epoch of the
    lowest validation loss is marked.
    """
    h = getattr(history, "history", history)
    if not hasattr(h, "keys"):
        raise TypeError(f"plot_learning_curves: expected a History or a dict of lists, got {type(history).__name__}")
    loss, val_loss = _series(h, "loss", "train_loss"), _series(h, "val_loss")
    if loss is None and val_loss is None:
        raise ValueError(f"plot_learning_curves: the history has no 'loss' or 'val_loss' (keys: {sorted(h.keys())})")
    error, val_error = _error_percent(h, ""), _error_percent(h, "val_")
    lr = _series(h, "lr")
    second = "error" if (error is not None or val_error is not None) else ("lr" if lr is not None else None)

    fig = _figure((11, 4.2) if second else (6, 4.2))
    axes = fig.subplots(1, 2 if second else 1, squeeze=False)[0]
    fig.suptitle(title, fontsize=14)

    from matplotlib.ticker import MaxNLocator

    def draw(ax, train, valid, label):
        for values, name, color in ((train, "training", TRAIN_COLOR), (valid, "validation", VALID_COLOR)):
            if values is None:
                continue
            epochs = np.arange(1, len(values) + 1)
            marker = "o" if len(values) <= 30 else None
            ax.plot(epochs, values, color=color, marker=marker, markersize=4, linewidth=1.8, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)

    ax = axes[0]
    draw(ax, loss, val_loss, "loss")
    ax.set_title("Loss")
    if val_loss is not None and np.isfinite(val_loss).any():
        best = int(np.nanargmin(val_loss))
        ax.plot(best + 1, val_loss[best], marker="*", markersize=14, color="#ffbf00", markeredgecolor="k",
                linestyle="none", label=f"best validation (epoch {best + 1})")
    ax.legend(loc="best")
    if second == "error":
        ax = axes[1]
        draw(ax, error, val_error, "error (%)")
        ax.set_title("Classification error")
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
    elif second == "lr":
        ax = axes[1]
        epochs = np.arange(1, len(lr) + 1)
        ax.plot(epochs, lr, color="#2ca02c", marker="o" if len(lr) <= 30 else None, markersize=4, label="learning rate")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("learning rate (log scale)")
        ax.set_title("Learning rate")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    return _save(fig, path)


# -------------------------------------------------------------------------------------------
# filters


def _filter_array(weight):
    w = getattr(weight, "weight", weight)  # a module
    w = getattr(w, "data", w)  # a Parameter
    w = _to_numpy(w).astype(np.float64)
    if w.ndim == 2:  # a first Linear layer on images: (out, C*s*s)
        size = w.shape[1]
        for channels in (1, 3):
            side = math.isqrt(size // channels)
            if channels * side * side == size:
                return w.reshape(w.shape[0], channels, side, side)
        raise ValueError(f"plot_filters: cannot show a (out, {size}) weight as square images; expected (out, in, kh, kw)")
    if w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4:
        raise ValueError(f"plot_filters: expected a weight (out, in, kh, kw), got shape {tuple(w.shape)}")
    return w


def plot_filters(weight, path=None, *, title: str | None = None, max_filters: int = 64, max_channels: int = 16):
    """The filters of a convolution (or first Linear) layer as an image grid.

    ``weight`` is an array (out, in, kh, kw), a Parameter, or a module with ``.weight``; a
    Linear weight (out, s*s) or (out, 3*s*s) is shown as s x s images. Each filter is
    normalised to [0, 1] on its own (its min to black, its max to white). With 3 input
    channels a filter is one RGB tile; otherwise a filter is one row of grey tiles, one per
    input channel (at most ``max_channels``). At most ``max_filters`` filters are drawn.
    """
    w = _filter_array(weight)
    out, channels, kh, kw = w.shape
    shown = min(out, max_filters)
    w = w[:shown]
    low = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - low
    w = (w - low) / np.where(span > 0, span, 1)
    gap = max(1, min(kh, kw) // 6)
    # separators in a colour no grey filter has (white for colour filters)
    background = np.array([1.0, 1.0, 1.0]) if channels == 3 else np.array([0.62, 0.78, 0.95])

    if channels == 3 or channels == 1:
        cols = math.ceil(math.sqrt(shown))
        rows = math.ceil(shown / cols)
        tiles = w.transpose(0, 2, 3, 1)  # (out, kh, kw, channels)
        if channels == 1:
            tiles = np.repeat(tiles, 3, axis=3)
        grid_index = [(i // cols, i % cols) for i in range(shown)]
    else:
        rows, cols = shown, min(channels, max_channels)
        tiles = np.repeat(w[:, :cols, :, :, None], 3, axis=4).reshape(shown * cols, kh, kw, 3)
        grid_index = [(i, j) for i in range(shown) for j in range(cols)]
    mosaic = np.empty((rows * (kh + gap) - gap, cols * (kw + gap) - gap, 3))
    mosaic[...] = background
    for tile, (r, c) in zip(tiles, grid_index):
        mosaic[r * (kh + gap) : r * (kh + gap) + kh, c * (kw + gap) : c * (kw + gap) + kw] = tile

    size = 7.0
    aspect = mosaic.shape[0] / mosaic.shape[1]
    fig = _figure((size, max(2.5, min(12.0, size * aspect + 0.8))))
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if channels not in (1, 3):
        ax.set_xlabel(f"input channel (first {cols} of {channels})")
        ax.set_ylabel(f"filter (first {shown} of {out})" if shown < out else f"filter ({out})")
    more = f", first {shown} shown" if shown < out else ""
    colour = "RGB" if channels == 3 else "grey"
    ax.set_title(
        title or f"{out} filters of {channels}x{kh}x{kw}{more} ({colour}, each normalised to its own min-max)",
        fontsize=11,
    )
    return _save(fig, path)


# -------------------------------------------------------------------------------------------
# activations


def _activation_panels(acts, layer):
    """[(title, unit name, (N, units) array)] from a report, a recorder, a dict or an array."""
    stats = {}
    if hasattr(acts, "outputs") and hasattr(acts, "layers"):  # ActivationReport
        outputs = acts.outputs
        stats = {s.name: s for s in acts.layers}
    elif hasattr(acts, "outputs") and hasattr(acts, "report"):  # ActivationRecorder
        report = acts.report()
        outputs = report.outputs
        stats = {s.name: s for s in report.layers}
    elif isinstance(acts, dict):
        outputs = acts
    else:
        outputs = {"activations": acts}
    if not outputs:
        raise ValueError("plot_activations: no outputs to show; record with keep_outputs=True")
    if layer is not None:
        names = [layer] if isinstance(layer, str) else list(layer)
        missing = [n for n in names if n not in outputs]
        if missing:
            raise KeyError(f"plot_activations: no recorded output for {missing}; recorded: {list(outputs)}")
    else:
        names = list(outputs)
        hidden = [n for n in names if n in stats and stats[n].module.split("(")[0] in ("ReLU", "ReLU6", "Tanh", "Sigmoid")]
        if hidden:
            last = names[-1]
            names = [n for n in hidden if n != last] or hidden
        names = names[:4]
    panels = []
    for name in names:
        a = _to_numpy(outputs[name]).astype(np.float64)
        unit = "hidden unit"
        if a.ndim == 1:
            a = a[:, None]
        elif a.ndim > 2:  # feature maps: each channel's mean over positions
            a = a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2)
            unit = "channel, mean over positions"
        s = stats.get(name)
        label = name
        if s is not None:
            label = f"layer {name}: {s.module}"
            if s.dead is not None:
                label += f"\n{100 * s.dead:.0f}% dead units"
            if s.saturated is not None:
                label += f"\n{100 * s.saturated:.0f}% saturated"
        panels.append((label, unit, a))
    return panels


def plot_activations(acts, path=None, *, layer=None, max_samples: int = 100, max_units: int = 128, title: str | None = None):
    """Hidden-unit activations as an image: one row per unit, one column per sample.

    ``acts``: an ActivationReport or ActivationRecorder recorded with
    ``keep_outputs=True`` (the hidden activation layers are shown, at most four, or the
    ``layer`` name(s) given), a dict name -> (N, units) array, or one (N, units) array.
    Feature maps (N, C, H, W) show each channel's mean. Good training looks sparse across
    samples and units; constant rows are units that ignore the input (dead or saturated),
    and repeated row patterns are correlated units.
    """
    panels = _activation_panels(acts, layer)
    fig = _figure((4.6 * len(panels) + 0.6, 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    fig.suptitle(title or "Hidden-unit activations (good training: sparse across samples and units)", fontsize=12)
    for ax, (label, unit, a) in zip(axes, panels):
        image = a[:max_samples, :max_units].T  # units x samples
        if image.size and image.min() < 0:  # signed (tanh): diverging colours centred on 0
            bound = max(float(np.abs(image).max()), 1e-12)
            im = ax.imshow(image, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-bound, vmax=bound)
        else:  # non-negative (ReLU, sigmoid): zero is dark
            im = ax.imshow(image, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0)
        ax.set_xlabel(f"sample (first {image.shape[1]})")
        ax.set_ylabel(f"{unit} ({image.shape[0]}" + (f" of {a.shape[1]})" if a.shape[1] > image.shape[0] else ")"))
        ax.set_title(label, fontsize=10)
        fig.colorbar(im, ax=ax, label="activation", shrink=0.9)
    return _save(fig, path)


# -------------------------------------------------------------------------------------------
# confusion matrix


def plot_confusion_matrix(cm, path=None, classes=None, *, normalize: bool = False, title: str = "Confusion matrix"):
    """A confusion matrix (true class i down, predicted class j across), counts annotated.

    ``cm`` is a (C, C) array of counts (``gradlearn.train.metrics.confusion_matrix``'s) or
    an object with ``.matrix``; ``classes`` names the classes (default 0..C-1).
    ``normalize`` colours by the fraction of each true class (rows sum to 1) and annotates
    percentages; the counts are annotated otherwise. The title gives the accuracy.
    """
    m = _to_numpy(getattr(cm, "matrix", cm)).astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square (C, C) matrix, got shape {tuple(m.shape)}")
    n = m.shape[0]
    classes = [str(c) for c in (classes if classes is not None else range(n))]
    if len(classes) != n:
        raise ValueError(f"plot_confusion_matrix: {len(classes)} class names for a {n}x{n} matrix")
    total = m.sum()
    accuracy = np.trace(m) / total if total > 0 else float("nan")
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m

    size = min(14.0, max(4.5, 0.55 * n + 2.5))
    fig = _figure((size + 1.2, size))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(im, ax=ax, label="fraction of the true class" if normalize else "count", shrink=0.85)
    ticks = np.arange(n)
    step = max(1, n // 30)
    ax.set_xticks(ticks[::step], [classes[i] for i in ticks[::step]], rotation=45 if max(map(len, classes)) > 2 else 0, ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(ticks[::step], [classes[i] for i in ticks[::step]])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} (accuracy {100 * accuracy:.1f}%, {int(total)} samples)")
    if n <= 30:
        top = shown.max() if shown.size else 0
        fontsize = 11 if n <= 10 else 8 if n <= 20 else 6
        integer = np.all(m == np.round(m))
        for i in range(n):
            for j in range(n):
                text = f"{100 * shown[i, j]:.0f}%" if normalize else (f"{int(m[i, j])}" if integer else f"{m[i, j]:.2g}")
                colour = "white" if top > 0 and shown[i, j] > 0.5 * top else "black"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    return _save(fig, path)


# -------------------------------------------------------------------------------------------
# decision surfaces


def _predict(model, x):
    """Class probabilities (M, C) of ``model`` on ``x``, in evaluation mode (modes restored)."""
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _to_numpy(model(np.ascontiguousarray(x, dtype=dtype))).astype(np.float64)
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)
    out = out.reshape(len(x), -1)
    if out.shape[1] == 1:  # one logit: sigmoid
        p = 0.5 * (1 + np.tanh(0.5 * out[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1, atol=1e-4):  # already probabilities
        return out
    shifted = out - out.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _describe(model):
    layers = sum(1 for m in model.modules() if not m._modules and any(True for _ in m.parameters()))
    params = sum(p.size for p in model.parameters())
    return layers, params


def plot_decision_surfaces(models, x, y, path=None, *, titles=None, resolution: int = 200, title: str | None = None):
    """Decision regions of 2-D classifiers side by side, with the data on top.

    ``models``: one model or a list, each mapping (M, 2) inputs to class scores (M, C)
    (or one logit (M, 1)); ``x`` (N, 2) points and ``y`` (N,) class indices. The colour is
    the predicted class, shaded by its probability (for two classes: P(class 1), 0.5 on
    the boundary); the training accuracy is in each title.
    """
    _require_matplotlib()
    from matplotlib.colors import ListedColormap

    if not isinstance(models, (list, tuple)):
        models = [models]
    x = _to_numpy(x).astype(np.float64)
    y = _to_numpy(y).astype(np.int64).reshape(-1)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_surfaces: expected 2-D points x (N, 2), got {tuple(x.shape)}")
    if titles is not None and len(titles) != len(models):
        raise ValueError(f"plot_decision_surfaces: {len(titles)} titles for {len(models)} models")
    margin = 0.1 * (x.max(axis=0) - x.min(axis=0)) + 1e-6
    low, high = x.min(axis=0) - margin, x.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    num_classes = int(max(y.max() + 1, 2))

    fig = _figure((4.4 * len(models) + 0.4, 4.6))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    fig.suptitle(title or "Decision surfaces", fontsize=13)
    for k, (ax, model) in enumerate(zip(axes, models)):
        probs = _predict(model, grid)
        accuracy = float(np.mean(_predict(model, x).argmax(axis=1) == y))
        if probs.shape[1] == 2:
            surface = probs[:, 1].reshape(gx.shape)
            ax.contourf(gx, gy, surface, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45, vmin=0, vmax=1)
            ax.contour(gx, gy, surface, levels=[0.5], colors="k", linewidths=1.5)
        else:
            cls = probs.argmax(axis=1).reshape(gx.shape)
            cmap = ListedColormap(CLASS_COLORS[: probs.shape[1]])
            ax.imshow(cls, origin="lower", extent=(low[0], high[0], low[1], high[1]), cmap=cmap, alpha=0.3,
                      vmin=-0.5, vmax=probs.shape[1] - 0.5, aspect="auto", interpolation="nearest")
        colours = ["#2166ac", "#b2182b"] if num_classes == 2 else CLASS_COLORS
        markers = "os^Dv<>ph*"
        for c in range(num_classes):
            pts = x[y == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=16, color=colours[c % len(colours)], marker=markers[c % len(markers)],
                       edgecolors="black", linewidths=0.5, label=f"class {c}", zorder=3)
        if titles is not None:
            name = titles[k]
        else:
            layers, params = _describe(model)
            name = f"{layers}-layer net ({params} parameters)"
        ax.set_title(f"{name}\ntraining accuracy {100 * accuracy:.1f}%", fontsize=10)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    return _save(fig, path)


def _fit_adam(model, loss, x, y, steps, lr, betas=(0.9, 0.999), eps=1e-8):
    """Full-batch Adam on the flat parameter vector (the demos' trainer)."""
    flat = model.flat_parameters()
    m = np.zeros_like(flat.data)
    v = np.zeros_like(flat.data)
    b1, b2 = betas
    for t in range(1, steps + 1):
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        g = flat.grad
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        flat.data -= step * m / (np.sqrt(v) + eps)
    return model


@dataclass
class DemoResult:
    """What a demo trained: the models, the data, each model's training accuracy, the figure."""

    models: list
    x: np.ndarray
    y: np.ndarray
    accuracies: list
    figure: object


def decision_surface_demo(
    path=None,
    *,
    dataset: str = "spirals",
    num_samples: int = 300,
    noise: float | None = None,
    hidden: int = 32,
    steps: int = 2000,
    lr: float = 0.02,
    generator=0,
) -> DemoResult:
    """Fergus's slide: decision surfaces of 1-, 2- and 3-layer networks on a 2-D problem.

    Trains, by full-batch Adam on the flat parameter vector, a linear classifier
    (1 layer: a half-plane), a net with one tanh hidden layer of ``hidden`` units
    (2 layers) and one with two (3 layers), on two interleaved spirals ('spirals') or
    two moons ('moons'), and plots their decision surfaces side by side.
    """
    from .. import Linear, Sequential, Tanh
    from ..backend import resolve_generator
    from ..losses import CrossEntropyLoss

    from ..data import moons, two_spirals

    _require_matplotlib()
    rng = resolve_generator(generator)
    if dataset == "spirals":
        train, _ = two_spirals(num_samples, noise=0.03 if noise is None else noise, n_test=1, generator=rng)
    elif dataset == "moons":
        train, _ = moons(num_samples, noise=0.1 if noise is None else noise, n_test=1, generator=rng)
    else:
        raise ValueError(f"decision_surface_demo: dataset must be 'spirals' or 'moons', got {dataset!r}")
    x, y = train.x.astype(np.float32), train.y.astype(np.int64)
    models = [
        Sequential(Linear(2, 2, generator=rng)),
        Sequential(Linear(2, hidden, generator=rng), Tanh(), Linear(hidden, 2, generator=rng)),
        Sequential(Linear(2, hidden, generator=rng), Tanh(), Linear(hidden, hidden, generator=rng), Tanh(), Linear(hidden, 2, generator=rng)),
    ]
    loss = CrossEntropyLoss()
    for model in models:
        _fit_adam(model, loss, x, y, steps, lr)
    accuracies = [float(np.mean(_predict(m, x).argmax(axis=1) == y)) for m in models]
    titles = [
        "1 layer (linear): a half-plane",
        f"2 layers ({hidden} tanh hidden units)",
        f"3 layers (2 x {hidden} tanh hidden units)",
    ]
    name = "two spirals" if dataset == "spirals" else "two moons"
    fig = plot_decision_surfaces(models, x, y, path, titles=titles, title=f"Decision surfaces of 1-, 2- and 3-layer networks ({name})")
    return DemoResult(models, x, y, accuracies, fig)


# -------------------------------------------------------------------------------------------
# function fitting (universal approximation)


def plot_function_fit(model, x, y, path=None, *, labels=None, target=None, title: str = "Function fit (universal approximation)"):
    """Data points and the curve that ``model`` (or each of a list of models) fits.

    ``x`` (N,) or (N, 1) inputs and ``y`` (N,) or (N, 1) targets of a 1-D regression;
    each model maps (M, 1) to (M, 1). ``labels`` names the curves; ``target`` (a
    function of a numpy array) draws the true function dashed.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    x = _to_numpy(x).astype(np.float64).reshape(-1)
    y = _to_numpy(y).astype(np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"plot_function_fit: x and y must hold one value per sample, got {x.size} and {y.size}")
    if labels is not None and len(labels) != len(models):
        raise ValueError(f"plot_function_fit: {len(labels)} labels for {len(models)} models")
    pad = 0.02 * (x.max() - x.min())
    grid = np.linspace(x.min() - pad, x.max() + pad, 500)

    fig = _figure((7.5, 4.8))
    ax = fig.subplots()
    ax.scatter(x, y, s=16, color="#555555", alpha=0.7, label="training data", zorder=2)
    if target is not None:
        ax.plot(grid, target(grid), "k--", linewidth=1.5, label="true function", zorder=3)
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]
    for k, m in enumerate(models):
        dtype = next((p.dtype for p in m.parameters()), np.float32)
        modes = [(mm, mm.training) for mm in m.modules()]
        m.eval()
        try:
            curve = _to_numpy(m(grid[:, None].astype(dtype))).astype(np.float64).reshape(-1)
        finally:
            for mm, training in modes:
                object.__setattr__(mm, "training", training)
        if labels is not None:
            label = labels[k]
        else:
            label = f"network fit ({sum(p.size for p in m.parameters())} parameters)"
        ax.plot(grid, curve, color=palette[k % len(palette)], linewidth=2.2, label=label, zorder=4)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def function_fit_demo(
    path=None,
    *,
    function=None,
    widths=(2, 8, 32),
    num_samples: int = 100,
    noise: float = 0.05,
    steps: int = 3000,
    lr: float = 0.01,
    generator=0,
) -> DemoResult:
    """Universal approximation: one tanh hidden layer fits a 1-D function better as it widens.

    Fits ``function`` (default sin(2x) + 0.5 x on [-3, 3]) from ``num_samples`` noisy
    samples with one-hidden-layer nets of each width in ``widths``, by full-batch Adam,
    and plots the fits over the data. ``accuracies`` of the result holds each fit's
    training mean squared error.
    """
    from .. import Linear, Sequential, Tanh
    from ..backend import resolve_generator
    from ..losses import MSELoss

    def default(v):
        return np.sin(2 * v) + 0.5 * v

    _require_matplotlib()
    function = function or default
    rng = resolve_generator(generator)
    x = np.sort(rng.uniform(-3, 3, num_samples))
    y = function(x) + noise * rng.standard_normal(num_samples)
    xs, ys = x[:, None].astype(np.float32), y[:, None].astype(np.float32)
    models, errors = [], []
    loss = MSELoss()
    for width in widths:
        model = Sequential(Linear(1, width, generator=rng), Tanh(), Linear(width, 1, generator=rng))
        _fit_adam(model, loss, xs, ys, steps, lr)
        models.append(model)
        errors.append(float(loss(model(xs), ys)))
    labels = [f"{w} tanh units (MSE {e:.3g})" for w, e in zip(widths, errors)]
    fig = plot_function_fit(models, x, y, path, labels=labels, target=function,
                            title="Universal approximation: one hidden layer, growing width")
    return DemoResult(models, x, y, errors, fig)


# -------------------------------------------------------------------------------------------
# learning-rate finder


def plot_lr_finder(result, path=None, *, title: str | None = None):
    """The learning-rate finder's curve: loss against the rate (log axis), suggestion marked.

    For the range test: the smoothed loss (and the raw mini-batch losses, faint), the
    steepest-descent rate and the suggestion. For the halving search: the loss after the
    trial steps at each rate tried, diverged rates marked with crosses.
    """
    lrs = np.asarray(result.lrs, dtype=np.float64)
    losses = np.asarray(result.losses, dtype=np.float64)
    if lrs.size == 0:
        raise ValueError("plot_lr_finder: the result holds no rates")
    fig = _figure((7.5, 4.8))
    ax = fig.subplots()
    ax.set_xscale("log")
    if result.method == "halving":
        before = np.asarray(result.raw_losses, dtype=np.float64)
        diverged = np.asarray(result.diverged, dtype=bool)
        finite = np.isfinite(losses) & (losses < 10 * np.nanmax(before))
        top = max(np.nanmax(before), np.nanmax(losses[finite]) if finite.any() else 0) * 1.15
        ax.axhline(before[0], color="#555555", linestyle=":", label="loss before training")
        ok = ~diverged
        ax.plot(lrs[ok], losses[ok], "o", color="#2ca02c", markersize=9, label="did not diverge")
        bad_y = np.where(finite, losses, top)[diverged]
        ax.plot(lrs[diverged], bad_y, "x", color=VALID_COLOR, markersize=10, markeredgewidth=2.5,
                label="diverged (at the top: NaN or exploded)")
        ax.set_ylim(-0.04 * top, top * 1.08)
        ax.set_xlim(lrs.min() / 1.6, lrs.max() * 1.6)
        for lr, value in zip(lrs, np.where(finite, losses, top)):
            ax.annotate(f"{lr:.3g}", (lr, value), textcoords="offset points", xytext=(6, 7), ha="left", fontsize=8)
        ax.set_ylabel("loss on the subset after the trial steps")
        heading = title or "Learning-rate search (Bottou: start large, halve until no divergence)"
    else:
        raw = np.asarray(result.raw_losses, dtype=np.float64)
        finite = np.isfinite(losses)
        ax.plot(lrs[np.isfinite(raw)], raw[np.isfinite(raw)], color=TRAIN_COLOR, alpha=0.25, linewidth=1, label="mini-batch loss")
        ax.plot(lrs[finite], losses[finite], color=TRAIN_COLOR, linewidth=2.2, label="smoothed loss")
        if finite.any():
            low = np.min(losses[finite])
            first = losses[finite][: max(1, finite.sum() // 10)].mean()
            high = max(first, low) * 1.25 + 1e-12
            ax.set_ylim(max(0.0, low - 0.1 * (high - low)), high)
        if result.steepest_lr is not None:
            i = int(np.argmin(np.abs(np.log(lrs) - np.log(result.steepest_lr))))
            ax.plot(lrs[i], losses[i], "o", color="#ff7f0e", markersize=8, label=f"steepest descent ({result.steepest_lr:.2g})")
        if result.min_loss_lr is not None:
            i = int(np.argmin(np.abs(np.log(lrs) - np.log(result.min_loss_lr))))
            ax.plot(lrs[i], losses[i], "v", color="#9467bd", markersize=8, label=f"minimum ({result.min_loss_lr:.2g})")
        ax.set_ylabel("training loss")
        heading = title or "Learning-rate range test"
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="#2ca02c", linestyle="--", linewidth=1.8, label=f"suggested lr = {result.suggestion:.3g}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_title(heading)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=9)
    return _save(fig, path)
