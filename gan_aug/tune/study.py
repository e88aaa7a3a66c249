"""`gan-aug tune`: an Optuna study over the classifier recipe, in a database, so it resumes after a kill and
several processes (or machines, with a PostgreSQL URL) work on one study.

Each trial is one train-classifier run into OUT/trials/trial_NNNN, scored by its best val BMA (never test,
protocol rule 3). TPE proposes; the median rule prunes a trial whose val BMA after an epoch is below the
median of earlier trials at that epoch. The hook that reports each epoch is handed to the trainer, so
classifier/ never imports Optuna.
"""

import contextlib
import os
import socket
import sqlite3
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import TrialState

from classifier.train import train_classifier
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import load_synthetic
from gan_aug.config import brief
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import remove_temp_files
from gan_aug.tune.outputs import FINISHED, OUTPUTS, check_outputs, write_outputs
from gan_aug.tune.space import parse_space

# A process that dies mid-trial stops beating; GRACE_S later the next process to start a trial marks that trial
# failed and queues its parameters once more, so a kill costs the interrupted trial only. A dead process on this
# host is found at once (reap).
HEARTBEAT_S, GRACE_S = 10, 60
WORKER = f"{socket.gethostname()}:{os.getpid()}"
OPTUNA_TABLES = {"studies", "version_info"}


def check_study_file(url):
    """Refuse, before Optuna opens it, a study file that is not an Optuna SQLite database: a damaged or foreign
    one fails deep in SQLAlchemy with a traceback, and another program's database would get Optuna's tables."""
    if not url.startswith("sqlite:"):
        return
    database = sqlalchemy.engine.make_url(url).database
    path = Path(database) if database and database != ":memory:" else None
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise UserError(f"{path} is a folder, where the study database is to be: give another --out or --storage")
    with open(path, "rb") as handle:
        header = handle.read(16)
    if not header:
        return  # SQLite takes an empty file for an empty database: Optuna creates its tables in it
    if header != b"SQLite format 3\x00":
        raise UserError(f"{path} is not a SQLite database, so no study: move it away, or give another --out or "
                        "--storage")
    try:  # read-write: a killed tune leaves a hot journal, which SQLite rolls back on the first read
        with contextlib.closing(sqlite3.connect(path, timeout=300)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as err:
        raise UserError(f"{path} is not a readable study database ({first_line(err)}): move it away, or give "
                        "another --out or --storage") from None
    if check != "ok":
        raise UserError(f"{path} is damaged ({brief(check)}): move it away, or give another --out or --storage")
    if tables and not OPTUNA_TABLES <= tables:
        raise UserError(f"{path} is another program's database (tables {', '.join(sorted(tables)[:5])}), not an "
                        "Optuna study: give another --out or --storage")


def open_storage(config):
    """Opened under the study lock: two processes creating the tables at once both insert the schema version."""
    # Processes sharing a SQLite file wait for its lock rather than fail.
    kwargs = {"connect_args": {"timeout": 300}} if config.storage_url.startswith("sqlite:") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
        try:
            return RDBStorage(config.storage_url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                              grace_period=GRACE_S, heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(1))
        except (ImportError, ValueError, sqlalchemy.exc.ArgumentError, sqlalchemy.exc.DatabaseError,
                optuna.exceptions.StorageInternalError) as err:
            raise UserError(f"cannot open the study storage {config.storage_url}: {first_line(err)}") from None


def study_lock(config):
    """The lock processes sharing OUT take to create the study, and then, one at a time, to count the trials
    taken, ask for the next and write its worker into it: so two never both take the last trial, and a running
    trial without a worker is one whose process died. An flock, which the system releases when its holder dies.
    Machines that share a PostgreSQL study but not OUT can each run one trial beyond --trials."""
    Path(config.out).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(config.out) / ".study.lock"))


def load_study(config, storage, setup):
    """The study, created on first use; refused when it searches another space, recipe or data set."""
    study = optuna.create_study(storage=storage, study_name=config.study, direction="maximize", load_if_exists=True)
    if study.direction != StudyDirection.MAXIMIZE:
        raise UserError(f"study '{config.study}' minimizes: tune maximizes val BMA; give another --study")
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", setup)
    elif stored != setup:
        raise UserError(f"study '{config.study}' in {config.storage_url} searches another space, recipe or prepared "
                        "set: give another --study or --out")
    # Re-seeded by the trials already there: a resumed or joining process draws afresh instead of repeating.
    sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials), n_startup_trials=config.startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=config.startup_trials, n_warmup_steps=config.warmup_epochs)
    return optuna.load_study(study_name=config.study, storage=storage, sampler=sampler, pruner=pruner)


def pruning_hook(trial):
    """train_classifier's on_epoch: report the epoch's val BMA, stop the run when the median rule says so."""
    def report(row):
        trial.report(row["val_bma"], row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"val BMA {row['val_bma']:.4f} at epoch {row['epoch']} is under the median")
    return report


def alive(trial):
    """Whether a running trial's process lives; asked under the study lock, where every live trial has its worker
    written (a nameless one was asked for by a process killed before it could name it). Only this host's
    processes can be asked; a dead one elsewhere is found by its stopped heartbeat."""
    host, _, pid = trial.user_attrs.get("worker", "").rpartition(":")
    if not pid:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def taken(study):
    """What counts towards --trials: the finished trials and those a live process is running."""
    return sum(t.state in FINISHED or (t.state == TrialState.RUNNING and alive(t))
               for t in study.get_trials(deepcopy=False))


def reap(study, trials):
    """Fail the running trials whose process is gone, as the heartbeat would GRACE_S later, and queue their
    parameters once more while the study still wants trials. The heartbeat is only looked at when a trial starts,
    so a trial killed last would otherwise stay running for good, and out of the failed count."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if alive(trial):
            continue
        try:  # the storage's own call, as optuna.storages.fail_stale_trials makes it: one process wins
            if not study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if trial.user_attrs.get("run") and Path(trial.user_attrs["run"]).is_dir():
            remove_temp_files(trial.user_attrs["run"])  # what its kill left half-written: no one writes there now
        if taken(study) < trials:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # stable since 2.8
                RetryHeartbeatStaleTrialCallback(1)(study, study._storage.get_trial(trial._trial_id))


def print_trial(study, trial):
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    print(f"trial {trial.number} {trial.state.name.lower()}: val BMA {value} ({params}); "
          f"{len(study.get_trials(deepcopy=False, states=FINISHED))} finished", flush=True)


def tune(config, progress=True):
    """Run trials until the study holds config.trials finished ones; write best.yaml and plots. The summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_outputs(config)
    prepared = load_prepared(config.data)
    synthetic = load_synthetic(config.recipe["synthetic"]) if config.recipe.get("synthetic") else None
    params = parse_space(config.space)
    setup = {"data": prepared.fingerprint, "recipe": config.recipe, "space": config.space, "seed": config.seed}
    lock = study_lock(config)
    with lock:
        check_study_file(config.storage_url)
        study = load_study(config, open_storage(config), setup)
        # Trials of dead processes do not count (taken asks alive); the loop reaps them before asking for more.
        attempts = config.trials - taken(study)  # failed trials included, so a recipe that always fails ends

    def objective(trial):
        trial.set_user_attr("worker", WORKER)
        lock.release()  # named: the others may count it now, and ask for theirs
        draws = {param.name: param.suggest(trial) for param in params}
        run = Path(config.out) / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("run", str(run))
        summary = train_classifier(config.classifier_config(run, draws), progress=False, prepared=prepared,
                                   synthetic=synthetic, on_epoch=pruning_hook(trial))
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        return summary["best_val_bma"]

    for _ in range(attempts):
        lock.acquire()
        try:
            reap(study, config.trials)
            if taken(study) >= config.trials:
                break
            # A setting combination the classifier refuses fails its trial (UserError) and the search goes on.
            study.optimize(objective, n_trials=1, catch=(UserError,), callbacks=[print_trial] if progress else [])
        finally:
            if lock.is_locked:  # the trial was never asked for, or the loop ends
                lock.release()
    with lock:  # processes sharing OUT write its files one at a time
        reap(study, 0)  # a process that died while this one worked: its trial is failed, not left running
        remove_temp_files(config.out, OUTPUTS)  # of a process killed while it wrote them (no one writes them now)
        return write_outputs(config, study)
