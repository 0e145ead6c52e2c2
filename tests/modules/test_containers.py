"""Containers: Branch/Add are the lectures' branch and plus modules; they compose in Sequential."""

import numpy as np
import pytest

import gradlearn as gl


def test_branch_copies_and_sums_gradients():
    x = np.arange(6.0).reshape(2, 3)
    outs = gl.Branch(3)(x)
    assert len(outs) == 3 and all(o is x for o in outs)
    b = gl.Branch(2)
    b(x)
    np.testing.assert_array_equal(b.backward(np.ones((2, 3)), 2 * np.ones((2, 3))), 3 * np.ones((2, 3)))


def test_add_sums_inputs_and_copies_gradient():
    add = gl.Add()
    a, b = np.ones((2, 2)), 2 * np.ones((2, 2))
    np.testing.assert_array_equal(add(a, b), 3 * np.ones((2, 2)))
    g = np.full((2, 2), 0.5)
    ga, gb = add.backward(g)
    np.testing.assert_array_equal(ga, g)
    np.testing.assert_array_equal(gb, g)
    with pytest.raises(ValueError, match=r"input 1 has shape \(3,\), expected \(2, 2\)"):
        add(a, np.ones(3))


def test_branch_parallel_add_equals_residual():
    gl.manual_seed(0)
    body = gl.Sequential(gl.Linear(4, 4), gl.Tanh())
    composed = gl.Sequential(gl.Branch(2), gl.Parallel(body, gl.Identity()), gl.Add())
    residual = gl.Residual(body)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(composed(x), residual(x), rtol=1e-6)
    g = np.ones((3, 4), np.float32)
    body.zero_grad()
    gx1 = composed.backward(g)
    w1 = body[0].weight.grad.copy()
    body.zero_grad()
    residual(x)
    gx2 = residual.backward(g)
    np.testing.assert_allclose(gx1, gx2, rtol=1e-6)
    np.testing.assert_allclose(w1, body[0].weight.grad, rtol=1e-6)


def test_concat_splits_gradient():
    cat = gl.Concat(dim=1)
    y = cat(np.zeros((2, 1)), np.ones((2, 3)))
    assert y.shape == (2, 4)
    ga, gb = cat.backward(np.arange(8.0).reshape(2, 4))
    np.testing.assert_array_equal(ga, [[0], [4]])
    np.testing.assert_array_equal(gb, [[1, 2, 3], [5, 6, 7]])
    with pytest.raises(ValueError, match="does not match"):
        cat(np.zeros((2, 1)), np.zeros((3, 1)))


def test_residual_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match=r"body output \(2, 3\) and shortcut output \(2, 4\) differ"):
        gl.Residual(gl.Linear(4, 3))(np.zeros((2, 4), np.float32))


def test_sequential_indexing_and_append():
    net = gl.Sequential(gl.Linear(2, 3), gl.ReLU())
    net.append(gl.Linear(3, 1))
    assert len(net) == 3 and isinstance(net[2], gl.Linear)
    assert [n for n, _ in net.named_parameters()][-1] == "2.bias"
    head = net[1:]
    assert len(head) == 2
    with pytest.raises(TypeError, match="not a Module"):
        gl.Sequential(gl.Linear(2, 2), "relu")


def test_skip_input_grad_spares_the_first_layer_only():
    gl.manual_seed(0)
    net = gl.Sequential(gl.Linear(3, 4), gl.ReLU(), gl.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    g = np.ones((5, 2), np.float32)
    net(x)
    full = net.backward(g)
    grads = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    net.skip_input_grad()
    net(x)
    assert net.backward(g) is None and full is not None
    for p, expected in zip(net.parameters(), grads):  # parameter gradients are unchanged
        np.testing.assert_array_equal(p.grad, expected)
    assert net[2].input_grad  # only the first layer skips
    net.skip_input_grad(False)
    net(x)
    assert net.backward(g).shape == (5, 3)
