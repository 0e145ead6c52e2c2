import math

import numpy as np
import pytest

import gradlearn as gl
from gradlearn import init


def test_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")


@pytest.mark.parametrize(
    "fill, expected_std",
    [
        (lambda w, g: init.xavier_uniform_(w, generator=g), math.sqrt(2 / (400 + 300))),
        (lambda w, g: init.xavier_normal_(w, generator=g), math.sqrt(2 / (400 + 300))),
        (lambda w, g: init.kaiming_uniform_(w, nonlinearity="relu", generator=g), math.sqrt(2 / 400)),
        (lambda w, g: init.kaiming_normal_(w, nonlinearity="relu", generator=g), math.sqrt(2 / 400)),
        (lambda w, g: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g), math.sqrt(2 / 300)),
    ],
)
def test_initialisers_have_the_stated_spread(fill, expected_std):
    weight = gl.Parameter(np.zeros((300, 400), np.float32))
    fill(weight, np.random.default_rng(0))
    assert weight.data.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(weight.data.mean()) < 0.01 * expected_std * 10


def test_conv_fans_include_the_kernel():
    assert init.fans((16, 6, 5, 5)) == (150, 400)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(np.zeros(3))


def test_constant_fills():
    w = np.empty((2, 2))
    init.zeros_(w)
    assert not w.any()
    init.ones_(w)
    assert w.sum() == 4


def test_linear_default_init_matches_pytorch_bounds():
    layer = gl.Linear(100, 50)
    bound = 1 / math.sqrt(100)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound
