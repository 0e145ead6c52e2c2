"""gradlearn: deep learning from modules whose forward and backward passes you can read.

The public API is re-exported flat: ``gl.Linear``, ``gl.Sequential``, ``gl.CrossEntropyLoss``,
``gl.gradcheck``, ``gl.pack_parameters`` ...
"""

__version__ = "0.1.0"

from . import init
from .backend import get_default_dtype, manual_seed, set_default_dtype
from .diagnostics import GradcheckReport, gradcheck
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    EnergyLoss,
    EnergyNLLLoss,
    EuclideanLoss,
    HingeLoss,
    Loss,
    MSELoss,
    NLLLoss,
    PerceptronLoss,
)
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _module_names
from .parameter import FlatParameters, Parameter, pack_parameters

__all__ = [
    "__version__",
    "init",
    "get_default_dtype",
    "set_default_dtype",
    "manual_seed",
    "gradcheck",
    "GradcheckReport",
    "Parameter",
    "FlatParameters",
    "pack_parameters",
    "Loss",
    "MSELoss",
    "EuclideanLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCEWithLogitsLoss",
    "EnergyLoss",
    "PerceptronLoss",
    "HingeLoss",
    "EnergyNLLLoss",
    *_module_names,
]
