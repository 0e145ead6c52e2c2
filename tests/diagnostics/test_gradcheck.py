"""gradcheck catches wrong gradients and says so; it never mutates the module it checks."""

import numpy as np

import gradlearn as gl


class WrongTanh(gl.Tanh):
    def _backward(self, grad_output):
        return grad_output * (1 - self.y)  # forgot the square


class WrongLinear(gl.Linear):
    def backward(self, grad_output):
        grad_input = super().backward(grad_output)
        self.weight.grad *= 1.001  # a 0.1 % error in the weight gradient
        return grad_input


def test_detects_a_wrong_input_gradient():
    report = gl.gradcheck(WrongTanh(), np.random.default_rng(0).standard_normal((3, 4)))
    assert not report.passed
    assert "FAILED" in str(report)


def test_detects_a_small_parameter_gradient_error():
    report = gl.gradcheck(WrongLinear(4, 3), np.random.default_rng(0).standard_normal((2, 4)))
    rows = {r.name: r for r in report.rows}
    assert rows["input"].passed and rows["bias"].passed
    assert not rows["weight"].passed and not report.passed


def test_reports_vacuous_checks():
    report = gl.gradcheck(gl.ReLU(), -np.ones((2, 3)))  # all dead: the gradient is zero
    assert report.vacuous == ["input"]


def test_large_tensors_use_random_directions():
    report = gl.gradcheck(gl.Linear(100, 50), np.random.default_rng(0).standard_normal((2, 100)), max_elements=1000)
    rows = {r.name: r for r in report.rows}
    assert rows["weight"].checked == "16 directions" and rows["bias"].checked == "all 50 elements"
    assert report.passed


def test_leaves_the_module_untouched_and_can_raise():
    layer = gl.Linear(3, 2)
    before = layer.weight.data.copy()
    gl.gradcheck(layer, np.ones((1, 3)))
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
    try:
        gl.gradcheck(WrongTanh(), np.ones((1, 2)) * 0.3, raise_on_failure=True)
    except AssertionError as error:
        assert "FAIL" in str(error)
    else:
        raise AssertionError("gradcheck did not raise")
