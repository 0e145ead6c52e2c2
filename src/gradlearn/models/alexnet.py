"""AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower layout, for 3x224x224 images.

    features:   Conv2d(3, 64, 11, stride 4, pad 2) - ReLU - MaxPool(3, 2)      224 -> 55 -> 27
                Conv2d(64, 192, 5, pad 2)          - ReLU - MaxPool(3, 2)       27 -> 13
                Conv2d(192, 384, 3, pad 1) - ReLU
                Conv2d(384, 256, 3, pad 1) - ReLU
                Conv2d(256, 256, 3, pad 1) - ReLU  - MaxPool(3, 2)              13 -> 6
    avgpool:    AdaptiveAvgPool2d((6, 6))   (any input of at least 63x63 works)
    flatten:    (N, 256, 6, 6) -> (N, 9216)
    classifier: Dropout - Linear(9216, 4096) - ReLU - Dropout - Linear(4096, 4096) - ReLU
                - Linear(4096, num_classes)

61,100,840 parameters with 1000 classes; about 0.71 G multiply-adds at 224x224. The
state-dict keys are torchvision's (``features.0.weight`` ... ``classifier.6.bias``), so its
weights load unchanged. Layers use their default initialisation, as torchvision's.
"""

from __future__ import annotations

from collections import OrderedDict

from ..backend import resolve_generator
from ..modules.activation import ReLU
from ..modules.containers import Sequential
from ..modules.conv import Conv2d
from ..modules.dropout import Dropout
from ..modules.linear import Linear
from ..modules.pooling import AdaptiveAvgPool2d, MaxPool2d
from ..modules.shape import Flatten


def alexnet(num_classes: int = 1000, dropout: float = 0.5, *, dtype=None, generator=None) -> Sequential:
    """AlexNet: (N, 3, H, W) -> (N, num_classes) scores; see the module docstring for the layout."""
    if int(num_classes) < 1:
        raise ValueError(f"alexnet: num_classes must be positive, got {num_classes}")
    rng = resolve_generator(generator)
    kw = dict(dtype=dtype, generator=rng)
    features = Sequential(
        Conv2d(3, 64, 11, stride=4, padding=2, **kw),
        ReLU(),
        MaxPool2d(3, 2),
        Conv2d(64, 192, 5, padding=2, **kw),
        ReLU(),
        MaxPool2d(3, 2),
        Conv2d(192, 384, 3, padding=1, **kw),
        ReLU(),
        Conv2d(384, 256, 3, padding=1, **kw),
        ReLU(),
        Conv2d(256, 256, 3, padding=1, **kw),
        ReLU(),
        MaxPool2d(3, 2),
    )
    classifier = Sequential(
        Dropout(dropout),
        Linear(256 * 6 * 6, 4096, **kw),
        ReLU(),
        Dropout(dropout),
        Linear(4096, 4096, **kw),
        ReLU(),
        Linear(4096, int(num_classes), **kw),
    )
    return Sequential(
        OrderedDict(features=features, avgpool=AdaptiveAvgPool2d((6, 6)), flatten=Flatten(), classifier=classifier)
    )
