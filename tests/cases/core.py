"""Registry cases for the core modules, containers and losses."""

from __future__ import annotations

import numpy as np

import gradlearn as gl

from . import Case, away_from_zero, normal


def classes(n, c):
    """(N, C) logits and (N,) int64 class indices."""
    return lambda rng: (rng.standard_normal((n, c)) * 2, rng.integers(0, c, n))


def distinct_energies(n, c):
    """Energies whose minima are separated (no argmin ties within eps) and targets."""

    def draw(rng):
        energies = np.stack([rng.permutation(c) for _ in range(n)]).astype(float) * 0.5
        energies += rng.uniform(-0.1, 0.1, energies.shape)
        return energies, rng.integers(0, c, n)

    return draw


def hinge_energies(n, c, margin):
    """Energies where every sample's hinge bracket is clearly non-zero (either sign)."""

    def draw(rng):
        energies, target = distinct_energies(n, c)(rng)
        rows = np.arange(n)
        for i in rows:
            wrong = np.delete(energies[i], target[i]).min()
            if abs(margin + energies[i, target[i]] - wrong) < 0.05:
                energies[i, target[i]] += 0.2
        return energies, target

    return draw


def probabilities(n, c):
    def draw(rng):
        p = rng.uniform(0.1, 1.0, (n, c))
        return rng.standard_normal((n, c)), p / p.sum(axis=1, keepdims=True)

    return draw


CASES = [
    # layers
    Case("Linear", lambda: gl.Linear(5, 3), normal((4, 5)), lambda torch: torch.nn.Linear(5, 3)),
    Case("Linear_nobias", lambda: gl.Linear(5, 3, bias=False), normal((4, 5)), lambda torch: torch.nn.Linear(5, 3, bias=False)),
    Case("Linear_batch1", lambda: gl.Linear(7, 2), normal((1, 7)), lambda torch: torch.nn.Linear(7, 2)),
    Case("Identity", lambda: gl.Identity(), normal((3, 4)), lambda torch: torch.nn.Identity()),
    # activations
    Case("Tanh", lambda: gl.Tanh(), normal((4, 6)), lambda torch: torch.nn.Tanh()),
    Case("Sigmoid", lambda: gl.Sigmoid(), normal((4, 6)), lambda torch: torch.nn.Sigmoid()),
    Case("ReLU", lambda: gl.ReLU(), lambda rng: (away_from_zero(rng, (4, 6)),), lambda torch: torch.nn.ReLU()),
    Case("ReLU_4d", lambda: gl.ReLU(), lambda rng: (away_from_zero(rng, (2, 3, 4, 4)),), lambda torch: torch.nn.ReLU()),
    Case("LeakyReLU", lambda: gl.LeakyReLU(0.1), lambda rng: (away_from_zero(rng, (4, 6)),), lambda torch: torch.nn.LeakyReLU(0.1)),
    Case("PReLU", lambda: gl.PReLU(), lambda rng: (away_from_zero(rng, (4, 6)),), lambda torch: torch.nn.PReLU()),
    Case(
        "PReLU_channels",
        lambda: gl.PReLU(3, init=0.1),
        lambda rng: (away_from_zero(rng, (2, 3, 4, 4)),),
        lambda torch: torch.nn.PReLU(3, init=0.1),
    ),
    Case("Softmax", lambda: gl.Softmax(dim=-1), normal((4, 5)), lambda torch: torch.nn.Softmax(dim=-1)),
    Case("Softmax_dim1", lambda: gl.Softmax(dim=1), normal((2, 4, 3)), lambda torch: torch.nn.Softmax(dim=1)),
    Case("LogSoftmax", lambda: gl.LogSoftmax(dim=-1), normal((4, 5)), lambda torch: torch.nn.LogSoftmax(dim=-1)),
    Case("LogSoftmax_dim1", lambda: gl.LogSoftmax(dim=1), normal((2, 4, 3)), lambda torch: torch.nn.LogSoftmax(dim=1)),
    # shape
    Case("Flatten", lambda: gl.Flatten(), normal((2, 3, 4, 5)), lambda torch: torch.nn.Flatten()),
    Case("Flatten_middle", lambda: gl.Flatten(1, 2), normal((2, 3, 4, 5)), lambda torch: torch.nn.Flatten(1, 2)),
    Case("Reshape", lambda: gl.Reshape(4, -1), normal((2, 12)), lambda torch: torch.nn.Unflatten(1, (4, 3))),
    # containers
    Case(
        "Sequential",
        lambda: gl.Sequential(gl.Linear(4, 6), gl.Tanh(), gl.Linear(6, 3)),
        normal((5, 4)),
        lambda torch: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)),
    ),
    Case("Branch", lambda: gl.Branch(3), normal((3, 4)), lambda torch: (lambda x: (x, x, x))),
    Case("Add", lambda: gl.Add(), lambda rng: tuple(rng.standard_normal((3, 4)) for _ in range(3)), lambda torch: (lambda *xs: xs[0] + xs[1] + xs[2])),
    Case(
        "Parallel",
        lambda: gl.Parallel(gl.Linear(4, 2), gl.Tanh()),
        lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((3, 5))),
    ),
    Case(
        "Concat",
        lambda: gl.Concat(dim=1),
        lambda rng: (rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 5, 4))),
        lambda torch: (lambda a, b: torch.cat([a, b], dim=1)),
    ),
    Case("Residual", lambda: gl.Residual(gl.Sequential(gl.Linear(4, 4), gl.Tanh())), normal((3, 4))),
    Case(
        "Residual_projection",
        lambda: gl.Residual(gl.Sequential(gl.Linear(4, 6), gl.Tanh()), gl.Linear(4, 6, bias=False)),
        normal((3, 4)),
    ),
    Case(
        "Branch_Parallel_Add",
        lambda: gl.Sequential(gl.Linear(4, 4), gl.Branch(2), gl.Parallel(gl.Sequential(gl.Linear(4, 4), gl.Tanh()), gl.Identity()), gl.Add()),
        normal((3, 4)),
    ),
    # losses
    Case("MSELoss", lambda: gl.MSELoss(), lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))), lambda torch: torch.nn.MSELoss(), is_loss=True),
    Case(
        "MSELoss_sum",
        lambda: gl.MSELoss(reduction="sum"),
        lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
        lambda torch: torch.nn.MSELoss(reduction="sum"),
        is_loss=True,
    ),
    Case(
        "EuclideanLoss",
        lambda: gl.EuclideanLoss(),
        lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3))),
        lambda torch: (lambda x, y: 0.5 * ((x - y) ** 2).sum() / x.shape[0]),
        is_loss=True,
    ),
    Case("CrossEntropyLoss", lambda: gl.CrossEntropyLoss(), classes(6, 4), lambda torch: torch.nn.CrossEntropyLoss(), is_loss=True),
    Case(
        "CrossEntropyLoss_sum",
        lambda: gl.CrossEntropyLoss(reduction="sum"),
        classes(6, 4),
        lambda torch: torch.nn.CrossEntropyLoss(reduction="sum"),
        is_loss=True,
    ),
    Case(
        "CrossEntropyLoss_probabilities",
        lambda: gl.CrossEntropyLoss(),
        probabilities(5, 3),
        lambda torch: torch.nn.CrossEntropyLoss(),
        is_loss=True,
    ),
    Case(
        "CrossEntropyLoss_label_smoothing",
        lambda: gl.CrossEntropyLoss(label_smoothing=0.1),
        classes(6, 4),
        lambda torch: torch.nn.CrossEntropyLoss(label_smoothing=0.1),
        is_loss=True,
    ),
    Case(
        "NLLLoss",
        lambda: gl.NLLLoss(),
        lambda rng: (np.log(rng.dirichlet(np.ones(4), 6)), rng.integers(0, 4, 6)),
        lambda torch: torch.nn.NLLLoss(),
        is_loss=True,
    ),
    Case(
        "BCEWithLogitsLoss",
        lambda: gl.BCEWithLogitsLoss(),
        lambda rng: (rng.standard_normal((4, 3)) * 3, rng.uniform(0, 1, (4, 3))),
        lambda torch: torch.nn.BCEWithLogitsLoss(),
        is_loss=True,
    ),
    Case("EnergyLoss", lambda: gl.EnergyLoss(), distinct_energies(5, 4), is_loss=True),
    Case("PerceptronLoss", lambda: gl.PerceptronLoss(), distinct_energies(6, 4), is_loss=True),
    Case("HingeLoss", lambda: gl.HingeLoss(margin=1.0), hinge_energies(6, 4, 1.0), is_loss=True),
    Case("HingeLoss_sum", lambda: gl.HingeLoss(margin=0.5, reduction="sum"), hinge_energies(6, 4, 0.5), is_loss=True),
    Case("EnergyNLLLoss", lambda: gl.EnergyNLLLoss(beta=2.0), distinct_energies(5, 4), is_loss=True),
]
