"""The command surface: every planned command is listed; unbuilt ones refuse to pretend."""

import pytest

from gan_aug.cli import PLANNED

ALL_COMMANDS = ["prepare", "info", "train-gan", "synthesize", "score", "train-classifier", "evaluate",
                "explain", "compare", "demo"]


def test_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ALL_COMMANDS:
        assert f"  {command} " in result.output, command


@pytest.mark.parametrize("command", sorted(PLANNED))
def test_unbuilt_commands_exit_nonzero(run_cli, command):
    result = run_cli(command, "--class", "mel", "-n", "5")
    assert result.exit_code != 0
    assert "not implemented yet" in result.output


def test_prepare_help_has_an_example(run_cli):
    result = run_cli("prepare", "--help")
    assert result.exit_code == 0 and "gan-aug prepare --source ham10000" in result.output
