-- Each bounce's verdict (shared.bounce_reasons) as the suppressions projection judged
-- it, per address: `jetpost replay suppressions --dry-run` compares a rebuild with a
-- changed classifier against these rows and lists every past bounce judged otherwise.
CREATE TABLE suppression_verdicts (
    event_id   text NOT NULL,
    address    text NOT NULL,
    message_id text NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    reason     text NOT NULL,
    status     text,
    PRIMARY KEY (event_id, address)
);
