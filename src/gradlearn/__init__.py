"""gradlearn: deep learning from modules whose forward and backward passes you can read.

The public API is re-exported flat: ``gl.Linear``, ``gl.Sequential``, ``gl.CrossEntropyLoss``,
``gl.gradcheck``, ``gl.pack_parameters`` ...
"""

__version__ = "0.1.0"

from . import allocator, data, init
from .backend import get_default_dtype, manual_seed, set_default_dtype
from .diagnostics import (
    GradcheckReport,
    ModelSummary,
    activation_stats,
    find_lr,
    gradcheck,
    sanity_check,
    summary,
)
from . import models
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
from . import optim
from .optim import *  # noqa: F401,F403
from .optim import __all__ as _optim_names
from . import train
from .train import *  # noqa: F401,F403
from .train import __all__ as _train_names

allocator.install()  # NumPy's large arrays through gradlearn's caching allocator (GRADLEARN_ALLOCATOR=0: not)

__all__ = [
    "__version__",
    "init",
    "data",
    "get_default_dtype",
    "set_default_dtype",
    "manual_seed",
    "gradcheck",
    "sanity_check",
    "find_lr",
    "activation_stats",
    "summary",
    "ModelSummary",
    "models",
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
    "optim",
    *_optim_names,
    "train",
    *_train_names,
]
