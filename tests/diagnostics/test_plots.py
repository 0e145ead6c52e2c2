"""Every plot writes a real PNG; without matplotlib the plots say which extra to install."""

import importlib.util
import struct
import sys

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.diagnostics import (
    activation_stats,
    decision_surface_demo,
    find_lr,
    function_fit_demo,
    plot_activations,
    plot_confusion_matrix,
    plot_decision_surfaces,
    plot_filters,
    plot_function_fit,
    plot_learning_curves,
    plot_lr_finder,
)

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path, min_kb=5, min_width=400, min_height=250):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert len(data) > min_kb * 1024, f"{path.name}: only {len(data)} bytes"
    assert width >= min_width and height >= min_height, f"{path.name}: {width}x{height}"
    return width, height


class FakeHistory:
    def __init__(self, history):
        self.history = history


def curves(epochs=12):
    e = np.arange(epochs)
    return {
        "loss": list(1.5 * np.exp(-e / 4) + 0.1),
        "val_loss": list(1.6 * np.exp(-e / 5) + 0.2),
        "accuracy": list(1 - 0.5 * np.exp(-e / 3)),
        "val_accuracy": list(0.95 - 0.5 * np.exp(-e / 3)),
        "lr": [0.1] * epochs,
    }


@needs_matplotlib
def test_learning_curves(tmp_path):
    plot_learning_curves(FakeHistory(curves()), tmp_path / "a.png")
    width, _ = check_png(tmp_path / "a.png")
    assert width > 1000  # two panels
    # no accuracy: the learning rate takes the second panel; only a loss: one panel
    history = curves()
    del history["accuracy"], history["val_accuracy"]
    fig = plot_learning_curves(history, tmp_path / "b.png")
    assert fig.axes[1].get_yscale() == "log" and "learning rate" in fig.axes[1].get_ylabel()
    check_png(tmp_path / "b.png")
    fig = plot_learning_curves({"loss": [1.0, 0.5, float("nan"), 0.2]}, tmp_path / "c.png")
    assert len(fig.axes) == 1
    check_png(tmp_path / "c.png", min_width=500)
    with pytest.raises(ValueError, match="no 'loss'"):
        plot_learning_curves({"accuracy": [0.5]}, tmp_path / "d.png")


@needs_matplotlib
def test_learning_curves_error_panel_is_in_percent(tmp_path):
    fig = plot_learning_curves(curves(), tmp_path / "a.png")
    error_axis = fig.axes[1]
    assert error_axis.get_ylabel() == "error (%)"
    train_line = error_axis.get_lines()[0]
    np.testing.assert_allclose(train_line.get_ydata(), 100 * (1 - np.array(curves()["accuracy"])))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == ["training", "validation"]


@needs_matplotlib
def test_filters(tmp_path):
    rng = np.random.default_rng(0)
    conv = gl.Conv2d(3, 16, 5) if hasattr(gl, "Conv2d") else rng.standard_normal((16, 3, 5, 5))
    fig = plot_filters(conv, tmp_path / "rgb.png")
    check_png(tmp_path / "rgb.png", min_kb=4)
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (4 * 5 + 3, 4 * 5 + 3, 3) and image.min() >= 0 and image.max() <= 1
    plot_filters(rng.standard_normal((6, 1, 5, 5)), tmp_path / "grey.png")
    check_png(tmp_path / "grey.png", min_kb=4)
    fig = plot_filters(rng.standard_normal((8, 6, 3, 3)), tmp_path / "multi.png")
    assert fig.axes[0].get_images()[0].get_array().shape[:2] == (8 * 4 - 1, 6 * 4 - 1)
    check_png(tmp_path / "multi.png", min_kb=4)
    plot_filters(gl.Linear(64, 10), tmp_path / "linear.png")  # 8x8 images
    check_png(tmp_path / "linear.png", min_kb=4)
    with pytest.raises(ValueError, match="expected a weight"):
        plot_filters(np.zeros((2, 3, 4, 5, 6)), tmp_path / "bad.png")


@needs_matplotlib
def test_per_filter_normalisation(tmp_path):
    weight = np.zeros((2, 1, 3, 3))
    weight[0, 0] = np.arange(9).reshape(3, 3)  # range 0..8
    weight[1, 0] = 1000 * np.arange(9).reshape(3, 3)  # range 0..8000: same image after normalising
    image = plot_filters(weight, tmp_path / "f.png").axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(image[:3, :3], image[:3, 4:7])
    assert image[0, 0, 0] == 0 and image[2, 2, 0] == 1


@needs_matplotlib
def test_activations(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 10)).astype(np.float32)
    model = gl.Sequential(gl.Linear(10, 40, generator=1), gl.ReLU(), gl.Linear(40, 20, generator=2), gl.Tanh(), gl.Linear(20, 3))
    report = activation_stats(model, x, keep_outputs=True)
    fig = plot_activations(report, tmp_path / "acts.png")
    check_png(tmp_path / "acts.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("ReLU" in t and "dead" in t for t in titles) and any("Tanh" in t and "saturated" in t for t in titles)
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (40, 50)  # units x samples
    plot_activations(np.abs(x), tmp_path / "array.png")
    check_png(tmp_path / "array.png")
    with pytest.raises(ValueError, match="keep_outputs"):
        plot_activations(activation_stats(model, x), tmp_path / "none.png")


@needs_matplotlib
def test_confusion_matrix(tmp_path):
    cm = np.array([[50, 2, 3], [4, 40, 6], [0, 7, 38]])
    fig = plot_confusion_matrix(cm, tmp_path / "cm.png", classes=["cat", "dog", "bird"])
    check_png(tmp_path / "cm.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(v) for v in cm.ravel()]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "accuracy 85.3%, 150 samples" in ax.get_title()  # 128 of 150 on the diagonal
    fig = plot_confusion_matrix(cm, tmp_path / "norm.png", normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts][:3] == ["91%", "4%", "5%"]
    check_png(tmp_path / "norm.png")


@needs_matplotlib
def test_decision_surfaces(tmp_path):
    demo = decision_surface_demo(tmp_path / "surfaces.png", dataset="moons", num_samples=120, steps=300, lr=0.03)
    width, _ = check_png(tmp_path / "surfaces.png", min_kb=20)
    assert width > 1200 and len(demo.models) == 3 and len(demo.figure.axes) == 3
    linear, _, deep = demo.accuracies
    assert 0.7 < linear < 0.95 and deep >= 0.97  # a half-plane cannot separate the moons
    fig = plot_decision_surfaces(demo.models[2], demo.x, demo.y, tmp_path / "one.png", titles=["deep"])
    assert "deep" in fig.axes[0].get_title()
    check_png(tmp_path / "one.png", min_kb=20)
    # three classes, one logit per class
    x = np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32)
    y = np.argmax(x @ np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]), axis=1)
    plot_decision_surfaces([gl.Linear(2, 3)], x, y, tmp_path / "three.png")
    check_png(tmp_path / "three.png", min_kb=10)


@needs_matplotlib
def test_function_fit(tmp_path):
    demo = function_fit_demo(tmp_path / "fit.png", widths=(1, 16), steps=600, lr=0.02)
    check_png(tmp_path / "fit.png", min_kb=20)
    assert demo.accuracies[1] < 0.5 * demo.accuracies[0]  # the wider net fits far better
    x = np.linspace(-1, 1, 30)
    fig = plot_function_fit(gl.Sequential(gl.Linear(1, 4), gl.Tanh(), gl.Linear(4, 1)), x, x**2, tmp_path / "one.png")
    assert fig.axes[0].get_xlabel() == "x" and fig.axes[0].get_legend() is not None
    check_png(tmp_path / "one.png")


@needs_matplotlib
def test_lr_finder_plots(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    t = (x @ rng.standard_normal((8, 1))).astype(np.float32)
    model = gl.Linear(8, 1, generator=1)
    result = find_lr(model, gl.MSELoss(), x, t, num_steps=120)
    fig = plot_lr_finder(result, tmp_path / "range.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "learning rate" in ax.get_xlabel()
    assert any("suggested" in t.get_text() for t in ax.get_legend().get_texts())
    check_png(tmp_path / "range.png")
    plot_lr_finder(find_lr(model, gl.MSELoss(), x, t, method="halving"), tmp_path / "halving.png")
    check_png(tmp_path / "halving.png")


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"gradlearn\[plots\]"):
        plot_filters(np.zeros((2, 1, 3, 3)), tmp_path / "f.png")
    with pytest.raises(ImportError, match=r"gradlearn\[plots\]"):
        decision_surface_demo(tmp_path / "d.png", steps=1)
    assert not (tmp_path / "f.png").exists()
