"""Grouping similar texts by their embeddings: the pure part of emergent-problem detection.

No database here, so the calibration script (bench/emergent_threshold.py) runs exactly the
clustering the worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Cluster:
    members: list[int]  # row indexes into the input, the representative first
    representative: int  # the medoid: the member most similar to the others
    cohesion: float  # mean cosine similarity of the members to the representative


def leader_clusters(vectors: Vectors, *, threshold: float, min_size: int) -> list[Cluster]:
    """Densest-first star clustering over cosine similarity of unit vectors.

    Repeatedly takes the unassigned point with the most unassigned neighbours at similarity >=
    `threshold` as a leader and makes it and those neighbours one cluster. Every member is close
    to the leader, so a chain of pairwise-similar questions cannot drag unrelated ones in (the
    weakness of connected components). Stops when no leader has `min_size` members (itself included).
    """
    n = len(vectors)
    if n == 0:
        return []
    sims = vectors @ vectors.T
    near = sims >= threshold
    free = np.ones(n, dtype=bool)
    clusters: list[Cluster] = []
    while free.any():
        degree = (near & free[None, :]).sum(axis=1) * free
        leader = int(np.argmax(degree))
        if degree[leader] < min_size:
            break
        members = np.flatnonzero(near[leader] & free)
        # The representative is the medoid (most similar to the rest), not necessarily the densest point.
        medoid = int(members[np.argmax(sims[np.ix_(members, members)].sum(axis=1))])
        ordered = [medoid, *(int(m) for m in members if m != medoid)]
        clusters.append(Cluster(ordered, medoid, float(sims[medoid, members].mean())))
        free[members] = False
    return clusters
