"""Activation statistics find dead ReLUs and saturated units, and leave no wrapper behind."""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.diagnostics import ActivationRecorder, activation_stats


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)


def no_wrappers(model):
    return all("forward" not in m.__dict__ for m in model.modules())


def test_dead_relu_layer(x):
    model = gl.Sequential(gl.Linear(10, 32, generator=1), gl.ReLU(), gl.Linear(32, 3, generator=2))
    healthy = activation_stats(model, x)["1"]
    hidden = np.maximum(x @ model[0].weight.data.T + model[0].bias.data, 0)
    assert healthy.dead == pytest.approx(float((hidden == 0).all(axis=0).mean()))
    assert healthy.dead < 0.2 and healthy.saturated is None
    model[0].bias.data[:16] = -100.0  # half the units can never fire
    assert activation_stats(model, x)["1"].dead == 0.5
    model[0].bias.data[:] = -100.0
    report = activation_stats(model, x)
    assert report["1"].dead == 1.0 and report["1"].mean == 0.0 and report["1"].std == 0.0
    assert report["0"].mean == pytest.approx(-100.0, abs=1.0) and report["0"].dead is None
    assert [s.name for s in report] == ["0", "1", "2"]
    table = str(report)
    assert "100.0%" in table and "ReLU()" in table and "dead" in table and "warning: 1:" in table
    assert no_wrappers(model)


def test_saturated_tanh_and_sigmoid(x):
    model = gl.Sequential(gl.Linear(10, 32, generator=1), gl.Tanh(), gl.Linear(32, 8, generator=2), gl.Sigmoid())
    report = activation_stats(model, x)
    assert report["1"].saturated < 0.1 and report["3"].saturated < 0.1 and report["1"].dead is None
    model[0].weight.data *= 100
    model[2].weight.data *= 100
    report = activation_stats(model, x)
    hidden = np.tanh(x @ model[0].weight.data.T + model[0].bias.data)
    assert report["1"].saturated == pytest.approx(float((np.abs(hidden) > 0.97).mean()))
    assert report["1"].saturated > 0.9 and report["3"].saturated > 0.9
    assert "saturated" in report.table().split("warning")[1]


def test_feature_maps_count_channels():
    x = np.abs(np.random.default_rng(0).standard_normal((4, 5, 3, 3))).astype(np.float32) + 0.1
    x[:, 2] *= -1  # channel 2 negative everywhere: dead after the ReLU
    x[0, 3, 0, 0] = -1.0  # one zero in channel 3 does not kill it
    stats = activation_stats(gl.ReLU(), x)["ReLU"]
    assert stats.dead == pytest.approx(1 / 5) and stats.shape == (4, 5, 3, 3)


def test_modes_and_outputs_are_restored(x):
    model = gl.Sequential(gl.Linear(10, 4, generator=1), gl.ReLU())
    model[1].train(False)  # a mixed state must come back as it was
    expected = model(x)
    report = activation_stats(model, x, keep_outputs=True)
    assert model.training and not model[1].training and model[0].training
    np.testing.assert_array_equal(report.outputs["1"], expected)
    assert no_wrappers(model)


def test_recorder_during_training(x):
    model = gl.Sequential(gl.Linear(10, 8, generator=1), gl.Tanh(), gl.Linear(8, 2, generator=2))
    own = lambda inp: type(model[1]).forward(model[1], inp)  # an existing instance override
    object.__setattr__(model[1], "forward", own)
    loss = gl.CrossEntropyLoss()
    y = (x[:, 0] > 0).astype(np.int64)
    flat = model.flat_parameters()
    with ActivationRecorder(model, every=2, keep_outputs=True) as recorder:
        assert recorder.recording and "forward" in model[0].__dict__
        for _ in range(5):
            model.zero_grad()
            loss(model(x), y)
            model.backward(loss.backward())
            flat.data -= 0.5 * flat.grad
    assert not recorder.recording
    assert model[1].__dict__["forward"] is own and "forward" not in model[0].__dict__
    assert [len(recorder.history[name]) for name in ("0", "1", "2")] == [3, 3, 3]
    last = recorder.report()
    assert [s.name for s in last] == ["0", "1", "2"] and last["2"].shape == (64, 2)
    np.testing.assert_allclose(recorder.outputs["1"].std(), last["1"].std, rtol=1e-5)
    recorder.reset()
    assert recorder.history == {} and len(recorder.report()) == 0


def test_print_table(x, capsys):
    activation_stats(gl.Sequential(gl.Linear(10, 3), gl.Sigmoid()), x, print_table=True)
    out = capsys.readouterr().out
    assert "Sigmoid()" in out and "saturated" in out and "output shape" in out
