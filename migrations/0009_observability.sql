-- The trace a message's life was recorded in (its first event's W3C traceparent):
-- `jetpost inspect` and GET /v1/messages/{id} show it, to look the message up in a
-- tracing backend.
ALTER TABLE messages ADD COLUMN trace_id text;

-- Retention (projections/retention.py) finds old timeline rows by time: a BRIN index
-- (tiny, nearly free to keep) suits rows appended in time order.
CREATE INDEX message_events_occurred_brin ON message_events USING brin (occurred_at);
