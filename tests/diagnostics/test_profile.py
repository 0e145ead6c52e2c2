"""profile(model, input_shape, batch_size, repeat): per-layer times, slowest first, model untouched."""

import time

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.diagnostics.profile import ProfileReport, profile


class Slow(gl.Module):
    """Identity that sleeps: 4 ms in forward, 8 ms in backward."""

    def forward(self, x):
        time.sleep(0.004)
        return x.copy()

    def backward(self, grad_output):
        time.sleep(0.008)
        return grad_output.copy()


def _net():
    rng = np.random.default_rng(0)
    return gl.Sequential(gl.Linear(6, 5, generator=rng), gl.ReLU(), Slow(), gl.BatchNorm1d(5), gl.Linear(5, 3, generator=rng))


def test_the_slow_layer_comes_first_with_its_times():
    report = profile(_net(), (6,), batch_size=4, repeat=3)
    assert isinstance(report, ProfileReport)
    assert [r.name for r in report.rows][0] == "2"
    slow = report.rows[0]
    assert 0.004 <= slow.forward < 0.004 + 0.01 and 0.008 <= slow.backward < 0.008 + 0.01
    assert slow.calls == 1
    assert sorted(r.name for r in report.rows) == ["0", "1", "2", "3", "4"]
    totals = [r.total for r in report.rows]
    assert totals == sorted(totals, reverse=True)
    assert report.step_total >= report.layers_total * 0.99
    table = report.table()
    assert "slowest: 2 Slow()" in table and "Linear(6 -> 5)" in table


def test_the_callers_model_is_untouched():
    net = _net()
    net.eval()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    grads = [p.grad.copy() for p in net.parameters()]
    profile(net, (6,), batch_size=8, repeat=2)
    assert not net.training and all(not m.training for m in net.modules())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)  # BatchNorm's running statistics too
    for p, g in zip(net.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)
    assert all("forward" not in vars(m) and "backward" not in vars(m) for m in net.modules())


def test_a_module_used_twice_sums_its_calls():
    relu = gl.ReLU()
    net = gl.Sequential(gl.Linear(4, 4, generator=np.random.default_rng(1)), relu, gl.Linear(4, 4, generator=np.random.default_rng(2)), relu)
    report = profile(net, (4,), batch_size=2, repeat=2)
    shared = [r for r in report.rows if r.module == "ReLU()"]
    assert len(shared) == 1 and shared[0].calls == 2


def test_real_model_and_errors():
    report = profile(gl.models.lenet5(), (1, 28, 28), batch_size=4, repeat=1)
    assert len(report.rows) == 12 and report.slowest.total > 0
    with pytest.raises(ValueError, match="batch_size"):
        profile(_net(), (6,), batch_size=0)
    with pytest.raises(ValueError, match="input_shape"):
        profile(_net(), (0,))
