-- Swarm rooms (issue 4): helper expertise profiles and questions linked to an (incident) swarm.

-- One row per helper: the normalised weighted mean of the embeddings of what they answered well
-- (accepted / upvoted answers, their messages in resolved swarms) and the tags of those questions.
-- Rebuilt by the update_expertise job; read when ranking who can help.
CREATE TABLE helper_expertise (
    user_id    integer PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    embedding  vector(384),
    tags       jsonb NOT NULL DEFAULT '{}'::jsonb,
    evidence   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Further questions gathered into a swarm that belongs to another question (incident swarms).
-- A question is in at most one swarm: its own (swarms.question_id) or one linked here.
CREATE TABLE swarm_links (
    question_id integer PRIMARY KEY REFERENCES questions(id) ON DELETE CASCADE,
    swarm_id    integer NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
    linked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX swarm_links_swarm ON swarm_links (swarm_id);

-- Inbox and load queries: a helper's live memberships.
CREATE INDEX swarm_participants_swarm ON swarm_participants (swarm_id) WHERE joined_at IS NOT NULL;
