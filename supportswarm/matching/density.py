"""Per-question density, the hubness correction of the answer vote, and its upkeep.

A question's density is the mean cosine of its vector to its `NEIGHBOURS` nearest other visible
questions (same model). The vote in `search.fuse` weighs each candidate by its cosine minus
`Fusion.density_weight` x density, so a question that is close to everything (a hub) no longer
collects the votes of queries that belong to its neighbours.

Freshness: a question's density depends on its neighbourhood, which changes as questions come and go.
- One question embedded (ask, edit): its density and its neighbours' are recomputed at once; those
  are the questions whose neighbourhood it just joined, the only ones that move noticeably.
- Import or reindex: bulk changes move everyone's neighbourhood, so the command ends with a batched
  pass over all questions (`refresh_density`, one HNSW query per question).
- Once a day (JobName.REFRESH_DENSITY) the same pass catches the slow drift the embed path does not
  see: questions hidden as duplicates, second neighbours. One new neighbour moves a density by at most
  1/NEIGHBOURS of a cosine gap, so a day-old value stays within a few thousandths of the fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tortoise import connections

NEIGHBOURS = 10  # chosen by 5-fold cross-validation on BANKING77 train.csv (5, 10 and 20 tried)
BATCH = 500  # questions per statement of the full pass

# $1 question ids, $2 model. One HNSW scan per question (a LATERAL nearest-neighbour query). RETURNING
# gives each updated question's neighbours, for the embed path to refresh them too. Rows another
# transaction holds are skipped, not waited for: concurrent embed jobs refresh overlapping
# neighbourhoods, and waiting made deadlocks (two jobs, or a job and a moderator's UPDATE of a question);
# a skipped density is refreshed by the next embedding nearby or the daily pass.
UPDATE_SQL = f"""
WITH mine AS MATERIALIZED (
    SELECT id FROM questions WHERE id = ANY($1::int[]) AND embedding_model = $2
    ORDER BY id FOR UPDATE SKIP LOCKED
), near AS MATERIALIZED (
    SELECT s.id, n.id AS neighbour, n.cosine
    FROM questions AS s CROSS JOIN LATERAL (
        SELECT o.id, 1 - (o.embedding <=> s.embedding) AS cosine
        FROM questions AS o
        WHERE o.embedding_model = $2 AND o.status <> 'duplicate' AND o.hidden_at IS NULL AND o.id <> s.id
        ORDER BY o.embedding <=> s.embedding
        LIMIT {NEIGHBOURS}
    ) AS n
    WHERE s.id IN (SELECT id FROM mine)
), d AS (
    SELECT id, avg(cosine)::real AS density, array_agg(neighbour) AS neighbours FROM near GROUP BY id
)
UPDATE questions AS q SET density = d.density FROM d WHERE q.id = d.id
RETURNING d.neighbours
"""


async def update_density(question_ids: Sequence[int], *, model: str, neighbours: bool = False) -> int:
    """Recomputes the density of these questions (those with a vector of `model`); with `neighbours`,
    also of their nearest questions. Returns the number of questions updated."""
    db = connections.get("default")
    rows = await db.execute_query_dict(UPDATE_SQL, [list(question_ids), model])
    updated = len(rows)
    if neighbours and rows:
        near = sorted({n for row in rows for n in row["neighbours"]} - set(question_ids))
        updated += len(await db.execute_query_dict(UPDATE_SQL, [near, model]))
    return updated


async def refresh_density(*, model: str, batch_size: int = BATCH, progress: Callable[[int], None] | None = None
                          ) -> int:
    """Recomputes every question's density with `model`'s vectors, `batch_size` questions per statement
    (reads go on meanwhile). `progress` gets the size of each batch; returns the number updated."""
    db, after, total = connections.get("default"), 0, 0
    # Fresh statistics first: right after a bulk import the planner still believes the table is tiny and
    # scans it whole per question (quadratic) instead of using the HNSW index. ANALYZE samples; it is cheap.
    await db.execute_script("ANALYZE questions")
    while ids := [r["id"] for r in await db.execute_query_dict(
            "SELECT id FROM questions WHERE id > $1 AND embedding_model = $2 ORDER BY id LIMIT $3",
            [after, model, batch_size])]:
        after = ids[-1]
        total += await update_density(ids, model=model)
        if progress is not None:
            progress(len(ids))
    return total


async def count_embedded(model: str) -> int:
    """Questions with a vector of `model`: the full pass's total, for a progress bar."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT count(*) AS n FROM questions WHERE embedding_model = $1", [model])
    return int(rows[0]["n"])
