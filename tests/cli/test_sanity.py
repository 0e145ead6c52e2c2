"""``gradlearn sanity``: overfit a small batch; exit status 0 on pass, 1 on fail."""

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("sanity", "--help")
    assert result.returncode == 0
    assert "--samples" in result.stdout and "--steps" in result.stdout


def test_passes_on_digits():
    result = gradlearn("sanity", "--data", "digits", "--model", "convnet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sanity check passed" in result.stdout
    assert "training error 0.0%" in result.stdout


def test_fails_with_a_tiny_learning_rate_and_says_why():
    result = gradlearn("sanity", "--data", "digits", "--model", "convnet", "--lr", "1e-7", "--steps", "20")
    assert result.returncode == 1, result.stdout
    assert "FAILED" in result.stdout and "learning rate is too low" in result.stdout
    assert "Traceback" not in result.stderr


def test_errors():
    assert_user_error(gradlearn("sanity", "--data", "digits", "--model", "nonet"), "unknown model 'nonet'")
