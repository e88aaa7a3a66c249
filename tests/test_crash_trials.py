"""tools/crash_trials.py, small: two SIGKILLs of train-classifier (one inside a write, one at a random time), each
resumed to the uninterrupted run's final state; and the checks it relies on catch what they are there for."""

import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

from crash_commands import COMMANDS, Torn  # noqa: E402
from crash_trials import leftovers  # noqa: E402

pytestmark = pytest.mark.slow  # commands run as subprocesses and SIGKILLed


def test_two_kills_of_train_classifier_resume_to_the_uninterrupted_run(tmp_path):
    result = subprocess.run([sys.executable, str(TOOLS / "crash_trials.py"), "--trials", "2", "--commands",
                             "train-classifier", "--seed", "3", "--work", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    row = [line for line in result.stdout.splitlines() if line.startswith("train-classifier")][0].split()
    assert row[1:5] == ["2", "2", "2", "0"], result.stdout  # trials, killed, finished, torn reads


def test_the_checks_see_a_torn_checkpoint_a_torn_stats_row_and_leftovers(toy16, tmp_path):
    from classifier.config import ClassifierConfig
    from classifier.train import train_classifier
    from gan_aug.config import build_config

    out = tmp_path / "out"
    train_classifier(build_config(ClassifierConfig, None, {"data": str(toy16), "out": str(out), "epochs": 1}),
                     progress=False)
    command = COMMANDS["train-classifier"]({"data": toy16})
    assert command.inspect(out) == (1, 1)
    with open(out / "history.jsonl", "a") as handle:
        handle.write('{"step": 2, "loss"')
    with pytest.raises(Torn, match="history.jsonl ends in a cut row"):
        command.inspect(out)
    (out / "latest.pt").write_bytes((out / "latest.pt").read_bytes()[:1000])
    with pytest.raises(Torn, match="latest.pt"):
        command.inspect(out)
    (out / ".best.pt.x1y2.tmp").write_bytes(b"")
    assert leftovers(tmp_path) == ["out/.best.pt.x1y2.tmp"]


def test_the_export_check_sees_a_receipt_beside_other_data(toy16, tmp_path, run_cli):
    old, out = tmp_path / "old", tmp_path / "out"
    for folder, split in ((old, "val"), (out, "train")):
        assert run_cli("export", "--data", toy16, "--split", split, "--out", folder / "train.zip").exit_code == 0
    command = COMMANDS["export"]({"data": toy16, "old_export": old})
    command.inputs["reference"] = command.final(out)
    assert command.inspect(out) == (1, 1)
    (out / "train.zip").write_bytes((old / "train.zip").read_bytes())  # the old zip beside the new receipt
    with pytest.raises(Torn, match="describes data that is not beside it"):
        command.inspect(out)
    (out / "train.receipt.json").unlink()
    assert command.inspect(out) == (1, 0)  # the old zip, its receipt gone: an export not yet done
    (out / "train.zip").write_bytes((out / "train.zip").read_bytes()[:5000])
    with pytest.raises(Torn, match="train.zip"):
        command.inspect(out)


def test_two_kills_of_tune_leave_five_finished_trials_and_none_running(tmp_path):
    result = subprocess.run([sys.executable, str(TOOLS / "crash_trials.py"), "--trials", "2", "--commands", "tune",
                             "--seed", "1", "--work", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    row = [line for line in result.stdout.splitlines() if line.startswith("tune")][0].split()
    assert row[3:5] == ["2", "0"], result.stdout  # finished, torn reads


def test_the_tune_checks_see_a_trial_left_running_and_a_failed_one_not_retried(toy16, tmp_path, run_cli):
    import optuna

    command = COMMANDS["tune"]({"data": toy16})
    out = tmp_path / "out"
    assert run_cli(*command.args(out)[:-1], 2).exit_code == 0
    state = command.final(out)
    assert state["finished trials"] == 2 and state["left running or waiting"] == 0
    assert state["trials.csv is the study"] and state["best.yaml is the best trial's"]
    study = optuna.load_study(study_name="gan-aug-tune", storage=f"sqlite:///{out / 'study.db'}")
    study.ask()
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    assert command.inspect(out) == (3, 2)  # one trial started and not finished: what a kill may cost
    state = command.final(out)
    assert state["left running or waiting"] == 1 and state["failed trials not retried"] == [3]
    assert not state["trials.csv is the study"]
