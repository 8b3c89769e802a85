-- Read models folded from MAIL_EVT. Postgres is a cache of the log: every table
-- here can be dropped and rebuilt by `jetpost replay`.

-- One row per message: its current state (shared.fold.MessageState).
CREATE TABLE messages (
    id               text PRIMARY KEY,
    status           text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    sender           text,
    to_addrs         text[] NOT NULL DEFAULT '{}',
    cc_addrs         text[] NOT NULL DEFAULT '{}',
    bcc_addrs        text[] NOT NULL DEFAULT '{}',
    rcpt_domains     text[] NOT NULL DEFAULT '{}',
    subject          text,
    template         text,
    template_version text,
    tags             text[] NOT NULL DEFAULT '{}',
    attempts         integer NOT NULL DEFAULT 0,
    last_smtp_code   integer,
    last_error       text,
    accepted_at      timestamptz,
    rendered_at      timestamptz,
    delivered_at     timestamptz,
    bounced_at       timestamptz,
    failed_at        timestamptz,
    opens            integer NOT NULL DEFAULT 0,
    first_opened_at  timestamptz,
    clicks           integer NOT NULL DEFAULT 0,
    first_clicked_at timestamptz,
    complained_at    timestamptz,
    unsubscribed_at  timestamptz,
    resent_as        text[] NOT NULL DEFAULT '{}',
    last_event_at    timestamptz,
    last_seq         bigint NOT NULL
);
CREATE INDEX messages_created_idx ON messages (created_at DESC, id DESC);
CREATE INDEX messages_status_idx ON messages (status, created_at DESC, id DESC);
CREATE INDEX messages_template_idx ON messages (template, created_at DESC, id DESC);
CREATE INDEX messages_to_idx ON messages USING gin (to_addrs);
CREATE INDEX messages_domains_idx ON messages USING gin (rcpt_domains);
CREATE INDEX messages_tags_idx ON messages USING gin (tags);

-- The timeline: every event, keyed by its MAIL_EVT sequence.
CREATE TABLE message_events (
    seq         bigint PRIMARY KEY,
    message_id  text NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX message_events_message_idx ON message_events (message_id, seq);

-- Addresses not to mail, with the event that caused each entry (provenance).
CREATE TABLE suppressions (
    address    text NOT NULL,
    scope      text NOT NULL DEFAULT '',
    reason     text NOT NULL,
    message_id text,
    event_id   text,
    seq        bigint NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (address, scope)
);

-- Outcome counts per day and template ('' when none).
CREATE TABLE daily_stats (
    day      date NOT NULL,
    template text NOT NULL DEFAULT '',
    outcome  text NOT NULL,
    count    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, template, outcome)
);

-- API keys: only a hash of each key is stored; the key is shown once at creation.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    key_hash   text NOT NULL UNIQUE,
    scopes     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
