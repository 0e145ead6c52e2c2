"""LeNet-5 (LeCun et al. 1998) for 28x28 images, with modern defaults (ReLU, max pooling).

    features:   Conv2d(in_channels, 6, 5, padding=2) - act - pool 2x2     28x28 -> 14x14
                Conv2d(6, 16, 5)                     - act - pool 2x2     14x14 -> 5x5
    flatten:    (N, 16, 5, 5) -> (N, 400)
    classifier: Linear(400, 120) - act - Linear(120, 84) - act - Linear(84, num_classes)

With one input channel and 10 classes: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706
parameters. The padding of 2 on 28x28 gives the original's 32x32 geometry (C1 sees a
32x32 field). The original's sub-sampling layers had a trainable coefficient and bias
and C3 a sparse connection table; this is the now-standard simplification.
"""

from __future__ import annotations

from collections import OrderedDict

from ..backend import resolve_generator
from ..modules.containers import Sequential
from ..modules.conv import Conv2d
from ..modules.linear import Linear
from ..modules.pooling import AvgPool2d, MaxPool2d
from ..modules.shape import Flatten
from .mlp import check_activation, make_activation

POOLS = {"max": MaxPool2d, "avg": AvgPool2d}


def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "relu", pool: str = "max", *, dtype=None, generator=None) -> Sequential:
    """LeNet-5 for (N, in_channels, 28, 28) inputs -> (N, num_classes) scores.

    ``activation``: 'relu' (default), 'tanh', 'sigmoid' or 'leaky_relu'; ``pool``: 'max'
    (default) or 'avg' (2x2, stride 2). State-dict keys: ``features.0.weight`` (C1),
    ``features.3.weight`` (C3), ``classifier.0/2/4.weight`` (F5, F6, output). Layers use
    their default (PyTorch's) initialisation drawn from ``generator``.
    """
    check_activation(activation, "lenet5")
    if pool not in POOLS:
        raise ValueError(f"lenet5: unknown pool {pool!r}; expected one of {sorted(POOLS)}")
    if int(num_classes) < 1 or int(in_channels) < 1:
        raise ValueError(f"lenet5: num_classes and in_channels must be positive, got {num_classes}, {in_channels}")
    rng = resolve_generator(generator)
    kw = dict(dtype=dtype, generator=rng)
    features = Sequential(
        Conv2d(int(in_channels), 6, 5, padding=2, **kw),
        make_activation(activation, "lenet5"),
        POOLS[pool](2, 2),
        Conv2d(6, 16, 5, **kw),
        make_activation(activation, "lenet5"),
        POOLS[pool](2, 2),
    )
    classifier = Sequential(
        Linear(16 * 5 * 5, 120, **kw),
        make_activation(activation, "lenet5"),
        Linear(120, 84, **kw),
        make_activation(activation, "lenet5"),
        Linear(84, int(num_classes), **kw),
    )
    return Sequential(OrderedDict(features=features, flatten=Flatten(), classifier=classifier))
