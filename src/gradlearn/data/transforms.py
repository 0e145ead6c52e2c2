"""Batch transforms: standardisation and data augmentation, vectorised over the batch.

A transform is called on a batch of examples, ``t(x) -> x`` or ``t(x, y) -> (x, y)``
(targets pass through untouched). Random transforms draw from a generator: the one given
in the call (``t(x, generator=g)``), else the one given at construction, else the
library's default generator. The :class:`~gradlearn.data.DataLoader` passes each batch
its own generator, derived from the loader's state, so augmented epochs are reproducible
and resume exactly from a checkpoint.

Augmentation is for training only. The usual arrangement::

    norm = Standardize.fit(train.x, per="channel")          # statistics of the training split only
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), norm])
    train_loader = DataLoader(train, 128, shuffle=True, transform=augment, generator=rng)
    test_loader = DataLoader(test, 1000, shuffle=False, transform=norm)   # no augmentation

Photometric transforms (:class:`ColorJitter`) assume pixels in [0, 1] and clip to it, so
put :class:`Standardize` last. All transforms keep the batch's float dtype and return a new
array (the input is never modified).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..backend import resolve_generator
from .idx import DataError

__all__ = ["Transform", "Standardize", "RandomCrop", "RandomHorizontalFlip", "ColorJitter", "GaussianNoise", "Compose"]


class Transform:
    """Base class: subclasses implement ``apply(x, generator) -> x`` on a batch."""

    random = False  # whether apply draws random numbers

    def __init__(self, generator=None):
        self.generator = None if generator is None else resolve_generator(generator)

    def __call__(self, x, y=None, *, generator=None):
        rng = None
        if self.random:
            rng = resolve_generator(generator if generator is not None else self.generator)
        out = self.apply(x, rng)
        return out if y is None else (out, y)

    def apply(self, x, generator):
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def error(self, message: str):
        try:
            where = repr(self)
        except AttributeError:  # raised from __init__, before the attributes repr shows exist
            where = type(self).__name__
        return DataError(f"{where}: {message}")

    def check_images(self, x):
        x = np.asarray(x)
        if x.ndim != 4:
            raise self.error(f"expected images (N, C, H, W), got shape {x.shape}")
        if x.dtype.kind != "f":
            raise self.error(f"expected a float batch, got {x.dtype}")
        return x


class Standardize(Transform):
    """``x' = (x - mean) / std`` with statistics fitted once on the training split.

    ``Standardize.fit(train_x, per='channel')`` computes one mean and std per channel
    (axes N, H, W of NCHW; for (N, F) data that is per feature); ``per='feature'`` one per
    input element (axis N only); ``per='all'`` one scalar. Applying the transform never
    refits: the test split is normalised with the training statistics. A std below ``eps``
    (constant inputs, e.g. MNIST's border pixels with ``per='feature'``) is replaced by 1.
    ``mean`` and ``std`` are stored as float32 arrays shaped to broadcast against a batch;
    given by hand, a 1-D ``mean``/``std`` means one value per channel (``Standardize([0.5] * 3, [0.25] * 3)``).
    """

    def __init__(self, mean, std):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if np.any(self.std <= 0):
            raise self.error("std must be positive")
        self.inv_std = (1.0 / self.std).astype(np.float32)

    @classmethod
    def fit(cls, x, per: str = "channel", eps: float = 1e-7, chunk: int = 4096) -> "Standardize":
        """Fit mean and std on ``x`` (float64 accumulation in chunks of ``chunk`` examples)."""
        x = np.asarray(x)
        if x.ndim < 2 or len(x) == 0:
            raise DataError(f"Standardize.fit: expected a batch (N, ...) with N >= 1, got shape {x.shape}")
        if per == "channel":
            axes = (0,) + tuple(range(2, x.ndim))
        elif per == "feature":
            axes = (0,)
        elif per == "all":
            axes = tuple(range(x.ndim))
        else:
            raise DataError(f"Standardize.fit: per must be 'channel', 'feature' or 'all', got {per!r}")
        count = x.size // np.prod([x.shape[a] for a in range(x.ndim) if a not in axes], dtype=np.int64)
        total = 0.0
        for start in range(0, len(x), chunk):
            total = total + np.sum(x[start : start + chunk], axis=axes, keepdims=True, dtype=np.float64)
        mean = total / count
        squares = 0.0
        for start in range(0, len(x), chunk):
            deviation = x[start : start + chunk].astype(np.float64) - mean
            squares = squares + np.sum(deviation * deviation, axis=axes, keepdims=True)
        std = np.sqrt(squares / count)
        std = np.where(std < eps, 1.0, std)
        fitted = cls(mean, std)
        fitted.per = per
        return fitted

    def _shaped(self, stat, ndim):
        """``stat`` shaped for a batch of ``ndim`` dims: a 1-D statistic is one value per channel (axis 1)."""
        if stat.ndim == 1 and ndim >= 2:
            return stat.reshape((1, -1) + (1,) * (ndim - 2))
        return stat

    def apply(self, x, generator):
        x = np.asarray(x)
        mean, inv_std = self._shaped(self.mean, x.ndim), self._shaped(self.inv_std, x.ndim)
        if mean.ndim not in (0, x.ndim) or any(m not in (1, d) for m, d in zip(mean.shape[1:], x.shape[1:])):
            raise self.error(f"statistics of shape {self.mean.shape} do not fit a batch of shape {x.shape}")
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        out = np.subtract(x, mean, dtype=dtype)
        out *= inv_std.astype(dtype, copy=False)
        return out

    def extra_repr(self) -> str:
        return f"mean {self.mean.shape}, std {self.std.shape}"


class RandomCrop(Transform):
    """Crop each image at a random position, after zero-padding ``padding`` pixels on each side.

    Offsets are drawn independently per image, uniform over all ``(H + 2p - h + 1) x
    (W + 2p - w + 1)`` positions; the crops are gathered in one fancy-indexing step from a
    sliding-window view (no loop over the batch). ``size``: int or (h, w).
    """

    random = True

    def __init__(self, size, padding: int = 0, fill: float = 0.0, generator=None):
        super().__init__(generator)
        self.size = (size, size) if np.isscalar(size) else tuple(size)
        self.padding, self.fill = int(padding), float(fill)
        if self.padding < 0 or min(self.size) < 1:
            raise self.error("size must be positive and padding non-negative")

    def apply(self, x, generator):
        x = self.check_images(x)
        n, c, height, width = x.shape
        p = self.padding
        if p:
            padded = np.full((n, c, height + 2 * p, width + 2 * p), self.fill, dtype=x.dtype)
            padded[:, :, p : p + height, p : p + width] = x
        else:
            padded = x
        h, w = self.size
        rows, cols = padded.shape[2] - h + 1, padded.shape[3] - w + 1
        if rows < 1 or cols < 1:
            raise self.error(f"crop {h}x{w} larger than the padded image {padded.shape[2]}x{padded.shape[3]}")
        top = generator.integers(0, rows, size=n)
        left = generator.integers(0, cols, size=n)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, rows, cols, h, w)
        return windows[np.arange(n), :, top, left]  # (N, C, h, w), a copy

    def extra_repr(self) -> str:
        size = self.size[0] if self.size[0] == self.size[1] else self.size
        return f"{size}, padding={self.padding}"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (default 0.5), independently."""

    random = True

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise self.error(f"p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x, generator):
        x = self.check_images(x)
        flip = generator.random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, one factor per image, for pixels in [0, 1].

    With factors ``f`` uniform in ``[max(0, 1 - s), 1 + s]`` for strength ``s`` (or in a given
    ``(low, high)``), applied in this order, each followed by clipping to [0, 1]:

        brightness  x' = f x
        contrast    x' = f x + (1 - f) mean(gray(x))     (the image's mean grey level)
        saturation  x' = f x + (1 - f) gray(x)           (gray = 0.299 R + 0.587 G + 0.114 B)

    For one-channel images saturation changes nothing (gray(x) = x).
    """

    random = True

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, generator=None):
        super().__init__(generator)
        self.brightness = self._range("brightness", brightness)
        self.contrast = self._range("contrast", contrast)
        self.saturation = self._range("saturation", saturation)

    def _range(self, name, value):
        if np.isscalar(value):
            if value < 0:
                raise self.error(f"{name} must be non-negative, got {value}")
            return (max(0.0, 1.0 - value), 1.0 + value) if value else None
        low, high = value
        if not 0 <= low <= high:
            raise self.error(f"{name} range must satisfy 0 <= low <= high, got {value}")
        return (float(low), float(high))

    @staticmethod
    def _gray(x):
        c = x.shape[1]
        if c == 1:
            return x
        if c == 3:
            weights = np.array([0.299, 0.587, 0.114], dtype=x.dtype).reshape(1, 3, 1, 1)
            return np.sum(x * weights, axis=1, keepdims=True)
        return np.mean(x, axis=1, keepdims=True)

    def apply(self, x, generator):
        x = self.check_images(x)
        n = len(x)

        def factors(bounds):
            return generator.uniform(bounds[0], bounds[1], size=(n, 1, 1, 1)).astype(x.dtype)

        out = x
        if self.brightness:
            out = np.clip(out * factors(self.brightness), 0.0, 1.0)
        if self.contrast:
            f = factors(self.contrast)
            mean = self._gray(out).mean(axis=(1, 2, 3), keepdims=True)
            out = np.clip(f * out + (1 - f) * mean, 0.0, 1.0)
        if self.saturation:
            f = factors(self.saturation)
            out = np.clip(f * out + (1 - f) * self._gray(out), 0.0, 1.0)
        return out.copy() if out is x else out

    def extra_repr(self) -> str:
        parts = [f"{k}={v}" for k, v in (("brightness", self.brightness), ("contrast", self.contrast), ("saturation", self.saturation)) if v]
        return ", ".join(parts)


class GaussianNoise(Transform):
    """``x' = x + std * e`` with ``e`` standard normal, drawn in the batch's dtype."""

    random = True

    def __init__(self, std: float, generator=None):
        super().__init__(generator)
        if std < 0:
            raise self.error(f"std must be non-negative, got {std}")
        self.std = float(std)

    def apply(self, x, generator):
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        noise = generator.standard_normal(x.shape, dtype=dtype)
        noise *= self.std
        noise += x
        return noise

    def extra_repr(self) -> str:
        return f"std={self.std}"


class Compose(Transform):
    """Apply ``transforms`` in order; each gets the same generator (the call's, else Compose's own).

    Items may be :class:`Transform` instances or plain callables ``f(x) -> x``.
    """

    def __init__(self, transforms, generator=None):
        super().__init__(generator)
        self.transforms = list(transforms)
        self.random = any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, x, y=None, *, generator=None):
        rng = generator if generator is not None else self.generator
        for t in self.transforms:
            x = t(x, generator=rng) if isinstance(t, Transform) else t(x)
        return x if y is None else (x, y)

    def apply(self, x, generator):
        return self(x, generator=generator)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
