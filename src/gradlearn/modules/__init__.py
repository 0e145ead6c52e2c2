"""Layers, activations and containers, each with its forward and backward side by side."""

from .activation import LeakyReLU, LogSoftmax, PReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Module
from .containers import Add, Branch, Concat, Parallel, Residual, Sequential
from .conv import Conv2d, ZeroPad2d
from .dropout import Dropout, Dropout2d
from .linear import Identity, Linear
from .normalization import BatchNorm1d, BatchNorm2d, LocalContrastNorm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, LPPool2d, MaxPool2d
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
    "Conv2d",
    "ZeroPad2d",
    "MaxPool2d",
    "AvgPool2d",
    "LPPool2d",
    "AdaptiveAvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LocalContrastNorm",
    "Dropout",
    "Dropout2d",
]
