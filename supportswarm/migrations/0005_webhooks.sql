-- Bring your community (issue 9): outgoing webhooks, and what imports need to be idempotent.

-- Imported people and posts keep the id they had at their source (`se:<site>:user:<Id>`,
-- `se:<site>:<PostId>`, ...), so re-running an import adds nothing. Imported users have an
-- unusable password hash: they sign in after a password reset, never with a copied credential.
-- IF NOT EXISTS: the JSON Lines importer may add the same answer column; either order works.
ALTER TABLE users ADD COLUMN IF NOT EXISTS external_id varchar(128) UNIQUE;
ALTER TABLE users ADD COLUMN IF NOT EXISTS imported boolean NOT NULL DEFAULT false;
ALTER TABLE answers ADD COLUMN IF NOT EXISTS external_id varchar(128) UNIQUE;
ALTER TABLE comments ADD COLUMN IF NOT EXISTS external_id varchar(128) UNIQUE;

-- One row per import of a SupportSwarm export file (keyed by the export's id), so an interrupted
-- restore may be run again into the database it half-filled, and nothing else may be restored over.
CREATE TABLE import_runs (
    key         varchar(128) PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- An admin-configured receiver of events, signed with its own secret.
CREATE TABLE webhooks (
    id            serial PRIMARY KEY,
    url           varchar(2000) NOT NULL,
    secret        varchar(128) NOT NULL,
    events        jsonb NOT NULL DEFAULT '[]'::jsonb,
    description   varchar(200) NOT NULL DEFAULT '',
    is_active     boolean NOT NULL DEFAULT true,
    created_by_id integer REFERENCES users(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One event for one webhook. The body is fixed when the delivery is created, so every retry sends
-- the same bytes and the same signature; (webhook, event) is unique, so dispatching twice is harmless.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       integer NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    event_kind       varchar(32) NOT NULL,
    body             text NOT NULL,
    status           varchar(16) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       varchar(300),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id DESC);

-- Every attempt, for the delivery log page.
CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    number       integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        varchar(300),
    duration_ms  integer NOT NULL DEFAULT 0,
    UNIQUE (delivery_id, number)
);

-- How far the dispatcher has read the event log: a (transaction id, event id) cursor. Only events of
-- transactions older than the reader's snapshot xmin are read (see webhooks/services.py for why).
CREATE TABLE webhook_dispatch_state (
    name          varchar(32) PRIMARY KEY,
    last_txid     xid8 NOT NULL,
    last_event_id bigint NOT NULL DEFAULT 0,
    ran_at        timestamptz
);
INSERT INTO webhook_dispatch_state (name, last_txid) VALUES ('events', pg_current_xact_id());
