"""`gan-aug audit`: near-duplicate pairs within and across a prepared set's splits, between its train split and
external sets, and between synthetic sets and its train split; audit.json, summary.md and pairs.png."""

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gan_aug.data.near_duplicates.clusters import connected_components
from gan_aug.audit.config import synthetic_name, synthetic_path
from gan_aug.audit.report import pair_grid, summary_markdown
from gan_aug.data.near_duplicates.search import Indexed, build_detector, match
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_folder, check_apart, require_name

AUDIT_FILE, SUMMARY_FILE, GRID_FILE = "audit.json", "summary.md", "pairs.png"
NEAR_MISSES = 100  # unconfirmed pairs of highest margin kept in audit.json, to see what was just left out


def check_out(config):
    out = Path(config.out)
    require_name(out)
    check_apart(out, {"the prepared set": config.data, **{f"synthetic set {s}": synthetic_path(s)
                                                          for s in config.synthetic}})
    if (out.exists() or out.is_symlink()) and not config.force:
        raise UserError(f"{out} already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file: --out names a folder")


def _features(config, images):
    if config.features is None:
        return None
    from gan_aug.metrics.fidelity import extract_features

    return extract_features(images, config.features).float().numpy()


def load_sets(config, prepared):
    """[(name, kind, PreparedSet-like or None, images, labels, class_names)] of the external and synthetic sets."""
    from classifier.evaluate import external_set
    from gan_aug.compare.config import parse_external
    from gan_aug.data.synthetic import load_synthetic

    sets = []
    for entry in config.external:
        name, source, root = parse_external(entry)
        ext = external_set(source, root, prepared.image_size, color_constancy=prepared.color_constancy)
        sets.append((name, "external", ext.image_id.astype(str), ext.images, ext.labels, ext.class_names))
    for entry in config.synthetic:
        images, labels, class_names, _ = load_synthetic(synthetic_path(entry))
        ids = np.array([f"{synthetic_name(entry)}/{i}" for i in range(len(images))])
        sets.append((synthetic_name(entry), "synthetic", ids, images, labels, class_names))
    return sets


def _side(name, split, ids, groups, labels, class_names, rows):
    """The per-row description of one side of a pair, as arrays."""
    return {"set": np.full(len(rows), name), "split": np.asarray(split)[rows], "id": np.asarray(ids)[rows],
            "group": np.asarray(groups)[rows], "class": np.asarray(class_names)[np.asarray(labels)[rows]]}


def audit(config, progress=True):
    """Run the audit and write config.out; returns the summary dict (what audit.json holds but the pairs)."""
    check_out(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.time()
    prepared = load_prepared(config.data)
    name = Path(config.data).stem
    others = load_sets(config, prepared)
    timings = {"load": time.time() - started}
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    say(f"fitting the embedding on copies planted in {len(prepared.images)} images of {name}")
    detector = build_detector(prepared.images, config.neighbours, config.margin, config.min_score, config.seed,
                              config.gap, config.strong_margin)
    indexed = Indexed(prepared.images, detector, _features(config, prepared.images))
    timings["embed"] = time.time() - started - timings["load"]
    comparisons = []

    def run(label, query, reference, same_set):
        t = time.time()
        bar = tqdm(desc=f"confirm {label}", unit="pair", disable=not progress, leave=False)
        result = match(query, reference, detector, same_set, bar=bar)
        bar.close()
        timings[label] = time.time() - t
        say(f"{label}: {int(result['confirmed'].sum())} near-duplicate pair(s) of {len(result['score'])} "
            f"candidates ({timings[label]:.0f} s)")
        return result

    within = run(name, indexed, indexed, True)
    side = lambda rows: _side(name, prepared.split, prepared.image_id, prepared.group, prepared.labels,
                              prepared.class_names, rows)
    comparisons.append(("within", within, side(within["query"]), side(within["reference"])))
    train = prepared.indices("train")
    if others:
        train_index = indexed.subset(train)
        train_side = lambda rows: side(train[rows])
        for set_name, kind, ids, images, labels, class_names in others:
            query = Indexed(images, detector, _features(config, images))
            result = run(set_name, query, train_index, False)
            q = _side(set_name, np.full(len(images), kind), ids, ids, labels, class_names, result["query"])
            comparisons.append((f"{kind}:{set_name}", result, q, train_side(result["reference"])))
    summary = _write(config, prepared, name, comparisons, others, timings, started)
    return summary


def _pair_rows(kind, result, a, b, keep):
    rows = []
    for i in np.flatnonzero(keep):
        rows.append({"kind": kind, "a": {k: str(v[i]) for k, v in a.items()},
                     "b": {k: str(v[i]) for k, v in b.items()}, "score": round(float(result["score"][i]), 4),
                     "margin": round(float(result["margin"][i]), 4), "gap": round(float(result["gap"][i]), 4),
                     "hamming": int(result["hamming"][i])})
    return sorted(rows, key=lambda r: -r["margin"])


def within_clusters(prepared, within):
    """Clusters (connected components) of the prepared set's confirmed pairs, as lists of rows."""
    confirmed = np.stack([within["query"], within["reference"]], 1)[within["confirmed"]]
    labels = connected_components(len(prepared.images), confirmed)
    clusters = {}
    for row in np.unique(confirmed):
        clusters.setdefault(labels[row], []).append(int(row))
    return sorted(clusters.values(), key=lambda c: (-len(c), c[0]))


def _write(config, prepared, name, comparisons, others, timings, started):
    pairs, near = [], []
    for kind, result, a, b in comparisons:
        pairs += _pair_rows(kind, result, a, b, result["confirmed"])
        order = np.flatnonzero(~result["confirmed"])
        top = order[np.argsort(-result["margin"][order])[:NEAR_MISSES]]
        mask = np.zeros(len(result["score"]), bool)
        mask[top] = True
        near += _pair_rows(kind, result, a, b, mask)
    within = comparisons[0][1]
    clusters = within_clusters(prepared, within)
    cluster_rows = [{"ids": [str(prepared.image_id[r]) for r in c], "splits": sorted({str(prepared.split[r])
                     for r in c}), "groups": sorted({str(prepared.group[r]) for r in c}),
                     "classes": sorted({prepared.class_names[prepared.labels[r]] for r in c})} for c in clusters]
    timings["total"] = time.time() - started
    summary = {
        "data": str(config.data), "fingerprint": prepared.fingerprint,
        "sets": {name: len(prepared.images), **{o[0]: len(o[3]) for o in others}},
        "detector": {"neighbours": config.neighbours, "margin": config.margin, "min_score": config.min_score,
                     "gap": config.gap, "strong_margin": config.strong_margin,
                     "features": config.features or "pixel embedding + pHash", "seed": config.seed},
        "candidates": {kind: int(len(result["score"])) for kind, result, _, _ in comparisons},
        "clusters": cluster_rows, "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    with atomic_folder(config.out) as staging:
        (staging / AUDIT_FILE).write_text(json.dumps({**summary, "pairs": pairs, "near_misses": near}, indent=1))
        (staging / SUMMARY_FILE).write_text(summary_markdown(summary, pairs, prepared.class_names))
        shown = pairs[:config.grid]
        if shown:
            images = _images_by_id(prepared, name, others)
            pair_grid(staging / GRID_FILE, [images[(p["a"]["set"], p["a"]["id"])] for p in shown],
                      [images[(p["b"]["set"], p["b"]["id"])] for p in shown],
                      [f"{p['a']['split']}-{p['b']['split']} {p['score']:.2f}/{p['margin']:.2f}" for p in shown])
    summary["pairs"] = len(pairs)
    return summary


def _images_by_id(prepared, name, others):
    images = {(name, str(i)): prepared.images[r] for r, i in enumerate(prepared.image_id)}
    for set_name, _, ids, set_images, _, _ in others:
        images.update({(set_name, str(i)): set_images[r] for r, i in enumerate(ids)})
    return images
