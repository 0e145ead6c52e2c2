"""The model zoo: builders of classic networks, with torchvision's layouts and state-dict keys.

    gl.models.mlp([784, 256, 10])      gl.models.lenet5()          gl.models.alexnet()
    gl.models.vgg11/13/16/19(batch_norm=False)                     gl.models.resnet18/34()
    gl.models.resnet20/32/56()   (CIFAR-10, option A shortcuts)    gl.models.get_model("vgg16")

Every builder takes ``num_classes`` (except ``mlp``, which takes ``sizes``) and the keywords
``dtype=`` and ``generator=`` (the random generator the initialisation draws from; the
default generator when None). ``DEFAULT_INPUT_SHAPES`` gives the per-sample input shape
each was designed for (used by ``gradlearn summary``).
"""

from __future__ import annotations

from .alexnet import alexnet
from .convnet import convnet
from .lenet import lenet5
from .mlp import ACTIVATIONS, mlp
from .resnet import BasicBlock, ShortcutA, resnet18, resnet20, resnet32, resnet34, resnet56
from .vgg import vgg, vgg11, vgg13, vgg16, vgg19


def _bn(builder):
    def build(num_classes: int = 1000, **kw):
        return builder(num_classes, batch_norm=True, **kw)

    build.__name__ = f"{builder.__name__}_bn"
    build.__doc__ = f"{builder.__name__} with batch normalisation after each convolution."
    return build


vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_bn(b) for b in (vgg11, vgg13, vgg16, vgg19))

_BUILDERS = {
    "mlp": mlp,
    "convnet": convnet,
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "vgg11_bn": vgg11_bn,
    "vgg13_bn": vgg13_bn,
    "vgg16_bn": vgg16_bn,
    "vgg19_bn": vgg19_bn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
}

#: The names ``get_model`` accepts.
MODEL_NAMES = tuple(_BUILDERS)

#: The per-sample input shape each model was designed for.
DEFAULT_INPUT_SHAPES = {
    "mlp": (784,),
    "lenet5": (1, 28, 28),
    "convnet": (1, 8, 8),
    **{name: (3, 224, 224) for name in MODEL_NAMES if name.startswith(("alexnet", "vgg", "resnet18", "resnet34"))},
    **{name: (3, 32, 32) for name in ("resnet20", "resnet32", "resnet56")},
}


def get_model(name: str, **kwargs):
    """Build the zoo model called ``name`` (one of ``MODEL_NAMES``) with the builder's keyword arguments."""
    builder = _BUILDERS.get(name) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(f"get_model: unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return builder(**kwargs)


__all__ = [
    "MODEL_NAMES",
    "convnet",
    "DEFAULT_INPUT_SHAPES",
    "ACTIVATIONS",
    "get_model",
    "mlp",
    "lenet5",
    "alexnet",
    "vgg",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet20",
    "resnet32",
    "resnet56",
    "BasicBlock",
    "ShortcutA",
]
