"""The near-duplicate detector on planted pairs of real HAM10000 images (issue #41): recall and precision.

    python tools/bench_audit.py --data ham64.npz --ham $GAN_AUG_HAM10000 --seed 1 --out bench_audit

The reference pool holds one image of each HAM10000 lesion but the held-out ones. Queries, searched in the
pool as an external set is searched in a train split:
  copy      a re-imaging copy (gan_aug.data.near_duplicates.planting) of a pool image, made from its original JPEG;
  same      another image of a pool lesion (its lesion_id's second image): the hard positives;
  distinct  an image of a held-out lesion: nothing in the pool is it (unless HAM10000 itself holds it twice
            under two lesion ids; such pairs are counted as false and shown in distinct_flagged.png).
precision(copy) = true copy pairs / every pair flagged for copy and distinct queries (as many of each);
precision(same) likewise. A sweep of the gap threshold is printed for calibration. Writes OUT/bench.json
and the PNGs; nothing derived from the images is kept elsewhere (CC BY-NC-SA: keep OUT out of the repo).
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_aug.data.near_duplicates import NEIGHBOURS  # noqa: E402
from gan_aug.data.near_duplicates.planting import reimage  # noqa: E402
from gan_aug.audit.report import pair_grid  # noqa: E402
from gan_aug.data.near_duplicates.search import Indexed, build_detector, match  # noqa: E402
from gan_aug.data.prepared import load_prepared  # noqa: E402
from gan_aug.data.records import index_images  # noqa: E402


def queries(prepared, ham_root, n_copies, n_same, n_distinct, seed):
    """(pool rows, query images, kinds, true pool position or -1) of one draw."""
    rng = np.random.default_rng(seed)
    first, members = {}, {}
    for i, group in enumerate(prepared.group):
        first.setdefault(group, i)
        members.setdefault(group, []).append(i)
    lesions = np.array(sorted(first))[rng.permutation(len(first))]
    distinct, kept = lesions[:n_distinct], lesions[n_distinct:]
    pool = np.array([first[g] for g in kept])
    files = index_images(ham_root)
    copy_pos = rng.choice(len(pool), n_copies, replace=False)
    copies = []
    for j in copy_pos:
        with Image.open(files[str(prepared.image_id[pool[j]])]) as image:
            copies.append(reimage(np.asarray(image.convert("RGB")), rng, prepared.image_size))
    same_pos = [j for j in rng.permutation(len(pool)) if len(members[kept[j]]) > 1][:n_same]
    same = [prepared.images[members[kept[j]][1]] for j in same_pos]
    images = np.concatenate([np.stack(copies), np.stack(same), prepared.images[[first[g] for g in distinct]]])
    kinds = np.array(["copy"] * n_copies + ["same"] * len(same_pos) + ["distinct"] * n_distinct)
    truth = np.concatenate([copy_pos, same_pos, np.full(n_distinct, -1)]).astype(np.int64)
    return pool, images, kinds, truth


def rates(result, kinds, truth, flagged):
    """{kind: recall} and {kind: precision} of the pairs `flagged`."""
    q, r = result["query"][flagged], result["reference"][flagged]
    correct = truth[q] == r
    false_by_kind = {k: int(np.sum(~correct & (kinds[q] == k))) for k in ("copy", "same", "distinct")}
    out = {"false_pairs": false_by_kind,
           "distinct_queries_flagged": float(np.mean(np.isin(np.flatnonzero(kinds == "distinct"), q)))}
    for kind in ("copy", "same"):
        tp = int(np.sum(correct & (kinds[q] == kind)))
        n = int(np.sum(kinds == kind))
        wrong = false_by_kind[kind] + false_by_kind["distinct"]
        out[kind] = {"recall": tp / max(n, 1), "precision": tp / max(tp + wrong, 1), "found": tp, "of": n}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="HAM10000 prepared set (gan-aug prepare --source ham10000).")
    parser.add_argument("--ham", required=True, help="The HAM10000 root the set was prepared from (originals).")
    parser.add_argument("--copies", type=int, default=500)
    parser.add_argument("--same", type=int, default=500)
    parser.add_argument("--distinct", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS, help="Candidates per image and embedding.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default).")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    prepared = load_prepared(args.data)
    pool, images, kinds, truth = queries(prepared, args.ham, args.copies, args.same, args.distinct, args.seed)
    t1 = time.time()
    detector = build_detector(prepared.images[pool], neighbours=args.neighbours, seed=args.seed)
    reference, query = Indexed(prepared.images[pool], detector), Indexed(images, detector)
    t2 = time.time()
    result = match(query, reference, detector)
    t3 = time.time()
    candidates = {k: float(np.mean([truth[i] in set(result["reference"][result["query"] == i])
                                    for i in np.flatnonzero(kinds == k)])) for k in ("copy", "same")}
    confirms = lambda gap: dataclasses.replace(detector, gap=gap).confirms(result["score"], result["margin"],
                                                                          result["top"], result["gap"])
    sweep = {f"{g:.2f}": rates(result, kinds, truth, confirms(g)) for g in np.arange(0.04, 0.16, 0.01)}
    report = {"pool": len(pool), "queries": {k: int(np.sum(kinds == k)) for k in ("copy", "same", "distinct")},
              "seed": args.seed, "neighbours": args.neighbours, "candidate_pairs": len(result["query"]), "candidate_recall": candidates,
              "margin": detector.margin, "min_score": detector.min_score, "gap": detector.gap,
              "strong_margin": detector.strong_margin,
              "at_defaults": rates(result, kinds, truth, result["confirmed"]), "sweep": sweep,
              "seconds": {"draw": t1 - t0, "embed": t2 - t1, "search_and_confirm": t3 - t2}}
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    # Every candidate pair's scores and the draw's answers (no pixels), to try other decision rules offline.
    np.savez(out / "pairs.npz", kinds=kinds, truth=truth, **result)
    wrong = result["confirmed"] & (kinds[result["query"]] == "distinct")
    order = np.flatnonzero(wrong)[np.argsort(-result["margin"][wrong])][:24]
    if len(order):
        pair_grid(out / "distinct_flagged.png", images[result["query"][order]],
                  prepared.images[pool][result["reference"][order]], result["score"][order])
    print(json.dumps({k: report[k] for k in ("pool", "queries", "candidate_pairs", "candidate_recall",
                                             "at_defaults", "seconds")}, indent=1))
    for g, row in sweep.items():
        print(f"gap {g}: copy recall {row['copy']['recall']:.3f} precision {row['copy']['precision']:.3f} | "
              f"same recall {row['same']['recall']:.3f} precision {row['same']['precision']:.3f} | distinct "
              f"flagged {row['distinct_queries_flagged']:.3f}")


if __name__ == "__main__":
    main()
