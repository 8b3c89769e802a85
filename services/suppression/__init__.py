"""suppression_set: the NATS KV suppression set, kept from the log."""
