-- Metrics (issue 5): rollups of the event log, and emergent-problem clusters with their incidents.

-- The transaction that wrote each event. The rollup job folds events whose transaction ended
-- before its snapshot's xmin, so an event committed late (with a lower id than events already
-- folded) is never skipped: ids are not commit-ordered, transaction ids below xmin are final.
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_txid ON events (txid);
CREATE INDEX events_swarm ON events (swarm_id, kind) WHERE swarm_id IS NOT NULL;

-- One row per asked question: the times the dashboard measures from, derived from its events.
CREATE TABLE metric_question_facts (
    question_id         integer PRIMARY KEY REFERENCES questions(id) ON DELETE CASCADE,
    asked_at            timestamptz NOT NULL,
    asker_id            integer,
    first_response_at   timestamptz,
    first_response_type varchar(16),
    first_staff_at      timestamptz,
    first_expert_at     timestamptz,
    first_community_at  timestamptz,
    resolved_at         timestamptz,
    duplicate_at        timestamptz,
    swarm_opened_at     timestamptz,
    events              integer NOT NULL DEFAULT 0
);
CREATE INDEX metric_question_facts_asked ON metric_question_facts (asked_at);
CREATE INDEX metric_question_facts_open ON metric_question_facts (asked_at)
    WHERE resolved_at IS NULL AND duplicate_at IS NULL;
CREATE INDEX metric_question_facts_resolved ON metric_question_facts (resolved_at);
CREATE INDEX metric_question_facts_duplicate ON metric_question_facts (duplicate_at);

-- One row per swarm that has events.
CREATE TABLE metric_swarm_facts (
    swarm_id      integer PRIMARY KEY REFERENCES swarms(id) ON DELETE CASCADE,
    question_id   integer NOT NULL,
    reason        varchar(32) NOT NULL DEFAULT 'manual',
    opened_at     timestamptz NOT NULL,
    first_join_at timestamptz,
    size          integer NOT NULL DEFAULT 0,
    resolved_at   timestamptz
);
CREATE INDEX metric_swarm_facts_opened ON metric_swarm_facts (opened_at);
CREATE INDEX metric_swarm_facts_question ON metric_swarm_facts (question_id);

-- Who helped whom: one row per credited person per event (see rollup.CONTRIBUTIONS_SQL).
CREATE TABLE metric_contributions (
    event_id    bigint NOT NULL,
    user_id     integer NOT NULL,
    at          timestamptz NOT NULL,
    question_id integer,
    what        varchar(16) NOT NULL CHECK (what IN ('solution', 'reuse', 'swarm', 'first_response')),
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX metric_contributions_at ON metric_contributions (at);

-- How far the rollup has folded: every event whose txid is below `watermark` is in the facts tables.
CREATE TABLE metric_rollup_state (
    name   varchar(32) PRIMARY KEY,
    watermark xid8 NOT NULL,
    ran_at timestamptz
);
INSERT INTO metric_rollup_state (name, watermark) VALUES ('facts', '0');

-- A burst of similar new questions found by the DETECT_EMERGENT job.
CREATE TABLE emergent_clusters (
    id                         serial PRIMARY KEY,
    status                     varchar(16) NOT NULL DEFAULT 'open'
                               CHECK (status IN ('open', 'incident', 'dismissed')),
    label                      varchar(200) NOT NULL,
    representative_question_id integer REFERENCES questions(id) ON DELETE SET NULL,
    size                       integer NOT NULL,
    askers                     integer NOT NULL,
    first_asked_at             timestamptz NOT NULL,
    last_asked_at              timestamptz NOT NULL,
    cohesion                   double precision NOT NULL,
    detected_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    swarm_id                   integer REFERENCES swarms(id) ON DELETE SET NULL,
    decided_by_id              integer REFERENCES users(id) ON DELETE SET NULL,
    decided_at                 timestamptz
);
CREATE INDEX emergent_clusters_status ON emergent_clusters (status, updated_at DESC);

CREATE TABLE emergent_cluster_questions (
    cluster_id  integer NOT NULL REFERENCES emergent_clusters(id) ON DELETE CASCADE,
    question_id integer NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    similarity  double precision NOT NULL,
    PRIMARY KEY (cluster_id, question_id)
);
CREATE INDEX emergent_cluster_questions_question ON emergent_cluster_questions (question_id);

-- The questions an incident swarm covers: its own question and every other one of its cluster.
CREATE TABLE incident_questions (
    swarm_id    integer NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
    question_id integer NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    cluster_id  integer REFERENCES emergent_clusters(id) ON DELETE SET NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (swarm_id, question_id)
);
CREATE INDEX incident_questions_question ON incident_questions (question_id);
