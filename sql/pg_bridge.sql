-- jetpost pg-bridge: lifecycle mail from YOUR application's database.
--
-- Apply once to the application database (PostgreSQL 13 or newer), not to jetpost's:
--     psql "$APP_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/pg_bridge.sql
-- then run `jetpost run pg-bridge` with JETPOST_BRIDGE_DATABASE_URL pointing at it.
-- Applying it again changes nothing.
--
-- The application inserts one row per mail, in the same transaction as the change
-- that causes it (no dual write: if the transaction rolls back, no mail):
--     INSERT INTO jetpost_outbox (action, email, username, code, secret)
--     VALUES ('activation', 'alice@example.com', 'alice', '123456', 'token...');
-- `action` picks the template (JETPOST_BRIDGE_TEMPLATES maps actions to templates;
-- an unmapped action is the template's name); email, username, code and secret are
-- the template's variables (`name` too: the username, else the address). The
-- variables are kept in jetpost's event log like every message's: prefer short-lived
-- or signed secrets.
--
-- The bridge only LISTENs and SELECTs; its position lives in NATS. A role for it:
--     CREATE ROLE jetpost_bridge LOGIN PASSWORD '...';
--     GRANT SELECT ON jetpost_outbox TO jetpost_bridge;
-- Rows are never deleted by jetpost; delete old ones when you like, e.g.
--     DELETE FROM jetpost_outbox WHERE created_at < now() - interval '30 days';
-- (a row deleted before the bridge read it is not sent).
-- Restored this database into another PostgreSQL cluster? Delete the bridge's key in
-- the NATS KV bucket mail_bridge_cursor before the application writes again: the
-- bridge then reads every row, and those already sent are recognised by their message
-- ids (bridge-<hash>-<row id>) and not sent twice.

CREATE TABLE IF NOT EXISTS jetpost_outbox (
    id         bigserial PRIMARY KEY,
    action     text NOT NULL,
    email      text NOT NULL,
    username   text,
    code       text,
    secret     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The inserting transaction. Ids are handed out at insert but rows appear at
    -- commit, so the bridge reads in (txid, id) order and only rows whose transaction
    -- is older than every running one: a slow transaction's row is never skipped.
    -- Leave it to its default.
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id()
);

CREATE INDEX IF NOT EXISTS jetpost_outbox_txid_id ON jetpost_outbox (txid, id);

-- One notification per INSERT statement (and at most one per transaction: PostgreSQL
-- folds identical notifications), sent at commit. The payload is empty: the bridge
-- reads the rows themselves. The channel is the trigger's argument; it must match
-- JETPOST_BRIDGE_CHANNEL (default jetpost_outbox).
CREATE OR REPLACE FUNCTION jetpost_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS jetpost_outbox_notify ON jetpost_outbox;
CREATE TRIGGER jetpost_outbox_notify
    AFTER INSERT ON jetpost_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION jetpost_outbox_notify('jetpost_outbox');
