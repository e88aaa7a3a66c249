"""tune: a study of 6 trials on a tiny set, its best config trained as is, resume after SIGKILL, two processes on
one SQLite study, and the refusals (bad space, another study's setup)."""

import contextlib
import csv
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from filelock import FileLock, Timeout
from optuna.trial import TrialState

from classifier.train import train_classifier

from gan_aug.compare.config import CompareConfig
from gan_aug.config import build_config
from gan_aug.errors import UserError
from gan_aug.tune.config import TuneConfig
from gan_aug.tune.outputs import FINISHED
from gan_aug.tune.study import pruning_hook, taken

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"lr": {"low": "1e-3", "high": 1.0e-2, "log": True}, "weight_decay": {"low": 1.0e-6, "high": 1.0e-3},
         "ema_half_life": {"low": 0.0, "high": 1.0}, "balance": ["none", "oversample"]}


@pytest.fixture
def tune_yaml(toy16, tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({"data": str(toy16), "startup_trials": 2, "warmup_epochs": 1, "space": SPACE,
                                    "recipe": {"epochs": 2, "batch_size": 32, "threads": 1}}))
    return path


def study_of(out):
    return optuna.load_study(study_name="gan-aug-tune", storage=f"sqlite:///{out / 'study.db'}")


def study_created(out):
    """Whether tune has stamped the schema, read without writing: a poll that opened the study with Optuna
    before then would stamp it too, racing tune (which creates it under its study lock). Optuna writes
    version_info first and alembic_version last, so the poll waits for both (version_info alone let a poll in
    between, and its alembic stamp then failed on tune's: UNIQUE constraint failed)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True)) as connection:
            return all(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
                       for table in ("version_info", "alembic_version"))
    except sqlite3.Error:  # no file, or no table yet
        return False


def finished_trials(out):
    if not study_created(out):
        return []
    try:
        return study_of(out).get_trials(states=FINISHED)
    except KeyError:  # the tables are there, the study not yet
        return []


def finished(out):
    return {t.number: t.value for t in finished_trials(out)}


def pids_with_a_finished_trial(out):
    """tune records each trial's worker as host:pid."""
    return {int(t.user_attrs["worker"].rpartition(":")[2]) for t in finished_trials(out)}


def let_both_work(workers, out, timeout=300):
    """Six toy trials take seconds, so a worker that starts late (a loaded machine) can find them all done. Once
    one worker has finished a trial and the other none, pause the first (well inside tune's 60 s heartbeat
    grace) until the other has finished one too; then both share the rest as usual."""
    paused, deadline = None, time.time() + timeout
    try:
        while time.time() < deadline and all(w.poll() is None for w in workers):
            done = pids_with_a_finished_trial(out)
            ahead = [w for w in workers if w.pid in done]
            if paused is None and len(ahead) == 1:
                paused, deadline = ahead[0], min(deadline, time.time() + 45)
                paused.send_signal(signal.SIGSTOP)
            elif len(ahead) == 2:
                return
            time.sleep(0.1)
    finally:
        if paused is not None:
            paused.send_signal(signal.SIGCONT)


def tune_process(tune_yaml, out, trials=6, log=None):
    """log: a file for the output of a process nobody reads until it ends (a full pipe would stall it)."""
    with open(log, "w") if log else contextlib.nullcontext(subprocess.PIPE) as stdout:  # the child keeps its copy
        return subprocess.Popen([sys.executable, "-m", "gan_aug", "tune", "--config", str(tune_yaml), "--out",
                                 str(out), "--trials", str(trials)], cwd=ROOT, stdout=stdout,
                                stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_six_trials_and_the_best_config_trains_as_is(run_cli, tune_yaml, tmp_path):
    out = tmp_path / "tune"
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 6)
    assert result.exit_code == 0, result.output
    assert len(finished(out)) == 6
    assert (out / "history.png").stat().st_size > 1000 and (out / "trials.csv").is_file()
    best = study_of(out).best_trial
    settings = yaml.safe_load((out / "best.yaml").read_text())
    assert {k: settings[k] for k in best.params} == best.params and settings["epochs"] == 2
    trained = run_cli("train-classifier", "--config", out / "best.yaml", "--out", tmp_path / "best_run")
    assert trained.exit_code == 0, trained.output
    assert yaml.safe_load((tmp_path / "best_run" / "config.yaml").read_text())["lr"] == best.params["lr"]
    compare = build_config(CompareConfig, out / "best_compare.yaml", {"out": str(tmp_path / "cmp")})
    assert compare.arms == (best.params["balance"],) and compare.lr == best.params["lr"]
    again = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 6)  # nothing left to do
    assert again.exit_code == 0 and len(finished(out)) == 6


@pytest.mark.slow
def test_resumes_after_sigkill_without_losing_finished_trials(tune_yaml, tmp_path):
    """The first process asks for far more trials than it can finish before the kill, so the kill always lands
    mid-study however fast the machine; the resumed one asks for two more than were finished."""
    out = tmp_path / "tune"
    process = tune_process(tune_yaml, out, trials=1000, log=tmp_path / "killed.log")
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "study.db").exists() and len(finished(out)) >= 2):
        assert process.poll() is None, (tmp_path / "killed.log").read_text()
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = finished(out)
    assert len(before) >= 2, (tmp_path / "killed.log").read_text()
    resumed = tune_process(tune_yaml, out, trials=len(before) + 2)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    after = finished(out)
    assert len(after) == len(before) + 2 and all(after[n] == value for n, value in before.items()), \
        ([(t.number, t.state.name, t.user_attrs.get("worker")) for t in study_of(out).trials], output)


@pytest.mark.slow
def test_a_trial_whose_process_died_before_naming_itself_does_not_count(run_cli, tune_yaml, tmp_path):
    """A kill right after a finished trial can land between Optuna creating the next trial and tune writing its
    worker into it: a RUNNING trial no process will finish. Both happen under the study lock, so the next
    process to hold it knows at once that a nameless trial is dead."""
    out = tmp_path / "tune"
    assert run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 2).exit_code == 0
    study_of(out).ask()  # created and never named, as by a process killed at that moment
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 4)
    assert result.exit_code == 0, result.output
    assert len(finished(out)) == 4 and study_of(out).trials[2].state == TrialState.FAIL


@pytest.mark.slow
def test_trials_are_counted_and_asked_for_under_the_lock_and_trained_outside_it(run_cli, tune_yaml, tmp_path,
                                                                               monkeypatch):
    """The lock makes two processes take trials one at a time (never both the last one); a trial trains with it
    released, so they train side by side. Checked from another handle on the lock file, as another process
    would see it; a live trial of this process counts towards --trials."""
    out = tmp_path / "tune"
    held = []

    def lock_is_held():
        try:
            FileLock(str(out / ".study.lock")).acquire(timeout=0).lock.release()
        except Timeout:
            return True
        return False

    def counting(study):
        held.append(("count", lock_is_held()))
        return taken(study)

    def training(*args, **kwargs):
        held.append(("train", lock_is_held()))
        return train_classifier(*args, **kwargs)

    monkeypatch.setattr("gan_aug.tune.study.taken", counting)
    monkeypatch.setattr("gan_aug.tune.study.train_classifier", training)
    assert run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 2).exit_code == 0
    assert held.count(("train", False)) == 2 and {h for kind, h in held if kind == "count"} == {True}
    running = study_of(out).ask()
    running.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # alive: this process
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 3)
    assert result.exit_code == 0, result.output
    assert len(finished(out)) == 2 and held.count(("train", False)) == 2  # trial 2 takes the third place
    rows = {row["number"]: row["state"] for row in csv.DictReader(open(out / "trials.csv"))}
    assert rows["2"] == "running"


def dead_worker():
    """host:pid of a process that has exited (its pid not yet reused)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


@pytest.mark.slow
def test_a_trial_whose_process_was_killed_is_failed_not_left_running(run_cli, tune_yaml, tmp_path):
    """Before, a trial killed last stayed RUNNING for good (the heartbeat is only looked at when a trial starts)
    and the summary said 0 failed. Now the next tune fails it at once (its process is gone), counts it, and
    queues its parameters once more while the study still wants trials; the temp files its kill left go."""
    out = tmp_path / "tune"
    assert run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 2).exit_code == 0
    killed = study_of(out).ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)})
    killed.set_user_attr("worker", dead_worker())
    killed.set_user_attr("run", str(out / "trials" / "trial_0002"))
    (out / "trials" / "trial_0002").mkdir()
    (out / "trials" / "trial_0002" / ".latest.pt.x1y2.tmp").write_bytes(b"half")
    (out / ".trials.csv.a1b2.tmp").write_bytes(b"half")  # killed while it wrote the outputs
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 2)  # nothing left to run
    assert result.exit_code == 0 and "2 complete, 0 pruned, 1 failed trials" in result.output, result.output
    states = {t.number: t.state for t in study_of(out).trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE, 2: TrialState.FAIL}
    rows = {row["number"]: row["state"] for row in csv.DictReader(open(out / "trials.csv"))}
    assert rows["2"] == "fail"
    assert not list(out.rglob("*.tmp"))

    again = study_of(out).ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)})
    again.set_user_attr("worker", dead_worker())
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 3)
    assert result.exit_code == 0 and "2 failed trials" in result.output, result.output
    trials = study_of(out).trials
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == again.number]
    assert len(retry) == 1 and retry[0].state in FINISHED and retry[0].params["lr"] == again.params["lr"]
    assert retry[0].user_attrs["worker"] != again.user_attrs["worker"]


def test_study_files_that_are_no_study_are_refused_in_one_line(toy16, tune_yaml, tmp_path, run_cli):
    import sqlite3

    out = tmp_path / "tune"
    out.mkdir()
    other = out / "study.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (x TEXT)")
    before = other.read_bytes()
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 1)
    assert result.exit_code == 1 and "another program's database (tables notes)" in result.output, result.output
    assert other.read_bytes() == before  # Optuna never wrote its tables into it
    for content, message in ((b"not a database at all", "is not a SQLite database"),
                             (before[:100] + b"\0" * 5000, "study.db is")):
        other.write_bytes(content)
        result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 1)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, \
            result.output


def test_an_infinite_bound_is_refused_before_the_study_stores_it(toy16, tmp_path):
    """Before, step: .inf passed the check, was stored as the study's setup, and every trial failed deep in
    Optuna: the study refused any other space until its file was deleted by hand."""
    for space, what in (({"epochs": {"low": 1, "high": float("inf")}}, "high"),
                        ({"lr": {"low": 1e-3, "high": 1e-2, "step": float("inf")}}, "step"),
                        ({"lr": {"low": float("-inf"), "high": 1e-2}}, "low")):
        with pytest.raises(UserError, match=f"{what} must be a finite number"):
            build_config(TuneConfig, None, {"data": str(toy16), "out": str(tmp_path), "space": space})


@pytest.mark.slow  # trains a study or a classifier of its own: the quick tier stays under 2 minutes
def test_best_yaml_tune_did_not_write_is_kept_without_force(toy16, tune_yaml, tmp_path, run_cli):
    out = tmp_path / "tune"
    out.mkdir()
    (out / "best.yaml").write_text("lr: 0.1\n")
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 1)
    assert result.exit_code == 1 and "holds best.yaml that tune did not write" in result.output, result.output
    assert os.listdir(out) == ["best.yaml"] and (out / "best.yaml").read_text() == "lr: 0.1\n"
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 1, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "best.yaml").read_text().startswith("# gan-aug tune: trial 0")
    result = run_cli("tune", "--config", tune_yaml, "--out", out, "--trials", 1)  # its own best.yaml: replaced
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_two_processes_finish_six_trials_between_them(tune_yaml, tmp_path):
    out = tmp_path / "tune"
    workers = [tune_process(tune_yaml, out) for _ in range(2)]
    let_both_work(workers, out)
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, output
    trials = study_of(out).get_trials(states=FINISHED)
    assert len(trials) == 6
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both did some of the work


def test_refusals(toy16, tune_yaml, tmp_path):
    for space, message in (({"seed": [0, 1]}, "not a tunable"), ({"lr": {"low": 1}}, "takes"),
                           ({"epochs": {"low": 1.5, "high": 3}}, "must be whole"),
                           ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "low > 0"),
                           ({"mix": {"low": 0.1, "high": 0.5}}, "needs --synthetic")):
        with pytest.raises(UserError, match=message):
            build_config(TuneConfig, None, {"data": str(toy16), "out": str(tmp_path), "space": space})
    with pytest.raises(UserError, match="both searched"):
        build_config(TuneConfig, tune_yaml, {"out": str(tmp_path)}, ["recipe={lr: 0.01}"])
    out = tmp_path / "tune"
    build = lambda changes: build_config(TuneConfig, tune_yaml, {"out": str(out), "trials": 1}, changes)
    from gan_aug.tune.study import tune
    tune(build([]), progress=False)
    with pytest.raises(UserError, match="searches another space"):
        tune(build(["space={lr: {low: 0.001, high: 0.002}}"]), progress=False)


def test_the_pruning_hook_reports_each_epoch_and_stops_a_pruned_trial():
    class Trial:
        reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    hook = pruning_hook(Trial())
    hook({"epoch": 1, "val_bma": 0.5})
    with pytest.raises(optuna.TrialPruned, match="under the median"):
        hook({"epoch": 2, "val_bma": 0.4})
    assert Trial.reports == [(1, 0.5), (2, 0.4)]
