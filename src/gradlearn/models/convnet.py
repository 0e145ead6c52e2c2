"""A small convnet for small images: the main job's network on scikit-learn's 8x8 digits."""

from __future__ import annotations

from collections import OrderedDict

from ..backend import resolve_generator
from ..modules import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def convnet(num_classes: int = 10, in_channels: int = 1, height: int = 8, width: int = 8, *, dtype=None, generator=None):
    """A small convnet for any image size from 4x4 (the main job's fallback on the 8x8 digits).

        features:   Conv2d(in_channels, 16, 3, padding=1) - ReLU - MaxPool 2x2
                    Conv2d(16, 32, 3, padding=1) - ReLU - MaxPool 2x2      (H, W) -> (H//4, W//4)
        classifier: Linear(32 * (H//4) * (W//4), 64) - ReLU - Linear(64, num_classes)
    """
    if height < 4 or width < 4:
        raise ValueError(f"convnet: needs images of at least 4x4, got {height}x{width}")
    rng = resolve_generator(generator)
    kw = dict(dtype=dtype, generator=rng)
    features = Sequential(
        Conv2d(in_channels, 16, 3, padding=1, **kw), ReLU(), MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1, **kw), ReLU(), MaxPool2d(2),
    )  # fmt: skip
    flat = 32 * (height // 4) * (width // 4)
    classifier = Sequential(Linear(flat, 64, **kw), ReLU(), Linear(64, num_classes, **kw))
    return Sequential(OrderedDict(features=features, flatten=Flatten(), classifier=classifier))
