"""Weight initialisation, in place, from explicit random generators.

Each function takes a Parameter (or an array), fills it in place and returns it. The
random ones take ``generator=`` (a ``numpy.random.Generator``; the default generator
when None, see ``gradlearn.manual_seed``).

fan_in and fan_out of a weight of shape (out, in, *kernel) are in * prod(kernel) and
out * prod(kernel).

- ``xavier_uniform_``: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)
- ``xavier_normal_``: N(0, std²), std = gain * sqrt(2 / (fan_in + fan_out))
- ``kaiming_uniform_``: U(-b, b), b = gain * sqrt(3 / fan)   (He et al. 2015)
- ``kaiming_normal_``: N(0, std²), std = gain / sqrt(fan)
  with fan = fan_in (mode='fan_in', preserves forward variance) or fan_out, and
  gain = calculate_gain(nonlinearity, a).
"""

from __future__ import annotations

import math

import numpy as np

from .backend import array_module, resolve_generator

GAINS = ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The factor that keeps activations' variance through a non-linearity.

    linear/identity/conv/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 +
    slope²)) with slope ``param`` (default 0.01); selu: 3/4.
    """
    if nonlinearity in ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of {GAINS}")


def _array(tensor):
    return tensor.data if hasattr(tensor, "requires_grad") else tensor


def _fill(tensor, values):
    arr = _array(tensor)
    arr[...] = values
    return tensor


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(f"fan_in and fan_out need a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b)."""
    arr = _array(tensor)
    rng = resolve_generator(generator)
    values = rng.random(arr.shape, dtype=arr.dtype)  # drawn in the array's dtype: no float64 detour
    values *= b - a
    values += a
    return _fill(tensor, array_module(arr).asarray(values))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std²)."""
    arr = _array(tensor)
    rng = resolve_generator(generator)
    values = rng.standard_normal(arr.shape, dtype=arr.dtype)
    values *= std
    values += mean
    return _fill(tensor, array_module(arr).asarray(values))


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def constant_(tensor, value: float):
    return _fill(tensor, value)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    fan_in, fan_out = fans(_array(tensor).shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    fan_in, fan_out = fans(_array(tensor).shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    fan = _fan(_array(tensor).shape, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    fan = _fan(_array(tensor).shape, mode)
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)
