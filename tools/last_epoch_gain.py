"""Does a finished `gan-aug compare` hold without checkpoint selection? Scores every run's final-epoch
weights (latest.pt) on the test split and prints each generative arm's gain over a baseline arm with
the same paired bootstrap CIs as the report.

The report scores each run's best-val epoch; on a small val split that choice is noisy (a run can keep
a lucky early epoch). The last epoch involves no choice at all, so a gain that is real should survive it.
This is a check of the report, not a second claim: the claim stays the one the report makes.

    python tools/last_epoch_gain.py --compare results/ham32 [--baseline oversample] [--arm oversample+kd]

The baseline defaults to the report's (the non-generative arm with the best mean val BMA), the arms
scored against it to the generative ones.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.evaluate import evaluate_checkpoint  # noqa: E402
from gan_aug.compare.config import CompareConfig  # noqa: E402
from gan_aug.config import build_config  # noqa: E402
from gan_aug.data.prepared import load_prepared  # noqa: E402
from gan_aug.errors import UserError  # noqa: E402
from gan_aug.compare.arms import is_generative  # noqa: E402
from gan_aug.compare.stats import baseline_arm, bma, format_gain, gain_with_cis  # noqa: E402
from gan_aug.compare.summary import run_dir  # noqa: E402


def final_epoch_predictions(config, prepared, arm):
    """(labels, (S, N) predictions) of every seed's latest.pt on the test split."""
    rows = []
    for seed in config.seeds:
        run = run_dir(config.out, arm, seed)
        _, targets, probs = evaluate_checkpoint(run / "latest.pt", prepared, "test")
        rows.append(probs.argmax(1))
    return targets, np.stack(rows)


def report_baseline(config):
    """The non-generative arm with the best mean val BMA over the finished runs (as the report chooses)."""
    def mean_val(arm):
        done = [run_dir(config.out, arm, s) / "done.json" for s in config.seeds]
        missing = [str(d.parent) for d in done if not d.is_file()]
        if missing:
            raise UserError(f"unfinished runs: {', '.join(missing)}; finish the compare first")
        return np.mean([json.loads(d.read_text())["splits"]["val"]["bma"] for d in done])

    baseline = baseline_arm(config.arms, mean_val)
    if baseline is None:
        raise UserError("the compare has no non-generative arm: give --baseline ARM")
    return baseline


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", required=True, help="a finished compare --out folder")
    parser.add_argument("--baseline", help="arm to compare with [the report's baseline]")
    parser.add_argument("--arm", action="append", help="arm to score against the baseline (repeatable) "
                        "[every generative arm]")
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.compare)
    config = build_config(CompareConfig, str(out / "config.yaml"), {"out": str(out)})
    prepared = load_prepared(config.data)
    k = len(prepared.class_names)
    baseline = args.baseline or report_baseline(config)
    arms = args.arm or [a for a in config.arms if is_generative(a)]
    for arm in [baseline, *arms]:
        if arm not in config.arms:
            raise UserError(f"{arm} is not an arm of {out} ({', '.join(config.arms)})")
    y, base = final_epoch_predictions(config, prepared, baseline)
    print(f"{baseline:<20} last-epoch test BMA {np.mean([bma(y, p, k) for p in base]):.4f}")
    for arm in arms:
        _, preds = final_epoch_predictions(config, prepared, arm)
        gain = gain_with_cis(y, preds, base, k, args.bootstrap)
        print(f"{arm:<20} last-epoch test BMA {np.mean([bma(y, p, k) for p in preds]):.4f}  {format_gain(gain)}")


if __name__ == "__main__":
    try:
        main()
    except UserError as err:
        sys.exit(f"Error: {err}")
