"""``gradlearn summary`` (more in tests/diagnostics/test_summary.py)."""

from .conftest import assert_user_error, gradlearn


def test_help():
    result = gradlearn("summary", "--help")
    assert result.returncode == 0
    assert "--input-shape" in result.stdout and "lenet5" in result.stdout


def test_unknown_model():
    assert_user_error(gradlearn("summary", "nonet"), "invalid choice", code=2)
