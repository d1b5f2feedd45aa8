-- Flags and moderation (DESIGN: "everything can be ... flagged"; moderators manage flags).

-- Hiding is a state of the post itself, not a row elsewhere: every list, search and page that already
-- reads these tables filters or masks with one `hidden_at IS NULL` test, and nothing is deleted (the
-- revisions stay). hidden_by_id NULL with hidden_at set means hidden automatically, pending review.
ALTER TABLE questions ADD COLUMN hidden_at timestamptz,
    ADD COLUMN hidden_by_id integer REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE answers ADD COLUMN hidden_at timestamptz,
    ADD COLUMN hidden_by_id integer REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE comments ADD COLUMN hidden_at timestamptz,
    ADD COLUMN hidden_by_id integer REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE swarm_messages ADD COLUMN hidden_at timestamptz,
    ADD COLUMN hidden_by_id integer REFERENCES users(id) ON DELETE SET NULL;

-- One user's flag on one post (exactly one of the four post columns, as votes and revisions do).
-- pending: in the queue; agreed: a moderator hid the post; declined: dismissed, or the post restored.
CREATE TABLE flags (
    id             serial PRIMARY KEY,
    user_id        integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    question_id    integer REFERENCES questions(id) ON DELETE CASCADE,
    answer_id      integer REFERENCES answers(id) ON DELETE CASCADE,
    comment_id     integer REFERENCES comments(id) ON DELETE CASCADE,
    message_id     bigint REFERENCES swarm_messages(id) ON DELETE CASCADE,
    reason         varchar(16) NOT NULL CHECK (reason IN ('spam', 'rude', 'off_topic', 'needs_attention')),
    detail         varchar(500) NOT NULL DEFAULT '',
    status         varchar(16) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'agreed', 'declined')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_by_id integer REFERENCES users(id) ON DELETE SET NULL,
    resolved_at    timestamptz,
    CHECK (num_nonnulls(question_id, answer_id, comment_id, message_id) = 1)
);
-- One open flag per user per post; once it is settled the user may flag the post again.
CREATE UNIQUE INDEX flags_open_question ON flags (question_id, user_id) WHERE status = 'pending' AND question_id IS NOT NULL;
CREATE UNIQUE INDEX flags_open_answer ON flags (answer_id, user_id) WHERE status = 'pending' AND answer_id IS NOT NULL;
CREATE UNIQUE INDEX flags_open_comment ON flags (comment_id, user_id) WHERE status = 'pending' AND comment_id IS NOT NULL;
CREATE UNIQUE INDEX flags_open_message ON flags (message_id, user_id) WHERE status = 'pending' AND message_id IS NOT NULL;
CREATE INDEX flags_question ON flags (question_id, status) WHERE question_id IS NOT NULL;
CREATE INDEX flags_answer ON flags (answer_id, status) WHERE answer_id IS NOT NULL;
CREATE INDEX flags_comment ON flags (comment_id, status) WHERE comment_id IS NOT NULL;
CREATE INDEX flags_message ON flags (message_id, status) WHERE message_id IS NOT NULL;
CREATE INDEX flags_status ON flags (status, created_at);
