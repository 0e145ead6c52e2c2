"""The benchmark workloads W1-W5, built the same way in gradlearn and (by hand) in PyTorch.

Shared by ``throughput.py``, ``memory.py`` and the tests; nothing here times anything.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import gradlearn as gl

# name -> (description, input shape of one sample, batch size, number of classes)
WORKLOADS = {
    "W1": ("MLP 784-512-512-10 ReLU", (784,), 128, 10),
    "W2": ("LeNet-5 1x28x28", (1, 28, 28), 128, 10),
    "W3": ("4-conv CNN 3x32x32", (3, 32, 32), 64, 10),
    "W4": ("tiny MLP 2-64-64-2 tanh", (2,), 32, 2),
    "W5": ("ResNet-20 3x32x32", (3, 32, 32), 64, 10),
}

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def gl_model(name, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    kw = dict(generator=rng)
    if name == "W1":
        return gl.Sequential(gl.Linear(784, 512, **kw), gl.ReLU(), gl.Linear(512, 512, **kw), gl.ReLU(), gl.Linear(512, 10, **kw))
    if name == "W2":
        return gl.models.lenet5(generator=rng)
    if name == "W3":
        return gl.Sequential(
            gl.Conv2d(3, 32, 3, padding=1, **kw), gl.ReLU(),
            gl.Conv2d(32, 32, 3, padding=1, **kw), gl.ReLU(), gl.MaxPool2d(2),
            gl.Conv2d(32, 64, 3, padding=1, **kw), gl.ReLU(),
            gl.Conv2d(64, 64, 3, padding=1, **kw), gl.ReLU(), gl.MaxPool2d(2),
            gl.Flatten(), gl.Linear(4096, 256, **kw), gl.ReLU(), gl.Linear(256, 10, **kw),
        )
    if name == "W4":
        return gl.Sequential(gl.Linear(2, 64, **kw), gl.Tanh(), gl.Linear(64, 64, **kw), gl.Tanh(), gl.Linear(64, 2, **kw))
    if name == "W5":
        return gl.models.resnet20(generator=rng)
    raise KeyError(name)


def torch_model(name):
    import torch.nn as nn

    if name == "W1":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    if name == "W2":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )
    if name == "W3":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10),
        )
    if name == "W4":
        return nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    if name == "W5":
        return _torch_resnet20()
    raise KeyError(name)


def _torch_resnet20():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ShortcutA(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.p = (cout - cin) // 2
            self.q = cout - cin - self.p

        def forward(self, x):
            return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.p, self.q))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = ShortcutA(cin, cout) if (stride != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.short(x))

    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(Block(cin, cout, stride if b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def batch(name, seed=0, batch_size=None):
    """(x, y): a float32 standard-normal batch (the workload's size unless given) and integer labels."""
    _, shape, n, classes = WORKLOADS[name]
    n = batch_size or n
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + shape, dtype=np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def gl_trainer(name, device="cpu", batch_size=None):
    """A zero-argument function running one gradlearn training step, and the model
    (on ``device``: the model moved with ``.to``, the batch with ``backend.to_device``)."""
    model = gl_model(name).to(device)
    model.skip_input_grad()  # as Trainer.fit does, and as torch does for a data input
    loss = gl.CrossEntropyLoss()
    opt = gl.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = (gl.backend.to_device(a, device) for a in batch(name, batch_size=batch_size))

    def step():
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()

    return step, model


def torch_trainer(name, device="cpu", batch_size=None):
    import torch

    model = torch_model(name).to(device)
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = batch(name, batch_size=batch_size)
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        opt.zero_grad(set_to_none=False)
        loss(model(x), y).backward()
        opt.step()

    return step, model


def numpy_mlp_trainer(batch_size=None):
    """W1's training step written directly in NumPy, without gradlearn: the yardstick issue 6
    set W1's goal by ("a careful NumPy implementation already trains an MLP faster than
    PyTorch"). One flat vector each for the weights, the gradients and the momentum, PyTorch's
    initialisation, the same batch and the same step: zero the gradients, forward (products,
    biases, ReLUs in place), softmax cross-entropy, backward (each weight gradient added by
    one product, ReLU's mask in place), then SGD with momentum 0.9 on the flat vectors.
    Returns (step, parameters): ``parameters`` is [(weight (in, out), bias, their grads)]
    per layer, views into the flat vectors."""
    sizes = (784, 512, 512, 10)
    rng = np.random.default_rng(0)
    shapes = [((i, o), (o,)) for i, o in zip(sizes[:-1], sizes[1:])]
    total = sum(i * o + o for (i, o), _ in shapes)
    value, grad, momentum = (np.zeros(total, np.float32) for _ in range(3))
    layers, start = [], 0
    for weight_shape, bias_shape in shapes:
        bound = 1 / np.sqrt(weight_shape[0])
        views = []
        for shape in (weight_shape, bias_shape):
            size = int(np.prod(shape))
            views.append((value[start:start + size].reshape(shape), grad[start:start + size].reshape(shape)))
            views[-1][0][...] = rng.uniform(-bound, bound, shape)
            start += size
        (w, gw), (b, gb) = views
        layers.append((w, b, gw, gb))
    x, y = batch("W1", batch_size=batch_size)
    rows = np.arange(len(x))
    step_size = np.empty_like(value)

    def step():
        grad.fill(0)
        inputs, h = [], x
        for i, (w, b, _, _) in enumerate(layers):
            inputs.append(h)
            h = h @ w
            h += b
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        h -= h.max(axis=1, keepdims=True)  # softmax, then its gradient with the target's -1
        np.exp(h, out=h)
        h /= h.sum(axis=1, keepdims=True)
        h[rows, y] -= 1
        h /= len(x)
        d = h
        for i in reversed(range(len(layers))):
            w, _, gw, gb = layers[i]
            gw += inputs[i].T @ d
            gb += d.sum(axis=0)
            if i:
                d = d @ w.T
                d *= inputs[i] > 0
        np.multiply(momentum, 0.9, out=momentum)
        np.add(momentum, grad, out=momentum)
        np.multiply(momentum, 0.01, out=step_size)
        np.subtract(value, step_size, out=value)

    return step, layers


def training_mult_adds(name):
    """Multiply-adds of one sample's training step: the forward's, and each layer's two
    backward products (dE/dW and dE/dx, as many as its forward), except dE/dx of the first
    layer that multiplies (no parameter lies before it), which neither side computes
    (``skip_input_grad``; a PyTorch input does not require grad). For the MLP that layer is
    60% of the forward: counting its dE/dx too would overstate the MLP's rate by 1.25x."""
    _, shape, _, _ = WORKLOADS[name]
    rows = gl.summary(gl_model(name), shape, batch_size=1, print_table=False).rows
    products = [r.mult_adds for r in rows if r.is_leaf and r.mult_adds > 0]
    return 3 * sum(products) - (products[0] if products else 0)


def openblas_info():
    """A line naming the OpenBLAS kernel NumPy runs (threadpoolctl when installed)."""
    env = ", ".join(f"{v}={os.environ[v]}" for v in OPENBLAS_VARS if v in os.environ) or "OpenBLAS variables unset"
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
        desc = "; ".join(f"{i.get('architecture')} kernel, {i.get('num_threads')} threads, {i.get('version')}" for i in infos)
        return f"OpenBLAS: {desc or 'not found'} ({env})"
    except ImportError:
        return f"OpenBLAS kernel: unknown (threadpoolctl not installed) ({env})"


def rerun_without_openblas_vars(script, argv):
    """Re-run ``script`` with the OpenBLAS variables removed from the environment (that
    child process only). Returns its exit status; prints nothing itself."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    print("\n=== again with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset ===", flush=True)
    return subprocess.call([sys.executable, script] + argv, env=env)
