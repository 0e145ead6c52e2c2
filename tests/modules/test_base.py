"""Module: registration, names, modes, state_dict, errors with the path of the failing child."""

import numpy as np
import pytest

import gradlearn as gl


class Block(gl.Module):
    def __init__(self):
        super().__init__()
        self.body = gl.Sequential(gl.Linear(3, 3), gl.ReLU(), gl.Linear(3, 3))
        self.head = gl.Linear(3, 1)

    def forward(self, x):
        return self.head(self.body(x))

    def backward(self, g):
        return self.body.backward(self.head.backward(g))


def test_named_parameters_follow_pytorch_names():
    names = [n for n, _ in Block().named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.weight", "head.bias"]
    assert [n for n, _ in gl.Sequential(gl.Linear(2, 2)).named_parameters()] == ["0.weight", "0.bias"]


def test_shared_parameter_listed_once_and_gradients_accumulate():
    layer = gl.Linear(2, 2)
    net = gl.Sequential(layer, gl.Tanh(), layer)
    assert len(list(net.parameters())) == 2
    x = np.ones((1, 2), np.float32)
    y = net(x)
    net.backward(np.ones_like(y))
    first = layer.weight.grad.copy()
    y = net(x)
    net.backward(np.ones_like(y))
    np.testing.assert_allclose(layer.weight.grad, 2 * first, rtol=1e-6)


def test_children_and_modes():
    block = Block()
    assert [type(c).__name__ for c in block.children()] == ["Sequential", "Linear"]
    assert block.training
    block.eval()
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())


def test_state_dict_round_trip_and_copies():
    a, b = Block(), Block()
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    state["head.bias"][:] = 99  # a copy: the module is untouched
    assert a.head.bias.data[0] != 99
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_errors_name_the_key_and_change_nothing():
    net = Block()
    before = net.state_dict()
    state = net.state_dict()
    state["head.weight"] = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"'head.weight' has shape \(2, 3\), expected \(1, 3\)"):
        net.load_state_dict(state)
    state = Block().state_dict()
    del state["body.2.bias"]
    with pytest.raises(KeyError, match="missing keys \\['body.2.bias'\\]"):
        net.load_state_dict(state)
    state = Block().state_dict()
    state["head.extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="unexpected keys \\['head.extra'\\]"):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing was half-loaded
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == [] and unexpected == ["head.extra"]


def test_repr_is_readable():
    text = repr(gl.Sequential(gl.Linear(784, 10), gl.ReLU()))
    assert text == "Sequential(\n  (0): Linear(784 -> 10)\n  (1): ReLU()\n)"


def test_linear_shape_error_names_module_and_shapes():
    with pytest.raises(ValueError, match=r"Linear\(784 -> 10\)\.forward: expected input \(N, 784\), got \(32, 28, 28\)"):
        gl.Linear(784, 10)(np.zeros((32, 28, 28), np.float32))


def test_container_adds_the_path_of_the_failing_child():
    net = gl.Sequential(gl.Linear(4, 8), gl.ReLU(), gl.Sequential(gl.Linear(8, 3), gl.Linear(5, 2)))
    with pytest.raises(ValueError) as info:
        net(np.zeros((2, 4), np.float32))
    assert str(info.value) == "in Sequential[2][1] Linear(5 -> 2).forward: expected input (N, 5), got (2, 3)"


def test_backward_errors():
    layer = gl.Linear(3, 2)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 2), np.float32))
    layer(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(4, 2\)"):
        layer.backward(np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("bad", [np.array([["a", "b", "c"]]), np.zeros((1, 3), dtype=object), [[1.0, 2.0, 3.0]]])
def test_non_float_inputs_are_rejected(bad):
    with pytest.raises(TypeError, match="floating-point"):
        gl.Linear(3, 2)(bad)
    with pytest.raises(TypeError, match="floating-point"):
        gl.Tanh()(bad)


def test_dtype_mismatch_is_rejected():
    with pytest.raises(TypeError, match="dtype float32"):
        gl.Linear(3, 2)(np.zeros((1, 3), np.float64))


def test_outputs_belong_to_the_caller():
    net = gl.Sequential(gl.Linear(3, 3), gl.Tanh())
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 2, 3)).astype(np.float32)
    y1 = net(x1)
    kept = y1.copy()
    net(x2)
    np.testing.assert_array_equal(y1, kept)


def test_to_casts_parameters():
    net = Block().double()
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net(np.zeros((1, 3))).dtype == np.float64
