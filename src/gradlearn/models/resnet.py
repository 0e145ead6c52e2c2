"""Residual networks (He et al. 2016): ResNet-18/34 for ImageNet, ResNet-20/32/56 for CIFAR-10.

A basic block computes

    y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

with 3x3 convolutions (no bias), the first of stride ``s``; ``shortcut`` is the identity
when shapes agree, else ``downsample``. Backward, with g = dE/dy masked by the final ReLU:

    dE/dx = body.backward(g) + shortcut.backward(g)     (identity: + g)

ImageNet (torchvision's layout and key names: ``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0/1``, ``fc``):

    conv1 7x7/2 (64) - bn1 - relu - maxpool 3x3/2 - layer1..layer4 (64, 128, 256, 512
    channels; the first block of layers 2-4 has stride 2 and a 1x1/2 convolution + batch
    norm as ``downsample``) - avgpool (global) - flatten - fc(512, num_classes)

    ResNet-18: [2, 2, 2, 2] blocks, 11,689,512 parameters, ~1.8 G multiply-adds at 224x224
    ResNet-34: [3, 4, 6, 3] blocks, 21,797,672 parameters, ~3.6 G

CIFAR-10 (the paper's section 4.2), for 3x32x32 inputs:

    conv1 3x3 (16) - bn1 - relu - layer1..layer3 (n blocks each, 16, 32, 64 channels, maps
    32, 16, 8) - avgpool (global) - flatten - fc(64, num_classes);  6n + 2 weighted layers

    option A shortcuts (default, the paper's CIFAR choice): the identity with stride-2
    subsampling and zero channel padding (:class:`ShortcutA`, no parameters);
    ResNet-20 (n=3) 269,722, ResNet-32 (n=5) 464,154, ResNet-56 (n=9) 853,018 parameters.
    option B (``shortcut='B'``): 1x1 convolution + batch norm where the shape changes,
    as in the ImageNet nets; ResNet-20 then has 272,474 parameters.

Initialisation as torchvision's: convolutions Kaiming-normal (fan_out, ReLU gain), batch
norm weight 1 and bias 0, ``fc`` Linear's default.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import init, parallel
from ..backend import empty_like_layout, resolve_generator
from ..modules.activation import ReLU
from ..modules.base import Module, add_error_context
from ..modules.containers import Sequential
from ..modules.conv import Conv2d
from ..modules.linear import Linear
from ..modules.normalization import BatchNorm2d
from ..modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from ..modules.shape import Flatten

SHORTCUTS = ("A", "B")


class ShortcutA(Module):
    """The option-A shortcut: subsample by ``stride`` and pad channels with zeros.

    Forward, x (N, C_in, H, W) -> y (N, C_out, ceil(H/s), ceil(W/s)):

        y[:, p + c, i, j] = x[:, c, s*i, s*j]  for c < C_in,  0 on the other channels,

    with p = (C_out - C_in) // 2 zero channels before the input's and the rest after (the
    layout of the commonly used CIFAR ResNet code, so its checkpoints carry over).
    Backward: dE/dx[:, c, s*i, s*j] = dE/dy[:, p + c, i, j], 0 at the skipped positions.
    No parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if int(out_channels) < int(in_channels) or int(stride) < 1:
            raise ValueError(
                f"ShortcutA: needs out_channels >= in_channels and stride >= 1, got {in_channels}, {out_channels}, {stride}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.stride = int(stride)
        self.pad_before = (self.out_channels - self.in_channels) // 2
        self.in_shape = None

    def forward(self, x):
        self.check_float(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise self.error("forward", f"expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        s, p = self.stride, self.pad_before
        sub = x[:, :, ::s, ::s]
        y = empty_like_layout(x, (x.shape[0], self.out_channels) + sub.shape[2:], fill=0)
        y[:, p : p + self.in_channels] = sub
        self.in_shape = x.shape
        self.out_shape = y.shape
        return y

    def backward(self, grad_output):
        self.check_grad(grad_output, None if self.in_shape is None else self.out_shape)
        s, p = self.stride, self.pad_before
        if s == 1:
            return grad_output[:, p : p + self.in_channels].copy()
        grad_input = empty_like_layout(grad_output, self.in_shape, fill=0)
        grad_input[:, :, ::s, ::s] = grad_output[:, p : p + self.in_channels]
        return grad_input

    def extra_repr(self):
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


class BasicBlock(Module):
    """Two 3x3 convolutions with a residual connection (see the module docstring for the maths).

    Children, in torchvision's order and names: ``conv1``, ``bn1``, ``relu``, ``conv2``,
    ``bn2``, ``downsample`` (None, a ShortcutA or a Sequential(conv 1x1, bn)), then
    ``relu_out`` (the final ReLU: torchvision reuses ``relu``; here each ReLU keeps its own
    output for backward, and ReLUs have no parameters, so the state-dict keys agree).
    """

    expansion = 1
    _body = ("conv1", "bn1", "relu", "conv2", "bn2")

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: Module | None = None, *, dtype=None, generator=None):
        super().__init__()
        rng = resolve_generator(generator)
        self.conv1 = Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False, dtype=dtype, generator=rng)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.relu = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False, dtype=dtype, generator=rng)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.downsample = downsample
        self.relu_out = ReLU()
        self.in_planes, self.planes, self.stride = int(in_planes), int(planes), int(stride)

    def forward(self, x):
        name = "conv1"
        try:
            out = x
            for name in self._body:
                out = getattr(self, name)(out)
            name = "downsample"
            shortcut = x if self.downsample is None else self.downsample(x)
        except Exception as exc:
            add_error_context(exc, self, name)
            raise
        if shortcut.shape != out.shape:
            raise self.error(
                "forward",
                f"body output {tuple(out.shape)} and shortcut output {tuple(shortcut.shape)} differ "
                f"(a block that changes the shape needs a downsample)",
            )
        return self.relu_out(parallel.add(out, shortcut))

    def backward(self, grad_output):
        name = "relu_out"
        try:
            grad = self.relu_out.backward(grad_output)
            grad_body = grad
            for name in reversed(self._body):
                grad_body = getattr(self, name).backward(grad_body)
            name = "downsample"
            grad_shortcut = grad if self.downsample is None else self.downsample.backward(grad)
        except Exception as exc:
            add_error_context(exc, self, name)
            raise
        return parallel.add(grad_body, grad_shortcut)

    def extra_repr(self):
        return f"{self.in_planes} -> {self.planes}, stride={self.stride}"


def _init_resnet(model, rng):
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=rng)
        elif isinstance(m, BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)
    return model


def _layer(in_planes, planes, blocks, stride, shortcut, dtype, rng):
    downsample = None
    if stride != 1 or in_planes != planes:
        if shortcut == "A":
            downsample = ShortcutA(in_planes, planes, stride)
        else:
            downsample = Sequential(
                Conv2d(in_planes, planes, 1, stride=stride, bias=False, dtype=dtype, generator=rng),
                BatchNorm2d(planes, dtype=dtype),
            )
    layers = [BasicBlock(in_planes, planes, stride, downsample, dtype=dtype, generator=rng)]
    layers += [BasicBlock(planes, planes, dtype=dtype, generator=rng) for _ in range(1, blocks)]
    return Sequential(*layers)


def _check_classes(num_classes, where):
    if int(num_classes) < 1:
        raise ValueError(f"{where}: num_classes must be positive, got {num_classes}")
    return int(num_classes)


def resnet_imagenet(blocks, num_classes: int = 1000, *, dtype=None, generator=None, name: str = "resnet") -> Sequential:
    """ImageNet ResNet with basic blocks, ``blocks`` per stage (4 stages): (N, 3, H, W) -> (N, num_classes)."""
    num_classes = _check_classes(num_classes, name)
    rng = resolve_generator(generator)
    stages, in_planes = OrderedDict(), 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        stages[f"layer{i + 1}"] = _layer(in_planes, planes, n, 1 if i == 0 else 2, "B", dtype, rng)
        in_planes = planes
    model = Sequential(
        OrderedDict(
            conv1=Conv2d(3, 64, 7, stride=2, padding=3, bias=False, dtype=dtype, generator=rng),
            bn1=BatchNorm2d(64, dtype=dtype),
            relu=ReLU(),
            maxpool=MaxPool2d(3, 2, 1),
            **stages,
            avgpool=AdaptiveAvgPool2d((1, 1)),
            flatten=Flatten(),
            fc=Linear(512, num_classes, dtype=dtype, generator=rng),
        )
    )
    return _init_resnet(model, rng)


def resnet_cifar(n: int, num_classes: int = 10, shortcut: str = "A", *, dtype=None, generator=None, name: str = "resnet") -> Sequential:
    """CIFAR ResNet of depth 6n + 2 for (N, 3, 32, 32) inputs -> (N, num_classes) scores."""
    num_classes = _check_classes(num_classes, name)
    if shortcut not in SHORTCUTS:
        raise ValueError(f"{name}: unknown shortcut {shortcut!r}; expected one of {SHORTCUTS}")
    rng = resolve_generator(generator)
    model = Sequential(
        OrderedDict(
            conv1=Conv2d(3, 16, 3, padding=1, bias=False, dtype=dtype, generator=rng),
            bn1=BatchNorm2d(16, dtype=dtype),
            relu=ReLU(),
            layer1=_layer(16, 16, n, 1, shortcut, dtype, rng),
            layer2=_layer(16, 32, n, 2, shortcut, dtype, rng),
            layer3=_layer(32, 64, n, 2, shortcut, dtype, rng),
            avgpool=AdaptiveAvgPool2d((1, 1)),
            flatten=Flatten(),
            fc=Linear(64, num_classes, dtype=dtype, generator=rng),
        )
    )
    return _init_resnet(model, rng)


def resnet18(num_classes: int = 1000, **kw) -> Sequential:
    """ResNet-18 (torchvision's): 11,689,512 parameters with 1000 classes."""
    return resnet_imagenet((2, 2, 2, 2), num_classes, name="resnet18", **kw)


def resnet34(num_classes: int = 1000, **kw) -> Sequential:
    """ResNet-34 (torchvision's): 21,797,672 parameters with 1000 classes."""
    return resnet_imagenet((3, 4, 6, 3), num_classes, name="resnet34", **kw)


def resnet20(num_classes: int = 10, shortcut: str = "A", **kw) -> Sequential:
    """CIFAR ResNet-20 (n=3): 269,722 parameters with option A shortcuts, 272,474 with B."""
    return resnet_cifar(3, num_classes, shortcut, name="resnet20", **kw)


def resnet32(num_classes: int = 10, shortcut: str = "A", **kw) -> Sequential:
    """CIFAR ResNet-32 (n=5): 464,154 parameters with option A shortcuts."""
    return resnet_cifar(5, num_classes, shortcut, name="resnet32", **kw)


def resnet56(num_classes: int = 10, shortcut: str = "A", **kw) -> Sequential:
    """CIFAR ResNet-56 (n=9): 853,018 parameters with option A shortcuts."""
    return resnet_cifar(9, num_classes, shortcut, name="resnet56", **kw)
