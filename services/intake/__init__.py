"""intake: send commands in, `accepted` / `rejected` events out."""
