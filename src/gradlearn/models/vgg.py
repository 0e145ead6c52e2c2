"""VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A, B, D, E) in torchvision's layout.

    features:   for each entry of the configuration, Conv2d(c_in, c, 3, pad 1) [- BatchNorm2d(c)]
                - ReLU, or 'M' = MaxPool2d(2, 2)                       224 -> 7 after five pools
    avgpool:    AdaptiveAvgPool2d((7, 7))
    flatten:    (N, 512, 7, 7) -> (N, 25088)
    classifier: Linear(25088, 4096) - ReLU - Dropout - Linear(4096, 4096) - ReLU - Dropout
                - Linear(4096, num_classes)

Parameters with 1000 classes: VGG-11 132,863,336, VGG-13 133,047,848, VGG-16 138,357,544,
VGG-19 143,667,240; VGG-16 takes about 15.5 G multiply-adds at 224x224. Keys are
torchvision's (``features.0.weight``, ``classifier.6.bias``, with batch norm
``features.1.running_mean`` ...). Initialisation as torchvision's: convolution weights
Kaiming-normal (fan_out, ReLU gain), their biases 0; batch norm weight 1, bias 0; linear
weights N(0, 0.01²), biases 0.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import init
from ..backend import resolve_generator
from ..modules.activation import ReLU
from ..modules.containers import Sequential
from ..modules.conv import Conv2d
from ..modules.dropout import Dropout
from ..modules.linear import Linear
from ..modules.normalization import BatchNorm2d
from ..modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from ..modules.shape import Flatten

#: Channels of each 3x3 convolution, 'M' for a 2x2 max pooling (the paper's table 1).
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg(depth: int, num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, *, dtype=None, generator=None) -> Sequential:
    """VGG of ``depth`` 11, 13, 16 or 19: (N, 3, H, W) -> (N, num_classes) scores."""
    if depth not in CONFIGS:
        raise ValueError(f"vgg: unknown depth {depth!r}; expected one of {sorted(CONFIGS)}")
    if int(num_classes) < 1:
        raise ValueError(f"vgg: num_classes must be positive, got {num_classes}")
    rng = resolve_generator(generator)
    kw = dict(dtype=dtype, generator=rng)
    layers, channels = [], 3
    for entry in CONFIGS[depth]:
        if entry == "M":
            layers.append(MaxPool2d(2, 2))
            continue
        layers.append(Conv2d(channels, entry, 3, padding=1, **kw))
        if batch_norm:
            layers.append(BatchNorm2d(entry, dtype=dtype))
        layers.append(ReLU())
        channels = entry
    classifier = Sequential(
        Linear(512 * 7 * 7, 4096, **kw),
        ReLU(),
        Dropout(dropout),
        Linear(4096, 4096, **kw),
        ReLU(),
        Dropout(dropout),
        Linear(4096, int(num_classes), **kw),
    )
    model = Sequential(
        OrderedDict(features=Sequential(*layers), avgpool=AdaptiveAvgPool2d((7, 7)), flatten=Flatten(), classifier=classifier)
    )
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=rng)
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)
        elif isinstance(m, Linear):
            init.normal_(m.weight, 0.0, 0.01, generator=rng)
            init.zeros_(m.bias)
    return model


def vgg11(num_classes: int = 1000, batch_norm: bool = False, **kw) -> Sequential:
    """VGG-11 (configuration A): 132,863,336 parameters with 1000 classes."""
    return vgg(11, num_classes, batch_norm, **kw)


def vgg13(num_classes: int = 1000, batch_norm: bool = False, **kw) -> Sequential:
    """VGG-13 (configuration B): 133,047,848 parameters with 1000 classes."""
    return vgg(13, num_classes, batch_norm, **kw)


def vgg16(num_classes: int = 1000, batch_norm: bool = False, **kw) -> Sequential:
    """VGG-16 (configuration D): 138,357,544 parameters with 1000 classes."""
    return vgg(16, num_classes, batch_norm, **kw)


def vgg19(num_classes: int = 1000, batch_norm: bool = False, **kw) -> Sequential:
    """VGG-19 (configuration E): 143,667,240 parameters with 1000 classes."""
    return vgg(19, num_classes, batch_norm, **kw)
