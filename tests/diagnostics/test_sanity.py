"""The overfit-a-small-batch sanity check: passes on a healthy net, says what went wrong otherwise."""

import math

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.diagnostics import SanityReport, divergence_advice, sanity_check
from gradlearn.diagnostics.sanity import classification_error


def small_mlp(activation=gl.Tanh, seed=1):
    return gl.Sequential(gl.Linear(10, 32, generator=seed), activation(), gl.Linear(32, 3, generator=seed + 1))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 10)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    return x, y


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_passes_on_a_small_mlp_and_leaves_the_model_alone(data):
    x, y = data
    model = small_mlp()
    before = model.copy()
    report = sanity_check(model, gl.CrossEntropyLoss(), x, y, lr=0.5)
    assert isinstance(report, SanityReport) and report.passed and bool(report)
    assert report.diagnosis == "passed" and report.final_error == 0.0
    assert report.errors[0] > 0.3 and report.errors[-1] == 0.0  # it had to learn
    assert report.final_loss < 0.5 * report.initial_loss
    assert report.num_samples == 16 and report.steps == len(report.losses) < 500
    assert "passed" in str(report)
    assert same_state(model, before)


def test_float64_inputs_are_cast_to_the_model_dtype(data):
    x, y = data
    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x.astype(np.float64), y, lr=0.5)
    assert report.passed


def test_two_mini_batches(data):
    x, y = data
    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x, y, lr=0.3, batch_size=8, steps=400)
    assert report.passed and report.final_error == 0.0


def test_zero_learning_rate_is_flat(data):
    x, y = data
    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x, y, lr=0.0, steps=50)
    assert not report.passed and report.diagnosis == "flat"
    assert "learning rate is too low" in report.verdict and "gradcheck" in report.verdict
    assert report.losses == [report.initial_loss] * 50


class ForgetfulLinear(gl.Linear):
    """A bug: backward forgets to accumulate the parameter gradients."""

    def backward(self, grad_output):
        return grad_output @ self.weight.data


def test_a_backward_bug_shows_as_a_flat_loss(data):
    x, y = data
    model = gl.Sequential(ForgetfulLinear(10, 32, generator=1), gl.Tanh(), ForgetfulLinear(32, 3, generator=2))
    report = sanity_check(model, gl.CrossEntropyLoss(), x, y, lr=0.5, steps=50)
    assert report.diagnosis == "flat" and "gradcheck" in report.verdict


def test_absurd_learning_rate_diverges(data):
    x, y = data
    report = sanity_check(small_mlp(gl.ReLU), gl.CrossEntropyLoss(), x, y, lr=1e3)
    assert not report.passed and report.diagnosis == "diverged"
    assert "too high" in report.verdict
    assert not all(math.isfinite(v) for v in report.losses) or max(report.losses) > 10 * report.initial_loss


def test_regression_diverges_to_inf_and_passes_with_a_good_rate(data):
    x, _ = data
    t = np.random.default_rng(1).standard_normal((16, 1)).astype(np.float32)
    model = gl.Sequential(gl.Linear(10, 32, generator=1), gl.ReLU(), gl.Linear(32, 1, generator=2))
    bad = sanity_check(model, gl.MSELoss(), x, t, lr=10.0)
    assert bad.diagnosis == "diverged" and bad.final_error is None
    good = sanity_check(model, gl.MSELoss(), x, t, lr=0.1)
    assert good.passed and good.final_loss <= 0.01 * good.initial_loss
    assert "fell below" in good.verdict


def test_too_few_steps_says_train_longer(data):
    x, y = data
    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x, y, lr=0.05, steps=20)
    assert report.diagnosis == "slow" and "train longer" in report.verdict
    assert report.final_loss < report.initial_loss


class FlatMomentum:
    """A minimal optimizer with the agreed interface (step, zero_grad, param_groups)."""

    def __init__(self, model, lr, momentum=0.9):
        self.flat = model.flat_parameters()
        self.velocity = np.zeros_like(self.flat.data)
        self.momentum = momentum
        self.param_groups = [{"lr": lr}]
        self.steps = 0

    def zero_grad(self):
        self.flat.zero_grad()

    def step(self):
        self.steps += 1
        self.velocity *= self.momentum
        self.velocity += self.flat.grad
        self.flat.data -= self.param_groups[0]["lr"] * self.velocity


def test_optimizer_factory(data):
    x, y = data
    built = []

    def factory(model, lr):
        built.append(FlatMomentum(model, lr))
        return built[-1]

    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x, y, lr=0.05, optimizer_factory=factory)
    assert report.passed and built[0].steps == report.steps


def test_classification_error_conventions():
    scores = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]])
    assert classification_error(scores, np.array([0, 1, 1])) == pytest.approx(1 / 3)
    assert classification_error(scores, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])) == 0.0
    # energies: the lowest is the answer
    assert classification_error(scores, np.array([1, 0, 1]), gl.HingeLoss()) == 0.0
    assert classification_error(np.array([[0.3], [-1.0]]), np.array([[1.0], [0.0]])) == 0.0
    assert classification_error(scores, scores) is None  # regression


def test_divergence_advice():
    text = divergence_advice(120, float("nan"), 0.5)
    assert "step 120" in text and "NaN" in text and "0.05" in text
    for hint in ("10x", "gradcheck", "isfinite", "clip"):
        assert hint in text
    assert "rose to 12.5" in divergence_advice(3, 12.5, 0.1)
    assert "infinite" in divergence_advice(3, float("inf"))


@pytest.mark.skipif(not hasattr(gl, "SGD"), reason="gradlearn.optim is not available")
def test_with_the_library_optimizer_and_a_dataset(data):
    x, y = data
    sgd = lambda model, lr: gl.SGD(model.parameters(), lr=lr, momentum=0.9)  # noqa: E731
    report = sanity_check(small_mlp(), gl.CrossEntropyLoss(), x, y, lr=0.1, optimizer_factory=sgd)
    assert report.passed and report.final_error == 0.0  # checked after the last update
    dataset = type("Toy", (), {"x": x, "y": y})()
    assert sanity_check(small_mlp(), gl.CrossEntropyLoss(), dataset, lr=0.5).passed
    with pytest.raises(TypeError, match="targets y"):
        sanity_check(small_mlp(), gl.CrossEntropyLoss(), x)
