"""pg-bridge: lifecycle mail (activation, password reset...) from rows an application
inserts into `jetpost_outbox` in its own PostgreSQL database (sql/pg_bridge.sql).

`logic` decides (row -> send command, when to flush, when to retry); `bridge` does the
I/O: LISTEN, read, publish to MAIL_CMD, keep the cursor in NATS KV.
"""
