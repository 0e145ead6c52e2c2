"""Optimizers over the flat parameter vector, and learning-rate schedules.

``gl.SGD(model.parameters(), lr=0.1, momentum=0.9)`` packs the model's parameters into one
flat vector once; every ``step()`` is a few vectorised operations on it. Schedules set the
groups' ``'lr'`` once per epoch: ``gl.StepLR(optimizer, step_size=30)``.
"""

from .optimizers import SGD, Adagrad, Adam, AdamW, NAdam, Optimizer, RMSprop, clip_grad_norm, clip_grad_value
from .schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
    scale_lr_for_batch,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "NAdam",
    "clip_grad_norm",
    "clip_grad_value",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearWarmup",
    "ReduceLROnPlateau",
    "scale_lr_for_batch",
]
