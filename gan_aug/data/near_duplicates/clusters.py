"""Clusters of confirmed near duplicates, and the groups that keep each cluster inside one split."""

import numpy as np


def connected_components(n, pairs):
    """(n,) component label of each of n items linked by `pairs` ((M, 2) rows), by union-find."""
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)])


def merge_groups(groups, pairs):
    """(new groups, facts): each group joined with every group a confirmed pair links it to, so the images of
    a cluster of near duplicates, and every other image of their lesions, share one group (and so a split).
    A merged group is named by its members' groups joined with '+', sorted (the same input, the same names)."""
    groups = np.asarray(groups).astype(str)
    names, index = np.unique(groups, return_inverse=True)
    linked = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    component = connected_components(len(names), index[linked] if len(linked) else linked)
    members = {}
    for g, c in enumerate(component):
        members.setdefault(c, []).append(names[g])
    merged_names = {c: "+".join(sorted(m)) for c, m in members.items()}
    new = np.array([merged_names[c] for c in component[index]])
    sizes = [len(m) for m in members.values() if len(m) > 1]
    facts = {"pairs": int(len(linked)), "merged_groups": len(sizes), "groups_before": int(len(names)),
             "groups_after": int(len(members)), "largest": max(sizes, default=1)}
    return new, facts


def keep_groups_together(split, groups):
    """(new split, images moved): each group whose images lie in more than one split moved whole into the split
    holding most of them (ties: the first of train, val, test), every other image left where it was, so a split
    made before the groups were joined changes only where a cluster crossed it."""
    split = np.asarray(split).copy()
    order = {"train": 0, "val": 1, "test": 2}
    moved = 0
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        names, counts = np.unique(split[rows], return_counts=True)
        if len(names) > 1:
            target = min(zip(-counts, [order.get(n, 3) for n in names], names))[2]
            moved += int(np.sum(split[rows] != target))
            split[rows] = target
    return split, moved
