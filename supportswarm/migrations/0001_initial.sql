-- The whole initial schema. Later migrations only add to it (see db.migrate).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id            serial PRIMARY KEY,
    username      varchar(32) NOT NULL,
    email         varchar(254),
    password_hash text NOT NULL,
    role          varchar(16) NOT NULL DEFAULT 'customer'
                  CHECK (role IN ('customer', 'expert', 'staff', 'lead', 'admin')),
    reputation    integer NOT NULL DEFAULT 1,
    on_duty       boolean NOT NULL DEFAULT false,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE api_tokens (
    id           serial PRIMARY KEY,
    user_id      integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   char(64) NOT NULL UNIQUE,
    name         varchar(64) NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE TABLE tags (
    id   serial PRIMARY KEY,
    name varchar(32) NOT NULL UNIQUE
);

CREATE TABLE questions (
    id                 serial PRIMARY KEY,
    external_id        varchar(128) UNIQUE,
    author_id          integer REFERENCES users(id) ON DELETE SET NULL,
    title              varchar(200) NOT NULL,
    body               text NOT NULL,
    status             varchar(16) NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'swarming', 'resolved', 'duplicate')),
    accepted_answer_id integer,
    duplicate_of_id    integer REFERENCES questions(id) ON DELETE SET NULL,
    score              integer NOT NULL DEFAULT 0,
    answer_count       integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_activity_at   timestamptz NOT NULL DEFAULT now(),
    embedding          vector(384),
    embedding_model    varchar(100),
    search             tsvector GENERATED ALWAYS AS (
                           setweight(to_tsvector('english', coalesce(title, '')), 'A')
                           || setweight(to_tsvector('english', coalesce(body, '')), 'B')
                       ) STORED
);
CREATE INDEX questions_status_created ON questions (status, created_at DESC);
CREATE INDEX questions_author ON questions (author_id);
CREATE INDEX questions_search ON questions USING gin (search);
CREATE INDEX questions_embedding ON questions USING hnsw (embedding vector_cosine_ops);

CREATE TABLE question_tags (
    question_id integer NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    tag_id      integer NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (question_id, tag_id)
);
CREATE INDEX question_tags_tag ON question_tags (tag_id);

CREATE TABLE answers (
    id            serial PRIMARY KEY,
    question_id   integer NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    author_id     integer REFERENCES users(id) ON DELETE SET NULL,
    body          text NOT NULL,
    score         integer NOT NULL DEFAULT 0,
    is_accepted   boolean NOT NULL DEFAULT false,
    is_wiki       boolean NOT NULL DEFAULT false,
    from_swarm_id integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answers_question ON answers (question_id);
CREATE INDEX answers_author ON answers (author_id);
ALTER TABLE questions ADD CONSTRAINT questions_accepted_answer_fk
    FOREIGN KEY (accepted_answer_id) REFERENCES answers(id) ON DELETE SET NULL;

CREATE TABLE comments (
    id          serial PRIMARY KEY,
    question_id integer REFERENCES questions(id) ON DELETE CASCADE,
    answer_id   integer REFERENCES answers(id) ON DELETE CASCADE,
    author_id   integer REFERENCES users(id) ON DELETE SET NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((question_id IS NULL) <> (answer_id IS NULL))
);
CREATE INDEX comments_question ON comments (question_id);
CREATE INDEX comments_answer ON comments (answer_id);

CREATE TABLE votes (
    id          serial PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    question_id integer REFERENCES questions(id) ON DELETE CASCADE,
    answer_id   integer REFERENCES answers(id) ON DELETE CASCADE,
    value       smallint NOT NULL CHECK (value IN (-1, 1)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((question_id IS NULL) <> (answer_id IS NULL))
);
CREATE UNIQUE INDEX votes_user_question ON votes (user_id, question_id) WHERE question_id IS NOT NULL;
CREATE UNIQUE INDEX votes_user_answer ON votes (user_id, answer_id) WHERE answer_id IS NOT NULL;

CREATE TABLE revisions (
    id          serial PRIMARY KEY,
    question_id integer REFERENCES questions(id) ON DELETE CASCADE,
    answer_id   integer REFERENCES answers(id) ON DELETE CASCADE,
    editor_id   integer REFERENCES users(id) ON DELETE SET NULL,
    number      integer NOT NULL,
    title       varchar(200),
    body        text NOT NULL,
    tags        text NOT NULL DEFAULT '',
    comment     varchar(300) NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((question_id IS NULL) <> (answer_id IS NULL))
);
CREATE INDEX revisions_question ON revisions (question_id, number);
CREATE INDEX revisions_answer ON revisions (answer_id, number);

CREATE TABLE suggestions (
    id                     serial PRIMARY KEY,
    asker_id               integer REFERENCES users(id) ON DELETE SET NULL,
    draft_title            varchar(200) NOT NULL,
    draft_body             text NOT NULL DEFAULT '',
    suggested_question_id  integer NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    suggested_answer_id    integer REFERENCES answers(id) ON DELETE SET NULL,
    score                  double precision NOT NULL,
    outcome                varchar(16) NOT NULL DEFAULT 'shown'
                           CHECK (outcome IN ('shown', 'accepted', 'rejected')),
    posted_question_id     integer REFERENCES questions(id) ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    decided_at             timestamptz
);

CREATE TABLE swarms (
    id                 serial PRIMARY KEY,
    question_id        integer NOT NULL UNIQUE REFERENCES questions(id) ON DELETE CASCADE,
    status             varchar(16) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    reason             varchar(32) NOT NULL DEFAULT 'manual',
    opened_by_id       integer REFERENCES users(id) ON DELETE SET NULL,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    last_seq           integer NOT NULL DEFAULT 0,
    solution_answer_id integer REFERENCES answers(id) ON DELETE SET NULL
);
CREATE INDEX swarms_status ON swarms (status, opened_at);
ALTER TABLE answers ADD CONSTRAINT answers_from_swarm_fk
    FOREIGN KEY (from_swarm_id) REFERENCES swarms(id) ON DELETE SET NULL;

CREATE TABLE swarm_messages (
    id            bigserial PRIMARY KEY,
    swarm_id      integer NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    author_id     integer REFERENCES users(id) ON DELETE SET NULL,
    body          text NOT NULL,
    client_msg_id varchar(64) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (swarm_id, seq),
    UNIQUE (swarm_id, client_msg_id)
);

CREATE TABLE swarm_participants (
    id         serial PRIMARY KEY,
    swarm_id   integer NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
    user_id    integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    invited_at timestamptz,
    invite_score double precision,
    joined_at  timestamptz,
    left_at    timestamptz,
    messages   integer NOT NULL DEFAULT 0,
    UNIQUE (swarm_id, user_id)
);
CREATE INDEX swarm_participants_user ON swarm_participants (user_id);

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    kind        varchar(32) NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    integer REFERENCES users(id) ON DELETE SET NULL,
    question_id integer REFERENCES questions(id) ON DELETE CASCADE,
    answer_id   integer REFERENCES answers(id) ON DELETE SET NULL,
    swarm_id    integer REFERENCES swarms(id) ON DELETE SET NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_kind_at ON events (kind, at);
CREATE INDEX events_question ON events (question_id, kind);
