"""The command surface: every command is listed and documents an example."""

import pytest

from gan_aug.cli import cli

ALL_COMMANDS = ["prepare", "info", "export", "import-synthetic", "train-gan", "train-diffusion", "synthesize", "score",
                "train-classifier", "evaluate", "explain", "compare", "bundle", "rescore", "tune", "demo", "serve",
                "audit", "analyze"]


def test_the_list_is_the_group_s_commands():
    # a new command must join ALL_COMMANDS (and so these tests and README's table, tests/test_docs.py)
    assert sorted(cli.commands) == sorted(ALL_COMMANDS)


def test_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ALL_COMMANDS:
        assert f"  {command} " in result.output, command


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_every_command_documents_an_example(run_cli, command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0 and "gan-aug " + command in result.output
    # an example continued with a bare backslash in the docstring is joined by Python into one line with a gap
    examples = [line for line in result.output.splitlines() if line.strip().startswith("gan-aug ")]
    assert not [line for line in examples if "   " in line.strip()], examples


def test_prepare_help_has_an_example(run_cli):
    result = run_cli("prepare", "--help")
    assert result.exit_code == 0 and "gan-aug prepare --source ham10000" in result.output
