"""The practical guide, built in: gradient checking, model summaries, the overfit-a-small-batch
sanity check, learning-rate search, activation statistics, divergence advice and plots."""

from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .summary import ModelSummary, summary
from .activations import ActivationRecorder, ActivationReport, LayerStats, activation_stats
from .lr_finder import LRFinderResult, find_lr, halving_lr_search, lr_range_test
from .plots import (
    decision_surface_demo,
    function_fit_demo,
    plot_activations,
    plot_confusion_matrix,
    plot_decision_surfaces,
    plot_filters,
    plot_function_fit,
    plot_learning_curves,
    plot_lr_finder,
)
from .sanity import SanityReport, divergence_advice, sanity_check

__all__ = ["gradcheck", "GradcheckReport", "GradcheckError", "summary", "ModelSummary",
    "sanity_check", "SanityReport", "divergence_advice",
    "find_lr", "lr_range_test", "halving_lr_search", "LRFinderResult",
    "activation_stats", "ActivationRecorder", "ActivationReport", "LayerStats",
    "plot_learning_curves", "plot_filters", "plot_activations", "plot_confusion_matrix",
    "plot_decision_surfaces", "decision_surface_demo", "plot_function_fit", "function_fit_demo",
    "plot_lr_finder",
]
