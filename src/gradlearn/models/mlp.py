"""Multi-layer perceptron: ``mlp([784, 256, 10])``, Linear layers with a non-linearity between them."""

from __future__ import annotations

from ..backend import resolve_generator
from ..modules.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from ..modules.containers import Sequential
from ..modules.dropout import Dropout
from ..modules.linear import Linear

#: Non-linearities the zoo's builders accept by name.
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}


def make_activation(name: str, where: str = "activation"):
    """A new activation module for ``name`` ('relu', 'tanh', 'sigmoid', 'leaky_relu')."""
    check_activation(name, where)
    return ACTIVATIONS[name.lower()]()


def mlp(sizes, activation: str = "relu", dropout: float = 0.0, *, dtype=None, generator=None) -> Sequential:
    """Fully connected network: Linear(sizes[0], sizes[1]), act, [Dropout], ..., Linear(sizes[-2], sizes[-1]).

    Shapes: (N, sizes[0]) -> (N, sizes[-1]); no non-linearity after the last layer (the
    loss, e.g. CrossEntropyLoss, takes the scores). With ``dropout > 0`` a Dropout(p) follows
    each hidden non-linearity. Children are numbered as in ``torch.nn.Sequential``
    (``0.weight``, ``2.weight``, ...). Weights use Linear's default initialisation drawn
    from ``generator`` (the default generator when None).

    Example: ``mlp([784, 256, 10])`` has 784*256 + 256 + 256*10 + 10 = 203,530 parameters.
    """
    try:
        sizes = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise TypeError(f"mlp: sizes must be a list of ints such as [784, 256, 10], got {sizes!r}") from None
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(f"mlp: sizes needs at least two positive sizes (input and output), got {sizes}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"mlp: dropout must be in [0, 1), got {dropout}")
    check_activation(activation, "mlp")
    rng = resolve_generator(generator)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(n_in, n_out, dtype=dtype, generator=rng))
        if i < len(sizes) - 2:
            layers.append(make_activation(activation, "mlp"))
            if dropout > 0:
                layers.append(Dropout(float(dropout)))
    return Sequential(*layers)


def check_activation(name, where: str) -> None:
    """Raise a ValueError listing the choices unless ``name`` is a known activation."""
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"{where}: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
