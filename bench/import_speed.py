"""Import throughput (questions/s) beside the raw encode rate of the same texts, measured in the same run.

Run: .venv/bin/python -m bench.import_speed [--questions 10000] [--batch-size 256]

Writes a JSON Lines file of N questions (title + body made of BANKING77 texts, read from the shared
folder at run time, never copied into the repository), measures the model alone encoding those
texts the way the import does (batches of 256, 64 per forward pass) before and after, then runs
`supportswarm import` on the file (`importer.import_file`, inline: no REDIS_URL) into a fresh
temporary embedded PostgreSQL, and compares with the mean of the two raw rates (the machine's load
may change in between: both are printed).
Target (issue 3): import >= 80% of the raw encode rate, i.e. storing costs at most a fifth of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.matching import DEFAULT_DATA, read_rows, temporary_database
from embeddings import Embedder, load_embedder
from supportswarm import importer
from supportswarm.db import ensure_database, parse_database_url
from supportswarm.matching import density
from supportswarm.matching.search import question_text
from supportswarm.resources import open_resources
from supportswarm.settings import Settings

ENCODE_SAMPLE = 2000  # texts encoded to measure the raw rate (the rate is flat beyond a few batches)


def write_questions(path: Path, n: int, seed: int) -> list[str]:
    """N questions: a title, a body of one to three other texts, one answer in two; returns their texts."""
    rng = random.Random(seed)
    texts = [r.text for r in read_rows(DEFAULT_DATA / "train.csv", "t")]
    embedded: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            title = rng.choice(texts)[:200]
            body = " ".join(rng.sample(texts, rng.randint(1, 3)))
            record = {"external_id": f"bench:{i}", "title": title, "body": body, "tags": ["bench"]}
            if i % 2 == 0:
                record["answer"] = rng.choice(texts)
            out.write(json.dumps(record) + "\n")
            embedded.append(question_text(" ".join(title.split()), body.strip()))
    return embedded


async def run(args: argparse.Namespace) -> None:
    embedder = load_embedder()
    with tempfile.TemporaryDirectory(prefix="ss-import-") as tmp:
        path = Path(tmp) / "questions.jsonl"
        texts = write_questions(path, args.questions, args.seed)
        embedder.encode(texts[:64])  # warm-up: first calls allocate
        before = raw_rate(embedder, texts)
        with temporary_database(args.database_url) as url:
            await ensure_database(parse_database_url(url))
            settings = Settings(database_url=url, secret_key="bench", rate_limits=False)
            rate, seconds, report = await _import(settings, path, embedder, args)
        after = raw_rate(embedder, texts)
        raw = (before + after) / 2
        print(report.summary())
        print(f"raw encode: {before:.0f} questions/s before the import, {after:.0f} after "
              f"({ENCODE_SAMPLE} of the same title+body texts, batches of 256 as the import encodes them)")
        print(f"import: {report.imported} questions in {seconds:.1f}s = {rate:.0f} questions/s, "
              f"{100 * rate / raw:.0f}% of the raw encode rate (their mean; target >= 80%)")


def raw_rate(embedder: Embedder, texts: list[str]) -> float:
    """The model alone on the import's own texts, in the import's batches (256 texts, 64 per forward)."""
    sample = texts[:ENCODE_SAMPLE]
    start = time.perf_counter()
    for lo in range(0, len(sample), importer.BATCH):
        embedder.encode(sample[lo:lo + importer.BATCH], batch_size=64)
    return len(sample) / (time.perf_counter() - start)


async def _import(settings: Settings, path: Path, embedder: Embedder, args: argparse.Namespace
                  ) -> tuple[float, float, importer.ImportReport]:
    async with open_resources(settings, embedder=embedder) as res:
        bar = importer.ProgressBar("import", args.questions)
        start = time.perf_counter()
        report = await importer.import_file(path, embedder=embedder, jobs=res.jobs, inline=True,
                                            batch_size=args.batch_size, progress=bar)
        seconds = time.perf_counter() - start
        bar.close()
        # `supportswarm import` ends with this pass (the vote's hubness correction); timed on its own.
        start = time.perf_counter()
        n = await density.refresh_density(model=embedder.name)
        pass_s = time.perf_counter() - start
        print(f"density pass: {n} questions in {pass_s:.1f}s = {n / pass_s:.0f} questions/s; import with it: "
              f"{report.imported / (seconds + pass_s):.0f} questions/s")
    return report.imported / seconds, seconds, report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=importer.BATCH)
    parser.add_argument("--database-url", help="an empty database (default: a temporary embedded PostgreSQL)")
    parser.add_argument("--seed", type=int, default=3)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
