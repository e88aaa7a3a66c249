"""What `gan-aug tune` leaves in OUT: best.yaml (train-classifier takes it as is), best_compare.yaml (compare
takes it as is: the tuned recipe and the tuned arm), trials.csv, and the optimisation-history and
parameter-importance plots (Optuna's matplotlib backend)."""

import csv
import warnings
from pathlib import Path

import yaml
from optuna.trial import TrialState

from gan_aug.compare.arms import arm_of
from gan_aug.compare.config import RECIPE_KEYS
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEADER = "# gan-aug tune: "  # the first line of the YAML files tune writes
OUTPUTS = ("best.yaml", "best_compare.yaml", "trials.csv", "history.png", "importance.png")
# train-classifier keys that compare expresses by its arm (or passes through as they are), not as recipe keys.
ARM_KEYS = ("balance", "mix", "mix_until", "mix_policy", "seed")
PASSED_TO_COMPARE = ("data", "synthetic", "teachers")


def write_yaml(path, header, mapping):
    with atomic_write(path, "w") as handle:
        handle.write("".join(f"# {line}\n" for line in header))
        yaml.safe_dump(mapping, handle, sort_keys=False)


def check_outputs(config):
    """Refuse, before any trial, to write over files tune did not write: any of its outputs in a folder that holds
    no study of tune's (study.db or trials/), or a best.yaml or best_compare.yaml without tune's first line."""
    out = Path(config.out)
    if config.force or not out.is_dir():
        return
    from gan_aug.tune.config import STORAGE_FILE

    ours = (out / STORAGE_FILE).is_file() or (out / "trials").is_dir()
    theirs = [name for name in OUTPUTS if (out / name).exists() and (
        not ours or (name.endswith(".yaml") and not _starts_with(out / name, HEADER)))]
    if theirs:
        raise UserError(f"{out} holds {', '.join(theirs)} that tune did not write: give another --out, or --force "
                        "to write over them")


def _starts_with(path, text):
    try:
        with open(path, "rb") as handle:
            return handle.read(len(text)) == text.encode()
    except OSError:
        return False


def compare_config(settings):
    """(compare's config for the tuned settings, the keys compare has no place for)."""
    config = {k: settings[k] for k in PASSED_TO_COMPARE if settings.get(k)}
    config.update({k: v for k, v in settings.items() if k in RECIPE_KEYS})
    config["arms"] = [arm_of(settings)]
    dropped = sorted(set(settings) - set(config) - set(ARM_KEYS) - set(PASSED_TO_COMPARE))
    return config, dropped


def write_trials_csv(path, study, names):
    columns = ["number", "state", "val_bma", "best_epoch", "seconds", "run", "worker"] + names
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for t in study.get_trials(deepcopy=False):
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            writer.writerow({"number": t.number, "state": t.state.name.lower(), "val_bma": t.value,
                             "best_epoch": t.user_attrs.get("best_epoch", ""), "seconds": seconds,
                             "run": t.user_attrs.get("run", ""), "worker": t.user_attrs.get("worker", ""),
                             **{n: t.params.get(n, "") for n in names}})


def save_plots(study, out):
    """history.png always; importance.png when the trials allow it. Returns {name: path or why not}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    plots = {"history.png": lambda: optuna_plots.plot_optimization_history(study, target_name="val BMA"),
             "importance.png": lambda: optuna_plots.plot_param_importances(
                 study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target_name="val BMA")}
    written = {}
    for name, draw in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = draw()
            except (ValueError, RuntimeError) as err:  # e.g. importances need two complete trials
                written[name] = f"not drawn: {err}"
                continue
        figure = axes.figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        with atomic_write(out / name) as handle:
            figure.savefig(handle, format="png", dpi=110)
        plt.close(figure)
        written[name] = str(out / name)
    return written


def write_outputs(config, study):
    out = Path(config.out)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    names = sorted({n for t in trials for n in t.params})
    write_trials_csv(out / "trials.csv", study, names)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    summary = {"trials": len(trials), "complete": len(complete),
               "pruned": sum(t.state == TrialState.PRUNED for t in trials), "failed": len(failed),
               "running": sum(t.state == TrialState.RUNNING for t in trials),  # by live processes (tune.study.reap)
               "files": [str(out / "trials.csv")]}
    if not complete:
        raise UserError(f"no trial of study '{config.study}' completed (see {out / 'trials.csv'})")
    best = study.best_trial
    settings = config.settings(best.params)
    header = [f"{HEADER[2:]}trial {best.number} of study '{config.study}', best val BMA {best.value:.4f} "
              f"(of {len(complete)} complete trials, {summary['pruned']} pruned)."]
    write_yaml(out / "best.yaml", header + [f"Train it: gan-aug train-classifier --config {out / 'best.yaml'} "
                                            "--out RUN"], settings)
    compare, dropped = compare_config(settings)
    notes = [f"Not carried (compare has no such key): {', '.join(dropped)}."] if dropped else []
    write_yaml(out / "best_compare.yaml", header + notes + [
        f"Run it: gan-aug compare --config {out / 'best_compare.yaml'} --out DIR (add arms to set beside it)"],
        compare)
    summary.update(best={"trial": best.number, "val_bma": best.value, "params": best.params},
                   files=summary["files"] + [str(out / "best.yaml"), str(out / "best_compare.yaml")],
                   plots=save_plots(study, out))
    return summary
