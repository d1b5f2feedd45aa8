"""Import throughput of a Stack Exchange dump, beside the raw encode rate of the same texts.

Writes a synthetic dump in a temporary folder: `--posts` posts (default 100,000; about 40% questions,
the rest answers, a few of them before their question as in real dumps, many questions with an
accepted answer), Users.xml and Comments.xml beside it. Sentences come from BANKING77
(../shared/data/banking77/train.csv, read at run time, never copied), so titles and bodies have
realistic lengths and vocabulary: a title is one sentence, a question body 3-9 sentences in HTML
paragraphs (some with code), an answer 2-6. Then it imports the dump with the real model
(all-MiniLM-L6-v2, in-process: the single-node mode) into a fresh database. The raw encode rate of the
same texts (a sample of the question texts the import embeds, converted by the same code) is measured
with the same model in the same process, in the import's batch size, just before and just after the
import: the import can only be as fast as the model, and the gap between the two rates is what
reading, converting, storing and linking cost.

Run: .venv/bin/python bench/import_se.py [--posts 100000] [--database-url URL-of-an-EMPTY-database]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embeddings import Embedder, load_embedder  # noqa: E402
from supportswarm.importer import Record  # noqa: E402
from supportswarm.matching.search import question_text  # noqa: E402
from supportswarm.matching.services import EMBED_BATCH  # noqa: E402
from supportswarm.resources import open_resources  # noqa: E402
from supportswarm.settings import Settings  # noqa: E402
from supportswarm.stackexchange import import_dump, read_questions  # noqa: E402

BANKING77 = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
T0 = 1_500_000_000  # 2017-07-14, when the synthetic site opens
CODE = ["card.activate(pin=\"1234\")", "curl -X POST https://bank.example/api/transfers", "SELECT * FROM payments;"]


def load_sentences(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        data = list(csv.DictReader(handle))
    return [row["text"].strip() for row in data], sorted({row["category"] for row in data})


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000"


def _row(**attrs: object) -> str:
    return "  <row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None) + " />\n"


def _body(rng: random.Random, sentences: list[str], lo: int, hi: int) -> str:
    paragraphs, left = [], rng.randint(lo, hi)
    while left > 0:
        take = min(left, rng.randint(1, 3))
        paragraphs.append("<p>" + " ".join(rng.choice(sentences) for _ in range(take)) + "</p>")
        left -= take
    if rng.random() < 0.2:
        paragraphs.insert(rng.randint(0, len(paragraphs)), f"<pre><code>{rng.choice(CODE)}\n</code></pre>")
    return "\n".join(paragraphs) + "\n"


def posts(rng: random.Random, n: int, sentences: list[str], tags: list[str], users: int) -> Iterator[str]:
    """Rows in Id order; ~5% of answers are held back until after their question (out-of-order dumps)."""
    post_id = 0
    questions: list[int] = []
    held: list[str] = []
    while post_id < n:
        post_id += 1
        at = T0 + post_id * 600
        if not questions or rng.random() < 0.4:
            questions.append(post_id)
            answers_due = [post_id + k for k in range(1, 4)]
            yield _row(Id=post_id, PostTypeId=1, AcceptedAnswerId=rng.choice(answers_due) if rng.random() < 0.5
                       else None, CreationDate=_iso(at), Score=rng.randint(-2, 40), OwnerUserId=rng.randint(1, users),
                       LastActivityDate=_iso(at + 86400), Title=rng.choice(sentences)[:150],
                       Tags="|" + "|".join(rng.sample(tags, rng.randint(1, 3))) + "|",
                       Body=_body(rng, sentences, 3, 9))
            continue
        answer = _row(Id=post_id, PostTypeId=2, ParentId=questions[-1], CreationDate=_iso(at), Score=rng.randint(0, 60),
                      OwnerUserId=rng.randint(1, users), Body=_body(rng, sentences, 2, 6))
        if rng.random() < 0.05:
            held.append(answer)
            continue
        yield answer
        while held and rng.random() < 0.5:
            yield held.pop()
    yield from held


def write_dump(folder: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    sentences, categories = load_sentences(BANKING77)
    tags = [c.replace("_", "-")[:32] for c in categories]
    users = max(10, n // 10)
    folder.mkdir(parents=True)
    with (folder / "Users.xml").open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<users>\n')
        for uid in range(1, users + 1):
            out.write(_row(Id=uid, Reputation=rng.randint(1, 5000), CreationDate=_iso(T0 - 86400),
                           DisplayName=f"Member {uid}", LastAccessDate=_iso(T0 + n * 600)))
        out.write("</users>\n")
    with (folder / "Posts.xml").open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        out.writelines(posts(rng, n, sentences, tags, users))
        out.write("</posts>\n")
    with (folder / "Comments.xml").open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<comments>\n')
        for cid in range(1, n // 5 + 1):
            out.write(_row(Id=cid, PostId=rng.randint(1, n), Score=0, Text=rng.choice(sentences),
                           CreationDate=_iso(T0 + n * 600), UserId=rng.randint(1, users)))
        out.write("</comments>\n")
    return folder / "Posts.xml"


def encode_rate(embedder: Embedder, texts: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), EMBED_BATCH):
        embedder.encode(texts[i:i + EMBED_BATCH], batch_size=64)
    return len(texts) / (time.perf_counter() - started)


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


async def run(settings: Settings, args: argparse.Namespace, folder: Path) -> None:
    started = time.perf_counter()
    dump = write_dump(folder / "bank.stackexchange.com", args.posts, args.seed)
    size_mb = dump.stat().st_size / 1e6
    print(f"dump: {args.posts} posts, {size_mb:.1f} MB, written in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    # The texts the import will embed: the same reader, the same HTML conversion, the same join.
    texts = [question_text(r.title, r.body) for r in read_questions(dump, "bank.stackexchange.com")
             if isinstance(r, Record)]
    read_s = time.perf_counter() - started
    print(f"read + convert: {args.posts / read_s:,.0f} posts/s (pass 1 of 3, without storing or encoding)")
    rng = random.Random(args.seed)
    sample = rng.sample(texts, min(args.encode_sample, len(texts)))

    embedder = load_embedder()
    embedder.encode(["warm-up"])
    # The raw rate is measured before and after the import, so a change of machine load during the
    # run shows up as two different figures instead of skewing the comparison.
    before = encode_rate(embedder, sample)
    print(f"raw encode before the import: {before:.1f} texts/s ({len(sample)} of the question texts; {_load()})")
    async with open_resources(settings, embedder=embedder) as res:
        started = time.perf_counter()
        report = await import_dump(dump, embedder=embedder, jobs=res.jobs, inline=True)
        import_s = time.perf_counter() - started
    print(report.summary())
    after = encode_rate(embedder, sample)
    print(f"raw encode after the import:  {after:.1f} texts/s ({_load()})")

    questions = report.questions.imported
    raw = (before + after) / 2
    print(f"\nmodel {embedder.name}, {getattr(embedder, 'threads', '?')} threads, batches of {EMBED_BATCH}")
    print(f"import:     {args.posts / import_s:8.1f} posts/s  = {questions / import_s:6.1f} questions embedded/s "
          f"({args.posts} posts, {questions} questions, {import_s:.1f}s)")
    print(f"raw encode: {raw:8.1f} texts/s (mean of before and after)")
    print(f"import questions/s / raw encode texts/s = {questions / import_s / raw:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--encode-sample", type=int, default=1000, help="question texts encoded raw, before and after")
    p.add_argument("--database-url", default=None, help="an EMPTY database to fill (default: embedded, temporary)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="supportswarm-bench-") as tmp:
        settings = Settings(database_url=args.database_url, secret_key="bench", data_dir=Path(tmp), rate_limits=False)
        asyncio.run(run(settings, args, Path(tmp)))


if __name__ == "__main__":
    main()
