-- Similar-question search settings for every session of this database (issue 3).
-- hnsw.ef_search 100 (default 40): the candidate list of an HNSW scan; 100 keeps recall of the true
-- nearest neighbour high at 100k questions for well under a millisecond more per query.
-- hnsw.iterative_scan (pgvector >= 0.8): when filters (other model, duplicates) drop rows, the scan
-- continues instead of returning fewer than LIMIT; search.py re-sorts, so relaxed order is enough.
-- Only the database owner may do this; without the privilege (or on pgvector < 0.8) the defaults
-- stay and search still works, only with lower recall while a model change is being reindexed.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = 100', current_database());
    EXECUTE format('ALTER DATABASE %I SET hnsw.iterative_scan = relaxed_order', current_database());
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'hnsw search settings not applied: %', SQLERRM;
END $$;

-- The re-embedding sweep (`supportswarm reindex`, import resume) finds stale rows without a full scan.
CREATE INDEX questions_embedding_stale ON questions (id)
    WHERE embedding IS NULL;

-- A rejected suggestion posts the draft as a question: its tags must survive the round trip.
ALTER TABLE suggestions ADD COLUMN draft_tags text NOT NULL DEFAULT '';
CREATE INDEX suggestions_asker ON suggestions (asker_id, created_at);

-- Document frequencies of the full-text lexemes, for an IDF-weighted (BM25-style) full-text ranking:
-- PostgreSQL's ts_rank has no notion of how rare a word is, so "card" would weigh as much as
-- "chargeback". The row with lexeme '' holds the totals: ndoc = questions, nentry = their lexemes.
-- Refreshed after import and every ten minutes (JobName.REFRESH_SEARCH_TERMS); the words of questions
-- newer than the last refresh count as rare, which they are. (Not ts_stat('SELECT ...'): names in
-- that string would be resolved with the empty search_path materialized views are refreshed with.)
CREATE MATERIALIZED VIEW search_terms AS
    SELECT t.lexeme, count(*)::int AS ndoc, count(*)::int AS nentry
    FROM questions AS q, unnest(tsvector_to_array(q.search)) AS t(lexeme)
    WHERE q.status <> 'duplicate'
    GROUP BY t.lexeme
    UNION ALL
    SELECT '', count(*)::int, coalesce(sum(length(search)), 0)::int FROM questions WHERE status <> 'duplicate';
CREATE UNIQUE INDEX search_terms_lexeme ON search_terms (lexeme);
