-- The last manual change (add or remove) per address and scope, by the command's
-- MAIL_CMD sequence: an older command appended late cannot undo a newer one.
CREATE TABLE suppression_changes (
    address     text NOT NULL,
    scope       text NOT NULL DEFAULT '',
    command_seq bigint NOT NULL,
    PRIMARY KEY (address, scope)
);
