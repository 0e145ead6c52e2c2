"""Optimizers over the flat parameter vector: PyTorch agreement, masks, gaps, checkpoints."""

import ast
import copy
import inspect
import json
import math
import textwrap

import numpy as np
import pytest

import gradlearn as gl
from tests.conftest import assert_close, needs_compiled

# sizes deliberately not multiples of 16, so the flat vector has gaps between parameters
SHAPES = [(5, 3), (5,), (4, 5), (4,), (7, 2, 3)]
STEPS = 50


def initial_values(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_sequence(steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape) for shape in SHAPES] for _ in range(steps)]


def groups_by_kind(params, first, second):
    """Weights (matrices) in one group, vectors (biases) in the other, each with its options."""
    weights = [p for p in params if len(p.shape) != 1]
    vectors = [p for p in params if len(p.shape) == 1]
    return [dict(first, params=weights), dict(second, params=vectors)]


def all_params(params, **options):
    return params


def two_groups(lr_a, lr_b, decay_a, decay_b, **extra_b):
    def build(params, **options):
        return groups_by_kind(params, {"lr": lr_a, "weight_decay": decay_a},
                              {"lr": lr_b, "weight_decay": decay_b, **extra_b})

    return build


# name, gradlearn class name, constructor options, how params are grouped, index of a frozen parameter
CASES = [
    ("sgd", "SGD", dict(lr=0.1), all_params, None),
    ("sgd-momentum", "SGD", dict(lr=0.05, momentum=0.9), all_params, None),
    ("sgd-dampening", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3), all_params, None),
    ("sgd-nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True), all_params, None),
    ("sgd-weight-decay", "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01), all_params, None),
    ("sgd-groups", "SGD", dict(lr=0.05, momentum=0.9), two_groups(0.05, 0.2, 0.01, 0.0), None),
    ("sgd-groups-momentum", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.2),
     two_groups(0.05, 0.1, 0.0, 0.01, momentum=0.0), None),
    ("sgd-frozen", "SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01), all_params, 2),
    ("adagrad", "Adagrad", dict(lr=0.1), all_params, None),
    ("adagrad-lr-decay", "Adagrad", dict(lr=0.1, lr_decay=0.05), all_params, None),
    ("adagrad-weight-decay", "Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5), all_params,
     None),
    ("adagrad-groups", "Adagrad", dict(lr=0.1, lr_decay=0.01), two_groups(0.1, 0.3, 0.05, 0.0, lr_decay=0.1), None),
    ("adagrad-frozen", "Adagrad", dict(lr=0.1, weight_decay=0.01), all_params, 0),
    ("rmsprop", "RMSprop", dict(lr=0.01), all_params, None),
    ("rmsprop-alpha", "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6), all_params, None),
    ("rmsprop-centered", "RMSprop", dict(lr=0.01, centered=True), all_params, None),
    ("rmsprop-momentum", "RMSprop", dict(lr=0.01, momentum=0.9), all_params, None),
    ("rmsprop-all", "RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05), all_params, None),
    ("rmsprop-groups", "RMSprop", dict(lr=0.01, momentum=0.9),
     two_groups(0.01, 0.03, 0.01, 0.0, centered=True, momentum=0.0, alpha=0.9), None),
    ("rmsprop-frozen", "RMSprop", dict(lr=0.01, momentum=0.9, centered=True), all_params, 4),
    ("adam", "Adam", dict(lr=0.01), all_params, None),
    ("adam-betas", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6), all_params, None),
    ("adam-amsgrad", "Adam", dict(lr=0.01, amsgrad=True), all_params, None),
    ("adam-weight-decay", "Adam", dict(lr=0.01, weight_decay=0.1), all_params, None),
    ("adam-groups", "Adam", dict(lr=0.01), two_groups(0.01, 0.05, 0.1, 0.0, betas=(0.8, 0.99), amsgrad=True), None),
    ("adam-frozen", "Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True), all_params, 1),
    ("adamw", "AdamW", dict(lr=0.01), all_params, None),
    ("adamw-decay-amsgrad", "AdamW", dict(lr=0.01, weight_decay=0.2, amsgrad=True), all_params, None),
    ("adamw-groups", "AdamW", dict(lr=0.01), two_groups(0.01, 0.03, 0.1, 0.0), None),
    ("adamw-frozen", "AdamW", dict(lr=0.01, weight_decay=0.1), all_params, 3),
    ("nadam", "NAdam", dict(lr=0.01), all_params, None),
    ("nadam-momentum-decay", "NAdam", dict(lr=0.01, momentum_decay=0.05), all_params, None),
    ("nadam-weight-decay", "NAdam", dict(lr=0.01, weight_decay=0.1), all_params, None),
    ("nadam-decoupled", "NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), all_params, None),
    ("nadam-groups", "NAdam", dict(lr=0.01), two_groups(0.01, 0.02, 0.1, 0.0, momentum_decay=0.02, betas=(0.85, 0.99)),
     None),
    ("nadam-frozen", "NAdam", dict(lr=0.01, weight_decay=0.1), all_params, 0),
]

TORCH_STATE_NAMES = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg", "grad_avg")


def run_gradlearn(class_name, options, grouping, frozen, grads, l1=0.0, dtype=np.float64):
    params = [gl.Parameter(v.astype(dtype), requires_grad=(i != frozen)) for i, v in enumerate(initial_values())]
    extra = {"l1": l1} if l1 else {}
    optimizer = getattr(gl, class_name)(grouping(params), **options, **extra)
    for step, step_grads in enumerate(grads):
        if step == STEPS // 2:  # a schedule changing lr mid-run: the per-element lr is rebuilt
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad += g  # written even into the frozen parameter: the optimizer must ignore it
        optimizer.step()
    return params, optimizer


def run_torch(torch, class_name, options, grouping, frozen, grads, l1=0.0):
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=(i != frozen)) for i, v in enumerate(initial_values())]
    options = dict(options)
    optimizer = getattr(torch.optim, class_name)(grouping(params), **options)
    for step, step_grads in enumerate(grads):
        if step == STEPS // 2:
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        for p, g in zip(params, step_grads):
            if p.requires_grad:
                grad = torch.tensor(g, dtype=torch.float64)
                if l1:  # the L1 penalty's (sub)gradient, added by hand
                    grad = grad + l1 * torch.sign(p.detach())
                p.grad = grad
        optimizer.step()
    return params, optimizer


def torch_rtol(class_name):
    """float64 agreement is to rounding (observed <= 2e-15), except NAdam: torch keeps its
    running product of momentum coefficients ``mu_product`` as a float32 scalar even for
    float64 parameters (observed <= 4e-10 relative after 50 steps)."""
    return 1e-8 if class_name == "NAdam" else 1e-12


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_optim(case):
    torch = pytest.importorskip("torch", reason="torch is the reference optimizer")
    _, class_name, options, grouping, frozen = case
    grads = gradient_sequence()
    ours, optimizer = run_gradlearn(class_name, options, grouping, frozen, grads)
    theirs, torch_optimizer = run_torch(torch, class_name, options, grouping, frozen, grads)
    initial = initial_values()
    rtol = torch_rtol(class_name)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        expected = t.detach().numpy()
        assert_close(p.data, expected, rtol, f"{case[0]}: parameter {i}")
        if i != frozen:
            assert np.max(np.abs(p.data - initial[i])) > 1e-3, f"{case[0]}: parameter {i} did not move"
    if frozen is not None:
        np.testing.assert_array_equal(ours[frozen].data, initial[frozen])
    # the flat state arrays agree with torch's per-parameter state, under the same names
    compared = 0
    for i, (p, t) in enumerate(zip(ours, theirs)):
        if i == frozen:
            continue
        for name in TORCH_STATE_NAMES:
            if name in optimizer.state and name in torch_optimizer.state[t]:
                mine = optimizer.state[name][optimizer.flat.slice_of(p)].reshape(p.shape)
                assert_close(mine, torch_optimizer.state[t][name].numpy(), rtol, f"{case[0]}: {name}[{i}]")
                compared += 1
    assert compared > 0 or class_name == "SGD" and "momentum" not in options


L1_CASES = [c for c in CASES if c[0] in ("sgd-momentum", "adagrad", "rmsprop-centered", "adam", "adamw", "nadam",
                                            "adam-frozen", "sgd-groups")]


@pytest.mark.parametrize("case", L1_CASES, ids=[c[0] for c in L1_CASES])
def test_l1_penalty_matches_torch_with_hand_added_subgradient(case):
    torch = pytest.importorskip("torch", reason="torch is the reference optimizer")
    _, class_name, options, grouping, frozen = case
    grads = gradient_sequence()
    ours, _ = run_gradlearn(class_name, options, grouping, frozen, grads, l1=0.03)
    theirs, _ = run_torch(torch, class_name, options, grouping, frozen, grads, l1=0.03)
    without, _ = run_gradlearn(class_name, options, grouping, frozen, grads)
    for i, (p, t, q) in enumerate(zip(ours, theirs, without)):
        assert_close(p.data, t.detach().numpy(), torch_rtol(class_name), f"{case[0]} l1: parameter {i}")
        if i != frozen:
            assert np.max(np.abs(p.data - q.data)) > 1e-4, "l1 changed nothing"


def test_l1_sgd_matches_hand_written_update():
    """SGD with momentum, L2 and L1 against the update written out per parameter."""
    lr, momentum, decay, l1 = 0.05, 0.9, 0.01, 0.02
    grads = gradient_sequence()
    params = [gl.Parameter(v) for v in initial_values()]
    optimizer = gl.SGD(params, lr=lr, momentum=momentum, weight_decay=decay, l1=l1)
    weights = initial_values()
    buffers = [None] * len(weights)
    for step_grads in grads:
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        optimizer.step()
        for i, g in enumerate(step_grads):
            d = g + decay * weights[i] + l1 * np.sign(weights[i])
            buffers[i] = d if buffers[i] is None else momentum * buffers[i] + d
            weights[i] = weights[i] - lr * buffers[i]
    for i, (p, w) in enumerate(zip(params, weights)):
        assert_close(p.data, w, 1e-12, f"parameter {i}")


def test_l1_adam_matches_hand_written_update():
    lr, (b1, b2), eps, l1 = 0.01, (0.9, 0.999), 1e-8, 0.05
    grads = gradient_sequence()
    params = [gl.Parameter(v) for v in initial_values()]
    optimizer = gl.Adam(params, lr=lr, l1=l1)
    weights = initial_values()
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, step_grads in enumerate(grads, start=1):
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        optimizer.step()
        for i, g in enumerate(step_grads):
            d = g + l1 * np.sign(weights[i])
            m[i] = b1 * m[i] + (1 - b1) * d
            v[i] = b2 * v[i] + (1 - b2) * d * d
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            weights[i] = weights[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    for i, (p, w) in enumerate(zip(params, weights)):
        assert_close(p.data, w, 1e-12, f"parameter {i}")


# frozen parameters, gaps, dtype ---------------------------------------------------------------
ALL_CLASSES = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam"]
RICH_OPTIONS = {
    "SGD": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, l1=0.01),
    "Adagrad": dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, l1=0.01, initial_accumulator_value=0.1),
    "RMSprop": dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1, l1=0.01),
    "Adam": dict(lr=0.01, amsgrad=True, weight_decay=0.1, l1=0.01),
    "AdamW": dict(lr=0.01, amsgrad=True, weight_decay=0.1, l1=0.01),
    "NAdam": dict(lr=0.01, weight_decay=0.1, l1=0.01),
}


def mlp(seed=0):
    gl.manual_seed(seed)
    return gl.Sequential(gl.Linear(7, 5), gl.Tanh(), gl.Linear(5, 3), gl.Tanh(), gl.Linear(3, 2))


def train(model, optimizer, steps, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 7)).astype(model[0].weight.dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        y = model(x)
        model.backward(y - 0.5)
        optimizer.step()


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("options", [dict(momentum=0.9), dict(momentum=0.8, weight_decay=0.01)])
def test_sgd_momentum_takes_one_compiled_pass_with_numpys_result(options, dtype, tol, kernel_calls, monkeypatch):
    """With the compiled kernels, SGD with momentum (no dampening, Nesterov or L1; one lr and
    decay for all) updates w and b in one pass (gradlearn.compiled 'sgd_momentum'); the first
    step (b = g) and the other cases take the NumPy formulas. Both give the same weights."""
    from gradlearn import compiled

    needs_compiled()
    results = []
    for available in (True, False):
        monkeypatch.setattr(compiled, "available", lambda: available)
        model = mlp().to(dtype)
        optimizer = gl.SGD(model.parameters(), lr=0.05, **options)
        train(model, optimizer, 4)
        results.append((optimizer.flat.data.copy(), optimizer.state["momentum_buffer"].copy()))
    assert kernel_calls.count("sgd_momentum") == 3  # steps 2 to 4
    assert_close(results[0][0], results[1][0], tol, "weights")
    assert_close(results[0][1], results[1][1], tol, "momentum buffer")


def test_sgd_follows_options_changed_between_its_compiled_steps(kernel_calls, monkeypatch):
    """The compiled step keeps what it worked out of the options until they change: a new
    lr or momentum, Nesterov switched on, or a frozen parameter takes effect at the next step,
    with the NumPy formulas' result."""
    from gradlearn import compiled

    needs_compiled()

    def changes(optimizer, model):
        yield lambda: optimizer.param_groups[0].update(lr=0.02)
        yield lambda: optimizer.param_groups[0].update(momentum=0.5)
        yield lambda: optimizer.param_groups[0].update(nesterov=True)  # the NumPy path for a step
        yield lambda: optimizer.param_groups[0].update(nesterov=False)
        yield lambda: setattr(model[2].weight, "requires_grad", False)  # frozen: the NumPy path
        yield lambda: setattr(model[2].weight, "requires_grad", True)

    results = []
    for available in (True, False):
        monkeypatch.setattr(compiled, "available", lambda: available)
        model = mlp()
        optimizer = gl.SGD(model.parameters(), lr=0.05, momentum=0.9)
        train(model, optimizer, 2)
        for change in changes(optimizer, model):
            change()
            train(model, optimizer, 2)
        results.append(optimizer.flat.data.copy())
    assert kernel_calls.count("sgd_momentum") == 1 + 2 + 2 + 2 + 2  # not while Nesterov or frozen
    assert_close(results[0], results[1], 1e-6, "weights")


def test_sgd_with_dampening_nesterov_or_per_group_rates_takes_numpy(kernel_calls):
    for options in (dict(momentum=0.9, dampening=0.1), dict(momentum=0.9, nesterov=True), dict(momentum=0.9, l1=1e-4)):
        model = mlp()
        train(model, gl.SGD(model.parameters(), lr=0.05, **options), 3)
    model = mlp()
    groups = [{"params": [model[0].weight], "lr": 0.1}, {"params": [p for p in model.parameters() if p is not model[0].weight]}]
    train(model, gl.SGD(groups, lr=0.05, momentum=0.9), 3)
    assert "sgd_momentum" not in kernel_calls


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_frozen_parameters_and_gaps_never_change(class_name):
    model = mlp()
    model[2].weight.requires_grad = False
    model[4].bias.requires_grad = False
    frozen = {id(model[2].weight): model[2].weight.data.copy(), id(model[4].bias): model[4].bias.data.copy()}
    others = {name: p.data.copy() for name, p in model.named_parameters() if id(p) not in frozen}
    optimizer = getattr(gl, class_name)(model, **RICH_OPTIONS[class_name])
    flat = optimizer.flat
    train(model, optimizer, 30)
    for p in model.parameters():
        if id(p) in frozen:
            np.testing.assert_array_equal(p.data, frozen[id(p)])
    for name, p in model.named_parameters():
        if name in others:
            assert np.max(np.abs(p.data - others[name])) > 1e-3, f"{name} did not train"
    gaps = flat.mask(model.parameters()) == 0
    assert gaps.sum() > 0, "the test model should have gaps between parameters"
    assert not flat.data[gaps].any() and not flat.grad[gaps].any()
    frozen_elements = flat.mask([model[2].weight, model[4].bias]) > 0
    for name, array in optimizer.state.items():
        assert not array[gaps].any(), f"state '{name}' is nonzero in the gaps"
        # frozen parameters get no gradient and no decay: their state keeps its initial value
        initial = RICH_OPTIONS[class_name].get("initial_accumulator_value", 0.0) if name == "sum" else 0.0
        np.testing.assert_array_equal(array[frozen_elements], np.float32(initial), err_msg=name)
        assert array.dtype == np.float32, f"state '{name}' is {array.dtype}"
    assert flat.data.dtype == np.float32


def test_freezing_and_unfreezing_between_steps_takes_effect():
    model = mlp()
    optimizer = gl.Adam(model, lr=0.01)
    train(model, optimizer, 3)
    layer = model[0].weight
    layer.requires_grad = False
    before = layer.data.copy()
    train(model, optimizer, 3)
    np.testing.assert_array_equal(layer.data, before)
    layer.requires_grad = True
    train(model, optimizer, 3)
    assert np.max(np.abs(layer.data - before)) > 1e-4


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_float32_steps_stay_float32_without_upcasts(class_name):
    model = mlp()
    model[0].bias.requires_grad = False
    groups = [{"params": [model[0].weight, model[2].weight, model[4].weight], "lr": 0.02},
              {"params": [model[0].bias, model[2].bias, model[4].bias], "weight_decay": 0.0}]
    options = dict(RICH_OPTIONS[class_name])
    optimizer = getattr(gl, class_name)(groups, **options)
    train(model, optimizer, 5)
    arrays = list(optimizer.state.values()) + list(optimizer._work_arrays.values())
    arrays += [value for _, value in optimizer._cache.values() if not isinstance(value, float)]
    assert arrays
    for array in arrays:
        assert array.dtype == np.float32
    assert all(np.isfinite(p.data).all() for p in model.parameters())


def test_step_has_no_loop_over_parameters():
    """Structure: step() and the helpers it calls iterate over param groups at most, never parameters."""
    helpers = ["_sync", "_per_group", "_option", "_lr", "_gradient", "_descend", "_moments", "_decoupled_decay"]
    functions = [getattr(cls, "step") for cls in (gl.SGD, gl.Adagrad, gl.RMSprop, gl.Adam, gl.NAdam)]
    functions += [getattr(gl.Adam, name) for name in helpers]
    checked = 0
    for function in functions:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.While, ast.AsyncFor)), f"{function.__qualname__} has a while loop"
            if isinstance(node, (ast.For, ast.comprehension)):
                source = ast.unparse(node.iter)
                assert "params" not in source and "slices" not in source, (
                    f"{function.__qualname__} iterates over {source}")
                if isinstance(node, ast.For):  # loops over the groups, or over a step's few scalar factors
                    assert source in ("groups", "factors", "arrays", "enumerate(groups)"), (
                        f"{function.__qualname__} loops over {source}")
        checked += 1
    assert checked == len(functions)


def test_per_element_options_are_cached_until_a_group_changes():
    model = mlp()
    groups = [{"params": [model[0].weight], "lr": 0.1}, {"params": [p for p in model.parameters()
                                                                  if p is not model[0].weight]}]
    optimizer = gl.SGD(groups, lr=0.01, momentum=0.9)
    train(model, optimizer, 2)
    lr_array = optimizer._cache["lr"][1]
    assert not isinstance(lr_array, float)
    flat = optimizer.flat
    np.testing.assert_allclose(lr_array[flat.slice_of(model[0].weight)], 0.1, rtol=1e-7)
    np.testing.assert_allclose(lr_array[flat.slice_of(model[2].bias)], 0.01, rtol=1e-7)
    train(model, optimizer, 2)
    assert optimizer._cache["lr"][1] is lr_array  # not rebuilt
    optimizer.param_groups[1]["lr"] = 0.1
    train(model, optimizer, 1)
    assert optimizer._cache["lr"][1] == 0.1  # both groups agree now: a scalar


# construction and validation --------------------------------------------------------------------
def test_accepts_module_parameters_flat_and_groups_and_packs_once():
    model = mlp()
    flat = model.flat_parameters()
    weight_ref = model[0].weight.data
    for params in (model, model.parameters(), list(model.parameters()), flat,
                   [{"params": [p for n, p in model.named_parameters() if n.endswith("weight")]},
                    {"params": [p for n, p in model.named_parameters() if n.endswith("bias")], "weight_decay": 0}]):
        optimizer = gl.SGD(params, lr=0.1, weight_decay=1e-4)
        assert optimizer.flat is flat
        assert model[0].weight.data is weight_ref
    assert optimizer.param_groups[1]["weight_decay"] == 0 and optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_invalid_options_raise_clear_errors():
    model = mlp()
    with pytest.raises(ValueError, match="invalid lr -0.1"):
        gl.SGD(model, lr=-0.1)
    with pytest.raises(ValueError, match="Nesterov momentum requires momentum > 0"):
        gl.SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="invalid beta2"):
        gl.Adam(model, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="invalid eps"):
        gl.RMSprop(model, eps=0)
    with pytest.raises(ValueError, match="appears in param groups 0 and 1"):
        gl.Adam([{"params": [model[0].weight]}, {"params": [model[0].weight]}])
    with pytest.raises(TypeError, match="expected Parameters"):
        gl.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        gl.SGD([], lr=0.1)
    optimizer = gl.SGD(model, lr=0.1)
    optimizer.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="param group 0: invalid lr -1.0"):
        optimizer.step()


def test_superseded_flat_vector_is_detected():
    model = mlp()
    optimizer = gl.SGD(model, lr=0.1)
    gl.pack_parameters(list(model.parameters())[:2])  # re-packs two parameters elsewhere
    with pytest.raises(RuntimeError, match="superseded"):
        optimizer.step()


def test_closure_is_evaluated_and_returned():
    model = mlp()
    optimizer = gl.SGD(model, lr=0.1)
    assert optimizer.step(lambda: 3.5) == 3.5


# checkpoints ----------------------------------------------------------------------------------------
CHECKPOINT_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, l1=1e-3)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.01)),
]


def grouped(model, **second):
    return [{"params": [p for n, p in model.named_parameters() if n.endswith("weight")]},
            {"params": [p for n, p in model.named_parameters() if n.endswith("bias")], "lr": 0.005, **second}]


@pytest.mark.parametrize("class_name,options", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_state_dict_round_trip_is_bit_identical(class_name, options):
    model_a = mlp()
    model_a[2].bias.requires_grad = False
    optimizer_a = getattr(gl, class_name)(grouped(model_a, weight_decay=0.0), **options)
    train(model_a, optimizer_a, 10, seed=1)
    state = optimizer_a.state_dict()
    # the non-array part survives JSON; arrays are plain numpy arrays
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    assert arrays and all(v.shape == (optimizer_a.flat.size,) for v in arrays.values())
    rest = json.loads(json.dumps({k: v for k, v in state.items() if k not in arrays}))
    model_b = model_a.copy()
    fresh = getattr(gl, class_name)(grouped(model_b, weight_decay=0.5), **dict(options, lr=0.9))
    fresh.load_state_dict({**rest, **arrays})
    assert fresh.param_groups[0]["lr"] == optimizer_a.param_groups[0]["lr"]
    assert fresh.param_groups[1]["weight_decay"] == 0.0
    train(model_a, optimizer_a, 10, seed=2)
    train(model_b, fresh, 10, seed=2)
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    for key in arrays:
        np.testing.assert_array_equal(optimizer_a.state[key], fresh.state[key], err_msg=key)
    # the state dict is a copy: stepping A again does not change it
    np.testing.assert_array_equal(arrays[next(iter(arrays))], state[next(iter(arrays))])


def test_bad_state_dicts_raise_clear_errors_and_change_nothing():
    model = mlp()
    optimizer = gl.Adam(model, lr=0.01, amsgrad=True)
    train(model, optimizer, 3)
    good = optimizer.state_dict()
    before = copy.deepcopy(optimizer.state_dict())
    size = optimizer.flat.size

    def broken(**changes):
        state = dict(good)
        for key, value in changes.items():
            if value is None:
                del state[key]
            else:
                state[key] = value
        return state

    cases = [
        (broken(exp_avg=np.zeros(size + 16)), ValueError,
         rf"'exp_avg' has shape \({size + 16},\), expected \({size},\)"),
        (broken(exp_avg_sq=None), KeyError, "missing state arrays \\['exp_avg_sq'\\]"),
        (broken(step=None), KeyError, "missing keys \\['step'\\]"),
        (broken(type="SGD"), TypeError, "is for a SGD optimizer, this is a Adam"),
        (broken(velocity=np.zeros(size)), KeyError, "unexpected keys \\['velocity'\\]"),
        (broken(param_shapes=[[5, 8]] + good["param_shapes"][1:]), ValueError,
         r"'param_shapes'\[0\] is \(5, 8\), this optimizer's parameter 0 has shape \(5, 7\)"),
        (broken(param_groups=good["param_groups"] * 2), ValueError, "has 2 groups, this optimizer has 1"),
        (broken(param_groups=[dict(good["param_groups"][0], lr=-1.0)]), ValueError, "invalid lr -1.0"),
        (broken(param_groups=[dict(good["param_groups"][0], params=[0, 1])]), ValueError, "holds parameters"),
        (broken(param_groups=[{k: v for k, v in good["param_groups"][0].items() if k != "betas"}]), KeyError,
         "missing \\['betas'\\]"),
        (broken(max_exp_avg_sq=np.zeros(size, dtype=np.int64)), TypeError, "'max_exp_avg_sq' has dtype int64"),
        ([1, 2], TypeError, "expected a dict"),
    ]
    for state, kind, message in cases:
        with pytest.raises(kind, match=message):
            optimizer.load_state_dict(state)
        after = optimizer.state_dict()
        assert after["param_groups"] == before["param_groups"] and after["step"] == before["step"]
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_array_equal(after[key], before[key])


def test_loading_into_a_different_architecture_fails():
    optimizer = gl.SGD(mlp(), lr=0.1, momentum=0.9)
    other = gl.SGD(gl.Sequential(gl.Linear(7, 4), gl.Tanh(), gl.Linear(4, 2)), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="'param_shapes' lists 6 parameters, this optimizer has 4"):
        other.load_state_dict(optimizer.state_dict())


# gradient clipping ------------------------------------------------------------------------------------
def test_clip_grad_norm_matches_torch_and_returns_the_norm_before():
    torch = pytest.importorskip("torch", reason="torch is the reference for clip_grad_norm_")
    rng = np.random.default_rng(3)
    model = mlp().double()
    optimizer = gl.SGD(model, lr=0.1)
    grads = [rng.standard_normal(p.shape) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad[...] = g
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    expected_norm = float(torch.nn.utils.clip_grad_norm_(tensors, 1.5))
    norm = gl.clip_grad_norm(optimizer, 1.5)
    assert math.isclose(norm, expected_norm, rel_tol=1e-12)
    assert norm > 1.5
    for p, t in zip(model.parameters(), tensors):
        assert_close(p.grad, t.grad.numpy(), 1e-12)
    clipped = math.sqrt(float(np.dot(optimizer.flat.grad, optimizer.flat.grad)))
    assert math.isclose(clipped, 1.5, rel_tol=1e-6)


def test_clip_grad_norm_leaves_small_gradients_and_accepts_every_form():
    model = mlp()
    flat = model.flat_parameters()
    flat.grad[flat.mask(model.parameters()) > 0] = 0.01
    expected = 0.01 * math.sqrt(sum(p.size for p in model.parameters()))
    before = flat.grad.copy()
    for params in (model, flat, model.parameters(), list(model.parameters())):
        norm = gl.clip_grad_norm(params, 100.0)
        assert math.isclose(norm, expected, rel_tol=1e-5)
        np.testing.assert_array_equal(flat.grad, before)
    # a subset of the parameters is clipped on its own, without re-packing (the flat vector stays current)
    subset = [model[0].weight, model[0].bias]
    norm = gl.clip_grad_norm(subset, 0.01)
    assert math.isclose(norm, 0.01 * math.sqrt(7 * 5 + 5), rel_tol=1e-5)
    assert not flat.superseded
    clipped = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in subset))
    assert math.isclose(clipped, 0.01, rel_tol=1e-4)
    np.testing.assert_array_equal(model[2].weight.grad, np.float32(0.01))
    # the infinity norm, and clipping by value
    flat.grad[flat.slice_of(model[4].bias)] = [-3.0, 2.0]
    assert gl.clip_grad_norm(model, 10.0, norm_type=math.inf) == 3.0
    gl.clip_grad_value(model, 0.5)
    assert flat.grad.max() == 0.5 and flat.grad.min() == -0.5
    with pytest.raises(ValueError, match="norm_type must be 2 or inf"):
        gl.clip_grad_norm(model, 1.0, norm_type=1)


def test_optimizers_train_a_small_network():
    """Sanity: every optimizer lowers the loss of a small regression."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 7)).astype(np.float32)
    target = np.tanh(x[:, :2] - x[:, 2:4])
    options = {"SGD": dict(lr=0.1, momentum=0.9), "Adagrad": dict(lr=0.1), "RMSprop": dict(lr=0.01),
               "Adam": dict(lr=0.01), "AdamW": dict(lr=0.01), "NAdam": dict(lr=0.01)}
    for class_name, kwargs in options.items():
        model = mlp()
        optimizer = getattr(gl, class_name)(model, **kwargs)
        losses = []
        for _ in range(100):
            optimizer.zero_grad()
            y = model(x)
            losses.append(float(((y - target) ** 2).mean()))
            model.backward(2 * (y - target) / y.size)
            optimizer.step()
        assert losses[-1] < 0.5 * losses[0], f"{class_name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
