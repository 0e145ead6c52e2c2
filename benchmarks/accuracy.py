"""Test accuracy of the reference trainings, with wall time (not a unit test).

    python benchmarks/accuracy.py [--only lenet5-fashion,mlp-fashion,convnet-digits,lenet5-mnist10k]

| run | target |
| --- | --- |
| LeNet-5 on Fashion-MNIST (60k train, Debian's dataset-fashion-mnist) | >= 90.0 % |
| MLP 784-256-10 on Fashion-MNIST | >= 88 % |
| the digits convnet on scikit-learn's 8x8 digits | >= 98 % |
| LeNet-5 on the first 10,000 MNIST training images (../shared/data/mnist), official test set | >= 98.5 % |

Each run trains through ``gl.Trainer`` with the library's own optimizer, schedule and data
pipeline, standardised with statistics of the training split only, and reports the test
accuracy of the final weights. A run whose data is absent says so and is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import gradlearn as gl
from gradlearn.data import DataError, Standardize

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def train_and_test(name, model, train, test, *, epochs, batch_size, optimizer, augment=None, seed=0):
    """Fit ``model`` on ``train`` (a Dataset) and return (test accuracy, wall seconds)."""
    flat_input = len(model[0].weight.shape) == 2 if hasattr(model[0], "weight") else False
    standardize = Standardize.fit(train.x, per="all")
    x_train, x_test = standardize(train.x), standardize(test.x)
    if flat_input:
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    gl.manual_seed(seed)
    schedule = gl.CosineAnnealingLR(optimizer, T_max=epochs)
    trainer = gl.Trainer(model, gl.CrossEntropyLoss(), optimizer, schedule=schedule, batch_size=batch_size, seed=seed)
    started = time.perf_counter()
    if augment is None:
        trainer.fit((x_train, train.y), epochs=epochs, verbose=0)
    else:
        loader = gl.data.DataLoader((x_train, train.y), batch_size, shuffle=True, generator=np.random.default_rng(seed),
                                    transform=augment)
        trainer.fit(loader, epochs=epochs, verbose=0)
    accuracy = trainer.evaluate((x_test, test.y))["accuracy"]
    return accuracy, time.perf_counter() - started


def lenet5_fashion():
    train, test = gl.data.fashion_mnist(download=False)
    model = gl.models.lenet5()
    optimizer = gl.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    return train_and_test("lenet5-fashion", model, train, test, epochs=15, batch_size=64, optimizer=optimizer)


def mlp_fashion():
    train, test = gl.data.fashion_mnist(download=False)
    gl.manual_seed(0)
    model = gl.models.mlp([784, 256, 10])
    optimizer = gl.Adam(model.parameters(), lr=1e-3)
    return train_and_test("mlp-fashion", model, train, test, epochs=20, batch_size=128, optimizer=optimizer)


def convnet_digits():
    train, test = gl.data.digits()
    gl.manual_seed(0)
    model = gl.models.convnet(10, 1, 8, 8)
    optimizer = gl.Adam(model.parameters(), lr=3e-3)
    return train_and_test("convnet-digits", model, train, test, epochs=40, batch_size=32, optimizer=optimizer)


def lenet5_mnist10k():
    if not SHARED_MNIST.is_dir():
        raise DataError(f"{SHARED_MNIST} is absent (it is in the project's shared/ folder)")
    train, test = gl.data.mnist(path=SHARED_MNIST, download=False)
    gl.manual_seed(0)
    model = gl.models.lenet5()
    optimizer = gl.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    augment = gl.data.RandomCrop(28, padding=2, generator=np.random.default_rng(1))
    return train_and_test("lenet5-mnist10k", model, train, test, epochs=30, batch_size=64, optimizer=optimizer,
                          augment=augment)


RUNS = {
    "lenet5-fashion": (lenet5_fashion, 0.900, "LeNet-5 on Fashion-MNIST"),
    "mlp-fashion": (mlp_fashion, 0.88, "MLP 784-256-10 on Fashion-MNIST"),
    "convnet-digits": (convnet_digits, 0.98, "digits convnet on 8x8 digits"),
    "lenet5-mnist10k": (lenet5_mnist10k, 0.985, "LeNet-5 on 10k MNIST, official test set"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated runs: " + ", ".join(RUNS))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    print(f"{'run':<44} {'test accuracy':>13} {'target':>7} {'wall':>8}  verdict")
    failed = False
    for name in names:
        run, target, title = RUNS[name]
        try:
            accuracy, seconds = run()
        except (DataError, ImportError) as exc:
            print(f"{title:<44} {'-':>13} {target:>7.1%} {'-':>8}  skipped: {exc}")
            continue
        ok = accuracy >= target
        failed |= not ok
        print(f"{title:<44} {accuracy:>13.2%} {target:>7.1%} {seconds:>7.0f}s  {'ok' if ok else 'BELOW TARGET'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
