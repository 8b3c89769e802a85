"""feedback: what comes back after a mail left. Bounce reports (RFC 3464 DSNs) and
complaint reports (RFC 5965 ARF) arrive over SMTP at the receiver and become
`bounced` / `complained` events of the message they are about, or a
`feedback_unmatched` event when they cannot be tied to one."""
