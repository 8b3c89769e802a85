-- Event webhooks (services/webhooks).

-- Read model of the customer's endpoints, folded from their events (replayable).
-- `secrets` holds sealed (encrypted) secrets only: [{"sealed", "valid_until"}].
CREATE TABLE webhook_endpoints (
    id              text PRIMARY KEY,
    url             text NOT NULL,
    events          text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL,
    disabled_reason text,
    secrets         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    start_seq       bigint NOT NULL,
    command_seq     bigint NOT NULL DEFAULT 0
);

-- Every delivery attempt, written by the webhooks service before it acks the event
-- (not derived from the log: it records what the customer's server answered).
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    endpoint_id  text NOT NULL,
    webhook_id   text NOT NULL,           -- the webhook-id header: the event's id
    type         text NOT NULL,           -- message.delivered, ..., webhook.test
    message_id   text,
    seq          bigint,                  -- the event's MAIL_EVT sequence
    attempt      integer NOT NULL,
    outcome      text NOT NULL,           -- delivered | retrying | failed
    http_status  integer,
    error        text,
    latency_ms   double precision NOT NULL,
    response     text NOT NULL DEFAULT '',  -- the first 1 KB of the answer
    replay_id    text,
    attempted_at timestamptz NOT NULL,
    next_attempt_at timestamptz
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_message_idx ON webhook_deliveries (message_id);

-- Per endpoint: the last success and, while failing, since when (auto-disable).
CREATE TABLE webhook_endpoint_health (
    endpoint_id     text PRIMARY KEY,
    last_success_at timestamptz,
    failing_since   timestamptz
);
