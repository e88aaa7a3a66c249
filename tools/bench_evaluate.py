"""What a reviewer's evaluation costs (issue #44): `gan-aug evaluate`'s work on one split with no test-time
augmentation, flips and the 8 dihedral views, and with and without the bootstrap intervals and an operating point.

    python tools/bench_evaluate.py --checkpoint $WORK/judge_oversample --data $WORK/ham64.npz --split test

Each variant runs --repeats times in this process after one warm-up; the median wall time is printed, with the
BMA so a variant that changed the predictions shows.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.checkpoint import load_classifier  # noqa: E402
from classifier.evaluate import evaluate_checkpoint, operating_point_metrics  # noqa: E402
from gan_aug.data.prepared import load_prepared  # noqa: E402

VARIANTS = (  # name, tta, bootstrap resamples, operating point
    ("plain", False, 0, None),
    ("--tta (flips, 4 views)", "flips", 0, None),
    ("--tta d8 (8 views)", "d8", 0, None),
    ("intervals (--bootstrap 1000)", False, 1000, None),
    ("intervals + --operating-point sens=0.9", False, 1000, "sens=0.9"),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="Run the variants whose name holds this text.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prepared = load_prepared(args.data)
    groups = prepared.group[prepared.indices(args.split)]
    task = load_classifier(args.checkpoint)[1]
    print(f"{args.split} split of {args.data}: {len(groups)} images, {torch.get_num_threads()} thread(s)")
    for name, tta, bootstrap, rule in (v for v in VARIANTS if args.only in v[0]):
        def run():
            metrics, targets, probs = evaluate_checkpoint(args.checkpoint, prepared, args.split, tta=tta,
                                                          bootstrap=bootstrap)
            if rule:
                operating_point_metrics(task, [args.checkpoint], targets, probs, groups, prepared, rule, tta=tta,
                                        bootstrap=bootstrap)
            return metrics
        run()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            metrics = run()
            times.append(time.perf_counter() - start)
        print(f"{name:<40} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})  "
              f"BMA {metrics['bma']:.4f}")


if __name__ == "__main__":
    main()
