"""``gradlearn evaluate``: the test loss and accuracy of a run folder."""

import re

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("evaluate", "--help")
    assert result.returncode == 0
    assert "--data" in result.stdout and "DIR" in result.stdout


def test_evaluate_matches_the_end_of_training(trained_run):
    folder, train = trained_run
    result = gradlearn("evaluate", folder)
    assert result.returncode == 0, result.stderr
    found = re.search(r"loss (\d+\.\d+), accuracy (\d+\.\d+)%", result.stdout)
    trained = re.search(r"Test: loss (\d+\.\d+), accuracy (\d+\.\d+)%", train.stdout)
    assert found and trained, (result.stdout, train.stdout)
    assert found.groups() == trained.groups()
    assert "359 examples" in result.stdout
    assert float(found.group(2)) > 50  # two epochs on digits: far above chance (10%)


def test_evaluate_on_another_data_set_of_a_different_shape(trained_run):
    folder, _ = trained_run
    result = gradlearn("evaluate", folder, "--data", "moons")
    assert_user_error(result, "gradlearn evaluate: error:", "moons")


def test_errors(trained_run, tmp_path):
    folder, _ = trained_run
    assert_user_error(gradlearn("evaluate", tmp_path / "nowhere"), "no run folder")
    assert_user_error(gradlearn("evaluate", folder, "--data", "nosuch"), "unknown data set 'nosuch'")
