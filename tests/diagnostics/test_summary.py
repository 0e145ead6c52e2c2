"""summary(): layer table, totals matching the published figures, and the CLI subcommand."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import models

# LeNet-5 on 1x28x28, worked out by hand: (name, type, output shape, params, multiply-adds)
LENET5_TABLE = [
    ("features", "Sequential", (1, 16, 5, 5), 0, 0),
    ("features.0", "Conv2d", (1, 6, 28, 28), 6 * 25 + 6, 6 * 28 * 28 * 25),
    ("features.1", "ReLU", (1, 6, 28, 28), 0, 0),
    ("features.2", "MaxPool2d", (1, 6, 14, 14), 0, 0),
    ("features.3", "Conv2d", (1, 16, 10, 10), 16 * 6 * 25 + 16, 16 * 10 * 10 * 6 * 25),
    ("features.4", "ReLU", (1, 16, 10, 10), 0, 0),
    ("features.5", "MaxPool2d", (1, 16, 5, 5), 0, 0),
    ("flatten", "Flatten", (1, 400), 0, 0),
    ("classifier", "Sequential", (1, 10), 0, 0),
    ("classifier.0", "Linear", (1, 120), 400 * 120 + 120, 400 * 120),
    ("classifier.1", "ReLU", (1, 120), 0, 0),
    ("classifier.2", "Linear", (1, 84), 120 * 84 + 84, 120 * 84),
    ("classifier.3", "ReLU", (1, 84), 0, 0),
    ("classifier.4", "Linear", (1, 10), 84 * 10 + 10, 84 * 10),
]


def test_lenet5_table_is_exact():
    out = io.StringIO()
    s = gl.summary(models.lenet5(generator=0), (1, 28, 28), file=out)
    got = [(r.name, r.type, r.output_shape, r.params, r.mult_adds) for r in s.rows]
    assert got == LENET5_TABLE
    assert s.total_params == s.trainable_params == 61_706
    assert s.total_mult_adds == 416_520
    assert s.param_bytes == 61_706 * 4
    # new arrays per sample: conv, relu, pool outputs and the linear/relu outputs; Flatten is
    # a view of a C-order input, and copies the channels-last one that the second convolution
    # writes with the compiled kernels (Conv2d's pixel-major path)
    elements = 2 * 6 * 28 * 28 + 6 * 14 * 14 + 2 * 16 * 10 * 10 + 16 * 5 * 5 + 2 * 120 + 2 * 84 + 10
    if gl.compiled.available():
        elements += 16 * 5 * 5
    assert s.activation_bytes == 4 * elements
    text = out.getvalue()
    assert text.rstrip("\n") == str(s)
    assert "Total params: 61,706" in text and "Total mult-adds: 416,520" in text
    assert "  features.3" in text  # nested rows are indented


def test_the_model_is_left_as_it_was():
    net = models.resnet20(generator=0)
    net.layer2.train()  # a mixed state must come back as it was
    net.fc.eval()
    before = {name: m.training for name, m in net.named_modules()}
    gl.summary(net, (3, 32, 32), file=io.StringIO())
    assert {name: m.training for name, m in net.named_modules()} == before
    assert not any("forward" in m.__dict__ for m in net.modules())
    # and it still trains
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = net(x)
    assert net.backward(np.ones_like(y)).shape == x.shape


def test_a_failing_forward_names_the_input_shape_and_cleans_up():
    net = models.lenet5(generator=0)
    with pytest.raises(ValueError, match=r"zeros of shape \(1, 1, 32, 32\).*input_shape"):
        gl.summary(net, (1, 32, 32), file=io.StringIO())
    assert not any("forward" in m.__dict__ for m in net.modules())
    with pytest.raises(ValueError, match="positive"):
        gl.summary(net, (1, 0, 28))


def test_batch_size_shared_and_frozen_parameters():
    shared = gl.Linear(4, 4)
    net = gl.Sequential(shared, gl.Tanh(), shared, gl.Linear(4, 2))
    net[3].weight.requires_grad = False
    s = gl.summary(net, 4, batch_size=3, file=io.StringIO())
    # the shared layer is one row, with its two calls
    assert [r.name for r in s.rows] == ["0", "1", "3"]
    assert [r.output_shape for r in s.rows] == [(3, 4), (3, 4), (3, 2)]
    assert [r.params for r in s.rows] == [20, 0, 10]
    assert s.rows[0].calls == 2 and s.rows[0].mult_adds == 2 * 3 * 16
    assert "Linear x2" in str(s)
    assert s.total_params == 30 and s.trainable_params == 22
    assert s.total_mult_adds == 3 * (16 + 16 + 8) and s.mult_adds_per_sample == 40
    assert "Non-trainable params: 8" in str(s)


def test_resnet20_totals():
    s = gl.summary(models.resnet20(generator=0), (3, 32, 32), file=io.StringIO())
    assert s.total_params == 269_722
    # 3x3 convs: conv1 + 3 stages of 6 convs at 32x32, 16x16 and 8x8, plus the classifier:
    # about 41 M multiply-adds, the figure usually quoted for ResNet-20
    conv = 16 * 32 * 32 * 27 + 6 * (16 * 32 * 32 * 144) + (32 * 16 * 16 * 144 + 5 * 32 * 16 * 16 * 288)
    conv += 64 * 8 * 8 * 288 + 5 * 64 * 8 * 8 * 576
    assert s.total_mult_adds == conv + 640
    assert 40e6 < s.total_mult_adds < 42e6
    names = [r.name for r in s.rows]
    assert "layer2.0.downsample" in names and "layer3.2.relu_out" in names


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params, published",
    [
        ("alexnet", 61_100_840, 0.714e9),  # torchvision: 0.71 GFLOPS
        ("resnet18", 11_689_512, 1.814e9),  # torchvision: 1.81 GFLOPS
        ("vgg16", 138_357_544, 15.47e9),  # torchvision: 15.47 GFLOPS
    ],
)
def test_published_multiply_adds_at_224(name, params, published):
    s = gl.summary(models.get_model(name, generator=0), (3, 224, 224), file=io.StringIO())
    assert s.total_params == params
    assert abs(s.total_mult_adds / published - 1) < 0.02, f"{name}: {s.total_mult_adds:,} vs {published:,.0f}"


# -- the command line ---------------------------------------------------------------------------


def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "gradlearn", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_summary_lenet5():
    result = run_cli("summary", "lenet5")
    assert result.returncode == 0, result.stderr
    assert "Total params: 61,706" in result.stdout
    assert "features.0" in result.stdout and "(1, 6, 28, 28)" in result.stdout


def test_cli_options():
    result = run_cli("summary", "resnet20", "--num-classes", "100", "--input-shape", "3,32,32")
    assert result.returncode == 0, result.stderr
    assert f"Total params: {269_722 + 90 * 65:,}" in result.stdout  # fc 64 -> 100 instead of 64 -> 10
    result = run_cli("summary", "mlp", "--input-shape", "784", "--hidden", "128", "--num-classes", "10")
    assert result.returncode == 0, result.stderr
    assert f"Total params: {784 * 128 + 128 + 1290:,}" in result.stdout


def test_cli_help_lists_the_models():
    result = run_cli("summary", "--help")
    assert result.returncode == 0
    assert "--input-shape" in result.stdout and "resnet56" in result.stdout


def test_cli_unknown_model_lists_the_choices():
    result = run_cli("summary", "resnet9")
    assert result.returncode == 2
    assert "resnet9" in result.stderr and "lenet5" in result.stderr and "vgg16" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_wrong_input_shape_is_an_error_not_a_traceback():
    result = run_cli("summary", "lenet5", "--input-shape", "1,32,32")
    assert result.returncode != 0
    assert "gradlearn summary: error" in result.stderr and "(1, 1, 32, 32)" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("summary", "lenet5", "--input-shape", "a,b")
    assert result.returncode == 2 and "Traceback" not in result.stderr
