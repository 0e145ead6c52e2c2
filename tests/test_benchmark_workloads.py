"""The benchmarks' hand-written NumPy MLP (``benchmarks/_workloads.numpy_mlp_trainer``) trains
the same step as gradlearn's W1: throughput.py sets gradlearn's speed beside it, so it must
compute the same gradients and make the same SGD-with-momentum update, not a cheaper step."""

import os
import sys

import numpy as np

import gradlearn as gl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import _workloads  # noqa: E402


def _gradlearn_twin(layers):
    """gradlearn's W1 holding the hand-written step's current weights, and its SGD."""
    model = _workloads.gl_model("W1")
    for (w, b, _, _), linear in zip(layers, [m for m in model if isinstance(m, gl.Linear)]):
        linear.weight.data = w.T.copy()  # the NumPy step keeps (in, out), gradlearn (out, in)
        linear.bias.data = b.copy()
    return model, gl.SGD(model.parameters(), lr=0.01, momentum=0.9)


def test_the_numpy_yardstick_trains_the_same_steps_as_gradlearn():
    step, layers = _workloads.numpy_mlp_trainer()
    model, optimizer = _gradlearn_twin(layers)
    x, y = _workloads.batch("W1")
    loss = gl.CrossEntropyLoss()
    for _ in range(3):  # the second and third steps use the momentum of the ones before
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        optimizer.step()
        step()
        for (w, b, gw, gb), linear in zip(layers, [m for m in model if isinstance(m, gl.Linear)]):
            np.testing.assert_allclose(gw, linear.weight.grad.T, rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(gb, linear.bias.grad, rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(w, linear.weight.data.T, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(b, linear.bias.data, rtol=1e-5, atol=1e-7)
    assert np.abs(layers[0][2]).max() > 1e-4  # the gradients compared are not all zero
