-- Site search (GET /api/v1/search, /search): answers, comments and swarm transcripts become searchable
-- like questions already are (questions.search, 0001). Plain to_tsvector, no setweight: how much a match
-- in an answer, a comment or a room counts against one in a title is a ranking choice, made at query
-- time in matching/site_search.py, so tuning it needs no rewrite of these columns.
-- Adding a stored generated column rewrites the table once (a lock for the length of the rewrite).
ALTER TABLE answers ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED;
CREATE INDEX answers_search ON answers USING gin (search);

ALTER TABLE comments ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED;
CREATE INDEX comments_search ON comments USING gin (search);

ALTER TABLE swarm_messages ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED;
CREATE INDEX swarm_messages_search ON swarm_messages USING gin (search);

-- A duplicate's matches are reported under its canonical question: the snippet query looks a page's
-- questions' duplicates up by this column.
CREATE INDEX questions_duplicate_of ON questions (duplicate_of_id) WHERE duplicate_of_id IS NOT NULL;
