"""Benchmark: the size of a bundle and the time of `gan-aug rescore` at round 10's scale (2 arms x 10 seeds of the
64 px small CNN, 2,000 bootstrap resamples), on one external set.

It needs no trained comparison: it stands one classifier checkpoint in for all twenty runs (each run's val and
test predictions evaluated for real), bundles that folder and times the re-score, so the figures are those of
the code path, not of any claim.

    python tools/bench_rescore.py --classifier RUN/best.pt --data ham64.npz \\
        --external isic2018dev=isic-csv:../shared/data/isic2018_test_dev --work $WORK/bench-rescore
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from classifier.checkpoint import inference_state  # noqa: E402
from classifier.evaluate import evaluate_checkpoint  # noqa: E402
from gan_aug.compare.config import CompareConfig  # noqa: E402
from gan_aug.compare.runner import load_externals, save_predictions  # noqa: E402
from gan_aug.compare.summary import DATA_FACTS, PREDICTIONS, DataFacts, run_dir  # noqa: E402
from gan_aug.config import build_config, to_yaml  # noqa: E402
from gan_aug.data.prepared import load_prepared  # noqa: E402
from gan_aug.fileio import load_checkpoint_file, save_torch  # noqa: E402


def stand_in_comparison(classifier, data, external, out, arms, seeds):
    """A finished compare folder whose every run is `classifier`, evaluated on val, test and the external set."""
    prepared = load_prepared(data)
    config = build_config(CompareConfig, None, {"data": data, "out": str(out), "arms": arms, "seeds": seeds,
                                                "synthetic": "stand-in.npz", "teachers": (classifier,),  # named only
                                                "external": (external,), "twins": False, "bootstrap": 2000})
    splits = {"val": (prepared, "val"), "test": (prepared, "test"),
              **load_externals(config.external, prepared.image_size, prepared.color_constancy)}
    evaluated = {name: evaluate_checkpoint(classifier, dataset, split, device="cpu")
                 for name, (dataset, split) in splits.items()}
    state = inference_state(load_checkpoint_file(classifier, "gan-aug/classifier-checkpoint/1", "classifier"))
    for arm in arms:
        for seed in seeds:
            directory = run_dir(out, arm, seed)
            directory.mkdir(parents=True)
            save_torch(state, directory / "best.pt")
            for name, (metrics, targets, probs) in evaluated.items():
                dataset, split = splits[name]
                save_predictions(directory / PREDICTIONS.format(split=name), targets, probs,
                                 dataset.image_id[dataset.indices(split)])
            record = {"arm": arm, "seed": seed, "best_epoch": 0, "splits": {n: m for n, (m, _, _) in evaluated.items()}}
            (directory / "done.json").write_text(json.dumps(record))
    (out / "config.yaml").write_text(to_yaml(config))
    DataFacts.of(prepared).write(out / DATA_FACTS)


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--external", required=True, help="NAME=SOURCE:ROOT")
    parser.add_argument("--work", required=True, help="A scratch folder (replaced)")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stand_in_comparison(args.classifier, args.data, args.external, work / "cmp", ("oversample+kd", "mix:0.3"),
                        tuple(range(110, 120)))
    gan_aug = [sys.executable, "-m", "gan_aug"]
    bundle_s = timed(gan_aug + ["bundle", str(work / "cmp"), "--out", str(work / "bundle"), "--no-external-predictions"])
    size = sum(p.stat().st_size for p in (work / "bundle").rglob("*") if p.is_file())
    rescore_s = timed(gan_aug + ["rescore", str(work / "bundle"), "--external", args.external, "--out",
                                 str(work / "rescored"), "--device", "cpu"])
    posthoc_s = timed(gan_aug + ["rescore", str(work / "bundle"), "--external", args.external, "--out",
                                 str(work / "rescored_posthoc"), "--device", "cpu", "--posthoc", "bias",
                                 "--posthoc", "label-shift"])
    print(json.dumps({"runs": 20, "bundle_mb": round(size / 1e6, 2), "bundle_s": round(bundle_s, 1),
                      "rescore_s": round(rescore_s, 1), "rescore_with_posthoc_s": round(posthoc_s, 1)}))


if __name__ == "__main__":
    main()
