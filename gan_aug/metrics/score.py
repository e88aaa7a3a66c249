"""`gan-aug score`: per-class Fréchet distance / KID / precision-recall against the real train split,
CAS on the real val split, a memorization audit, and TensorBoard browsing of the synthetic set."""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from classifier.config import ClassifierConfig
from classifier.inference import split_metrics
from classifier.train import ClassifierTrainer
from gan_aug.data.prepared import PreparedSet, load_prepared
from gan_aug.data.synthetic import load_synthetic
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, check_new_outputs
from gan_aug.metrics import fidelity, memorization
from gan_aug.runtime import resolve_device, use_threads
from gan_aug.sinks import TensorBoardSink

OVERALL = "all"


def classification_accuracy_score(prepared, syn_images, syn_labels, epochs, seed, device="auto"):
    """CAS (Ravuri & Vinyals 2019): a small CNN trained on synthetic images only, for a fixed number of
    epochs (no selection), then its balanced accuracy on the real val split."""
    val = prepared.indices("val")
    images = np.concatenate([syn_images, prepared.images[val]])
    n_syn = len(syn_labels)
    cas_set = PreparedSet(path=Path("cas"), images=images, labels=np.concatenate([syn_labels, prepared.labels[val]]),
                          class_names=prepared.class_names, split=np.array(["train"] * n_syn + ["val"] * len(val)),
                          group=np.arange(len(images)).astype(str), image_id=np.arange(len(images)).astype(str),
                          source="cas", fingerprint="cas")
    with tempfile.TemporaryDirectory() as tmp:
        config = ClassifierConfig(data="cas", out=tmp, epochs=epochs, seed=seed, balance="oversample", force=True,
                                  device=device)
        trainer = ClassifierTrainer(config, progress=False, prepared=cas_set)
        for _ in range(epochs):
            trainer.train_one_epoch()
        metrics, _ = split_metrics(trainer.model, trainer.task, trainer.val, trainer.autocast)
    return {"bma": metrics["bma"], "accuracy": metrics["accuracy"],
            "recall": {c: r["recall"] for c, r in metrics["per_class"].items()}, "epochs": epochs}


def output_paths(out):
    """What score writes for `out`: the scores JSON, the closest-pairs PNG and the TensorBoard folder beside it."""
    out = Path(out)
    return out, out.with_name(out.stem + "_closest_pairs.png"), out.with_name(out.stem + "_tb")


def score(config, progress=True):
    out, pairs_png, tb_dir = output_paths(config.out)
    check_new_outputs((out, pairs_png, tb_dir), config.force, folders=(tb_dir,))
    use_threads(config.threads)
    prepared = load_prepared(config.data)
    syn_images, syn_labels, syn_names, provenance = load_synthetic(config.synthetic)
    unknown = [n for n in syn_names if n not in prepared.class_names]
    if unknown:
        raise UserError(f"synthetic class(es) {', '.join(unknown)} are not in {config.data}")
    if len(syn_images) and syn_images.shape[1] != prepared.image_size:
        raise UserError(f"synthetic images are {syn_images.shape[1]} px, the prepared set {prepared.image_size} px")
    syn_labels = np.array([prepared.class_names.index(syn_names[l]) for l in syn_labels], dtype=np.int64)
    train, val = prepared.indices("train"), prepared.indices("val")
    real_images, real_labels = prepared.rows(train), prepared.labels[train]

    cuda = resolve_device(config.device).type == "cuda"
    feature_source = fidelity.feature_record(config.features, config.fid_weights, prepared.image_size)
    extract = lambda images: fidelity.extract_features(images, config.features, feature_source["weights"],
                                                       config.batch_size, verbose=progress, cuda=cuda).numpy()
    syn_feat, real_feat = extract(syn_images), extract(real_images)
    results = {"features": config.features, "feature_source": feature_source, "synthetic": str(config.synthetic),
               "data": str(config.data), "reference": "train", "provenance": {"gan_data": provenance.get("gan_data")},
               "per_class": {}}
    results["per_class"][OVERALL] = fidelity.set_scores(syn_feat, real_feat, config.kid_subset_size)
    for c, name in enumerate(prepared.class_names):
        s, r = syn_labels == c, real_labels == c
        if s.any() and r.any():
            results["per_class"][name] = fidelity.set_scores(syn_feat[s], real_feat[r], config.kid_subset_size)

    if config.memorization and len(val):
        val_feat = extract(prepared.images[val])
        audits = {}
        for space, (s, t, v) in {"pixels": tuple(memorization.pixels(a) for a in (syn_images, real_images,
                                                                                    prepared.images[val])),
                                 "features": (syn_feat, real_feat, val_feat)}.items():
            audits[space], dist, nn_idx = memorization.audit(s, t, v, space)
            if space == "pixels":
                memorization.save_closest_pairs(pairs_png, syn_images, real_images, dist, nn_idx)
                audits[space]["closest_pairs_png"] = str(pairs_png)
        results["memorization"] = audits
    if config.cas and len(val):
        results["cas"] = classification_accuracy_score(prepared, syn_images, syn_labels, config.cas_epochs, config.seed,
                                                       config.device)

    with atomic_write(out, "w") as handle:
        json.dump(results, handle, indent=2)
    shutil.rmtree(tb_dir, ignore_errors=True)  # --force: a new run's events, not two runs' mixed in one log
    write_tensorboard(tb_dir, results, prepared, syn_images, syn_labels, syn_feat,
                      real_images, real_labels, real_feat, config.embed_per_source, config.seed)
    return results


def write_tensorboard(logdir, results, prepared, syn_images, syn_labels, syn_feat, real_images, real_labels,
                      real_feat, per_source, seed):
    """Scalars, one sample grid per class, and a projector embedding of real vs synthetic images."""
    sink = TensorBoardSink(logdir)
    scalars = {f"{key}/{name}": row[key] for name, row in results["per_class"].items()
               for key in (fidelity.FD, fidelity.KID, fidelity.PRECISION, fidelity.RECALL) if np.isfinite(row[key])}
    if "cas" in results:
        scalars["cas/bma"] = results["cas"]["bma"]
    sink.scalars(scalars, 0)
    for c, name in enumerate(prepared.class_names):
        grid = syn_images[syn_labels == c][:16]
        if len(grid):
            sink.images(f"synthetic/{name}", grid, 0)
    if per_source:
        rng = np.random.default_rng(seed)
        pick = lambda n: np.sort(rng.choice(n, min(per_source, n), replace=False))
        s, r = pick(len(syn_images)), pick(len(real_images))
        labels = np.concatenate([syn_labels[s], real_labels[r]])
        metadata = [[prepared.class_names[l], "synthetic" if i < len(s) else "real"] for i, l in enumerate(labels)]
        sink.embedding(np.concatenate([syn_feat[s], real_feat[r]]), metadata, ["class", "source"],
                       np.concatenate([syn_images[s], real_images[r]]), "real_vs_synthetic")
    sink.close()


def scores_table(results):
    lines = ["class       n_syn  n_real  FD        KID       precision  recall"]
    source = results.get("feature_source", {})
    if source.get("official_weights") is False:
        lines.insert(0, f"warning: {source['weights']} is not torch-fidelity's Inception file (sha256 "
                        f"{source['weights_sha256'][:8]}..., not {fidelity.INCEPTION_SHA256_PREFIX}...): these FD and "
                        "KID are not comparable with published ones, and may mean nothing")
    for name, row in results["per_class"].items():
        lines.append(f"{name:<10} {row['n_synthetic']:>6} {row['n_real']:>7}  {row[fidelity.FD]:<9.4g} "
                     f"{row[fidelity.KID]:<9.4g} {row[fidelity.PRECISION]:<10.3f} {row[fidelity.RECALL]:.3f}")
    if "cas" in results:
        lines.append(f"CAS (train on synthetic, test on real val): BMA {results['cas']['bma']:.4f}")
    for space, audit in results.get("memorization", {}).items():
        lines.append(f"memorization ({space}): {audit['flagged']} synthetic images ({audit['flagged_fraction']:.2%}) "
                     f"closer to a training image than the 1st percentile of val->train distances")
    return "\n".join(lines)
