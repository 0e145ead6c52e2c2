"""Layers, activations and containers, each with its forward and backward side by side."""

from .activation import LeakyReLU, LogSoftmax, PReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Module
from .containers import Add, Branch, Concat, Parallel, Residual, Sequential
from .linear import Identity, Linear
from .shape import Flatten, Reshape

__all__ = [
    "Module",
    "Linear",
    "Identity",
    "Tanh",
    "Sigmoid",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Reshape",
    "Sequential",
    "Branch",
    "Add",
    "Parallel",
    "Concat",
    "Residual",
]
