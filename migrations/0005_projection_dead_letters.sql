-- Events of MAIL_EVT the projections could not read (a version that cannot parse
-- them, a payload beyond the parser's limits): recorded here and passed over, so
-- one unreadable event never stops the read models. The log keeps the event itself.
CREATE TABLE projection_dead_letters (
    seq         bigint PRIMARY KEY,
    subject     text NOT NULL,
    problem     text NOT NULL,
    raw         bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
