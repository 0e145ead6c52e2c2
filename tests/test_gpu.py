"""The GPU backend: the same modules, losses, optimizers and Trainer on a CUDA device through
CuPy give the NumPy backend's results, to float32 tolerance.

Every test here needs CuPy and a CUDA device and skips, saying which is missing, without
them (CI has neither). On a GPU machine: ``python -m pytest tests/test_gpu.py``.
"""

import numpy as np
import pytest

import gradlearn as gl
from gradlearn.backend import cuda_module, device_of

from .cases import all_cases
from .conftest import assert_close
from .test_registry import case_params

FLOAT32 = 2e-4  # relative to each array's largest value: float32 sums in another order


@pytest.fixture(scope="module")
def cupy():
    try:
        return cuda_module()
    except RuntimeError as exc:
        pytest.skip(f"no GPU to test on: {exc}")


def on_gpu(array):
    return device_of(array).startswith("cuda")


def host(array):
    return array.get() if on_gpu(array) else np.asarray(array)


def _forward_backward(case, module, inputs, move):
    """(outputs, input gradients, parameter gradients, state) after case.steps training steps,
    all as NumPy arrays; ``move`` puts an array where the module computes."""
    rng = np.random.default_rng(7)
    for _ in range(case.steps):
        module.zero_grad()
        outs = module(*[move(x) for x in inputs])
        outs = outs if isinstance(outs, tuple) else (outs,)
        if case.is_loss:
            grads = module.backward()
        else:
            grads = module.backward(*[move(rng.standard_normal(o.shape).astype(np.float32)) for o in outs])
        grads = grads if isinstance(grads, tuple) else (grads,)
    arrays = [o for o in outs] + [g for g in grads if g is not None] + [p.grad for p in module.parameters()]
    on_device = [on_gpu(a) for a in arrays if not np.isscalar(a)]
    state = {k: host(v) for k, v in module.state_dict().items()}
    return [host(o) for o in outs], [host(g) for g in grads if g is not None], [host(p.grad) for p in module.parameters()], state, on_device


def _strided(cupy, a):
    """``a`` on the GPU in another memory layout: channels-last for (N, C, H, W) (what a
    pixel-major convolution writes), column-major for other arrays of 2+ dimensions."""
    g = cupy.asarray(a)
    if g.ndim == 4:
        return cupy.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return cupy.asfortranarray(g) if g.ndim >= 2 and a.dtype.kind == "f" else g


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("case", case_params(all_cases()))
def test_every_registry_case_gives_the_cpu_results_on_the_gpu(cupy, case, layout):
    """Inputs and upstream gradients in C order, and in channels-last or column-major order."""
    inputs = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in case.inputs(np.random.default_rng(0))]
    on_cpu = case.make().to(np.float32)
    on_cuda = on_cpu.copy().to("cuda")  # the same weights, and the same dropout generator state
    expected = _forward_backward(case, on_cpu, inputs, lambda a: a)
    got = _forward_backward(case, on_cuda, inputs, cupy.asarray if layout == "contiguous" else lambda a: _strided(cupy, a))
    assert all(got[4]), f"{case.name}: some results are not CuPy arrays: the work did not run on the GPU"
    for what, a, b in zip(("output", "input gradient", "parameter gradient"), got[:3], expected[:3]):
        assert len(a) == len(b)
        for k, (x, y) in enumerate(zip(a, b)):
            assert x.dtype == y.dtype, f"{case.name} {what} {k}: dtype {x.dtype} on the GPU, {y.dtype} on the CPU"
            assert_close(x, y, FLOAT32, f"{case.name} {what} {k}")
    assert got[3].keys() == expected[3].keys()
    for name in expected[3]:
        assert_close(got[3][name], expected[3][name], FLOAT32, f"{case.name} state {name}")


def test_max_pool_routes_ties_to_the_first_maximum_as_on_the_cpu(cupy):
    """The GPU's tiling max-pool kernel picks each window's first maximum in row-major
    order, like the CPU path: with many ties the gradients are identical."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (4, 3, 8, 8)).astype(np.float32)  # windows of 0s and 1s: ties everywhere
    g = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    cpu, gpu = gl.MaxPool2d(2), gl.MaxPool2d(2)
    np.testing.assert_array_equal(host(gpu(cupy.asarray(x))), cpu(x))
    np.testing.assert_array_equal(host(gpu.backward(cupy.asarray(g))), cpu.backward(g))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32, np.uint8])
def test_cross_entropy_is_one_fused_pass_on_the_gpu_with_the_cpu_results(cupy, reduction, index_dtype):
    """Any integer indices, either reduction, logits in column-major order; a NaN logit makes
    its row's loss and gradient NaN and leaves the other rows as they were."""
    rng = np.random.default_rng(0)
    x = (5 * rng.standard_normal((33, 7))).astype(np.float32)
    y = rng.integers(0, 7, 33).astype(index_dtype)
    cpu, gpu = gl.CrossEntropyLoss(reduction), gl.CrossEntropyLoss(reduction)
    value = gpu(cupy.asfortranarray(cupy.asarray(x)), cupy.asarray(y))
    assert on_gpu(value) and value.dtype == np.float32
    assert_close(host(value), cpu(x, y.astype(np.int64)), FLOAT32, "loss")
    assert_close(host(gpu.backward()), cpu.backward(), FLOAT32, "gradient")
    x[4, 2] = np.nan
    assert np.isnan(host(gpu(cupy.asarray(x), cupy.asarray(y))))
    grad = host(gpu.backward())
    assert np.isnan(grad[4]).all() and np.isfinite(np.delete(grad, 4, axis=0)).all()


@pytest.mark.parametrize("bad", [-1, 7])
def test_cross_entropy_on_the_gpu_names_a_class_index_out_of_range(cupy, bad):
    y = np.array([0, 3, bad, 6, bad])
    x = np.zeros((5, 7), np.float32)
    with pytest.raises(ValueError, match=rf"class index {bad} is out of range \[0, 7\)"):
        gl.CrossEntropyLoss()(cupy.asarray(x), cupy.asarray(y))


def test_channel_moments_sums_any_layout_in_float64(cupy):
    """Many blocks per channel, and arrays in C order, channels-last and sliced."""
    from gradlearn.gpu_kernels import channel_moments

    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 5, 20, 24)).astype(np.float32)
    b = (3 + rng.standard_normal(a.shape)).astype(np.float32)
    shift = rng.standard_normal(5).astype(np.float32)
    expected_sum = a.astype(np.float64).sum(axis=(0, 2, 3))
    expected_dot = (a.astype(np.float64) * (b - shift[None, :, None, None].astype(np.float64))).sum(axis=(0, 2, 3))
    for move in (cupy.asarray, lambda x: _strided(cupy, x)):
        got = channel_moments(move(a), move(b), cupy.asarray(shift)).get()
        np.testing.assert_allclose(got[0], expected_sum, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got[1], expected_dot, rtol=1e-12, atol=1e-9)
    sliced = cupy.asarray(a)[::2, 1:4, :, ::3]  # every stride differs from a contiguous array's
    got = channel_moments(sliced, sliced).get()
    part = a[::2, 1:4, :, ::3].astype(np.float64)
    np.testing.assert_allclose(got[0], part.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got[1], (part * part).sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_batch_norm_of_a_large_offset_batch_matches_the_cpu(cupy, layout):
    """A ResNet-sized batch whose channels sit far from 0 (mean 50, deviation 1): the GPU's
    one-pass variance in float64 keeps the CPU's two-pass result."""
    rng = np.random.default_rng(0)
    x = (50 + rng.standard_normal((32, 16, 16, 16))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    cpu = gl.BatchNorm2d(16)
    cpu.weight.data[:] = rng.uniform(0.5, 1.5, 16)
    gpu = cpu.copy().to("cuda")
    move = cupy.asarray if layout == "contiguous" else lambda a: _strided(cupy, a)
    for _ in range(2):
        assert_close(host(gpu(move(x))), cpu(x), FLOAT32, "output")
        assert_close(host(gpu.backward(move(dy))), cpu.backward(dy), FLOAT32, "input gradient")
    for name, value in cpu.state_dict().items():
        assert_close(host(gpu.state_dict()[name]), value, FLOAT32, name)
    assert_close(host(gpu.weight.grad), cpu.weight.grad, FLOAT32, "weight gradient")
    assert_close(host(gpu.bias.grad), cpu.bias.grad, FLOAT32, "bias gradient")


def test_moving_a_packed_model_moves_its_two_flat_vectors(cupy):
    net = gl.Sequential(gl.Linear(3, 4), gl.ReLU(), gl.Linear(4, 2))
    flat = net.flat_parameters()
    before = flat.data.copy()
    net.to("cuda")
    assert net.flat_parameters() is flat
    assert on_gpu(flat.data) and on_gpu(flat.grad)
    for p in net.parameters():
        assert p.data.base is flat.data or cupy.shares_memory(p.data, flat.data)
    net.to("cpu")
    assert type(flat.data) is np.ndarray
    np.testing.assert_array_equal(flat.data, before)
    assert np.shares_memory(net[0].weight.data, flat.data)


OPTIMIZERS = [
    lambda p: gl.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),  # one fused kernel on the GPU
    lambda p: gl.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: gl.SGD(p, lr=0.1, l1=1e-3),
    lambda p: gl.Adagrad(p, lr=0.1),
    lambda p: gl.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    lambda p: gl.Adam(p, lr=0.01, amsgrad=True),
    lambda p: gl.AdamW(p, lr=0.01),
    lambda p: gl.NAdam(p, lr=0.01),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS, ids=["sgd-momentum", "sgd-nesterov", "sgd-l1", "adagrad", "rmsprop", "adam", "adamw", "nadam"])
def test_optimizers_take_the_same_steps_on_the_gpu(cupy, make_optimizer):
    gl.manual_seed(0)
    cpu_net = gl.Sequential(gl.Linear(5, 8), gl.Tanh(), gl.Linear(8, 3))
    gpu_net = cpu_net.copy().to("cuda")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    for net, move in ((cpu_net, np.asarray), (gpu_net, cupy.asarray)):
        optimizer = make_optimizer(net.parameters())
        loss = gl.CrossEntropyLoss()
        for _ in range(5):
            optimizer.zero_grad()
            loss(net(move(x)), move(y))
            net.backward(loss.backward())
            optimizer.step()
    assert on_gpu(gpu_net[0].weight.data)
    for p, q in zip(gpu_net.parameters(), cpu_net.parameters()):
        assert_close(host(p.data), q.data, FLOAT32, "parameters after 5 steps")


def _fit(device, x, y):
    gl.manual_seed(0)
    model = gl.Sequential(gl.Conv2d(1, 4, 3, padding=1), gl.BatchNorm2d(4), gl.ReLU(), gl.MaxPool2d(2), gl.Flatten(), gl.Dropout(0.2), gl.Linear(64, 3))
    model.to(device)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), gl.SGD(model.parameters(), lr=0.05, momentum=0.9), batch_size=16, seed=0)
    history = trainer.fit((x, y), epochs=2, validation_data=(x[:32], y[:32]), verbose=0)
    return model, trainer, history


def test_a_trainer_fit_on_the_gpu_follows_the_cpu_one(cupy, tmp_path):
    """Nothing changes but ``model.to('cuda')``: the Trainer moves each batch to the model's
    device, and a checkpoint saved from the GPU loads into a CPU model."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    cpu_model, _, cpu_history = _fit("cpu", x, y)
    gpu_model, gpu_trainer, gpu_history = _fit("cuda", x, y)
    assert on_gpu(gpu_model[0].weight.data)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(gpu_history[key], cpu_history[key], rtol=1e-3, atol=1e-4, err_msg=key)
    predictions = gpu_trainer.predict(x[:10])
    assert on_gpu(predictions)
    gl.save_weights(tmp_path / "gpu.safetensors", gpu_model)
    reloaded = cpu_model.copy()
    gl.load_weights(tmp_path / "gpu.safetensors", reloaded)
    for p, q in zip(reloaded.parameters(), gpu_model.parameters()):
        assert type(p.data) is np.ndarray
        np.testing.assert_array_equal(p.data, host(q.data))
