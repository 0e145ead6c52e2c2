"""``gradlearn --help`` and ``--version``."""

from gradlearn import __version__

from .conftest import gradlearn

COMMANDS = ("train", "resume", "evaluate", "predict", "plot", "summary", "gradcheck", "sanity", "lr-find", "profile")


def test_help_lists_every_subcommand_with_a_line_of_help():
    result = gradlearn("--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for command in COMMANDS:
        listed = [i for i, line in enumerate(lines) if line.strip().startswith(command + " ") or line.strip() == command]
        assert listed, f"{command} missing from --help:\n{result.stdout}"
        i = listed[0]
        rest = lines[i].strip()[len(command):].strip() or lines[i + 1].strip()
        assert len(rest) > 10, f"{command} has no one-line help"


def test_version():
    result = gradlearn("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gradlearn {__version__}"


def test_unknown_subcommand_is_an_argparse_error():
    result = gradlearn("trian")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "train" in result.stderr
    assert "Traceback" not in result.stderr
