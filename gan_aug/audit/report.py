"""What the audit writes: audit.json (every candidate pair that was confirmed, and the closest that were not),
summary.md (counts per split pair and per class) and pairs.png (the closest pairs side by side, to look at)."""

import numpy as np
from PIL import Image, ImageDraw

from gan_aug.fileio import atomic_write

TILE, GAP, PER_ROW = 96, 6, 4
BORDERLINE = 0.08  # margin above the threshold under which a confirmed pair is called borderline


def pair_grid(path, left, right, labels=None):
    """A PNG of pairs (left[i] beside right[i]), PER_ROW pairs a row, each image scaled to TILE px, with
    `labels` (numbers or text) under each pair."""
    n = len(left)
    rows = max(1, -(-n // PER_ROW))
    pair_w, label_h = 2 * TILE + GAP, 14
    canvas = Image.new("RGB", (PER_ROW * (pair_w + 2 * GAP), rows * (TILE + label_h + GAP)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        x = (i % PER_ROW) * (pair_w + 2 * GAP)
        y = (i // PER_ROW) * (TILE + label_h + GAP)
        for j, image in enumerate((left[i], right[i])):
            tile = Image.fromarray(np.asarray(image)).resize((TILE, TILE), Image.Resampling.NEAREST)
            canvas.paste(tile, (x + j * (TILE + GAP), y))
        if labels is not None:
            label = labels[i]
            draw.text((x, y + TILE + 1), f"{label:.3f}" if isinstance(label, (float, np.floating)) else str(label),
                      fill=(0, 0, 0))
    with atomic_write(path) as handle:
        canvas.save(handle, format="PNG")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def summary_markdown(summary, pairs, class_names):
    """summary.md: confirmed pairs per split pair (same lesion id or another), clusters that cross splits, the
    external and synthetic images with a near duplicate in the train split, and all of these per class."""
    lines = [f"# Near-duplicate audit of `{summary['data']}`", "",
             f"Detector: {summary['detector']['features']}, {summary['detector']['neighbours']} candidates per "
             f"image and embedding; confirmed at a score >= {summary['detector']['min_score']} and a margin >= "
             f"{summary['detector']['margin']} over the image's candidates' median score, when the pair is the "
             f"image's best by a gap >= {summary['detector']['gap']} or its margin is >= "
             f"{summary['detector']['strong_margin']}. "
             f"{sum(summary['candidates'].values())} candidate pairs, {len(pairs)} confirmed.", ""]
    within = [p for p in pairs if p["kind"] == "within"]
    split_pairs = {}
    for p in within:
        key = "-".join(sorted((p["a"]["split"], p["b"]["split"]), key=("train", "val", "test").index))
        same = p["a"]["group"] == p["b"]["group"]
        split_pairs.setdefault(key, [0, 0])[0 if same else 1] += 1
    lines += ["## Pairs within the prepared set, per split pair", ""]
    lines += _table(["splits", "same lesion id", "another lesion id"],
                    [[k, v[0], v[1]] for k, v in sorted(split_pairs.items())] or [["none", 0, 0]])
    crossing = {}
    for c in summary["clusters"]:
        if len(c["splits"]) > 1:
            key = "-".join(c["splits"][::-1] if c["splits"] == ["test", "train"] else c["splits"])
            crossing.setdefault(key, [0, 0])
            crossing[key][0] += 1
            crossing[key][1] += len(c["ids"])
    lines += ["", f"## Clusters of near duplicates that cross splits ({len(summary['clusters'])} clusters in all)",
              ""]
    lines += _table(["splits", "clusters", "images"], [[k, *v] for k, v in sorted(crossing.items())]
                    or [["none", 0, 0]])
    others = sorted({p["kind"] for p in pairs if p["kind"] != "within"})
    if others or len(summary["sets"]) > 1:
        lines += ["", "## External and synthetic images with a near duplicate in the train split", ""]
        rows = []
        for name, n in list(summary["sets"].items())[1:]:
            kind = next((k for k in others if k.endswith(":" + name)), None)
            found = {p["a"]["id"] for p in pairs if p["kind"] == kind}
            rows.append([name, n, len(found), f"{len(found) / max(n, 1):.1%}"])
        lines += _table(["set", "images", "with a near duplicate", "share"], rows)
    per_class = {c: {"cross-split": 0, "another lesion id": 0, **{k: set() for k in others}} for c in class_names}
    disagree = 0
    for p in pairs:
        cls = p["a"]["class"]
        row = per_class.setdefault(cls, {"cross-split": 0, "another lesion id": 0, **{k: set() for k in others}})
        disagree += p["a"]["class"] != p["b"]["class"]
        if p["kind"] == "within":
            row["cross-split"] += p["a"]["split"] != p["b"]["split"]
            row["another lesion id"] += p["a"]["group"] != p["b"]["group"]
        else:
            row[p["kind"]].add(p["a"]["id"])
    lines += ["", "## Per class (of the first image of each pair)", ""]
    lines += _table(["class", "pairs across splits", "pairs of another lesion id", *others],
                    [[c, r["cross-split"], r["another lesion id"], *(len(r[k]) for k in others)]
                     for c, r in per_class.items()])
    borderline = sum(p["margin"] < summary["detector"]["margin"] + BORDERLINE for p in pairs)
    lines += ["", f"Pairs whose two images carry different labels: {disagree}.",
              f"Borderline pairs (margin under {summary['detector']['margin'] + BORDERLINE:.2f}): {borderline}. In an "
              "all-against-all search of a large set these are the least certain: in HAM10000 many were two distinct "
              "lesions that look alike (gan-aug's docs/experiments/near-duplicates-ham64.md); look at them before "
              "acting on them.", ""]
    return "\n".join(lines)
