"""`gan-aug tune`: an Optuna study over the classifier recipe, in a database, so it resumes after a kill and
several processes (or machines, with a PostgreSQL URL) work on one study.

Each trial is one train-classifier run into OUT/trials/trial_NNNN, scored by its best val BMA (never test,
protocol rule 3). TPE proposes; the median rule prunes a trial whose val BMA after an epoch is below the
median of earlier trials at that epoch. The hook that reports each epoch is handed to the trainer, so
classifier/ never imports Optuna.
"""

import contextlib
import copy
import datetime
import logging
import os
import socket
import sqlite3
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import TrialState

from classifier.train import train_classifier
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import load_synthetic
from gan_aug.config import brief
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import locked, remove_temp_files
from gan_aug.tune.outputs import FINISHED, OUTPUTS, SURPLUS, check_outputs, is_surplus, write_outputs
from gan_aug.tune.space import parse_space

# A process that dies mid-trial stops beating; GRACE_S later the next process to start a trial marks that trial
# failed and queues its parameters once more, so a kill costs the interrupted trial only.
HEARTBEAT_S, GRACE_S = 10, 60
# A trial is named (its worker written) milliseconds after it is created. One still nameless a heartbeat grace
# after its start is taken for dead; a process merely stopped (SIGSTOP, a swapped-out VM) is given as long as
# the heartbeat gives it.
NAMING_S = GRACE_S
WORKER = f"{socket.gethostname()}:{os.getpid()}"
OPTUNA_TABLES = {"studies", "version_info"}


class Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead trial (its parameters queued once more), without the dead trial's user attrs:
    its worker's name would make the retry look dead too in the moment before its new process names it."""

    def __call__(self, study, trial):
        trial = copy.deepcopy(trial)
        trial.user_attrs = {}
        super().__call__(study, trial)


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
    kwargs = {}
    if config.storage_url.startswith("sqlite:"):
        Path(config.out).mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 300}}  # processes sharing the file wait for its lock, not fail
    for attempt in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
            try:
                return RDBStorage(config.storage_url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                                  grace_period=GRACE_S, heartbeat_stale_trial_callback=Retry(1))
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as err:  # two processes
                # creating the tables at once (a locked file, or both inserting the schema version): the loser retries
                if attempt == 2:
                    raise UserError(f"cannot open the study storage {config.storage_url}: {first_line(err)}") from None
                time.sleep(1)
            except (ImportError, ValueError, sqlalchemy.exc.ArgumentError, sqlalchemy.exc.DatabaseError,
                    optuna.exceptions.StorageInternalError) as err:
                raise UserError(f"cannot open the study storage {config.storage_url}: {err}") from None


@contextlib.contextmanager
def creation_lock(config):
    """Processes on one SQLite file create its tables and the study one after another (an flock beside it): at
    the same moment, both insert the schema version and one fails. Other databases handle it themselves."""
    if not config.storage_url.startswith("sqlite:"):
        yield
        return
    with locked(Path(config.out) / ".study.lock"):
        yield


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


def reap(study, trials):
    """Fail the running trials whose process is gone, as the heartbeat would GRACE_S later, and queue their
    parameters once more while the study still wants trials. The heartbeat is only looked at when a trial starts,
    so a trial killed last would otherwise stay running for good, and out of the failed count."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if alive(study, trial):
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
                Retry(1)(study, study._storage.get_trial(trial._trial_id))


def finished(study):
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def named(study, trial):
    """The running trial with its worker, waiting for a process that has just asked for it to write its name
    (milliseconds). None when it stays nameless for NAMING_S after its start: its process died in between, e.g.
    killed the moment it had finished the trial before."""
    while "worker" not in trial.user_attrs:
        if datetime.datetime.now() - trial.datetime_start > datetime.timedelta(seconds=NAMING_S):
            return None
        time.sleep(0.5)
        trial = study.get_trials(deepcopy=False)[trial.number]
    return trial


def alive(study, trial):
    """Whether a running trial's process lives. Only this host's processes can be asked; a dead one elsewhere
    is found by its stopped heartbeat."""
    trial = named(study, trial)
    if trial is None:
        return False
    host, _, pid = trial.user_attrs["worker"].rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def counted(study, trials):
    """How many of these trials count towards --trials: the finished ones and those a live process is running."""
    return sum(t.state in FINISHED or (t.state == TrialState.RUNNING and alive(study, t)) for t in trials)


def taken(study):
    """What counts towards --trials in the whole study, so processes sharing it stop at the number asked for
    instead of each finishing one more."""
    return counted(study, study.get_trials(deepcopy=False))


class SurplusTrial(Exception):
    """A trial created after --trials were already taken: two processes passed stop_at's check at the same moment
    and both asked for one. The higher-numbered one gives way without running (state FAIL, user attr surplus)."""


def surplus(study, trial, trials):
    """Whether the trials numbered below this one already make up --trials. Every process applies the same rule
    to the same numbers, so of two trials asked for at once exactly the later one gives way."""
    return counted(study, [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]) >= trials


@contextlib.contextmanager
def quiet_surplus(numbers):
    """Optuna logs a caught failure with its traceback; a surplus trial is no failure, so its lines are dropped."""
    logger = logging.getLogger("optuna.study._optimize")
    drop = lambda record: not any(record.getMessage().startswith(f"Trial {n} failed") for n in numbers)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def stop_at(trials):
    def callback(study, _trial):
        if taken(study) >= trials:
            study.stop()
    return callback


def print_trial(study, trial):
    if is_surplus(trial):
        print(f"trial {trial.number} not run: another process took the last of the trials asked for", flush=True)
        return
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    print(f"trial {trial.number} {trial.state.name.lower()}: val BMA {value} ({params}); "
          f"{finished(study)} finished", flush=True)


def tune(config, progress=True):
    """Run trials until the study holds config.trials finished ones; write best.yaml and plots. The summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_outputs(config)
    prepared = load_prepared(config.data)
    synthetic = load_synthetic(config.recipe["synthetic"]) if config.recipe.get("synthetic") else None
    params = parse_space(config.space)
    setup = {"data": prepared.fingerprint, "recipe": config.recipe, "space": config.space, "seed": config.seed}
    with creation_lock(config):
        check_study_file(config.storage_url)
        study = load_study(config, open_storage(config), setup)
    reap(study, config.trials)

    surplus_numbers = set()

    def objective(trial):
        trial.set_user_attr("worker", WORKER)
        if surplus(study, trial, config.trials):
            trial.set_user_attr(SURPLUS, True)
            surplus_numbers.add(trial.number)
            raise SurplusTrial(f"trial {trial.number}")
        draws = {param.name: param.suggest(trial) for param in params}
        run = Path(config.out) / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("run", str(run))
        summary = train_classifier(config.classifier_config(run, draws), progress=False, prepared=prepared,
                                   synthetic=synthetic, on_epoch=pruning_hook(trial))
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        return summary["best_val_bma"]

    remaining = config.trials - taken(study)
    if remaining > 0:
        # A setting combination the classifier refuses fails its trial (UserError) and the search goes on.
        with quiet_surplus(surplus_numbers):
            study.optimize(objective, n_trials=remaining, catch=(UserError, SurplusTrial),
                           callbacks=[stop_at(config.trials)] + ([print_trial] if progress else []))
    reap(study, 0)  # a process that died while this one worked: its trial is failed, not left running
    with locked(Path(config.out) / ".outputs.lock"):  # processes sharing OUT write its files one at a time
        remove_temp_files(config.out, OUTPUTS)  # of a process killed while it wrote them (no one writes them now)
        return write_outputs(config, study)

