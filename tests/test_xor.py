"""Acceptance: a 2-2-1 tanh network learns XOR by plain gradient descent on the flat vector."""

import numpy as np

import gradlearn as gl


def test_xor_with_gradient_descent_on_the_flat_vector():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    rng = np.random.default_rng(0)
    net = gl.Sequential(gl.Linear(2, 2, generator=rng), gl.Tanh(), gl.Linear(2, 1, generator=rng))
    # Unit-variance first-layer weights put the tanh units off their linear regime, which
    # the 2-2-1 network needs; with them about 4 seeds in 5 escape XOR's local minima.
    gl.init.normal_(net[0].weight, 0.0, 1.0, generator=rng)
    loss = gl.MSELoss()
    flat = net.flat_parameters()
    for step in range(2000):
        net.zero_grad()
        error = loss(net(x), y)
        net.backward(loss.backward())
        flat.data -= 0.5 * flat.grad  # the whole update: one vector operation
    assert error < 0.01, f"XOR did not converge: mean squared error {error:.4f}"
    assert np.all((net(x) > 0.5) == (y > 0.5))
