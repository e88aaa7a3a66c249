"""One arm under two classifier recipes: is recipe A (say `gan-aug tune`'s best_compare.yaml) better than recipe B
(the untuned defaults)? A compare holds one recipe for all its arms, so the two recipes are two finished compares
over the same seeds; A's paired-bootstrap gain over B on the seeds both ran, with the report's two CIs
(protocol rule 5)."""

from pathlib import Path

import numpy as np

from gan_aug.compare.stats import bma, gain_with_cis, mean_std
from gan_aug.compare.summary import PREDICTIONS, load_predictions, run_dir
from gan_aug.errors import UserError


def finished_seeds(out, arm, split):
    """Seeds whose run of `arm` in the compare folder `out` saved its predictions on `split`."""
    saved = Path(out, "runs").glob(f"{run_dir(out, arm, '*').name}/{PREDICTIONS.format(split=split)}")
    return sorted(int(path.parent.name.rsplit("_seed", 1)[1]) for path in saved)


def recipe_gain(out_a, out_b, arm, split, iterations=2000):
    """{"seeds", "a", "b": (mean, std) BMA, "gain": gain_with_cis record} of A over B on their common seeds."""
    seeds = sorted(set(finished_seeds(out_a, arm, split)) & set(finished_seeds(out_b, arm, split)))
    if not seeds:
        raise UserError(f"no seed of arm {arm} has {split} predictions in both {out_a} and {out_b}")
    runs = {name: [load_predictions(out, arm, s, split) for s in seeds] for name, out in (("a", out_a), ("b", out_b))}
    y_true = runs["a"][0]["y_true"]
    if any(not np.array_equal(r["y_true"], y_true) for rows in runs.values() for r in rows):
        raise UserError(f"the two compares scored different {split} images: not the same prepared set")
    n_classes = runs["a"][0]["probs"].shape[1]
    preds = {name: np.stack([r["y_pred"] for r in rows]) for name, rows in runs.items()}
    result = {"seeds": seeds, "gain": gain_with_cis(y_true, preds["a"], preds["b"], n_classes, iterations)}
    for name, rows in preds.items():
        result[name] = mean_std([bma(y_true, row, n_classes) for row in rows])
    return result
