"""Calibrates the emergent-problem similarity threshold with the real model on BANKING77.

Simulates the detector's sliding window many times: a burst of paraphrases of one customer
problem (texts of one BANKING77 intent) among unrelated questions (other intents, at most
`--per-other` of each, so the background holds no burst of its own), then runs the same
clustering the worker runs (`leader_clusters`) at each threshold and reports:

- found: share of windows where a cluster has a majority of burst members and >= min_size of them,
- recall: burst members inside that cluster / burst size,
- precision: burst members inside that cluster / cluster size,
- false/window: clusters without a burst majority, per window (what a lead would see as noise).

Run: .venv/bin/python bench/emergent_threshold.py [--data PATH] [--seeds 3]
The data is read from the shared folder beside the repository; it is never copied into it.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import load_embedder  # noqa: E402
from supportswarm.metrics.clustering import Vectors, leader_clusters  # noqa: E402
from supportswarm.metrics.emergent import EmergentConfig  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
THRESHOLDS = [round(0.40 + 0.025 * i, 3) for i in range(15)]


@dataclass
class Score:
    found: int = 0
    recall: float = 0.0
    precision: float = 0.0
    false_clusters: int = 0
    windows: int = 0


def load(path: Path, per_intent: int, rng: random.Random) -> dict[str, list[str]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_intent[row["category"]].append(row["text"])
    return {k: rng.sample(v, min(per_intent, len(v))) for k, v in sorted(by_intent.items())}


def window(intents: dict[str, list[int]], burst_intent: str, args: argparse.Namespace,
           rng: random.Random) -> tuple[list[int], set[int]]:
    burst = rng.sample(intents[burst_intent], args.burst)
    others = [i for k, rows in intents.items() if k != burst_intent
              for i in rng.sample(rows, min(args.per_other, len(rows)))]
    rows = burst + rng.sample(others, min(args.background, len(others)))
    return rows, set(burst)


def evaluate(vectors: Vectors, rows: list[int], burst: set[int], threshold: float, min_size: int, s: Score) -> None:
    s.windows += 1
    clusters = leader_clusters(vectors[rows], threshold=threshold, min_size=min_size)
    best = 0
    for c in clusters:
        hits = sum(1 for m in c.members if rows[m] in burst)
        if hits * 2 > len(c.members) and hits >= min_size:
            if hits > best:
                best = hits
                precision = hits / len(c.members)
        else:
            s.false_clusters += 1
    if best:
        s.found += 1
        s.recall += best / len(burst)
        s.precision += precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--burst", type=int, default=10, help="paraphrases in the burst")
    p.add_argument("--background", type=int, default=50, help="unrelated questions in the window")
    p.add_argument("--per-other", type=int, default=2, help="at most this many of any other intent")
    p.add_argument("--min-size", type=int, default=EmergentConfig().min_size)
    args = p.parse_args()
    rng = random.Random(7)
    texts_by_intent = load(args.data, per_intent=40, rng=rng)
    texts = [t for ts in texts_by_intent.values() for t in ts]
    intents: dict[str, list[int]] = {}
    for k, ts in texts_by_intent.items():
        start = sum(len(v) for v in intents.values())
        intents[k] = list(range(start, start + len(ts)))
    started = time.perf_counter()
    vectors = load_embedder().encode(texts)
    print(f"embedded {len(texts)} texts of {len(intents)} intents in {time.perf_counter() - started:.1f}s")
    scores = {t: Score() for t in THRESHOLDS}
    for seed in range(args.seeds):
        wrng = random.Random(seed)
        for intent in intents:
            rows, burst = window(intents, intent, args, wrng)
            for t in THRESHOLDS:
                evaluate(vectors, rows, burst, t, args.min_size, scores[t])
    print(f"burst={args.burst} background={args.background} min_size={args.min_size} "
          f"windows={scores[THRESHOLDS[0]].windows}")
    print("threshold  found  recall  precision  false/window")
    for t, s in scores.items():
        found = s.found / s.windows
        recall = s.recall / max(1, s.found)
        precision = s.precision / max(1, s.found)
        print(f"{t:9.3f}  {found:5.2f}  {recall:6.2f}  {precision:9.2f}  {s.false_clusters / s.windows:12.3f}")
    print(f"configured threshold: {EmergentConfig().threshold}")


if __name__ == "__main__":
    main()
