"""Whether Optuna's own primitives could replace tune's concurrency layer (issue #42): the two behaviours tune's
tests pin, run with MaxTrialsCallback, RDB heartbeats and RetryFailedTrialCallback alone, on a toy objective.

    python tools/optuna_primitives_check.py

  two workers   two processes share one SQLite study and stop with MaxTrialsCallback(6): trials finished
  kill+resume   a process is SIGKILLed mid-trial, another resumes to 6 trials (heartbeat 10 s, grace 60 s, as
                tune): the killed trial's final state, and the finished count, counting RUNNING trials or not

tune itself finishes exactly 6 in both (tests/test_tune.py): it counts and asks under a file lock. Re-run this when
Optuna changes: the day these print 6 and FAIL, that lock can go.
"""

import argparse
import warnings
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

STUDY = "check"


def worker(database, trials, count_running, seconds):
    """One process's study.optimize, stopped by MaxTrialsCallback only."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{database}", engine_kwargs={"connect_args": {"timeout": 300}},
                                         heartbeat_interval=10, grace_period=60,
                                         failed_trial_callback=optuna.storages.RetryFailedTrialCallback(1))
    study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True)
    states = (TrialState.COMPLETE, TrialState.RUNNING) if count_running else (TrialState.COMPLETE,)

    def objective(trial):
        time.sleep(seconds)
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(trials, states=states)])


def spawn(database, trials, count_running=False, seconds=1.0):
    return subprocess.Popen([sys.executable, __file__, "--worker", str(database), str(trials), str(int(count_running)),
                             str(seconds)])


def states(database):
    return [t.state.name for t in optuna.load_study(study_name=STUDY, storage=f"sqlite:///{database}").trials]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # heartbeats and the retry callback are marked experimental
    if args.worker:
        database, trials, count_running, seconds = args.worker
        return worker(database, int(trials), bool(int(count_running)), float(seconds))
    with tempfile.TemporaryDirectory() as folder:
        for run in range(3):
            database = Path(folder) / f"two{run}.db"
            optuna.create_study(study_name=STUDY, storage=f"sqlite:///{database}")
            workers = [spawn(database, 6) for _ in range(2)]
            for process in workers:
                process.wait()
            print(f"two workers, run {run + 1}: {states(database).count('COMPLETE')} trials finished of 6")
        for count_running in (False, True):
            database = Path(folder) / f"kill{int(count_running)}.db"
            optuna.create_study(study_name=STUDY, storage=f"sqlite:///{database}")
            killed = spawn(database, 1000, count_running)
            time.sleep(6)  # two trials of 1 s done after start-up, the third running
            killed.kill()
            killed.wait()
            spawn(database, 6, count_running).wait()
            print(f"kill+resume, counting RUNNING={count_running}: {states(database)}")


if __name__ == "__main__":
    main()
