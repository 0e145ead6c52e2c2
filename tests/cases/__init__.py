"""The registry of module and loss cases that the generic tests run over.

One case = one line-sized recipe: how to build the gradlearn module, how to draw its
inputs (float64, kept away from kinks such as ReLU at 0 or max-pool ties), and, where
PyTorch has the same layer, how to build the PyTorch counterpart. The generic tests
(``tests/test_registry.py``) gradcheck every case and compare every case that has a
``torch`` recipe with PyTorch. Adding a module = adding a case to one of the files here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable



@dataclass
class Case:
    name: str
    make: Callable  # () -> gradlearn Module or Loss
    inputs: Callable  # (rng) -> tuple of arrays (floats are differentiated, ints are not)
    torch: Callable | None = None  # (torch) -> torch nn.Module or callable, same semantics
    slow: bool = False
    steps: int = 1  # forward passes before the comparison (running statistics)
    is_loss: bool = False
    gradcheck_kwargs: dict = field(default_factory=dict)

    def __repr__(self):
        return self.name


def away_from_zero(rng, shape, low=0.1, high=1.0):
    """Values with |x| in [low, high] and random signs: no ReLU-type kink within eps."""
    magnitude = rng.uniform(low, high, shape)
    return magnitude * rng.choice([-1.0, 1.0], shape)


def normal(shape):
    return lambda rng: (rng.standard_normal(shape),)


def all_cases():
    from . import core

    cases = list(core.CASES)
    try:
        from . import conv
    except ImportError:
        conv = None
    if conv is not None:
        cases += conv.CASES
    return cases
