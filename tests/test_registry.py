"""The generic tests over the registry of module and loss cases (tests/cases/).

Every case is gradchecked in float64 (relative error < 1e-6, every tensor's gradient
non-zero so the check checked something), and every case with a PyTorch counterpart is
compared with PyTorch: same weights (loaded through load_state_dict from the torch
module's state_dict), same inputs; forward output, input gradients, parameter gradients
and buffers agree to 1e-10 relative in float64 and 1e-5 in float32.
"""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.modules.activation import Activation

from .cases import all_cases
from .conftest import assert_close, to_channels_last

CASES = all_cases()


def case_params(cases):
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


@pytest.mark.parametrize("case", case_params(CASES))
def test_gradcheck(case):
    inputs = case.inputs(np.random.default_rng(0))
    report = gl.gradcheck(case.make(), *inputs, **case.gradcheck_kwargs)
    assert report.rows, f"{case.name}: nothing was checked"
    assert not report.vacuous, f"{case.name}: zero gradients checked nothing:\n{report}"
    assert report.passed, str(report)
    assert max(r.max_rel_error for r in report.rows) < 1e-6


def test_every_public_module_has_a_case():
    covered = {type(case.make()).__name__ for case in CASES}
    public = {
        name
        for name in gl.__all__
        if isinstance(getattr(gl, name), type)
        and issubclass(getattr(gl, name), gl.Module)
        and getattr(gl, name) not in (gl.Module, gl.Loss, Activation)
    }
    assert public - covered == set(), f"modules without a registry case: {sorted(public - covered)}"


# PyTorch as oracle ---------------------------------------------------------------------------

TORCH_CASES = [c for c in CASES if c.torch is not None]


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0")


def _compare_with_torch(case, dtype, rtol):
    torch = _torch()
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    inputs = [x.astype(dtype) if x.dtype.kind == "f" else x for x in case.inputs(rng)]
    ours = case.make().to(dtype)
    theirs = case.torch(torch)
    if isinstance(theirs, torch.nn.Module):
        theirs = theirs.to(torch_dtype)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    differentiable = [i for i, x in enumerate(inputs) if x.dtype.kind == "f" and not (case.is_loss and i > 0)]

    for step in range(case.steps):
        ours.zero_grad()
        if isinstance(theirs, torch.nn.Module):
            theirs.zero_grad()
        t_inputs = [torch.tensor(x, requires_grad=i in differentiable) for i, x in enumerate(inputs)]
        out = ours(*inputs)
        t_out = theirs(*t_inputs)
        outs = out if isinstance(out, tuple) else (out,)
        t_outs = t_out if isinstance(t_out, tuple) else (t_out,)
        assert len(outs) == len(t_outs)
        for k, (o, t) in enumerate(zip(outs, t_outs)):
            assert np.asarray(o).dtype == dtype, f"{case.name}: output {k} has dtype {np.asarray(o).dtype}"
            assert_close(o, t.detach().numpy(), rtol, f"{case.name} output {k}")
        if case.is_loss:
            grads = ours.backward()
            t_out.backward()
        else:
            upstream = [rng.standard_normal(o.shape).astype(dtype) for o in outs]
            grads = ours.backward(*upstream)
            torch.autograd.backward(t_outs, [torch.tensor(u) for u in upstream])
        grads = grads if isinstance(grads, tuple) else (grads,)
        for i in differentiable:
            assert grads[i].dtype == dtype, f"{case.name}: input gradient has dtype {grads[i].dtype}"
            assert np.any(grads[i] != 0), f"{case.name}: input gradient {i} is zero: checked nothing"
            assert_close(grads[i], t_inputs[i].grad.numpy(), rtol, f"{case.name} grad input {i}")
        if isinstance(theirs, torch.nn.Module):
            t_params = dict(theirs.named_parameters())
            for name, p in ours.named_parameters():
                assert_close(p.grad, t_params[name].grad.numpy(), rtol, f"{case.name} grad {name}")
            t_state = theirs.state_dict()
            for name, value in ours.state_dict().items():
                assert_close(value, t_state[name].numpy(), rtol, f"{case.name} state {name} after step {step}")
        inputs = [x * 1.1 + 0.05 if i in differentiable else x for i, x in enumerate(inputs)]


@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_matches_torch_float64(case):
    _compare_with_torch(case, np.float64, 1e-10)


@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_matches_torch_float32(case):
    _compare_with_torch(case, np.float32, 1e-5)


# any memory layout --------------------------------------------------------------------------


def _strided_copy(x):
    """The same values in another memory layout: channels-last for (N, C, H, W) (what a
    transposed NHWC array looks like), column-major for other arrays of 2+ dimensions."""
    if x.ndim == 4:
        return to_channels_last(x)
    return np.asfortranarray(x) if x.ndim >= 2 else x


def _run_case(case, module, inputs, upstream_layout):
    """(outputs, input gradients, parameter gradients) of one forward and backward."""
    outs = module(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    if case.is_loss:
        grads = module.backward()
    else:
        rng = np.random.default_rng(7)
        grads = module.backward(*[upstream_layout(rng.standard_normal(o.shape)) for o in outs])
    grads = grads if isinstance(grads, tuple) else (grads,)
    outs = [np.array(o) for o in outs]
    return outs, [np.array(g) for g in grads if g is not None], [p.grad.copy() for p in module.parameters()]


@pytest.mark.parametrize("case", case_params(CASES))
def test_inputs_and_gradients_in_any_memory_layout_give_the_same_results(case):
    """Arrays that are views with other strides (a channels-last image batch, a transposed
    matrix) are read by their indices, never by their memory order: the results are the
    contiguous arrays' (up to summation order)."""
    inputs = case.inputs(np.random.default_rng(0))
    module = case.make().to(np.float64)
    twin = module.copy()  # the same weights
    expected = _run_case(case, module, inputs, lambda a: a)
    strided = [_strided_copy(x) if x.dtype.kind == "f" else x for x in inputs]
    for x in strided:  # really another layout, where one exists
        axes = (x.shape[1], x.shape[2] * x.shape[3]) if x.ndim == 4 else x.shape
        if x.dtype.kind == "f" and sum(d > 1 for d in axes) >= 2:
            assert not x.flags.c_contiguous
    got = _run_case(case, twin, strided, _strided_copy)
    for what, a, b in zip(("output", "input gradient", "parameter gradient"), got, expected):
        assert len(a) == len(b)
        for k, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, 1e-12, f"{case.name} {what} {k}")
