"""Matching research on BANKING77: rank answered questions and decide "answer" vs "ask".

Throwaway research script; the findings live in /tmp/matching_findings.md. The forum holds
the train texts as answered questions (one accepted answer per intent); test texts are new
questions. Every parameter and the routing threshold are chosen by 5-fold cross-validation
on train only (fold = new questions, the other 4 folds = the forum), then reported once on
test with the full train set as the forum. Numpy only, no database: a tiny BM25 stands in
for PostgreSQL full text.

    .venv/bin/python bench/matching_research.py              # the study (about 3 minutes)
    .venv/bin/python bench/matching_research.py --final     # the recommendation only (about 1 minute)
    .venv/bin/python bench/matching_research.py --encode-speed
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
import math
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

DATA = Path("/work/shared/data/banking77")
CACHE = Path("/tmp/supportswarm-matching-cache")  # vectors only, never in the repo
TOP_K = 50  # rows fetched per leg, as `ORDER BY ... LIMIT 50` would
DENSITY_NEIGHBOURS = 10
TARGET_PRECISION = 0.95
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]

# ============================================================================ the pure function
# Copied verbatim into the findings: the lead drops it into supportswarm/matching.

Q = TypeVar("Q", bound=Hashable)  # question id
A = TypeVar("A", bound=Hashable)  # accepted-answer id


@dataclass(frozen=True, slots=True)
class Hit(Generic[Q, A]):
    """One answered question returned by a retrieval leg."""

    question_id: Q
    answer_id: A
    cosine: float  # 1 - (embedding <=> :query)
    density: float = 0.0  # stored per question: mean cosine to its 10 nearest other questions


@dataclass(frozen=True, slots=True)
class AnswerScore(Generic[Q, A]):
    answer_id: A
    question_id: Q  # its best-matching question: what /similar shows for this answer
    score: float  # share of the evidence in 0..1; all candidates sum to 1
    cosine: float  # raw cosine of that question to the query


@dataclass(frozen=True, slots=True)
class MatchParams:
    per_answer: int = 5  # an answer's evidence = its best `per_answer` questions per leg
    temperature: float = 0.07  # softmax temperature over (cosine - density_weight * density)
    density_weight: float = 0.5  # hubness correction (CSLS-style); 0 turns it off
    text_weight: float = 1.0  # weight of the full-text leg against the vector leg (each sums to 1)
    rrf_k: float = 10.0  # full-text leg: a question at rank r counts 1 / (rrf_k + r)
    answer_threshold: float = 0.252  # offer the best answer when its score >= this (calibrated, see findings)
    min_cosine: float = 0.60  # ...and its best question's cosine >= this: off-topic questions get "ask"


def score_answers(
    vector_hits: Sequence[Hit[Q, A]], text_hits: Sequence[Hit[Q, A]] = (), params: MatchParams = MatchParams()
) -> list[AnswerScore[Q, A]]:
    """Fold the retrieved questions into scored accepted answers, best first.

    vector_hits: nearest answered questions by embedding (ORDER BY embedding <=> :q LIMIT 50).
    text_hits: full-text matches, best first (ORDER BY ts_rank(...) DESC LIMIT 50).
    Vector leg: answer a gets sum over its best `per_answer` questions of
    exp((cosine - density_weight * density - 1) / temperature). Text leg: sum over its first
    `per_answer` text hits of 1 / (rrf_k + rank). Each leg is normalised to sum 1, the text leg is
    weighted by text_weight, and the total normalised to 1: the first answer's score is the
    routing confidence.
    """
    legs: list[tuple[float, dict[A, list[float]]]] = [(1.0, defaultdict(list)), (params.text_weight, defaultdict(list))]
    best: dict[A, Hit[Q, A]] = {}
    for hit in vector_hits:
        adjusted = hit.cosine - params.density_weight * hit.density
        legs[0][1][hit.answer_id].append(math.exp((adjusted - 1.0) / params.temperature))
    for rank, hit in enumerate(text_hits, start=1):
        legs[1][1][hit.answer_id].append(1.0 / (params.rrf_k + rank))
    for hit in itertools.chain(vector_hits, text_hits):
        if hit.answer_id not in best or hit.cosine > best[hit.answer_id].cosine:
            best[hit.answer_id] = hit
    total: dict[A, float] = defaultdict(float)
    for weight, leg in legs:
        capped = {a: sum(sorted(v, reverse=True)[: params.per_answer]) for a, v in leg.items()}
        norm = sum(capped.values())
        for answer, value in capped.items():
            total[answer] += weight * value / norm
    norm = sum(total.values()) or 1.0
    ranked = sorted(total.items(), key=lambda item: item[1], reverse=True)
    return [AnswerScore(a, best[a].question_id, s / norm, best[a].cosine) for a, s in ranked]


def decide(scored: Sequence[AnswerScore[Q, A]], params: MatchParams = MatchParams()) -> Literal["answer", "ask"]:
    """ "answer": offer scored[0]'s accepted answer; "ask": post to the forum / open a swarm."""
    if scored and scored[0].score >= params.answer_threshold and scored[0].cosine >= params.min_cosine:
        return "answer"
    return "ask"


# ============================================================================ data and vectors


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def embed(texts: list[str]) -> Floats:
    """MiniLM vectors, cached by content outside the repo (the encode time is printed when not cached)."""
    from embeddings import load_embedder

    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"minilm-{digest}.npy"
    if path.exists():
        vectors: Floats = np.load(path)
        return vectors
    embedder = load_embedder()
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    print(f"encoded {len(texts)} texts in {time.perf_counter() - start:.1f}s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def stratified_folds(labels: Sequence[str], n_folds: int = 5, seed: int = 0) -> Ints:
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    for label in sorted(by_label):
        members = np.array(by_label[label])
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % n_folds
    return fold


def densities(x: Floats, k: int = DENSITY_NEIGHBOURS) -> Floats:
    """Mean cosine of each question to its k nearest other questions (a stored column in production)."""
    out = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), 2048):
        sims = x[start : start + 2048] @ x.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -1.0
        out[start : start + 2048] = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
    return out


# ============================================================================ full text: tiny BM25

# PostgreSQL's english.stop (Snowball) list, so the text leg drops what to_tsvector('english', ...) drops.
STOP = set(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each few more most other
    some such no nor not only own same so than too very s t can will just don should now""".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def light_stem(word: str) -> str:
    """A crude stand-in for the Snowball stemmer: merges card/cards, charge/charged/charging."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + keep
    return word


def lexemes(text: str) -> list[str]:
    return [light_stem(w) for w in _WORD.findall(text.lower().replace("'", "")) if w not in STOP]


class BM25:
    """Okapi BM25 over an OR of the query's lexemes (PostgreSQL needs an OR tsquery too: see findings)."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75, ts_rank: bool = False) -> None:
        self.ts_rank = ts_rank
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = []
        for i, doc in enumerate(docs):
            terms = lexemes(doc)
            lengths.append(len(terms))
            for term, tf in Counter(terms).items():
                self.postings[term].append((i, tf))
        self.n = len(docs)
        self.lengths = np.array(lengths, dtype=np.float32)
        self.avg = float(self.lengths.mean())
        self.k1, self.b = k1, b

    def scores(self, query: str) -> Floats:
        out = np.zeros(self.n, dtype=np.float32)
        for term in set(lexemes(query)):
            posting = self.postings.get(term)
            if not posting:
                continue
            if self.ts_rank:
                self._add_ts_rank(out, posting)
                continue
            idf = math.log(1 + (self.n - len(posting) + 0.5) / (len(posting) + 0.5))
            ids = np.array([p[0] for p in posting])
            tf = np.array([p[1] for p in posting], dtype=np.float32)
            norm = self.k1 * (1 - self.b + self.b * self.lengths[ids] / self.avg)
            out[ids] += idf * tf * (self.k1 + 1) / (tf + norm)
        return out

    @staticmethod
    def _add_ts_rank(out: Floats, posting: list[tuple[int, int]]) -> None:
        """What PostgreSQL's ts_rank (normalization 0) adds per matched OR-query lexeme: no IDF, no length
        normalisation, a tf weight saturating like sum(1/j^2) (tsrank.c calc_rank_or)."""
        for i, tf in posting:
            out[i] += sum(1.0 / (j * j) for j in range(1, tf + 1)) / 1.64493406685

    def top(self, query: str, k: int = TOP_K) -> tuple[list[int], list[float]]:
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        order = hits[np.argsort(-scores[hits], kind="stable")][:k]
        return [int(i) for i in order], [float(scores[i]) for i in order]


# ============================================================================ one forum + its new questions


@dataclass
class Fold:
    """A forum (index) and the new questions asked of it, with both retrieval legs precomputed."""

    x: Floats  # index vectors
    y: list[str]  # index intents (= accepted answer ids)
    q: Floats  # query vectors
    truth: list[str]
    vec_ids: Ints  # (n_queries, TOP_K) by raw cosine, best first
    vec_sims: Floats
    text_ids: list[list[int]]
    text_scores: list[list[float]]
    density: Floats
    _centroids: tuple[Floats, list[str]] | None = field(default=None, repr=False)

    def vector_hits(self, i: int) -> list[Hit[int, str]]:
        return [
            Hit(int(j), self.y[j], float(s), float(self.density[j]))
            for j, s in zip(self.vec_ids[i], self.vec_sims[i], strict=True)
        ]

    def text_hits(self, i: int) -> list[Hit[int, str]]:
        # In SQL the text query selects `1 - (embedding <=> :q)` too; here the cosine is computed directly.
        return [Hit(j, self.y[j], float(self.q[i] @ self.x[j]), float(self.density[j])) for j in self.text_ids[i]]

    def centroids(self) -> tuple[Floats, list[str]]:
        if self._centroids is None:
            names = sorted(set(self.y))
            index = {n: k for k, n in enumerate(names)}
            sums = np.zeros((len(names), self.x.shape[1]), dtype=np.float32)
            np.add.at(sums, np.array([index[v] for v in self.y]), self.x)
            self._centroids = (sums / np.linalg.norm(sums, axis=1, keepdims=True), names)
        return self._centroids


def make_fold(
    x: Floats,
    texts: Sequence[str],
    y: Sequence[str],
    qx: Floats,
    qtexts: Sequence[str],
    truth: Sequence[str],
    ts_rank: bool = False,
) -> Fold:
    sims = qx @ x.T
    top = np.argpartition(-sims, TOP_K, axis=1)[:, :TOP_K]
    order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
    ids = np.take_along_axis(top, order, 1)
    bm25 = BM25(texts, ts_rank=ts_rank)
    text = [bm25.top(t) for t in qtexts]
    return Fold(
        x,
        list(y),
        qx,
        list(truth),
        ids,
        np.take_along_axis(sims, ids, 1),
        [t[0] for t in text],
        [t[1] for t in text],
        densities(x),
    )


# ============================================================================ methods
# A method maps (fold, query number) to (answers best first, {confidence name: value}).

Ranked = tuple[list[str], dict[str, float]]
Method = Callable[[Fold, int], Ranked]


def distinct(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))


def nearest(f: Fold, i: int) -> Ranked:
    labels = [f.y[j] for j in f.vec_ids[i]]
    sims = f.vec_sims[i]
    second = next((s for lab, s in zip(labels, sims, strict=True) if lab != labels[0]), 0.0)
    return distinct(labels), {"top_cos": float(sims[0]), "cos_margin": float(sims[0] - second)}


def bm25_only(f: Fold, i: int) -> Ranked:
    labels, scores = [f.y[j] for j in f.text_ids[i]], f.text_scores[i]
    if not labels:
        return [], {"bm25_top": 0.0}
    return distinct(labels), {"bm25_top": scores[0]}


def rrf(k: float, text_weight: float) -> Method:
    """Classic question-level reciprocal-rank fusion of both legs; an answer ranks where its best question does."""

    def method(f: Fold, i: int) -> Ranked:
        fused: dict[int, float] = defaultdict(float)
        for rank, j in enumerate(f.vec_ids[i], start=1):
            fused[int(j)] += 1.0 / (k + rank)
        for rank, j in enumerate(f.text_ids[i], start=1):
            fused[j] += text_weight / (k + rank)
        order = sorted(fused, key=lambda j: fused[j], reverse=True)
        top = fused[order[0]]
        second = next((fused[j] for j in order if f.y[j] != f.y[order[0]]), 0.0)
        return distinct(f.y[j] for j in order), {"rrf_top": top * k, "rrf_margin": (top - second) * k}

    return method


def vote_sum(per_answer: int) -> Method:
    """Each answer scores the plain sum of the cosines of its best `per_answer` questions."""

    def method(f: Fold, i: int) -> Ranked:
        groups: dict[str, list[float]] = defaultdict(list)
        for j, s in zip(f.vec_ids[i], f.vec_sims[i], strict=True):
            groups[f.y[j]].append(float(s))
        score = {a: sum(v[:per_answer]) for a, v in groups.items()}
        total = sum(score.values())
        order = sorted(score, key=lambda a: score[a], reverse=True)
        second = score[order[1]] if len(order) > 1 else 0.0
        return order, {"share": score[order[0]] / total, "margin": (score[order[0]] - second) / total}

    return method


def vote(params: MatchParams, text: bool) -> Method:
    """score_answers, i.e. softmax voting by answer; the text leg is included when `text`."""

    def method(f: Fold, i: int) -> Ranked:
        scored = score_answers(f.vector_hits(i), f.text_hits(i) if text else (), params)
        second = scored[1].score if len(scored) > 1 else 0.0
        top = scored[0]
        return [s.answer_id for s in scored], {
            "share": top.score,
            "margin": top.score - second,
            "top_cos": top.cosine,
            "share_x_cos": top.score * top.cosine,
        }

    return method


def centroid(f: Fold, i: int) -> Ranked:
    cents, names = f.centroids()
    sims = cents @ f.q[i]
    order = np.argsort(-sims)
    return [names[j] for j in order], {
        "top_cos": float(sims[order[0]]),
        "margin": float(sims[order[0]] - sims[order[1]]),
    }


def vote_plus_centroid(params: MatchParams, weight: float, temperature: float) -> Method:
    """Mix the vote shares with a softmax over per-answer centroid similarities."""

    def method(f: Fold, i: int) -> Ranked:
        cents, names = f.centroids()
        logits = (cents @ f.q[i]) / temperature
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        mixed = {n: weight * float(p) for n, p in zip(names, probs, strict=True)}
        for s in score_answers(f.vector_hits(i), (), params):
            mixed[s.answer_id] += (1 - weight) * s.score
        order = sorted(mixed, key=lambda n: mixed[n], reverse=True)
        return order, {"share": mixed[order[0]], "margin": mixed[order[0]] - mixed[order[1]]}

    return method


def families() -> dict[str, dict[str, Method]]:
    """The candidates, grouped into the method families of the brief; CV picks one per family."""
    p = MatchParams
    fams: dict[str, dict[str, Method]] = {
        "(1) cosine nearest neighbour": {"-": nearest},
        "(2) BM25 full text": {"k1=1.2 b=0.75": bm25_only},
        "(3) hybrid RRF (question level)": {
            f"k={k} w_text={w}": rrf(k, w) for k, w in itertools.product((10, 60), (0.25, 0.5, 1.0))
        },
        "(4a) kNN vote, sum of cosines": {f"per_answer={n}": vote_sum(n) for n in (3, 5, 10)},
        "(4b) kNN vote, softmax": {
            f"per_answer={n} T={t}": vote(p(n, t, 0.0, 0.0), text=False)
            for n, t in itertools.product((1, 3, 5, 10), (0.03, 0.05, 0.07, 0.1))
        },
        "(5) answer centroid": {"-": centroid},
        "(6a) vote + centroid": {
            f"per_answer=5 T=0.05 w={w} Tc={tc}": vote_plus_centroid(p(5, 0.05, 0.0, 0.0), w, tc)
            for w, tc in itertools.product((0.2, 0.4), (0.02, 0.05))
        },
        "(6b) hybrid vote (vector + text)": {
            f"per_answer={n} T={t} w_text={w} rrf_k={k}": vote(p(n, t, 0.0, w, k), text=True)
            for n, t, w, k in itertools.product((5, 10), (0.05, 0.07), (0.5, 1.0, 1.5), (10, 60))
        },
        "(6c) hybrid vote + density correction": {
            f"per_answer={n} T={t} density={d} w_text={w} rrf_k={k}": vote(p(n, t, d, w, k), text=True)
            for n, t, d, w, k in itertools.product((5, 10), (0.05, 0.07), (0.25, 0.5, 0.75), (1.0, 1.5), (10, 60))
        },
    }
    return fams


# ============================================================================ evaluation


@dataclass
class Outcome:
    top1: Floats  # 1.0 where the best answer is right
    top5: Floats  # 1.0 where one of the first 5 distinct answers is right
    conf: dict[str, Floats]

    @staticmethod
    def of(method: Method, fold: Fold) -> Outcome:
        top1, top5, conf = [], [], defaultdict(list)
        for i, truth in enumerate(fold.truth):
            answers, scores = method(fold, i)
            top1.append(float(bool(answers) and answers[0] == truth))
            top5.append(float(truth in answers[:5]))
            for name, value in scores.items():
                conf[name].append(value)
        return Outcome(np.array(top1), np.array(top5), {k: np.array(v) for k, v in conf.items()})

    @staticmethod
    def concat(outs: Sequence[Outcome]) -> Outcome:
        return Outcome(
            np.concatenate([o.top1 for o in outs]),
            np.concatenate([o.top5 for o in outs]),
            {k: np.concatenate([o.conf[k] for o in outs]) for k in outs[0].conf},
        )


def calibrate(conf: Floats, correct: Floats, target: float = TARGET_PRECISION) -> float:
    """The lowest threshold t such that answering every query with conf >= t is right >= target of the time."""
    order = np.argsort(-conf, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= target)
    return float(conf[order[ok[-1]]]) if len(ok) else math.inf


def at_threshold(conf: Floats, correct: Floats, t: float) -> tuple[float, float]:
    """(precision of "answer", coverage) when answering conf >= t."""
    answered = conf >= t
    return (float(correct[answered].mean()) if answered.any() else math.nan), float(answered.mean())


@dataclass
class Choice:
    family: str
    config: str
    cv: Outcome
    conf_name: str
    threshold: float


def choose(family: str, configs: dict[str, Method], folds: Sequence[Fold], log: list[str]) -> Choice:
    """Best config of a family by CV top-1; its confidence = the one with most CV coverage at the target."""
    best: Choice | None = None
    for config, method in configs.items():
        cv = Outcome.concat([Outcome.of(method, f) for f in folds])
        coverage = {k: at_threshold(v, cv.top1, calibrate(v, cv.top1))[1] for k, v in cv.conf.items()}
        conf_name = max(coverage, key=lambda k: coverage[k])
        log.append(
            f"{family}\t{config}\t{cv.top1.mean():.4f}\t{cv.top5.mean():.4f}\t{conf_name}\t{coverage[conf_name]:.4f}"
        )
        if best is None or cv.top1.mean() > best.cv.top1.mean():
            best = Choice(family, config, cv, conf_name, calibrate(cv.conf[conf_name], cv.top1))
    assert best is not None
    return best


@dataclass
class Data:
    train: list[str]
    y_train: list[str]
    x_train: Floats
    test: list[str]
    y_test: list[str]
    x_test: Floats

    @staticmethod
    def load() -> Data:
        train, y_train = read_split(DATA / "train.csv")
        test, y_test = read_split(DATA / "test.csv")
        return Data(train, y_train, embed(train), test, y_test, embed(test))

    def cv_folds(self, ts_rank: bool = False) -> list[Fold]:
        fold_of = stratified_folds(self.y_train)
        folds = []
        for k in range(5):
            q, idx = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
            index = [self.train[i] for i in idx], [self.y_train[i] for i in idx]
            new = [self.train[i] for i in q], [self.y_train[i] for i in q]
            folds.append(make_fold(self.x_train[idx], *index, self.x_train[q], new[0], new[1], ts_rank))
        return folds

    def test_fold(self, ts_rank: bool = False) -> Fold:
        return make_fold(self.x_train, self.train, self.y_train, self.x_test, self.test, self.y_test, ts_rank)


def study() -> None:
    """Every family of the brief: best config on CV, then test."""
    data = Data.load()
    cv_folds = data.cv_folds()
    test_fold = data.test_fold()
    log = ["family\tconfig\tcv_top1\tcv_top5\tconfidence\tcv_coverage@95"]
    rows = [
        "| method | chosen on CV | CV top-1 | test top-1 | test top-5 | confidence | threshold"
        " | test precision | test coverage | ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family, configs in families().items():
        c = choose(family, configs, cv_folds, log)
        start = time.perf_counter()
        out = Outcome.of(configs[c.config], test_fold)
        ms = (time.perf_counter() - start) * 1000 / len(data.test)
        precision, coverage = at_threshold(out.conf[c.conf_name], out.top1, c.threshold)
        rows.append(
            f"| {family} | {c.config} | {c.cv.top1.mean():.2%} | {out.top1.mean():.2%} | {out.top5.mean():.2%} "
            f"| {c.conf_name} | {c.threshold:.4f} | {precision:.2%} | {coverage:.2%} | {ms:.2f} |"
        )
    Path("/tmp/matching_cv_grid.tsv").write_text("\n".join(log) + "\n")
    print("\n".join(rows))


# Hand-written questions no banking intent answers (off-topic, gibberish, unsupported products):
# the forum must "ask" for them. BANKING77 itself has no out-of-scope queries.
OFF_TOPIC = [
    "What's the weather going to be like tomorrow?",
    "How do I reset my wifi router?",
    "My cat keeps throwing up, what should I do?",
    "Can you recommend a good pizza place nearby?",
    "How do I install Python on Windows?",
    "What time does the football match start?",
    "hello",
    "asdfgh qwerty",
    "Tell me a joke",
    "Who won the election?",
    "How many calories are in a banana?",
    "My laptop screen is flickering",
    "How do I change the oil in my car?",
    "What is the capital of Australia?",
    "Can I bring my dog on the train?",
    "How long should I boil an egg?",
    "Where can I buy concert tickets?",
    "What are your current mortgage interest rates?",
    "Can you give me investment advice on stocks?",
    "How do I file my taxes?",
    "Do you offer car insurance?",
    "Can I open a business account for my company?",
    "What is the minimum for a personal loan?",
    "How do I buy bitcoin?",
    "Is there a branch I can visit in person?",
    "Can I get a student loan through you?",
    "My phone app crashes when I open the camera",
    "Thank you, that solved it!",
    "I want to speak to a manager about your ads",
    "Do you sponsor any sports teams?",
    "How do I update my printer drivers?",
    "What's the best way to learn French?",
]

FINAL = {
    "hybrid vote + density, BM25 text leg (recommended)": (MatchParams(5, 0.07, 0.5, 1.0, 10.0), False, True),
    "hybrid vote + density, ts_rank text leg": (MatchParams(5, 0.07, 0.5, 0.25, 10.0), True, True),
    "vote + density, vector leg only": (MatchParams(5, 0.07, 0.5, 0.0, 10.0), False, False),
    "vote, vector leg only (no density column)": (MatchParams(5, 0.07, 0.0, 0.0, 10.0), False, False),
}


def final() -> None:
    """The recommended scoring with the two-part routing rule (share threshold + cosine floor)."""
    from embeddings import load_embedder

    data = Data.load()
    off_topic = make_fold(
        data.x_train, data.train, data.y_train, load_embedder().encode(OFF_TOPIC), OFF_TOPIC, ["-"] * len(OFF_TOPIC)
    )
    print(
        "| scoring | CV top-1 | test top-1 | test top-5 | threshold (share) | min cosine | test precision"
        " | test coverage | off-topic answered | ms/query |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (params, ts_rank, text) in FINAL.items():
        method = vote(params, text)
        cv = Outcome.concat([Outcome.of(method, f) for f in data.cv_folds(ts_rank)])
        gated = np.where(cv.conf["top_cos"] >= params.min_cosine, cv.conf["share"], -1.0)
        tuned = dataclasses.replace(params, answer_threshold=math.ceil(calibrate(gated, cv.top1) * 1000) / 1000)
        start = time.perf_counter()
        out = Outcome.of(method, data.test_fold(ts_rank))
        ms = (time.perf_counter() - start) * 1000 / len(data.test)
        answered = (out.conf["share"] >= tuned.answer_threshold) & (out.conf["top_cos"] >= tuned.min_cosine)
        no_floor = dataclasses.replace(tuned, min_cosine=-1.0)
        off = [
            score_answers(off_topic.vector_hits(i), off_topic.text_hits(i) if text else (), tuned)
            for i in range(len(OFF_TOPIC))
        ]
        wrongly = sum(decide(s, tuned) == "answer" for s in off)
        wrongly_without_floor = sum(decide(s, no_floor) == "answer" for s in off)
        print(
            f"| {name} | {cv.top1.mean():.2%} | {out.top1.mean():.2%} | {out.top5.mean():.2%} "
            f"| {tuned.answer_threshold:.3f} | {tuned.min_cosine:.2f} | {out.top1[answered].mean():.2%} "
            f"| {answered.mean():.2%} | {wrongly}/{len(OFF_TOPIC)} ({wrongly_without_floor} w/o floor) | {ms:.2f} |"
        )


# ============================================================================ encode speed


def encode_speed_one(threads: int) -> None:
    from embeddings import SentenceTransformerEmbedder

    texts, _ = read_split(DATA / "test.csv")
    start = time.perf_counter()
    embedder = SentenceTransformerEmbedder(threads=threads)
    load_s = time.perf_counter() - start
    embedder.encode(texts[:64])
    latencies = []
    for text in texts[:300]:
        start = time.perf_counter()
        embedder.encode([text])
        latencies.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    embedder.encode(texts, batch_size=64)
    rate = len(texts) / (time.perf_counter() - start)
    q = statistics.quantiles(latencies, n=10)
    print(f"| {threads} | {load_s:.2f} | {statistics.median(latencies):.1f} | {q[8]:.1f} | {rate:.0f} |")


def encode_speed() -> None:
    print("| torch threads | load s | single query p50 ms | p90 ms | batch texts/s (3,080 test texts, batch 64) |")
    print("|---|---|---|---|---|")
    for threads in (1, 2, 4):  # one process each: torch's thread count is process-wide
        subprocess.run([sys.executable, __file__, "--encode-one", str(threads)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encode-speed", action="store_true")
    parser.add_argument("--final", action="store_true", help="only the recommended scoring and its routing rule")
    parser.add_argument("--encode-one", type=int)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if args.encode_one:
        encode_speed_one(args.encode_one)
    elif args.encode_speed:
        encode_speed()
    elif args.final:
        final()
    else:
        study()


if __name__ == "__main__":
    main()
