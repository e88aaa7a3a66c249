"""`gan-aug demo`: the whole pipeline, small enough for a 2-core laptop in under 10 minutes.

prepare (toy, 32 px) -> train-gan (short) -> synthesize -> compare (6 arms x 2 seeds, short) ->
score (lesion features from the oversampling baseline's classifier) -> report.md.
"""

import json
import shutil
import time
from pathlib import Path

from gan_aug.compare.config import CompareConfig
from gan_aug.compare.runner import compare
from gan_aug.compare.summary import run_dir
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.prepare import prepare
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError
from gan_aug.gan.config import GanConfig
from gan_aug.gan.train import train_gan
from gan_aug.metrics.config import ScoreConfig
from gan_aug.metrics.score import score, scores_table
from gan_aug.synth.config import SynthConfig
from gan_aug.synth.sample import synthesize

DEMO_PARTS = ("data", "gan", "synthetic", "compare", "scores")


def _step(message):
    print(f"\n== {message}", flush=True)


def run_demo(out, data=None, force=False, gan_kimg=20.0, epochs=8, seeds=(0, 1), toy_count=1500, n_synthetic=1000,
             cas_epochs=3):
    out = Path(out)
    if data is not None:  # a bad set is refused before the demo creates or clears anything
        load_prepared(data)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out} is not empty (use --force to start the demo over there)")
        for part in DEMO_PARTS:
            shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if data is None:
        _step("prepare: the embedded toy lesion set, 32 px")
        data = out / "data" / "toy32.npz"
        prepare(build_config(PrepareConfig, None, {"out": str(data), "source": "toy", "size": 32, "toy_count": toy_count}))
    _step(f"train-gan: conditional DCGAN, {gan_kimg:g} kimg (a short run; see configs/presets/dcgan32.yaml)")
    # The dcgan32 preset's recipe, spelled out so the demo does not depend on the repository's configs/,
    # but with DiffAugment always on (no ADA): D only saturated after ~90 kimg, far beyond a demo run.
    gan = build_config(GanConfig, None, {"data": str(data), "out": str(out / "gan"), "kimg": gan_kimg,
                                         "balanced_classes": True, "snapshot_every": 5, "ckpt_every": 10})
    train_gan(gan)
    _step(f"synthesize: {n_synthetic} images, most of them for the rarest classes")
    synthesize(build_config(SynthConfig, None, {"checkpoints": (str(out / "gan"),), "out": str(out / "synthetic"),
                                                "n": n_synthetic}))
    _step(f"compare: 6 arms x {len(seeds)} seeds, {epochs} epochs each")
    arms = ("none", "oversample", "class-weight", "focal", "mix:0.3", "topup:0.5")
    compare_config = build_config(CompareConfig, None, {
        "data": str(data), "out": str(out / "compare"), "arms": arms, "seeds": seeds,
        "synthetic": str(out / "synthetic"), "epochs": epochs, "bootstrap": 500})
    compare(compare_config)
    _step("score: synthetic-set quality in the oversampling classifier's feature space")
    classifier = run_dir(out / "compare", "oversample", seeds[0]) / "best.pt"
    results = score(build_config(ScoreConfig, None, {
        "data": str(data), "synthetic": str(out / "synthetic"), "features": f"lesion:{classifier}",
        "out": str(out / "scores" / "scores.json"), "cas_epochs": cas_epochs, "embed_per_source": 300}))
    table = scores_table(results)
    print(table)
    report = out / "compare" / "report.md"
    with open(report, "a") as handle:
        handle.write("\n## Synthetic-set quality (demo)\n\nFeatures: penultimate layer of the oversampling "
                     f"arm's seed-{seeds[0]} classifier; reference: the real train split.\n\n```\n{table}\n```\n")
    (out / "demo.json").write_text(json.dumps({"seconds": time.perf_counter() - started, "report": str(report)}))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    return report
