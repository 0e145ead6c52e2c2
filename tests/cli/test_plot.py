"""``gradlearn plot``: re-draws a run's plots."""

import os

from .conftest import PLOTS, assert_user_error, gradlearn


def test_help():
    result = gradlearn("plot", "--help")
    assert result.returncode == 0
    assert "DIR" in result.stdout


def test_plot_redraws_every_plot(trained_run, tmp_path):
    import shutil

    folder, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    for png in PLOTS:
        (copy / png).unlink()
    result = gradlearn("plot", copy)
    assert result.returncode == 0, result.stderr
    for png in PLOTS:
        assert (copy / png).stat().st_size > 5000, png
        assert png in result.stdout
    assert set(PLOTS) <= set(os.listdir(copy))


def test_plot_errors(tmp_path):
    assert_user_error(gradlearn("plot", tmp_path / "nowhere"), "gradlearn plot: error:", "no run folder")
    (tmp_path / "file").write_text("x")
    assert_user_error(gradlearn("plot", tmp_path / "file"), "is not a folder")
