"""``gradlearn train``: a tiny run end to end, the config round trip, and every user error."""

import csv
import os
import tomllib

import pytest

from .conftest import PLOTS, TINY, assert_user_error, gradlearn


def test_help():
    result = gradlearn("train", "--help")
    assert result.returncode == 0
    for option in ("--model", "--data", "--epochs", "--batch-size", "--optimizer", "--lr", "--momentum",
                   "--weight-decay", "--schedule", "--augment", "--seed", "--out", "--device", "CONFIG.toml"):
        assert option in result.stdout, option
    assert "fashion-mnist" in result.stdout and "lenet5" in result.stdout


def test_tiny_run_writes_the_run_folder(trained_run):
    folder, result = trained_run
    out = result.stdout
    assert "Training convnet" in out and "digits" in out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "val_loss" in out and "val_accuracy" in out
    assert "Test: loss" in out and "accuracy" in out
    names = set(os.listdir(folder))
    assert {"config.toml", "run.json", "model.safetensors", "history.csv", "checkpoints", *PLOTS} <= names, names
    for png in PLOTS:
        with open(folder / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert (folder / png).stat().st_size > 5000
    assert sorted(os.listdir(folder / "checkpoints")) == ["ckpt-0000000021.safetensors", "ckpt-0000000042.safetensors"]
    with open(folder / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    with open(folder / "config.toml", "rb") as f:
        config = tomllib.load(f)
    assert config == {"model": "convnet", "data": "digits", "epochs": 2, "batch_size": 64, "optimizer": "sgd",
                      "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005, "schedule": "cosine", "augment": False,
                      "seed": 0, "device": "cpu", "validation_fraction": 0.1, "hidden": [256]}  # fmt: skip


def test_config_round_trip_reproduces_the_run(trained_run, tmp_path):
    folder, first = trained_run
    again = gradlearn("train", folder / "config.toml", "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    with open(folder / "history.csv") as a, open(tmp_path / "again" / "history.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert ra[key] == rb[key], key
    assert (folder / "config.toml").read_text() == (tmp_path / "again" / "config.toml").read_text()
    test_line = [line for line in first.stdout.splitlines() if line.startswith("Test:")][0]
    assert test_line.split(";")[0] == [line for line in again.stdout.splitlines() if line.startswith("Test:")][0].split(";")[0]


def test_options_override_the_config_file(tmp_path):
    (tmp_path / "c.toml").write_text('data = "digits"\nmodel = "mlp"\nepochs = 3\nhidden = [32]\noptimizer = "adam"\n')
    result = gradlearn("train", tmp_path / "c.toml", "--epochs", "1", "--schedule", "none", "--augment", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "r" / "config.toml", "rb") as f:
        config = tomllib.load(f)
    assert (config["model"], config["epochs"], config["hidden"], config["optimizer"], config["lr"]) == ("mlp", 1, [32], "adam", 0.001)
    assert config["schedule"] == "none" and config["augment"] is True
    assert "Epoch 1/1" in result.stdout and "Epoch 2" not in result.stdout
    assert (tmp_path / "r" / "filters.png").exists()  # an mlp's first Linear layer shown as 8x8 images


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--model", "nonet"], ["unknown model 'nonet'", "convnet", "lenet5", "resnet20"]),
        (["--data", "imagenet"], ["unknown data set 'imagenet'", "fashion-mnist", "digits"]),
        (["--optimizer", "lbfgs"], ["unknown optimizer 'lbfgs'", "sgd", "adam", "nadam"]),
        (["--schedule", "sawtooth"], ["unknown schedule 'sawtooth'", "cosine", "plateau"]),
        (["--lr", "0"], ["learning rate must be positive"]),
        (["--lr", "-0.1"], ["learning rate must be positive"]),
        (["--epochs", "0"], ["epochs must be at least 1"]),
        (["--momentum", "1.0"], ["momentum must be in [0, 1)"]),
        (["--batch-size", "0"], ["batch size must be at least 1"]),
        (["--model", "lenet5"], ["lenet5 does not fit digits", "--model convnet"]),
        (["--device", "tpu"], ["unknown device 'tpu'", "cpu", "cuda"]),
    ],
)
def test_bad_values_are_rejected_with_the_choices(args, fragments, tmp_path):
    result = gradlearn("train", "--data", "digits", *args, "--out", tmp_path / "r")
    assert_user_error(result, "gradlearn train: error:", *fragments)
    assert not (tmp_path / "r").exists()


def test_malformed_option_is_an_argparse_error(tmp_path):
    result = gradlearn("train", "--lr", "fast", "--out", tmp_path / "r")
    assert_user_error(result, "invalid float value: 'fast'", code=2)


def test_unknown_toml_key(tmp_path):
    (tmp_path / "c.toml").write_text('data = "digits"\nlearning_rate = 0.1\n')
    result = gradlearn("train", tmp_path / "c.toml", "--out", tmp_path / "r")
    assert_user_error(result, "unknown key 'learning_rate'", "allowed keys", "lr", "epochs")


def test_wrong_toml_type_and_syntax(tmp_path):
    (tmp_path / "c.toml").write_text('data = "digits"\nepochs = "ten"\n')
    assert_user_error(gradlearn("train", tmp_path / "c.toml"), "epochs must be an integer")
    (tmp_path / "d.toml").write_text('data = "digits\n')
    assert_user_error(gradlearn("train", tmp_path / "d.toml"), "not valid TOML")
    assert_user_error(gradlearn("train", tmp_path / "missing.toml"), "no configuration file")


def test_corrupt_idx_file_is_reported(tmp_path):
    from gradlearn.data import save_idx

    import numpy as np

    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    save_idx(folder / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8), compress=False)
    save_idx(folder / "train-labels-idx1-ubyte", np.zeros(20, np.uint8), compress=False)
    save_idx(folder / "t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8), compress=False)
    save_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(10, np.uint8), compress=False)
    images = folder / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    for args in (["--data", "fashion-mnist"], []):  # explicit, and the main job's search
        result = gradlearn("train", *args, "--epochs", "1", "--out", tmp_path / "r", env={"GRADLEARN_DATA": str(tmp_path / "data")})
        assert_user_error(result, "gradlearn train: error:", "t10k-images-idx3-ubyte", "truncated")
    assert not (tmp_path / "r").exists()


def test_out_folder_holding_a_run_is_refused(trained_run):
    folder, _ = trained_run
    result = gradlearn("train", *TINY, "--out", folder)
    assert_user_error(result, "already holds a run", "gradlearn resume")


def test_cuda_without_cupy_or_gpu_is_a_clear_error(tmp_path):
    try:
        from gradlearn.backend import cuda_module

        cuda_module()
        pytest.skip("a CUDA device is available here")
    except RuntimeError:
        pass
    result = gradlearn("train", *TINY, "--device", "cuda", "--out", tmp_path / "r")
    assert_user_error(result, "gradlearn train: error:", "cuda")
    assert "CuPy" in result.stderr or "CUDA device" in result.stderr


def test_the_splits_do_not_keep_the_raw_training_set_alive():
    """A run holds its own training and validation copies; the raw training set they were
    cut from must not stay resident beside them for the whole run (Fashion-MNIST: 179 MB)."""
    import gc
    import weakref

    from gradlearn.commands import experiment as ex
    from gradlearn.commands.config import RunConfig

    pytest.importorskip("sklearn")
    config, _ = ex.resolve_config(RunConfig(data="digits", model="convnet"))
    raw_train, _ = ex.load_splits_raw("digits")
    raw = weakref.ref(raw_train.x)
    del raw_train
    splits = ex.load_splits(config)
    gc.collect()
    assert raw() is None
    assert len(splits.train[0]) + len(splits.val[0]) == 1797 - len(splits.test[0])
