"""The two stages of the audit between a query set and a reference set (or within one set): candidates from
cheap searches, then each candidate confirmed.

Candidates of a query image: its nearest references in the pixel embedding (rings round the lesion's centre,
and round the frame's, NEIGHBOURS each), its nearest by dihedral pHash (HASH_NEIGHBOURS, within HASH_RADIUS
bits) and, with a classifier, its nearest in the classifier's features (NEIGHBOURS).

Confirmation: every candidate's score (gan_aug.data.near_duplicates.confirm), its margin (the score less the
median score of the query's candidates) and its gap (the score less the best score of the query's other
candidates). A score alone cannot tell a copy of a plain small mole from another plain small mole (both line up
well); a copy stands out from the query's other lookalikes, two plain moles do not. A pair is confirmed when its
score is at least MIN_SCORE and its margin at least MARGIN, and it is either the query's best candidate by a gap
of at least GAP or stands out by a margin of at least STRONG_MARGIN (an image with two copies: neither is ahead of
the other). All four are calibrated on planted copies of HAM10000 images (tools/bench_audit.py, BENCHMARKS.md).
"""

import dataclasses

import numpy as np
import torch

from gan_aug.data.near_duplicates import GAP, MARGIN, MIN_SCORE, NEIGHBOURS, STRONG_MARGIN
from gan_aug.data.near_duplicates.confirm import confirm_scores
from gan_aug.data.near_duplicates.embedding import ZOOMS, Embedding, nearest
from gan_aug.data.near_duplicates.hashing import dihedral_hashes, nearest_hashes, popcount

HASH_NEIGHBOURS, HASH_RADIUS = 2, 12


@dataclasses.dataclass
class Detector:
    """What the searches need of the reference images, computed once for every query set."""

    embeddings: tuple  # Embedding per centre
    neighbours: int = NEIGHBOURS
    margin: float = MARGIN
    min_score: float = MIN_SCORE
    gap: float = GAP
    strong_margin: float = STRONG_MARGIN

    def confirms(self, score, margin, top, gap):
        """Which pairs (arrays of their score, margin, whether each is its query's best, gap) are confirmed."""
        ahead = (top & (gap >= self.gap)) | (margin >= self.strong_margin)
        return (score >= self.min_score) & (margin >= self.margin) & ahead


def build_detector(reference_images, neighbours=NEIGHBOURS, margin=MARGIN, min_score=MIN_SCORE, seed=0, gap=GAP,
                   strong_margin=STRONG_MARGIN):
    """A Detector whose embedding metrics are fitted on copies planted in `reference_images`."""
    return Detector(tuple(Embedding(reference_images, seed, centre) for centre in ("lesion", "frame")),
                    neighbours, margin, min_score, gap, strong_margin)


class Indexed:
    """One image set as the searches see it: its embeddings (zoom 1 and every zoom), hashes and features."""

    def __init__(self, images, detector, features=None):
        self.images = images
        self.views = [embedding(images, ZOOMS) for embedding in detector.embeddings]
        self.plain = [v[ZOOMS.index(1.0)] for v in self.views]
        self.hashes = dihedral_hashes(images)
        self.features = None if features is None else torch.nn.functional.normalize(
            torch.as_tensor(np.asarray(features), dtype=torch.float32), dim=1)

    def __len__(self):
        return len(self.images)

    def subset(self, rows):
        """The same set restricted to `rows` (an index array): no embedding is computed again."""
        part = object.__new__(Indexed)
        part.images = self.images[rows]
        part.views = [v[:, rows] for v in self.views]
        part.plain = [p[rows] for p in self.plain]
        part.hashes = self.hashes[rows]
        part.features = None if self.features is None else self.features[rows]
        return part


def candidate_pairs(query, reference, detector, same_set):
    """(M, 2) unique (query row, reference row) candidates."""
    found = []
    for views, plain in zip(query.views, reference.plain):
        _, idx = nearest(views, plain, detector.neighbours, exclude_self=same_set)
        found.append(idx)
    if query.features is not None and reference.features is not None:
        _, idx = nearest(query.features[None], reference.features, detector.neighbours, exclude_self=same_set)
        found.append(idx)
    hamming, idx = nearest_hashes(query.hashes, reference.hashes, HASH_NEIGHBOURS, exclude_self=same_set)
    idx = np.where(hamming <= HASH_RADIUS, idx, -1)
    found.append(idx)
    rows = np.concatenate([np.repeat(np.arange(len(query)), f.shape[1]) for f in found])
    cols = np.concatenate([f.reshape(-1) for f in found])
    keep = cols >= 0
    pairs = np.unique(np.stack([rows[keep], cols[keep]], 1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
    return pairs


def hamming_of(query, reference, pairs):
    """The dihedral pHash distance of each pair."""
    if not len(pairs):
        return np.zeros(0, np.int64)
    q, r = query.hashes[pairs[:, 0]], reference.hashes[pairs[:, 1], :1]
    return popcount(q ^ r).min(1).astype(np.int64)


def match(query, reference, detector, same_set=False, bar=None):
    """Every candidate pair of `query` in `reference` (Indexed sets; one set with same_set) with its scores:
    a dict of arrays query, reference, score, margin, gap, top (the query's best), hamming, confirmed. Within one
    set a pair appears once (query < reference), with the larger margin of its two directions, confirmed when
    either direction is. `bar`: a tqdm bar counting the pairs confirmed, or None."""
    pairs = candidate_pairs(query, reference, detector, same_set)
    if same_set:  # (i, j) and (j, i) are one comparison: score it once
        ordered = np.sort(pairs, axis=1)
        unique, inverse = np.unique(ordered, axis=0, return_inverse=True)
        _total(bar, len(unique))
        scores = confirm_scores(query.images, reference.images, unique, bar)[inverse.reshape(-1)]
    else:
        _total(bar, len(pairs))
        scores = confirm_scores(query.images, reference.images, pairs, bar)
    margins, top, gaps = _query_ranks(pairs[:, 0], scores)
    result = {"query": pairs[:, 0], "reference": pairs[:, 1], "score": scores, "margin": margins, "gap": gaps,
              "top": top, "hamming": hamming_of(query, reference, pairs),
              "confirmed": detector.confirms(scores, margins, top, gaps)}
    return _merge_directions(result) if same_set else result


def _total(bar, n):
    if bar is not None:  # a tqdm bar: now that the candidates are known, it can show how far confirming is
        bar.total = n
        bar.refresh()


def _query_ranks(rows, scores):
    """Per pair, from one sort of the pairs by query and score: its margin (its score less the median score of its
    query's candidates), whether it is its query's best candidate, and its gap (its score less the best score of
    the query's other candidates; -1, the least NCC, less than nothing where there is none)."""
    order = np.lexsort((-scores, rows))
    ranked, best_first = rows[order], scores[order]
    first = np.ones(len(order), bool)
    first[1:] = ranked[1:] != ranked[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))  # each pair's query's first row
    length = np.bincount(np.cumsum(first) - 1)[np.cumsum(first) - 1]
    median = (best_first[start + (length - 1) // 2] + best_first[start + length // 2]) / 2
    runner_up = np.where(length > 1, best_first[np.minimum(start + 1, len(order) - 1)], -1.0)
    gap = best_first - np.where(first, runner_up, best_first[start])
    back = np.empty_like(order)
    back[order] = np.arange(len(order))  # each pair's row in the sorted order
    return (best_first - median)[back].astype(np.float32), first[back], gap[back].astype(np.float32)


def _merge_directions(result):
    """One row per unordered pair (query < reference): the scores of its direction with the larger margin,
    confirmed when either direction is."""
    a, b = np.minimum(result["query"], result["reference"]), np.maximum(result["query"], result["reference"])
    order = np.lexsort((-result["margin"], b, a))
    keys = np.stack([a[order], b[order]], 1)
    first = np.ones(len(order), bool)
    first[1:] = (keys[1:] != keys[:-1]).any(1)
    keep = order[first]
    merged = {k: v[keep] for k, v in result.items()}
    merged["query"], merged["reference"] = a[keep], b[keep]
    either = np.zeros(len(keep), bool)
    np.logical_or.at(either, np.cumsum(first) - 1, result["confirmed"][order])
    merged["confirmed"] = either
    return merged


def confirmed_pairs(result):
    return {k: v[result["confirmed"]] for k, v in result.items()}



def confirmed_within(images, seed=0, progress=False):
    """(M, 2) rows of the confirmed near-duplicate pairs within `images` ((N, H, W, 3) uint8), each once."""
    from tqdm import tqdm

    detector = build_detector(images, seed=seed)
    indexed = Indexed(images, detector)
    with tqdm(desc="near duplicates", unit="pair", disable=not progress, leave=False) as bar:
        result = match(indexed, indexed, detector, same_set=True, bar=bar)
    return np.stack([result["query"], result["reference"]], 1)[result["confirmed"]]
