"""``gradlearn resume``: an interrupted run continues to its configured epochs, exactly."""

import csv
import shutil

import numpy as np

from .conftest import assert_user_error, gradlearn


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_help():
    result = gradlearn("resume", "--help")
    assert result.returncode == 0
    assert "DIR" in result.stdout and "checkpoint" in result.stdout


def test_resume_continues_an_interrupted_run_bit_for_bit(trained_run, tmp_path):
    folder, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    # make it look interrupted after epoch 1: drop the last checkpoint and the final weights
    (copy / "checkpoints" / "ckpt-0000000042.safetensors").unlink()
    (copy / "model.safetensors").unlink()
    result = gradlearn("resume", copy)
    assert result.returncode == 0, result.stderr
    assert "at epoch 2 of 2" in result.stdout
    assert "Epoch 2/2" in result.stdout and "Epoch 1/2" not in result.stdout
    assert "Test: loss" in result.stdout
    original, resumed = _weights(folder / "model.safetensors"), _weights(copy / "model.safetensors")
    assert original.keys() == resumed.keys()
    for key in original:
        np.testing.assert_array_equal(original[key], resumed[key], err_msg=key)
    with open(folder / "history.csv") as a, open(copy / "history.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["val_loss"] for r in rows_a] == [r["val_loss"] for r in rows_b]


def test_a_finished_run_has_nothing_to_resume(trained_run):
    folder, _ = trained_run
    result = gradlearn("resume", folder)
    assert result.returncode == 0
    assert "already finished" in result.stdout


def test_missing_or_foreign_folders(tmp_path):
    assert_user_error(gradlearn("resume", tmp_path / "nowhere"), "gradlearn resume: error:", "no run folder")
    assert_user_error(gradlearn("resume", tmp_path), "not a gradlearn run folder")


def test_no_checkpoint_to_resume(trained_run, tmp_path):
    folder, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "checkpoints")
    (copy / "model.safetensors").unlink()
    assert_user_error(gradlearn("resume", copy), "no checkpoint to resume from")
