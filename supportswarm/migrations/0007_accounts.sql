-- Account settings, admin user management and password resets.

-- Session cookies carry the generation they were issued in; bumping it (a password change, a reset,
-- a deactivation) ends every cookie issued before. Bearer tokens are separate and stay.
ALTER TABLE users ADD COLUMN session_generation integer NOT NULL DEFAULT 0;
CREATE INDEX users_role ON users (role);

-- At most one live reset link per user: a new link replaces the old one, using it or changing the
-- password deletes it. Only the SHA-256 of the random token is stored.
CREATE TABLE password_resets (
    id            serial PRIMARY KEY,
    user_id       integer NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    token_hash    char(64) NOT NULL UNIQUE,
    created_by_id integer REFERENCES users(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

CREATE INDEX api_tokens_user ON api_tokens (user_id);
