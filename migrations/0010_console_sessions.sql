-- Web console sign-ins. The browser holds a random token in an HttpOnly cookie; only
-- its SHA-256 is stored, beside the key it was opened with and the CSRF token its
-- forms carry. A session dies with its key (revoked keys are checked on every
-- request), at expires_at, or at sign-out.
CREATE TABLE console_sessions (
    token_hash  text PRIMARY KEY,
    key_id      text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
