"""The HTTP API: send and query mail over HTTP, on top of the same NATS subjects.

The API writes only to JetStream (commands on MAIL_CMD) and reads the PostgreSQL
read models the projections keep; a send is answered 202 once JetStream has the
command, never after a database write, so there is no dual write.
"""
