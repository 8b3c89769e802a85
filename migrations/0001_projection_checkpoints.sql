-- Where each projection has read MAIL_EVT up to. A projection writes its rows and
-- its new checkpoint in one transaction, and skips events at or below it.
CREATE TABLE projection_checkpoints (
    name       text PRIMARY KEY,
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
